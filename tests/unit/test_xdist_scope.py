"""`make test`'s two pytest-xdist workers: which tests must share one (tests/conftest.py ``xdist_scope``)."""
from __future__ import annotations

import pytest

from tests.conftest import xdist_scope


@pytest.mark.parametrize("nodeid", [
    "tests/integration/test_swarm_move.py::test_an_order_moves_to_the_worker_with_its_data_and_back[postgresql]",
    "tests/integration/test_lifecycle.py::test_full_lifecycle[postgresql-swarm]",
    "tests/integration/test_doctor.py::test_swarm_mode_reports_the_nodes_that_take_orders",
    "tests/integration/test_finished_jobs_real.py::test_a_finished_job_is_not_run_again[swarm]",
])
def test_every_test_on_the_swarm_shares_one_worker(nodeid):
    assert xdist_scope(nodeid) == "swarm"


def test_deploy_tests_share_one_worker_and_the_others_spread():
    assert xdist_scope("tests/deploy/test_systemd_units.py::test_units") == "deploy"
    alone = "tests/integration/test_lifecycle.py::test_full_lifecycle[sqlite-docker]"
    assert xdist_scope(alone) == alone
    assert xdist_scope("tests/unit/test_naming.py::test_x") != xdist_scope("tests/unit/test_naming.py::test_y")
