"""The deployer on the in-memory engine (tests/fakes.py): convergence in milliseconds, no Docker needed."""
from __future__ import annotations


import pytest

from app.catalog.product import build_project, load_product, sample_builtins
from app.errors import (
    EngineOperationError,
    EngineUnavailable,
    HealthCheckFailed,
    HostPortInUse,
    ImageMissing,
    NotFound,
)
from app.stacks.deployer import DEFAULT_HELPER_IMAGE, Deployer
from app.stacks.engine_requests import build_requests
from tests.fakes import FIRST_EPHEMERAL_PORT, FakeEngine, Killed

MANIFEST = """\
name: Demo
plans:
  small: {MEM: 64m}
  large: {MEM: 128m}
endpoints:
  - {application: web, service: web, port: 8080, path: /}
"""
COMPOSE = """\
services:
  db:
    image: postgres:17
    mem_limit: ${MEM}
    healthcheck: {test: [CMD, pg_isready], interval: 1s}
    volumes: [db-data:/var/lib/postgresql/data]
    networks: [backend]
  web:
    image: nginx:1.25
    expose: ["9090-9091"]
    depends_on:
      db: {condition: service_healthy}
    networks: [default, backend]
volumes:
  db-data:
networks:
  backend: {internal: true}
"""
IMAGES = ("postgres:17", "nginx:1.25")


def project(plan: str = "small", pinned_ports: dict[str, int] | None = None, compose: str = COMPOSE):
    product = load_product("demo", MANIFEST, compose)
    assert product.errors == []
    builtins = dict(sample_builtins("demo", plan), LIVE_ORDER_ID="7", LIVE_INSTANCE="acme",
                    LIVE_HOSTNAME="acme.example.org")
    return build_project(product, plan, builtins, {}, revision="r1", pinned_ports=pinned_ports, deployment="t")


@pytest.fixture
def engine():
    return FakeEngine(IMAGES + (DEFAULT_HELPER_IMAGE,))  # the archive helper is installed, as `make test` does


@pytest.fixture
def deployer(engine):
    return Deployer(engine, health_timeout=0.5, poll_interval=0.001)


def test_deploy_creates_networks_volumes_and_containers_in_dependency_order(engine, deployer):
    result = deployer.deploy(project())
    assert result.actions == {"db": "create", "web": "create"}
    assert sorted(engine.networks) == ["t-acme_backend", "t-acme_default"]
    assert sorted(engine.volumes) == ["t-acme_db-data"]
    assert engine.calls_of("start_container") == ["t-acme_db", "t-acme_web"]  # web waits for a healthy db
    db, web = engine.container("t-acme_db"), engine.container("t-acme_web")
    assert (db.state, db.health, web.state) == ("running", "healthy", "running")
    assert web.networks == {"t-acme_default": ["web"], "t-acme_backend": ["web"]}
    assert sorted(web.payload["ExposedPorts"]) == ["8080/tcp", "9090/tcp", "9091/tcp"]
    assert web.labels["live.order"] == "7" and not any(key.startswith("traefik.") for key in web.labels)
    assert result.published_ports == {"web:8080": FIRST_EPHEMERAL_PORT}
    assert engine.networks["t-acme_backend"].labels["live.network"] == "backend"


def test_a_second_deploy_changes_nothing(engine, deployer):
    deployer.deploy(project())
    calls = len(engine.calls)
    result = deployer.deploy(project())
    assert result.actions == {"db": "noop", "web": "noop"}
    assert engine.calls[calls:] == []
    plan, _, _ = deployer.plan(project())
    assert plan.is_noop


def test_a_changed_plan_recreates_only_the_changed_service_and_keeps_its_volume(engine, deployer):
    deployer.deploy(project("small"))
    old_db, old_web = engine.container("t-acme_db").id, engine.container("t-acme_web").id
    engine.write_file("t-acme_db-data", "PG_VERSION", b"17")
    result = deployer.deploy(project("large"))
    assert result.actions == {"db": "recreate", "web": "noop"}
    assert engine.container("t-acme_db").id != old_db and old_db not in engine.containers
    assert engine.container("t-acme_web").id == old_web
    assert engine.container("t-acme_db").payload["HostConfig"]["Memory"] == 128 * 1024 * 1024
    assert engine.volumes["t-acme_db-data"].files == {"PG_VERSION": b"17"}


