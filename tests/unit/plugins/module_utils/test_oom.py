import os
import time

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._oom import (
    KernelLog, OomParser, OomTracker, merge_kills, parse_kmsg_record, parse_oom_messages,
)
from tests.unit.nodefix import fixture_path

V1_PATH = "/cflab-1/kubepods/burstable/pod1/abc"
V2_PATH = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"


def fixture_text(name):
    with open(fixture_path("..", "kmsg", name)) as handle:
        return handle.read()


def kills_from(name):
    return parse_oom_messages([parse_kmsg_record(line) for line in fixture_text(name).splitlines()])


def test_parse_joins_the_detail_line_to_the_kill():
    kills = kills_from("v1-stressor-oom.txt")
    assert [(k["pid"], k["comm"], k["task_memcg"]) for k in kills] == [
        (11341, "stress-ng-vm", V1_PATH), (11351, "stress-ng-vm", None), (999, "java", "/other/cgroup")]
    assert kills[0]["mono"] == pytest.approx(511.555584)


def test_parse_reads_the_older_kernel_format():
    """Before 4.19: "Task in X killed as a result of limit of Y", then a bare "Killed process N (comm)"."""
    kills = kills_from("v1-old-format.txt")
    assert [(k["pid"], k["comm"], k["task_memcg"], k["oom_memcg"]) for k in kills] == [
        (2001, "stress-ng-vm", V1_PATH, V1_PATH), (3003, "java", None, None), (2002, "my (app) x", None, None)]


@pytest.mark.parametrize("cut", [1, 40, 97, 150, 260, 300, 401])
def test_a_message_cut_across_two_reads_is_reassembled(cut):
    """The parser keeps the partial line and the detail line of a kill whose "Killed" line comes next read."""
    text = fixture_text("v1-stressor-oom.txt")
    parser = OomParser()
    kills = parser.feed(text[:cut]) + parser.feed(text[cut:])
    assert kills == kills_from("v1-stressor-oom.txt")


def test_the_detail_line_in_one_read_and_the_kill_in_the_next():
    lines = fixture_text("v1-stressor-oom.txt").splitlines(True)
    parser = OomParser()
    assert parser.feed("".join(lines[:3])) == []  # "oom-kill:... pid=11341" only
    kills = parser.feed(lines[3])
    assert [(k["pid"], k["task_memcg"]) for k in kills] == [(11341, V1_PATH)]


def test_kernel_log_reads_a_stream_cut_mid_record(tmp_path):
    """KernelLog over a pipe: one record arrives in two writes, a multi-byte character split between them."""
    read_fd, write_fd = os.pipe()
    log = KernelLog("/dev/null")
    os.close(log.fd)
    log.fd = read_fd
    os.set_blocking(read_fd, False)
    try:
        record = ("3,1,5000000,-;Memory cgroup out of memory: Killed process 77 (caf\u00e9) total-vm:1kB\n").encode()
        cut = record.index(b"\xc3") + 1
        os.write(write_fd, record[:cut])
        assert log.read() == []
        os.write(write_fd, record[cut:])
        assert [(k["pid"], k["comm"]) for k in log.read()] == [(77, "caf\u00e9")]
    finally:
        log.close()
        os.close(write_fd)


def test_an_unreadable_kernel_log_is_visible(tmp_path):
    missing = str(tmp_path / "no-kmsg")
    log = KernelLog(missing)
    assert not log.available and "no-kmsg" in log.error
    tracker = OomTracker(V1_PATH, False, 0, kmsg_path=missing)
    assert tracker.update([], 1, {}, now=100.0) == []
    unknown = tracker.update([], 1, {}, now=103.0)
    assert [(k["victim"], k["source"], k["kmsg_unavailable"]) for k in unknown] == [("unknown", "counter", True)]
    assert "cannot be read" in unknown[0]["detail"] and "no-kmsg" in unknown[0]["detail"]


def test_a_readable_kernel_log_does_not_claim_otherwise(tmp_path):
    readable = tmp_path / "kmsg"
    readable.write_text("")
    tracker = OomTracker(V1_PATH, False, 0, kmsg_path=str(readable))
    assert "kmsg_unavailable" not in tracker.flush() and all("kmsg_unavailable" not in k for k in
                                                             (tracker.update([], 1, {}, now=1.0) +
                                                              tracker.update([], 1, {}, now=9.0)))


# (case, fixture, cgroup path, oom.group, counter before, counter after, seen pids, stressor pids,
#  expected (pid, victim, group, source))
CASES = [
    ("v1: named memcg, rate-limited line of a seen worker, other cgroup left out", "v1-stressor-oom.txt", V1_PATH,
     False, 5, 7, {11341: "stress-ng-vm", 11351: "stress-ng-vm"}, {11341, 11351},
     [(11341, "stressor", False, "kmsg"), (11351, "stressor", False, "kmsg")]),
    ("v1: counter moved more than the log shows", "v1-stressor-oom.txt", V1_PATH, False, 0, 4,
     {11341: "stress-ng-vm"}, {11341},
     [(11341, "stressor", False, "kmsg"), (None, "unknown", False, "counter"), (None, "unknown", False, "counter"),
      (None, "unknown", False, "counter")]),
    ("v1: a name proves nothing: an unseen stress-ng kill with no memcg is left out", "v1-stressor-oom.txt", V1_PATH,
     False, 3, 4, {}, set(), [(11341, "unknown", False, "kmsg")]),
    ("v2: group kill takes the app too; the doubled line counts once", "v2-group-kill.txt", V2_PATH, True, 0, 3,
     {427: "httpd", 429: "stress-ng", 430: "stress-ng-vm"}, {429, 430},
     [(430, "stressor", True, "kmsg"), (427, "app", True, "kmsg"), (429, "stressor", True, "kmsg")]),
    ("an app process named stress-ng is the app", "app-named-stress-ng.txt", V1_PATH, False, 0, 3,
     {5150: "stress-ng", 5301: "stress-ng-vm"}, {5301},
     [(5150, "app", False, "kmsg"), (5301, "stressor", False, "kmsg"), (5399, "unknown", False, "kmsg")]),
    ("old kernel format, worker seen", "v1-old-format.txt", V1_PATH, False, 0, 1, {2001: "stress-ng-vm"}, {2001},
     [(2001, "stressor", False, "kmsg")]),
]


