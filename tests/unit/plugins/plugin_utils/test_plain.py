"""plain_value: Ansible's tagged values copied into built-in types."""

import json

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._plain import plain_value


class TaggedStr(str):
    """Stands in for Ansible 2.19's tagged str."""


class TaggedDict(dict):
    pass


class TaggedList(list):
    pass


class TaggedInt(int):
    pass


@pytest.mark.parametrize("value, expected", [
    (TaggedStr("node1"), "node1"),
    (TaggedDict({TaggedStr("k"): TaggedList([TaggedInt(3), 1.5, None, True])}), {"k": [3, 1.5, None, True]}),
    ((1, 2), [1, 2]),
    ({1: "a"}, {"1": "a"}),
    (frozenset(["x"]), ["x"]),
    (False, False),
    (object, str(object)),
])
def test_plain_value(value, expected):
    got = plain_value(value)
    assert got == expected
    assert json.loads(json.dumps(got)) == got


@pytest.mark.parametrize("value, kind", [
    (TaggedStr("a"), str), (TaggedInt(1), int), (TaggedDict(), dict), (TaggedList(), list), (True, bool),
])
def test_plain_value_gives_built_in_types(value, kind):
    assert type(plain_value(value)) is kind  # pylint: disable=unidiomatic-typecheck  # a subclass is not a built-in type
