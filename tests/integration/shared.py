"""One expensive lab resource (the v2 VM, the SSH fleet) per test process, and across scripts/test.sh's passes.

- Per process: pytest makes a separate session fixture of every module's ``from ... import vm_node`` (or
  ``fleet``), and each would build its own. ``shared(key, build)`` gives them all the one resource that the
  first user built; the last user's teardown takes it down.
- Across processes: scripts/test.sh builds the VM and the fleet once, before its serial and parallel passes,
  and names them in the environment (``CHAOSFLEET_TEST_VM``: the JSON `vm.py up` printed;
  ``CHAOSFLEET_TEST_FLEET``: the fleet's state file). A fixture then uses that resource as it is and leaves
  it to its owner, which tears it down on every exit path. With TEST_OVERLAP=1 the two passes run at once and
  each is named a VM and a fleet of its own; a pass whose resource did not come up is named none (never the
  other pass's), and its fixtures build their own.
"""

import os

_LIVE = {}


def adopted(env_name):
    """The path named in the environment for a resource someone else owns, or None."""
    return os.environ.get(env_name) or None


def shared(key, build):
    """Yield the process's one resource `key`; ``build`` is a generator function: set up, yield, tear down."""
    entry = _LIVE.get(key)
    if entry is None:
        steps = build()
        value = next(steps)  # pytest.skip and set-up errors propagate to the fixture
        entry = _LIVE[key] = {"steps": steps, "value": value, "users": 0}
    entry["users"] += 1
    try:
        yield entry["value"]
    finally:
        entry["users"] -= 1
        if entry["users"] == 0:
            del _LIVE[key]
            for _rest in entry["steps"]:  # runs the teardown after the generator's yield
                pass
