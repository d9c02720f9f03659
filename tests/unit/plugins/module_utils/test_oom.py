import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._oom import OomTracker, parse_kmsg_record, parse_oom_messages
from tests.unit.nodefix import fixture_path

V1_PATH = "/cflab-1/kubepods/burstable/pod1/abc"
V2_PATH = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"


def kills_from(name):
    with open(fixture_path("..", "kmsg", name)) as handle:
        return parse_oom_messages([parse_kmsg_record(line) for line in handle.read().splitlines()])


def test_parse_joins_the_detail_line_to_the_kill():
    kills = kills_from("v1-stressor-oom.txt")
    assert [(k["pid"], k["comm"], k["task_memcg"]) for k in kills] == [
        (11341, "stress-ng-vm", V1_PATH), (11351, "stress-ng-vm", None), (999, "java", "/other/cgroup")]
    assert kills[0]["mono"] == pytest.approx(511.555584)


# (case, fixture, cgroup path, oom.group, counter before, counter after, seen pids, expected (pid, victim, group, source))
CASES = [
    ("v1: named memcg, rate-limited line, other cgroup left out", "v1-stressor-oom.txt", V1_PATH, False, 5, 7, {},
     [(11341, "stressor", False, "kmsg"), (11351, "stressor", False, "kmsg")]),
    ("v1: counter moved more than the log shows", "v1-stressor-oom.txt", V1_PATH, False, 0, 4, {},
     [(11341, "stressor", False, "kmsg"), (11351, "stressor", False, "kmsg"),
      (None, "unknown", False, "counter"), (None, "unknown", False, "counter")]),
    ("v1: no counter move, unnamed stress-ng kill is someone else's", "v1-stressor-oom.txt", V1_PATH, False, 3, 3, {},
     [(11341, "stressor", False, "kmsg")]),
    ("v2: group kill takes the app too; the doubled line counts once", "v2-group-kill.txt", V2_PATH, True, 0, 3,
     {427: "httpd"},
     [(430, "stressor", True, "kmsg"), (427, "app", True, "kmsg"), (429, "stressor", True, "kmsg")]),
]


@pytest.mark.parametrize("case, fixture, path, group, before, after, seen, expected", CASES, ids=[c[0] for c in CASES])
def test_tracker_attributes_and_reconciles(case, fixture, path, group, before, after, seen, expected):
    tracker = OomTracker(path, group, before)
    found = tracker.update(kills_from(fixture), after, seen, now=100.0)
    found += tracker.update([], after, seen, now=101.0)
    found += tracker.update([], after, seen, now=102.5)  # past the grace: unexplained kills are counted
    assert [(k["pid"], k["victim"], k["group_kill"], k["source"]) for k in found] == expected
    assert tracker.total == len(expected)


def test_late_log_lines_name_the_victims_and_count_once():
    tracker = OomTracker(V2_PATH, True, 0)
    assert tracker.update([], 3, {}, now=100.0) == []  # the counter moved before the log could be read
    late = tracker.update(kills_from("v2-group-kill.txt"), 3, {427: "httpd"}, now=101.0)
    assert [(k["pid"], k["source"]) for k in late] == [(430, "kmsg"), (427, "kmsg"), (429, "kmsg")]
    assert tracker.update([], 3, {}, now=110.0) == [] and tracker.total == 3


def test_flush_counts_what_the_log_never_explained():
    tracker = OomTracker(V1_PATH, False, 10)
    assert tracker.update([], 12, {}, now=100.0) == []
    assert [k["source"] for k in tracker.flush(100.5)] == ["counter", "counter"]
    assert tracker.total == 2 and tracker.flush() == []
