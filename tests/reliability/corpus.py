"""Broken and malicious product definitions: every one must be refused with a named error.

Each case is (name, product.yml, docker-compose.yml, expected): ``expected`` is a
fragment the refusal must contain, naming the product and the service or key at fault.
The bench (`make bench`) reports how many of these were refused.
"""
from __future__ import annotations

MANIFEST = "name: Bad\nplans: {basic: {}}\n"
IMG = "live-test/busybox:latest"


def svc(extra: str, name: str = "web") -> str:
    body = "\n".join("    " + line for line in extra.strip("\n").splitlines())
    return f"services:\n  {name}:\n    image: {IMG}\n{body}\n"


CASES: list[tuple[str, str, str, str]] = [
    ("privileged", MANIFEST, svc("privileged: true"), "service web: privileged"),
    ("docker-socket", MANIFEST, svc("volumes:\n  - /var/run/docker.sock:/var/run/docker.sock"), "service web: volumes[0]"),
    ("host-root-bind", MANIFEST, svc("volumes:\n  - /:/host"), "service web: volumes[0]"),
    ("host-etc-long-syntax", MANIFEST, svc("volumes:\n  - {type: bind, source: /etc, target: /x}"), "service web: volumes[0]"),
    ("network-mode-host", MANIFEST, svc("network_mode: host"), "service web: network_mode"),
    ("pid-host", MANIFEST, svc("pid: host"), "service web: pid"),
    ("ipc-host", MANIFEST, svc("ipc: host"), "service web: ipc"),
    ("cap-sys-admin", MANIFEST, svc("cap_add: [SYS_ADMIN]"), "service web: cap_add"),
    ("cap-all", MANIFEST, svc("cap_add: [ALL]"), "service web: cap_add"),
    ("devices", MANIFEST, svc("devices: ['/dev/sda:/dev/sda']"), "service web: devices"),
    ("security-opt-unconfined", MANIFEST, svc("security_opt: ['seccomp:unconfined']"), "service web: security_opt"),
    ("sysctl-kernel", MANIFEST, svc("sysctls: {kernel.shmmax: '1'}"), "service web: sysctls"),
    ("ports-published", MANIFEST, svc("ports: ['0.0.0.0:80:80']"), "service web: ports"),
    ("container-name", MANIFEST, svc("container_name: victim"), "service web: container_name"),
    ("build", MANIFEST, "services:\n  web:\n    build: .\n", "service web"),
    ("env-file", MANIFEST, svc("env_file: /etc/shadow"), "service web: env_file"),
    ("external-volume", MANIFEST, svc("volumes: ['other:/data']") + "volumes:\n  other: {external: true}\n",
     "volumes.other: external"),
    ("volume-driver-opts-bind", MANIFEST,
     svc("volumes: ['v:/data']") + "volumes:\n  v: {driver_opts: {type: none, o: bind, device: /etc}}\n",
     "volumes.v: driver_opts"),
    ("external-network", MANIFEST, svc("networks: [other]") + "networks:\n  other: {external: true}\n",
     "networks.other: external"),
    ("network-driver-host", MANIFEST, svc("networks: [n]") + "networks:\n  n: {driver: host}\n", "networks.n: driver"),
    ("volumes-from", MANIFEST, svc("volumes_from: [other]"), "service web: volumes_from"),
    ("no-image", MANIFEST, "services:\n  web:\n    command: [sh]\n", "service web: image"),
    ("no-services", MANIFEST, "services: {}\n", "services"),
    ("depends-on-unknown", MANIFEST, svc("depends_on: [ghost]"), "service web: depends_on"),
    ("depends-on-cycle", MANIFEST,
     f"services:\n  a:\n    image: {IMG}\n    depends_on: [b]\n  b:\n    image: {IMG}\n    depends_on: [a]\n", "cycle"),
    ("undefined-variable", MANIFEST, svc("environment: {X: '${NOT_DEFINED}'}"), "NOT_DEFINED"),
    ("variable-smuggles-privilege", "name: Bad\nvariables: {MODE: host}\nplans: {basic: {}}\n",
     svc("network_mode: ${MODE}"), "service web: network_mode"),
    ("plan-smuggles-host-bind", "name: Bad\nplans: {basic: {SRC: /etc}}\n", svc("volumes: ['${SRC}:/x']"),
     "service web: volumes[0]"),
    ("reserved-variable", "name: Bad\nvariables: {LIVE_HOSTNAME: evil}\nplans: {basic: {}}\n", svc(""), "LIVE_HOSTNAME"),
    ("manifest-without-plans", "name: Bad\n", svc(""), "product.yml"),
    ("manifest-not-yaml", "name: [unclosed\n", svc(""), "product.yml"),
    ("compose-not-yaml", MANIFEST, "services:\n  web: {image: [\n", "docker-compose.yml"),
    ("yaml-billion-laughs", MANIFEST,
     "x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\nx-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nx-d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "services:\n  web:\n    image: 1\n    privileged: true\n    x-boom: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
     "service web"),
    ("endpoint-unknown-service",
     "name: Bad\nplans: {basic: {}}\nendpoints:\n  - {application: x, service: ghost, port: 80}\n", svc(""),
     "endpoint x names unknown service 'ghost'"),
    ("unknown-top-level-key", MANIFEST, svc("") + "secrets:\n  s: {file: /etc/shadow}\n", "top-level key 'secrets'"),
]
