"""Fixtures for the integration tests: the lab (lab_fixtures.py), Docker and Podman (engine_fixtures.py), the
v2 VM, the SSH fleet, and a private experiment state dir."""
import secrets
import shutil

import pytest

from tests.integration.lab_fixtures import lab, lab_factory  # noqa: F401
from tests.integration.vm_fixtures import vm_node  # noqa: F401
from tests.integration.fleet_fixtures import fleet  # noqa: F401
from tests.integration.engine_fixtures import docker_engine, podman_engine  # noqa: F401


@pytest.fixture
def state_dir():
    """A private stressor state dir; every experiment in it is stopped and the dir removed, pass or fail."""
    path = "/run/cflab-state-" + secrets.token_hex(3)
    yield path
    from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
    from ansible_collections.chaosfleet.stress.plugins.module_utils._state import list_experiments

    for name in list_experiments(path):
        Experiment(path, name).stop()
    shutil.rmtree(path, ignore_errors=True)
