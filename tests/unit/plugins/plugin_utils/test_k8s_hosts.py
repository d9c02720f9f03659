"""Inventory hosts for picked containers (plugin_utils/_k8s_hosts.py), as tables."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._k8s_hosts import (
    K8sHostsError, plan_hosts, skipped_hosts,
)

A, B, C = "a" * 64, "b" * 64, "c" * 64


def _by_node(**nodes):
    return dict((node, {"node_ip": "10.0.0.%d" % (i + 1), "targets": [
        {"namespace": "shop", "pod": pod, "container_ids": [cid], "containers": [name]} for pod, cid, name in picked]})
        for i, (node, picked) in enumerate(sorted(nodes.items())))


@pytest.mark.parametrize("by_node, inventory, limit, expected", [
    # one container on an inventory node: that host, nothing else
    (_by_node(w1=[("web-1", A, "app")]), ["w1"], None,
     [("w1", "w1", True, "", {"namespace": "shop", "pod": "web-1", "container": "app", "node": "w1"})]),
    # a node outside the inventory: a host of its name
    (_by_node(w9=[("web-1", A, "app")]), ["w1"], None,
     [("w9", "w9", False, "", {"namespace": "shop", "pod": "web-1", "container": "app", "node": "w9"})]),
    # two containers on one node: one host each, named after the container
    (_by_node(w1=[("web-1", A, "app"), ("web-2", B, "app")]), ["w1"], None,
     [("w1--aaaaaaaaaaaa", "w1", True, "-aaaaaaaaaaaa",
       {"namespace": "shop", "pod": "web-1", "container": "app", "node": "w1"}),
      ("w1--bbbbbbbbbbbb", "w1", True, "-bbbbbbbbbbbb",
       {"namespace": "shop", "pod": "web-2", "container": "app", "node": "w1"})]),
    # limit: only the experiment's hosts
    (_by_node(w1=[("web-1", A, "app")], w2=[("web-2", C, "app")]), ["w1", "w2"], ["w2", "w3"],
     [("w2", "w2", True, "", {"namespace": "shop", "pod": "web-2", "container": "app", "node": "w2"})]),
])
def test_plan_hosts(by_node, inventory, limit, expected):
    got = plan_hosts(by_node, inventory, limit)
    assert [(h["name"], h["node"], h["in_inventory"], h["suffix"], h["kubernetes"]) for h in got] == expected
    assert all(h["container_id"] in (A, B, C) for h in got)


def test_hosts_without_a_target_are_skipped():
    assert skipped_hosts(_by_node(w1=[("web-1", A, "app")]), ["w1", "w2", "w3"]) == ["w2", "w3"]


def test_bad_input():
    with pytest.raises(K8sHostsError, match="needs the by_node mapping"):
        plan_hosts([{"node": "x"}])