def test_stop_stops_dependents_first_and_a_deploy_starts_them_again(engine, deployer):
    deployer.deploy(project())
    assert deployer.stop(project()) == ["db", "web"]
    assert engine.calls_of("stop_container") == ["t-acme_web", "t-acme_db"]
    assert {c.state for c in engine.containers.values()} == {"exited"}
    result = deployer.deploy(project())
    assert result.actions == {"db": "start", "web": "start"}


def test_an_unhealthy_dependency_fails_the_deploy_and_its_dependent_is_not_created(engine, deployer):
    engine.health["db"] = "unhealthy"
    with pytest.raises(HealthCheckFailed, match="db is unhealthy, so web was not started"):
        deployer.deploy(project())
    assert engine.calls_of("create_container") == ["t-acme_db"]


def test_a_dependency_that_exits_fails_the_deploy(engine, deployer):
    engine.exit_codes["db"] = 3
    with pytest.raises(HealthCheckFailed, match="db is unhealthy, so web was not started"):
        deployer.deploy(project())


JOB_COMPOSE = COMPOSE.replace("""    depends_on:
      db: {condition: service_healthy}
""", """    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
""").replace("volumes:\n  db-data:", """  migrate:
    image: nginx:1.25
    command: [migrate]
    depends_on:
      db: {condition: service_healthy}
    networks: [backend]
volumes:
  db-data:""")


def job_project(migrate: str = "migrate"):
    product = load_product("demo", MANIFEST, JOB_COMPOSE.replace("command: [migrate]", f"command: [{migrate}]"))
    assert product.errors == []
    builtins = dict(sample_builtins("demo", "small"), LIVE_ORDER_ID="7", LIVE_INSTANCE="acme")
    return build_project(product, "small", builtins, {}, revision="r1", deployment="t")


def test_a_finished_job_is_not_run_again_unless_its_definition_changed_or_it_failed(engine, deployer):
    """A redeploy (a drift repair, a restart) leaves a migration that exited 0 as it is: web's
    ``service_completed_successfully`` is met by the exited container; a changed one runs again, a failed one too."""
    engine.exit_codes["migrate"] = 0
    assert deployer.deploy(job_project()).actions == {"db": "create", "migrate": "create", "web": "create"}
    job = engine.container("t-acme_migrate")
    assert (job.state, job.exit_code) == ("exited", 0)
    engine.stop_container(engine.container("t-acme_web").id, timeout=1)
    calls = len(engine.calls)

    result = deployer.deploy(job_project())

    assert result.actions == {"db": "noop", "migrate": "noop", "web": "start"}
    assert engine.calls[calls:] == [("start_container", "t-acme_web")]
    assert deployer.stop(job_project()) == ["db", "web"]  # unsuspend after suspend: the job is not run either
    assert deployer.deploy(job_project()).actions == {"db": "start", "migrate": "noop", "web": "start"}
    assert deployer.deploy(job_project("migrate-v2")).actions == {"db": "noop", "migrate": "recreate", "web": "noop"}
    job = engine.container("t-acme_migrate")
    job.exit(1)  # failed (by hand, after the deploy): started again, web waits for it
    assert deployer.deploy(job_project("migrate-v2")).actions == {"db": "noop", "migrate": "start", "web": "noop"}
    assert engine.calls[-1] == ("start_container", "t-acme_migrate")


