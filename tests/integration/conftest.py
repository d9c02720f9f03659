"""Fixtures for the integration tests: the lab (lab_fixtures.py), Docker and Podman (engine_fixtures.py), the
v2 VM, the SSH fleet, and a private experiment state dir.

How `make test` runs them (tests/README.md): a serial pass of the tests marked ``serial`` at normal priority,
those also marked ``alone`` first, with nothing beside them; then the VM's (marked ``vm``) one at a time, then
the rest two at a time. Beside the last two parts, at a low priority and on a fleet of its own, every other test
on several pytest-xdist workers (``--dist loadgroup``). ``pytest_collection_modifyitems`` below gives each test
its worker group from the fixtures it uses (and the VM's tests their marks), so a new test file needs no marks
of its own.
"""
import secrets
import shutil
from collections import Counter

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


# Worker groups of the parallel pass. Tests that share one resource run one after another on one worker:
# - "vm": the one cgroup v2 VM (vm_fixtures.py); its pods take one experiment each at a time;
# - "fleet": the one 3-node SSH fleet (fleet_fixtures.py), same reason;
# - "docker": private dockerd/podman labs (engine_fixtures.py, agent_fixtures.py), whose containers share
#   the /docker and /libpod_parent cgroups that each lab's teardown removes once empty (with TEST_OVERLAP=1 the
#   serial pass's engines run beside this group: scripts/test.sh then keeps those parents until the end).
# A test's group comes from the module that defines a fixture it uses. A file whose tests use one such resource,
# or that imports that module's helpers, runs wholly in its group (its other tests drive the same tools: vm.py,
# engines.py, agents.py). A test that needs two (the fleet and the VM in one play) fits on no one worker: it
# runs in the serial pass. Other tests are grouped by file, so that a module-scoped fixture is built once; each
# worker builds its own runc lab (the session fixture ``lab``, with its own prefix). A file that sets
# ``GROUP_BY_OWN_FIXTURES = True`` has each test grouped by its own fixtures alone (its other tests touch no
# shared resource). An explicit ``xdist_group`` mark wins. tests/README.md explains it all.
RESOURCE_GROUPS = {
    "tests.integration.vm_fixtures": "vm",
    "tests.integration.fleet_fixtures": "fleet",
    "tests.integration.engine_fixtures": "docker",
    "tests.integration.agent_fixtures": "docker",
}
# Handed out first, the longest groups: the serial pass's part 2c (scripts/test.sh, two workers) starts on its
# two longest, the fleet's tests and the headroom searches on this host's lab, then hands out the headroom searches
# on pods of their own and the engines' tests.
GROUP_ORDER = {"fleet": 0, "file:test_headroom.py": 1, "file:test_headroom.py:own-pods": 2, "docker": 3}


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Before the other hooks (``-m`` selects on the serial marks this adds): the groups. After them, in the
    workers of a --dist loadgroup run: the groups into the node IDs, where xdist's scheduler reads them."""
    assign_groups(items)
    result = yield
    if config.getoption("loadgroup", False):
        # The longest groups first (xdist hands out groups in this order with --no-loadscope-reorder): the
        # fleet's tests and the headroom searches take minutes each, one after another.
        counts = Counter(_group(item) for item in items)
        items.sort(key=lambda item: (GROUP_ORDER.get(_group(item), len(GROUP_ORDER)), -counts[_group(item)],
                                     _ends_the_vm(item)))
        for item in items:
            _group_into_nodeid(item)
    else:
        items.sort(key=_ends_the_vm)
    return result


def _ends_the_vm(item):
    """A test that crashes the session's VM runs after every other (its group's, under xdist)."""
    return item.get_closest_marker("ends_the_vm") is not None


def _group(item):
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default")) if mark else ""


def assign_groups(items):
    used = {item: _fixture_groups(item) for item in items}
    by_file = {}
    for item, groups in used.items():
        module = getattr(item, "module", None)
        if getattr(module, "GROUP_BY_OWN_FIXTURES", False):
            by_file.setdefault(item.path, set())
        else:
            by_file.setdefault(item.path, _imported_groups(module)).update(groups)
    for item in items:
        groups, in_file = used[item], by_file[item.path]
        if "vm" in groups | in_file:
            # The emulated guest starves beside other work at its own priority (its boot, dead-man and ramp
            # figures drift; tests/README.md has the failures): scripts/test.sh runs these one at a time.
            item.add_marker(pytest.mark.serial)
            item.add_marker(pytest.mark.vm)
        if item.get_closest_marker("xdist_group"):
            continue
        if len(groups) > 1:
            item.add_marker(pytest.mark.serial)
            continue
        if groups:
            group = groups.pop()
        elif len(in_file) == 1:
            group = next(iter(in_file))
        else:
            group = "file:" + item.path.name
        item.add_marker(pytest.mark.xdist_group(group))
        item.extra_keyword_matches.add("group_" + group)  # pytest -k group_fleet: one group's tests


def _fixture_groups(item):
    groups = set()
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        for fixturedef in (info.name2fixturedefs.get(name, ()) if info else ()):
            group = RESOURCE_GROUPS.get(getattr(fixturedef.func, "__module__", None))
            if group:
                groups.add(group)
    return groups


def _imported_groups(module):
    """Groups of the fixture modules a test file imports helpers from (test_engines starts engines itself)."""
    if module is None:
        return set()
    return {RESOURCE_GROUPS[value.__module__] for value in vars(module).values()
            if callable(value) and getattr(value, "__module__", None) in RESOURCE_GROUPS}


def _group_into_nodeid(item):
    """xdist's workers append "@group" to each node ID for the scheduler; from pytest 9.2 on, the attribute they
    set (``_nodeid``) is no longer read and every group is silently ignored (pytest-dev/pytest-xdist#1386). Set it
    where this pytest keeps the ID. A no-op where xdist's own suffix took."""
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    suffix = "@" + "_".join(names)
    if not names or item.nodeid.endswith(suffix):
        return
    if hasattr(item, "_id"):
        from _pytest.nodeid import NodeId  # pylint: disable=import-outside-toplevel
        item._id = NodeId.parse(item.nodeid + suffix)  # pylint: disable=protected-access
    else:
        item._nodeid = item.nodeid + suffix  # pylint: disable=protected-access
