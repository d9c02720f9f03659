import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._state import StateError, validate_name


@pytest.mark.parametrize("name", ["a", "checkout-mem", "run_1.2", "A" * 100])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", [
    "", "a/b", "..", "a..b", ".hidden", "-x", "a b", "a\n", "a\r\n", "a\x00", "A" * 101,
    "\u0663", "caf\u00e9", "\uff41", None,
])
def test_bad_names(name):
    with pytest.raises(StateError, match="not allowed"):
        validate_name(name)