def test_a_deploy_after_a_restore_runs_finished_jobs_again(engine, deployer):
    """``rerun_jobs`` (a restore replaced the data under them): a finished migration is started again, before web."""
    engine.exit_codes["migrate"] = 0
    deployer.deploy(job_project())
    deployer.stop(job_project())
    calls = len(engine.calls)
    assert deployer.deploy(job_project(), rerun_jobs=True).actions == {"db": "start", "migrate": "start", "web": "start"}
    started = [name for call, name in engine.calls[calls:] if call == "start_container"]
    assert started.index("t-acme_migrate") < started.index("t-acme_web")
    plan, _requests, _observed = deployer.plan(job_project(), rerun_jobs=True)
    assert plan.actions["migrate"] == "start"  # exited 0 again, still planned to run


def test_a_stop_on_a_swarm_leaves_a_finished_job_and_stops_every_other_exited_service(engine, deployer):
    """Scaled to 0, a swarm service drops its completed task: the next deploy could not tell the job finished."""
    engine.exit_codes["migrate"] = 0
    deployer.deploy(job_project())
    engine.exit_codes.pop("migrate")
    engine.stop_container(engine.container("t-acme_db").id, timeout=1)  # a service already exited
    engine.starts_asynchronously = True
    stopped = []
    engine.stop_container = lambda container_id, timeout: stopped.append(engine.containers[container_id].name)
    assert deployer.stop(job_project()) == ["web"]
    assert sorted(stopped) == ["t-acme_db", "t-acme_web"]  # the exited db too (a stop may be under way), not migrate


DB_ONLY_MANIFEST = "name: Demo\nplans:\n  small: {MEM: 64m}\n"
DB_ONLY_COMPOSE = COMPOSE[:COMPOSE.index("  web:")] + COMPOSE[COMPOSE.index("volumes:\n  db-data:"):]


def db_only_project(order_id: str, instance: str):
    product = load_product("demo", DB_ONLY_MANIFEST, DB_ONLY_COMPOSE)
    assert product.errors == []
    builtins = dict(sample_builtins("demo", "small"), LIVE_ORDER_ID=order_id, LIVE_INSTANCE=instance)
    return build_project(product, "small", builtins, {}, revision="r2", deployment="t")


def test_orphans_of_the_order_are_removed_and_other_orders_are_left_alone(engine, deployer):
    deployer.deploy(project())
    deployer.deploy(db_only_project("8", "other"))
    result = deployer.deploy(db_only_project("7", "acme"))  # order 7 moves to a revision without web
    assert result.orphans_removed == ["t-acme_web"]
    assert result.actions == {"db": "noop"}  # the revision label is not part of the config hash
    assert sorted(c.name for c in engine.containers.values()) == ["t-acme_db", "t-other_db"]
    assert engine.container("t-other_db").state == "running"


def test_a_pinned_port_taken_by_another_container_is_refused_with_the_engine_message(engine, deployer):
    deployer.deploy(project(pinned_ports={"web:8080": 20001}))
    assert engine.container("t-acme_web").host_ports == {"8080/tcp": 20001}
    clash = build_project(load_product("demo", MANIFEST, COMPOSE), "small",
                          dict(sample_builtins("demo", "small"), LIVE_ORDER_ID="9", LIVE_INSTANCE="clash"), {},
                          revision="r1", pinned_ports={"web:8080": 20001}, deployment="t")
    with pytest.raises(EngineOperationError, match=r"Bind for 127\.0\.0\.1:20001 failed: port is already allocated"):
        deployer.deploy(clash)


def test_the_fake_refuses_what_the_engine_refuses(engine):
    with pytest.raises(ImageMissing, match="postgres:16"):
        engine.image_id("postgres:16")
    requests = build_requests(project(), {"db": "sha256:x", "web": "sha256:y"})
    with pytest.raises(NotFound, match="network t-acme_backend not found"):
        engine.create_container(requests.containers["db"])
    for network in requests.networks:
        engine.create_network(network)
    engine.create_container(requests.containers["db"])
    with pytest.raises(EngineOperationError, match='The container name "/t-acme_db" is already in use'):
        engine.create_container(requests.containers["db"])
    with pytest.raises(EngineOperationError, match="has active endpoints"):
        engine.remove_network("t-acme_backend")
    with pytest.raises(EngineOperationError, match="volume is in use"):
        engine.remove_volume("t-acme_db-data")  # created by the engine for the bind, as Docker does
    engine.images.pop("nginx:1.25")
    with pytest.raises(ImageMissing, match="No such image: nginx:1.25"):
        engine.create_container(requests.containers["web"])


