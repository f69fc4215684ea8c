"""The README's "Try it" block runs exactly as written, against the bridge that `make run` starts.

The block is read from README.md itself, never copied here. Its commands run one by one, from
the checkout's folder, with a shell, as a reader types them in a second terminal; `make run`'s
part (migrate, sync the catalog, then the worker and gunicorn) is played by
:class:`tests.support.live_service.Service`. Everything is the test's own: a SQLite file, a copy
of the example config repository, a backup folder and a ``LIVE_DEPLOYMENT`` namespace, whose
Docker objects are removed afterwards.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from app.backups import backup_store
from app.config import PROJECT_ROOT
from tests.conftest import unavailable
from tests.support.live_service import Service

README = PROJECT_ROOT / "README.md"
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# The block's instance identifier, as the README's own text names it.
INSTANCE = "jane-s-maps"


def try_it_block(text: str) -> list[str]:
    """The command lines of the first ``sh`` block after "Try it" in the "Quick start" section."""
    start = text.index("## Quick start")
    section = text[start:text.index("\n## ", start + 1)]
    block = re.search(r"```sh\n(.*?)```", section[section.index("Try it"):], re.S)
    assert block, 'README.md: no ```sh block after "Try it" in "Quick start"'
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_block_is_found_and_names_the_instance_it_creates():
    lines = try_it_block(README.read_text(encoding="utf-8"))
    assert any(" orders create " in line and "--wait" in line for line in lines)
    # Every command after the create names the identifier that the create's --username really gives.
    lifecycle = [line for line in lines
                 if re.search(r"\borders (show|suspend|unsuspend|change-plan|terminate)\b", line)]
    assert len(lifecycle) == 5 and all(f" {INSTANCE}" in line for line in lifecycle), lifecycle


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_try_it_block_runs_as_written(settings, docker_engine, stack_cleanup, tmp_path):
    if not (PROJECT_ROOT / ".venv" / "bin" / "flask").exists():
        unavailable("the README's block runs .venv/bin/flask: no virtualenv at .venv (make venv)")
    lines = try_it_block(README.read_text(encoding="utf-8"))
    service = Service(settings, tmp_path)
    outputs: dict[str, str] = {}
    try:
        service.start(worker=True)
        service.flask("products", "sync")  # what `make run` does after migrating
        assignments: list[str] = []
        for line in lines:
            result = subprocess.run(["bash", "-c", "\n".join([*assignments, line])], cwd=PROJECT_ROOT,
                                    env=service.env, capture_output=True, text=True, timeout=150)
            assert result.returncode == 0, (f"README command failed with exit {result.returncode}: {line}\n"
                                             f"{result.stdout}\n{result.stderr}")
            if ASSIGNMENT.match(line):
                assignments.append(line)
            outputs[line] = result.stdout
    finally:
        service.stop()
    show = next(output for line, output in outputs.items() if " orders show " in line)
    assert re.search(rf"^instance\s+{INSTANCE}$", show, re.M), show
    assert re.search(r"^status\s+active$", show, re.M), show
    assert "local: http://127.0.0.1:" in show, show  # the comment in the block promises a local URL
    terminate = next(output for line, output in outputs.items() if " orders terminate " in line)
    assert "terminate succeeded" in terminate, terminate
    # "takes a final backup into var/backups/jane-s-maps/<backup id>/ first" (the store in the backup folder).
    [final] = backup_store(settings).list(instance=INSTANCE)
    assert final.kind == "final" and (settings.backup_dir / INSTANCE / final.backup_id / "manifest.json").is_file()
    assert [a.name for a in final.artefacts] == ["volume.app-state.tar", "volume.db-data.tar"]
