"""config/live.env.example lists every setting the bridge reads, and nothing it does not read.

The settings are found in the code, never listed here: every variable name that app/config.py mentions
as a plain string (``env.get("LIVE_...")``, ``_int(env, "LIVE_...", ...)``), every ``os.environ`` /
``os.getenv`` / ``env.get`` read in app/, wsgi.py, config/gunicorn.conf.py and deploy/ (the image's
entrypoint helpers), and the Docker SDK's own variables, recorded by calling its reader. A setting added
to the code without a line in the example fails here, naming it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import docker.utils.utils

from app.config import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "config" / "live.env.example"
SETTINGS_MODULE = PROJECT_ROOT / "app" / "config.py"
# Where environment variables are read directly; app/config.py is read in full below.
READERS = [*sorted((PROJECT_ROOT / "app").rglob("*.py")), PROJECT_ROOT / "wsgi.py",
           PROJECT_ROOT / "config" / "gunicorn.conf.py", *sorted((PROJECT_ROOT / "deploy").glob("*.py"))]
NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")
# `# LIVE_X=value` (a default, commented out) or `LIVE_X=value`.
EXAMPLE_ENTRY = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.M)


def names_in_settings_module() -> set[str]:
    """Every string constant of app/config.py that is a variable name: load_settings reads each one."""
    tree = ast.parse(SETTINGS_MODULE.read_text(encoding="utf-8"))
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value)}


def _is_environ(node: ast.expr) -> bool:
    """``os.environ``, ``environ`` or ``env`` (the name load_settings and the helpers give the mapping)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id in ("environ", "env")


def direct_reads(path: Path) -> set[str]:
    """Names read with os.environ.get / os.getenv / os.environ[...] / env.get in one file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        key = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value):
                key = node.args[0]
            elif isinstance(func, ast.Attribute) and func.attr == "getenv":
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and NAME.match(key.value):
            found.add(key.value)
    return found


class RecordingEnv(dict):
    def __init__(self):
        super().__init__(UNRELATED="1")  # not empty: an empty mapping makes the SDK fall back to os.environ
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def docker_sdk_reads() -> set[str]:
    """What the Docker SDK reads when the bridge builds its client (DockerClient.from_env -> kwargs_from_env)."""
    env = RecordingEnv()
    docker.utils.utils.kwargs_from_env(environment=env)
    return env.read


def settings_read_by_the_code() -> set[str]:
    names = names_in_settings_module() | docker_sdk_reads()
    for path in READERS:
        names |= direct_reads(path)
    # Read by the WSGI server or the test harness, not settings of the bridge.
    return {name for name in names if not name.startswith(("HTTP_", "CONTENT_", "SERVER_", "wsgi"))}


def listed_in_example() -> set[str]:
    return set(EXAMPLE_ENTRY.findall(EXAMPLE.read_text(encoding="utf-8")))


def test_the_scan_finds_the_settings_we_know_of():
    """Guards the scan itself: if it stopped finding these, the comparisons below would prove nothing."""
    read = settings_read_by_the_code()
    assert {"LIVE_DATABASE_URL", "LIVE_WAIT_SLOTS", "GUNICORN_THREADS", "GUNICORN_BIND", "DOCKER_HOST",
            "DOCKER_CERT_PATH", "PROMETHEUS_MULTIPROC_DIR", "LIVE_DB_WAIT_SECONDS"} <= read, read


def test_the_example_lists_every_setting_the_code_reads():
    missing = settings_read_by_the_code() - listed_in_example()
    assert not missing, f"config/live.env.example does not list: {', '.join(sorted(missing))}"


def test_the_example_lists_nothing_the_code_does_not_read():
    stale = listed_in_example() - settings_read_by_the_code()
    assert not stale, f"config/live.env.example lists settings no code reads: {', '.join(sorted(stale))}"


def test_every_live_setting_is_in_the_readme_configuration_table():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Configuration")
    table = readme[start:readme.index("\n## ", start)]
    missing = {name for name in settings_read_by_the_code() if name.startswith("LIVE_")} - set(
        re.findall(r"`(LIVE_[A-Z0-9_]+)`", table))
    assert not missing, f'README.md\'s "Configuration" table does not list: {", ".join(sorted(missing))}'