def test_a_failed_service_skips_its_dependents(engine, deployer):
    requests = build_requests(project(), {"db": "sha256:x", "web": "sha256:y"})
    for network in requests.networks:
        engine.create_network(network)
    squatter = requests.containers["db"]
    squatter.labels = {"owner": "someone else"}  # same name, not the order's: the engine refuses the name
    engine.create_container(squatter)
    with pytest.raises(EngineOperationError, match="already in use"):
        deployer.deploy(project())
    assert engine.calls_of("create_container") == ["t-acme_db"]  # the squatter; web was skipped


def test_an_unreachable_engine_is_a_transient_error(engine, deployer):
    engine.reachable = False
    with pytest.raises(EngineUnavailable) as info:
        deployer.deploy(project())
    assert info.value.transient


def test_two_orders_never_make_the_same_container_name(engine, deployer):
    """Order shop's service db-main and order shop-db's service main were both t-shop-db-main (QA finding)."""
    def one(order_id: str, instance: str, service: str):
        compose = DB_ONLY_COMPOSE.replace("  db:", f"  {service}:", 1)
        product = load_product("demo", DB_ONLY_MANIFEST, compose)
        assert product.errors == [], product.errors
        builtins = dict(sample_builtins("demo", "small"), LIVE_ORDER_ID=order_id, LIVE_INSTANCE=instance)
        return build_project(product, "small", builtins, {}, revision="r1", deployment="t")

    deployer.deploy(one("1", "shop", "db-main"))
    deployer.deploy(one("2", "shop-db", "main"))
    assert sorted(c.name for c in engine.containers.values()) == ["t-shop-db_main", "t-shop_db-main"]


# -- recreate like compose: the replacement is made before the old container stops ------------------------------
COMPOSE_BOTH = COMPOSE.replace("    image: nginx:1.25\n", "    image: nginx:1.25\n    mem_limit: ${MEM}\n")
PINNED = {"web:8080": 20001}


def both(plan: str):
    """A project where a plan change recreates db and web; web publishes host port 20001."""
    return project(plan, pinned_ports=PINNED, compose=COMPOSE_BOTH)


def services(engine: FakeEngine) -> dict[str, list[str]]:
    """service -> "name state" of each of its containers."""
    found: dict[str, list[str]] = {}
    for container in sorted(engine.containers.values(), key=lambda c: c.name):
        found.setdefault(container.service, []).append(f"{container.name} {container.state}")
    return found


def converged(engine: FakeEngine, plan: str = "large") -> None:
    """One running container per service under its final name, with the plan's memory, web on its port."""
    assert services(engine) == {"db": ["t-acme_db running"], "web": ["t-acme_web running"]}
    memory = {"small": 64, "large": 128}[plan] * 1024 * 1024
    assert {c.payload["HostConfig"]["Memory"] for c in engine.containers.values()} == {memory}
    assert engine.container("t-acme_web").host_ports == {"8080/tcp": 20001}


def test_a_recreate_makes_the_replacement_first_then_swaps_it_in(engine, deployer):
    deployer.deploy(both("small"))
    old = engine.container("t-acme_db")
    engine.write_file("t-acme_db-data", "PG_VERSION", b"17")
    calls = len(engine.calls)
    result = deployer.deploy(both("large"))
    assert result.actions == {"db": "recreate", "web": "recreate"}
    temporary = f"{old.id[:12]}_t-acme_db"
    assert [call for call in engine.calls[calls:] if "t-acme_db" in call[1]] == [
        ("create_container", temporary), ("stop_container", "t-acme_db"), ("start_container", temporary),
        ("remove_container", "t-acme_db"), ("rename_container", f"{temporary} -> t-acme_db")]
    converged(engine)
    assert old.id not in engine.containers
    assert engine.container("t-acme_db").labels["live.replaces"] == old.id
    assert engine.volumes["t-acme_db-data"].files == {"PG_VERSION": b"17"}
    assert result.published_ports == {"web:8080": 20001}, "the replacement publishes the old container's port"
    assert deployer.deploy(both("large")).actions == {"db": "noop", "web": "noop"}