@pytest.mark.parametrize("case, fixture, path, group, before, after, seen, stressors, expected", CASES,
                         ids=[c[0] for c in CASES])
def test_tracker_attributes_and_reconciles(tmp_path, case, fixture, path, group, before, after, seen, stressors,
                                           expected):
    tracker = OomTracker(path, group, before, kmsg_path=None)
    found = tracker.update(kills_from(fixture), after, seen, stressors, now=100.0)
    found += tracker.update([], after, seen, stressors, now=101.0)
    found += tracker.update([], after, seen, stressors, now=102.5)  # past the grace: unexplained kills are counted
    assert [(k["pid"], k["victim"], k["group_kill"], k["source"]) for k in found] == expected
    assert tracker.total == len(expected)


def test_a_worker_seen_once_stays_the_stressor_after_it_died():
    """Samples see worker 430 alive; by the time the log is read it is gone from the group."""
    tracker = OomTracker(V2_PATH, True, 0, kmsg_path=None)
    assert tracker.update([], 0, {427: "httpd", 430: "stress-ng-vm"}, {430}, now=100.0) == []
    found = tracker.update(kills_from("v2-group-kill.txt"), 3, {427: "httpd", 430: "stress-ng-vm"}, set(), now=101.0)
    assert [(k["pid"], k["victim"]) for k in found] == [(430, "stressor"), (427, "app"), (429, "unknown")]


def test_late_log_lines_name_the_victims_and_count_once():
    tracker = OomTracker(V2_PATH, True, 0, kmsg_path=None)
    assert tracker.update([], 3, {}, now=100.0) == []  # the counter moved before the log could be read
    late = tracker.update(kills_from("v2-group-kill.txt"), 3, {427: "httpd"}, now=101.0)
    assert [(k["pid"], k["source"]) for k in late] == [(430, "kmsg"), (427, "kmsg"), (429, "kmsg")]
    assert tracker.update([], 3, {}, now=110.0) == [] and tracker.total == 3


def test_flush_counts_what_the_log_never_explained():
    tracker = OomTracker(V1_PATH, False, 10, kmsg_path=None)
    assert tracker.update([], 12, {}, now=100.0) == []
    assert [k["source"] for k in tracker.flush(100.5)] == ["counter", "counter"]
    assert tracker.total == 2 and tracker.flush() == []


def a_kill(pid, seconds_ago):
    """A parsed kill of the V1_PATH cgroup, logged ``seconds_ago`` (kernel monotonic time)."""
    return {"pid": pid, "comm": "httpd", "mono": time.monotonic() - seconds_ago, "oom_memcg": V1_PATH,
            "task_memcg": V1_PATH}


def test_a_log_line_later_than_the_grace_takes_the_counter_records_place():
    now = time.time()
    tracker, records = OomTracker(V1_PATH, False, 0, kmsg_path=None), []
    merge_kills(records, tracker.update([], 1, {7: "httpd"}, now=now - 3))
    merge_kills(records, tracker.update([], 1, {7: "httpd"}, now=now - 0.5))  # past the grace: a counter record
    assert [(k["pid"], k["source"]) for k in records] == [(None, "counter")]
    late = tracker.update([a_kill(7, 4)], 1, {7: "httpd"}, now=now)
    assert [(k["pid"], k["victim"], k.get("late")) for k in late] == [(7, "app", True)]
    merge_kills(records, late)
    assert [(k["pid"], k["source"]) for k in records] == [(7, "kmsg")]
    assert tracker.total == 1 and tracker.flush(now + 10) == []


def test_a_kill_after_the_counter_record_is_a_kill_of_its_own():
    now = time.time()
    tracker = OomTracker(V1_PATH, False, 0, kmsg_path=None)
    tracker.update([], 1, {}, now=now - 30)
    assert [k["source"] for k in tracker.update([], 1, {}, now=now - 27)] == ["counter"]
    newer = tracker.update([a_kill(7, 1)], 2, {7: "httpd"}, now=now)
    assert [(k["pid"], k.get("late")) for k in newer] == [(7, None)]
    assert tracker.total == 2


COUNTER = {"pid": None, "source": "counter"}
LOGGED = {"pid": 5, "source": "kmsg"}
LATE = {"pid": 9, "source": "kmsg", "late": True}
# (case, records before, found, limit, records after)
MERGES = [
    ("a late record replaces the first counter record", [LOGGED, COUNTER, COUNTER], [LATE], None,
     [LOGGED, LATE, COUNTER]),
    ("a late record with no counter record kept is added", [LOGGED], [LATE], None, [LOGGED, LATE]),
    ("other records are added in order", [], [LOGGED, COUNTER], None, [LOGGED, COUNTER]),
    ("the limit holds", [LOGGED], [COUNTER, LOGGED], 2, [LOGGED, COUNTER]),
    ("at the limit a late record still replaces", [COUNTER, COUNTER], [LATE], 2, [LATE, COUNTER]),
]


@pytest.mark.parametrize("case, before, found, limit, after", MERGES, ids=[m[0] for m in MERGES])
def test_merge_kills(case, before, found, limit, after):
    records = list(before)
    assert merge_kills(records, found, limit) is records and records == after