@pytest.mark.parametrize("call", ["create_container", "connect_container"])
def test_a_replacement_that_cannot_be_made_leaves_the_old_container_running(engine, deployer, call):
    deployer.deploy(both("small"))
    old = engine.container("t-acme_web")
    engine.failures[(call, "web")] = EngineOperationError("create container: refused")
    with pytest.raises(EngineOperationError, match="refused"):
        deployer.deploy(both("large"))
    assert engine.container("t-acme_web").id == old.id and old.state == "running"
    assert engine.calls_of("stop_container") == ["t-acme_db"], "db was replaced; web's old container never stopped"
    assert services(engine)["web"] == ["t-acme_web running"], "the replacement was removed"


def test_an_old_container_that_does_not_stop_keeps_running_and_the_replacement_goes(engine, deployer):
    deployer.deploy(both("small"))
    old = engine.container("t-acme_db")
    engine.failures[("stop_container", "t-acme_db")] = EngineUnavailable("stop container: engine restarting")
    with pytest.raises(EngineUnavailable, match="engine restarting"):
        deployer.deploy(both("large"))
    assert services(engine) == {"db": ["t-acme_db running"], "web": ["t-acme_web running"]}
    assert engine.container("t-acme_db").id == old.id
    deployer.deploy(both("large"))  # the retry
    converged(engine)


@pytest.mark.parametrize("failure", [
    EngineOperationError("start container: OCI runtime create failed"),
    HostPortInUse("start container: Bind for 127.0.0.1:20001 failed: port is already allocated", port=20001),
], ids=["refused", "port"])
def test_a_replacement_that_does_not_start_gives_the_service_back_to_the_old_container(engine, deployer, failure):
    deployer.deploy(both("small"))
    old = engine.container("t-acme_web")
    temporary = f"{old.id[:12]}_t-acme_web"
    engine.failures[("start_container", temporary)] = failure
    with pytest.raises(type(failure)) as raised:
        deployer.deploy(both("large"))
    assert raised.value is failure, "the error is the replacement's, as before"
    assert services(engine)["web"] == ["t-acme_web running"] and engine.container("t-acme_web").id == old.id
    assert old.host_ports == {"8080/tcp": 20001}
    assert engine.calls_of("remove_container")[-1] == temporary


def test_when_neither_container_starts_the_replacements_error_is_raised(engine, deployer):
    deployer.deploy(both("small"))
    old = engine.container("t-acme_web")
    engine.failures[("start_container", f"{old.id[:12]}_t-acme_web")] = EngineOperationError("new did not start")
    engine.failures[("start_container", "t-acme_web")] = EngineOperationError("old did not start")
    with pytest.raises(EngineOperationError, match="new did not start"):
        deployer.deploy(both("large"))
    assert services(engine)["web"] == ["t-acme_web exited"]
    deployer.deploy(both("large"))
    converged(engine)


@pytest.mark.parametrize("step", ["create_container", "connect_container", "stop_container", "start_container",
                                  "remove_container", "rename_container"])
def test_a_worker_killed_at_any_step_of_a_recreate_converges_on_the_next_run(engine, deployer, step):
    deployer.deploy(both("small"))
    old = engine.container("t-acme_web")
    temporary = f"{old.id[:12]}_t-acme_web"
    engine.write_file("t-acme_db-data", "PG_VERSION", b"17")
    container = temporary if step in ("start_container", "rename_container") else "t-acme_web"
    engine.failures[(step, "web" if step.startswith(("create", "connect")) else container)] = Killed()
    with pytest.raises(Killed):
        deployer.deploy(both("large"))
    # What the dead worker left: the old container, its replacement, or both.
    left = {"create_container": ["t-acme_web running"],
            "connect_container": [f"{temporary} created", "t-acme_web running"],
            "stop_container": [f"{temporary} created", "t-acme_web running"],
            "start_container": [f"{temporary} created", "t-acme_web exited"],
            "remove_container": [f"{temporary} running", "t-acme_web exited"],
            "rename_container": [f"{temporary} running"]}[step]
    assert services(engine)["web"] == left
    result = deployer.deploy(both("large"))
    converged(engine)
    assert engine.volumes["t-acme_db-data"].files == {"PG_VERSION": b"17"}
    if step == "rename_container":
        assert result.actions["web"] == "noop" and engine.container("t-acme_web").labels["live.replaces"] == old.id
    assert deployer.deploy(both("large")).actions == {"db": "noop", "web": "noop"}


def test_a_suspend_after_an_interrupted_recreate_stops_both_containers_of_the_service(engine, deployer):
    deployer.deploy(both("small"))
    engine.failures[("remove_container", "t-acme_db")] = Killed()  # the replacement runs, the old one is stopped
    with pytest.raises(Killed):
        deployer.deploy(both("large"))
    engine.start_container("t-acme_db")  # both running: what an engine restart with restart policies gives
    assert [state.split()[1] for state in services(engine)["db"]] == ["running", "running"]
    assert deployer.stop(both("large")) == ["db", "web"]
    assert {c.state for c in engine.containers.values()} == {"exited"}


def test_a_replacement_that_cannot_be_removed_after_a_failure_is_removed_by_the_next_run(engine, deployer):
    deployer.deploy(both("small"))
    temporary = f"{engine.container('t-acme_web').id[:12]}_t-acme_web"
    engine.failures[("start_container", temporary)] = EngineOperationError("new did not start")
    engine.failures[("remove_container", temporary)] = EngineUnavailable("engine restarting")
    with pytest.raises(EngineOperationError, match="new did not start"):
        deployer.deploy(both("large"))
    assert services(engine)["web"] == [f"{temporary} created", "t-acme_web running"]
    deployer.deploy(both("large"))
    converged(engine)


def test_a_plan_without_pull_changes_nothing_on_the_engine(engine, deployer):
    """Previews (the web's dry runs) plan without pulling: a missing image is not fetched, its services recreate."""
    deployer.deploy(project())
    engine.pullable = lambda ref: True
    missing = "example.org/not-here:1"
    changed = project(compose=COMPOSE.replace(IMAGES[0], missing, 1))
    before = list(engine.calls)
    plan, _, _ = deployer.plan(changed, pull=False)
    assert missing not in engine.images and ("pull", missing) not in engine.calls
    assert [call for call in engine.calls[len(before):] if call[0] != "list_containers" and call[0] != "image_present"
            and call[0] != "image_id"] == [], "a plan without pull only reads"
    assert plan.changed(), "the service whose image is not present is planned as recreated"
    deployer.plan(changed)  # a deploy's plan pulls
    assert ("pull", missing) in engine.calls


def test_a_plan_inspects_each_distinct_image_once(engine):
    shared = COMPOSE.replace("image: nginx:1.25", "image: postgres:17")
    asked = []
    image_id = engine.image_id
    engine.image_id = lambda ref: (asked.append(ref), image_id(ref))[1]
    plan, requests, _ = Deployer(engine).plan(project(compose=shared))
    assert asked == ["postgres:17"]
    assert requests["db"].image == requests["web"].image == "postgres:17"
    assert set(plan.actions) == {"db", "web"}


def test_waits_look_every_tenth_of_a_second_and_every_quarter_on_a_swarm(engine):
    from app.stacks.deployer import POLL_SECONDS, SWARM_POLL_SECONDS

    assert Deployer(engine).poll_interval == POLL_SECONDS == 0.1
    engine.starts_asynchronously = True
    assert Deployer(engine).poll_interval == SWARM_POLL_SECONDS == 0.25
    assert Deployer(engine, poll_interval=0.5).poll_interval == 0.5
