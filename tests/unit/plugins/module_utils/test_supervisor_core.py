"""The supervisor's decision core as tables: each row is one situation and the actions it must lead to."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _supervisor_core as control
from ansible_collections.chaosfleet.stress.plugins.module_utils._supervisor_core import Control
from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import instance_overhead

MI = 1024 * 1024
T0 = 1000.0
BASE = 10 * MI  # the target's working set before the experiment
O1 = instance_overhead(1)
RESERVE = 2 * O1 + MI // 2  # left out of the last step so one top-up, sized with the overhead seen, closes it
FIRST = 200 * MI - RESERVE - O1  # the payload of a single-step 200 MiB request with one worker


def plan(memory=None, cpu=None, io=None, duration=60, heartbeat=None, on_oom="keep_pressure", **guard):
    out = {
        "duration_seconds": duration, "heartbeat_timeout_seconds": heartbeat, "sample_interval_seconds": 1.0,
        "oom_score_adj": 1000, "on_oom": on_oom, "memory": None, "cpu": None, "io": None,
        "guard": {"max_working_set_bytes": guard.get("max_working_set"),
                  "stop_on_app_oom_kill": guard.get("stop_on_app_oom_kill", False),
                  "stop_if_target_gone": guard.get("stop_if_target_gone", True)},
    }
    if memory is not None:
        out["memory"] = dict({"bytes": 200 * MI, "workers": 1, "ramp_seconds": None, "steps": 1, "method": None,
                              "over_limit": False}, **memory)
    if cpu is not None:
        out["cpu"] = dict({"cores": 0.25, "basis_cores": 0.5, "workers": 1, "per_worker_load": 50}, **cpu)
    if io is not None:
        out["io"] = io
    return out


def started(p, now=T0):
    core = Control(p, T0, BASE)
    first = core.start(now)
    return core, first


# -- start ------------------------------------------------------------------------------------------
START = [
    ("memory only: the size less the instance's overhead and the top-up reserve", plan(memory={}), "ramping",
     [control.launch_memory(FIRST, 1)]),
    ("4 workers pay 4 workers' overhead", plan(memory={"workers": 4}), "ramping",
     [control.launch_memory(200 * MI - RESERVE - instance_overhead(4), 4)]),
    ("a ramp starts empty: its first step is due half a step in", plan(memory={"ramp_seconds": 10, "steps": 10}),
     "ramping", []),
    ("over the limit on purpose: no overhead or reserve taken off", plan(memory={"over_limit": True}), "ramping",
     [control.launch_memory(200 * MI, 1)]),
    ("cpu and io, no memory: holding at once", plan(cpu={}, io={"workers": 1}), "holding",
     [control.launch("io"), control.launch("cpu", per_worker_load=50)]),
]


@pytest.mark.parametrize("case, p, phase, actions", START, ids=[r[0] for r in START])
def test_start(case, p, phase, actions):
    core, first = started(p)
    assert first == actions
    assert core.phase == phase


# -- ending: stop request, deadline, heartbeat --------------------------------------------------------
ENDING = [
    ("running, nothing due", plan(memory={}), T0 + 30, None, None, None),
    ("stop file or signal wins over everything", plan(memory={}), T0 + 90, "stop", None, "stop"),
    ("deadline reached", plan(memory={}, duration=60), T0 + 60, None, None, "deadline"),
    ("just before the deadline", plan(memory={}, duration=60), T0 + 59.9, None, None, None),
    ("no heartbeat timeout: never a dead-man", plan(memory={}), T0 + 59, None, None, None),
    ("heartbeat fresh", plan(memory={}, heartbeat=10), T0 + 30, None, T0 + 25, None),
    ("heartbeat lost", plan(memory={}, heartbeat=10), T0 + 30, None, T0 + 19, "heartbeat"),
    ("never heartbeated: the start counts, still in time", plan(memory={}, heartbeat=10), T0 + 9, None, None, None),
    ("never heartbeated, timed out", plan(memory={}, heartbeat=10), T0 + 11, None, None, "heartbeat"),
    ("the deadline comes before the dead-man", plan(memory={}, heartbeat=10, duration=20), T0 + 25, None, None,
     "deadline"),
]


@pytest.mark.parametrize("case, p, now, requested, heartbeat_at, reason", ENDING, ids=[r[0] for r in ENDING])
def test_ending(case, p, now, requested, heartbeat_at, reason):
    core, _first = started(p)
    ended = core.ending(now, requested, heartbeat_at)
    assert (ended and ended["reason"]) == reason


# -- guards -------------------------------------------------------------------------------------------
GUARDS = [
    ("all quiet", {}, dict(ws=100 * MI), None),
    ("target gone", {}, dict(ws=100 * MI, target_gone=True), "target_gone"),
    ("target gone but the user keeps going", {"stop_if_target_gone": False}, dict(ws=100 * MI, target_gone=True),
     None),
    ("working set above max_working_set", {"max_working_set": 150 * MI}, dict(ws=150 * MI + 1),
     "guard:max_working_set"),
    ("working set at max_working_set", {"max_working_set": 150 * MI}, dict(ws=150 * MI), None),
    ("app OOM-killed, guard on", {"stop_on_app_oom_kill": True}, dict(ws=100 * MI, app_oom=True),
     "guard:app_oom_kill"),
    ("app OOM-killed, guard off", {}, dict(ws=100 * MI, app_oom=True), None),
]


@pytest.mark.parametrize("case, guard, seen, reason", GUARDS, ids=[r[0] for r in GUARDS])
def test_guards_stop_before_anything_else(case, guard, seen, reason):
    core, _first = started(plan(memory={}, **guard))
    actions = core.on_sample(T0 + 1, seen.pop("ws"), **seen)
    stops = [a["reason"] for a in actions if a["do"] == "stop"]
    assert stops == ([reason] if reason else [])
    if reason:
        assert actions == [actions[-1]] and core.phase == "ramping"  # nothing grows on the way out


# -- ramp steps -----------------------------------------------------------------------------------------
RAMP = dict(ramp_seconds=10, steps=10)  # 20 MiB a second, each step due half-way through its second


@pytest.mark.parametrize("case, steps_out, now, due", [
    ("nothing out, first step not yet due", 0, T0 + 0.45, False),
    ("first step due half-way through the first second", 0, T0 + 0.5, True),
    ("first step out, second not yet due", 1, T0 + 1.4, False),
    ("second step due half-way through its second", 1, T0 + 1.5, True),
    ("all steps out: nothing due", 10, T0 + 30, False),
], ids=lambda v: v if isinstance(v, str) else "")
def test_ramp_step_due(case, steps_out, now, due):
    core, _first = started(plan(memory=RAMP))
    core.steps = steps_out
    assert core.step_due(now) is due


def test_ramp_ticks_faster_than_its_steps():
    core, _first = started(plan(memory=RAMP))
    assert core.tick() == pytest.approx(0.1)
    core.phase = "holding"
    assert core.tick() == control.CONTROL_TICK


@pytest.mark.parametrize("case, shows_after, seen_at, lead, second_due", [
    ("pages show 0.2 s after launch: the next step launches 0.2 s early", 20 * MI - O1, 0.7, 0.2, 1.3),
    ("not resident yet: nothing learned, the step waits for its mid-point", 5 * MI, 0.7, 0.0, 1.5),
    ("a very slow step leads by half a slice at most", 20 * MI - O1, 3.0, 0.5, 1.0),
], ids=lambda v: v if isinstance(v, str) else "")
def test_ramp_steps_launch_early_by_the_time_steps_take_to_show(case, shows_after, seen_at, lead, second_due):
    core, _first = started(plan(memory=RAMP))
    core.ramp(T0 + 0.5, BASE)
    assert core.in_flight()
    core.step_landed(T0 + seen_at, BASE + shows_after)
    assert core.ramp_lead == pytest.approx(lead)
    assert not core.step_due(T0 + second_due - 0.01) and core.step_due(T0 + second_due)


def test_ramp_lead_averages_what_the_steps_showed():
    core, _first = started(plan(memory=RAMP))
    core.ramp(T0 + 0.5, BASE)
    core.step_landed(T0 + 0.7, BASE + 20 * MI)      # 0.2 s
    core.ramp(T0 + 1.3, BASE + 20 * MI)
    core.step_landed(T0 + 1.4, BASE + 40 * MI)      # 0.1 s
    assert core.ramp_lead == pytest.approx(0.15) and not core.in_flight()


def test_without_a_ramp_nothing_is_in_flight():
    core, _first = started(plan(memory={}))
    assert not core.in_flight() and core.ramp_lead == 0.0


STEP = [
    # (case, working set increase seen at the second step, expected launch bytes)
    ("pages resident: the step tops the line up to 40 MiB", 20 * MI, 20 * MI - O1),
    ("pages not resident yet: counts what was launched, not what shows", 2 * MI, 40 * MI - 20 * MI - O1),
    ("already above the line: nothing launched", 45 * MI, None),
]


@pytest.mark.parametrize("case, increase, launched", STEP, ids=[r[0] for r in STEP])
def test_ramp_step_size(case, increase, launched):
    core, _first = started(plan(memory=RAMP))
    assert core.ramp(T0 + 0.5, BASE) == [control.launch_memory(20 * MI - O1, 1), control.WRITE_STATUS]
    actions = core.ramp(T0 + 1.5, BASE + increase)
    launches = [a["bytes"] for a in actions if a["do"] == "launch"]
    assert launches == ([launched] if launched else [])
    if launched:
        assert actions[-1] == control.WRITE_STATUS  # the step is visible in the status at once
    assert core.steps == 2


def test_the_last_ramp_step_leaves_the_top_up_reserve():
    core, _first = started(plan(memory=dict(ramp_seconds=2, steps=2)))
    core.ramp(T0 + 0.5, BASE)
    # The first step shows the estimate right (scale 1): the reserve need only cover the top-up's own overhead.
    assert core.ramp(T0 + 1.5, BASE + 100 * MI)[0]["bytes"] == 200 * MI - (O1 + MI // 2) - 100 * MI - O1


def test_ramp_over_the_limit_adds_equal_shares():
    core, _first = started(plan(memory=dict(RAMP, over_limit=True)))
    core.ramp(T0 + 0.5, BASE)
    assert core.ramp(T0 + 1.5, BASE + 500 * MI)[0]["bytes"] == 20 * MI


def test_aim_follows_the_ramp_line():
    core, _first = started(plan(memory=RAMP))
    assert [core.aim(T0 + t) for t in (0, 2.5, 10, 30)] == [0, 50 * MI, 200 * MI, 200 * MI]
    core, _first = started(plan(memory={}))
    assert core.aim(T0 + 0.1) == 200 * MI
    assert Control(plan(memory={}), T0, BASE).aim(T0) is None  # not started yet


# -- settling and top-ups ---------------------------------------------------------------------------------
# (case, working sets seen on consecutive samples (increase in MiB, seconds after start), expected actions)
SETTLE = [
    ("growing: not settled", [(150, 1), (190, 2)], []),
    ("stable but held too short", [(199, 0.3), (199, 0.6)], []),
    ("stable and resident: holding, nothing to top up", [(199, 1), (199.5, 2)],
     [{"do": "holding", "achieved_increase_bytes": int(199.5 * MI)}]),
    ("stable with the payload not all in yet: still faulting in", [(187, 1), (187, 2), (187, 3)], []),
    ("never stable but out of time: settles anyway", [(100, 1), (150, 16)], ["topup"]),
    ("stable and resident with the estimated overhead: the top-up closes the reserve",
     [((FIRST + O1) / MI, 2), ((FIRST + O1) / MI, 3)], ["topup"]),
]


def _increase(mib):
    return BASE + int(mib * MI)


@pytest.mark.parametrize("case, seen, expected", SETTLE, ids=[r[0] for r in SETTLE])
def test_settling(case, seen, expected):
    core, _first = started(plan(memory={}))
    actions = []
    for mib, t in seen:
        actions = core.on_sample(T0 + t, _increase(mib))
    if expected == ["topup"]:
        short = 200 * MI - _increase(seen[-1][0]) + BASE
        assert [a["do"] for a in actions] == ["launch"] and abs(actions[0]["bytes"] - (short - O1)) <= 1
        assert core.phase == "settling" and core.topups == 1
    else:
        assert actions == expected
        assert core.phase == ("holding" if expected else "settling")


TOPUP = [
    # (case, plan memory, top-ups already made, increase seen, expected launch bytes or None (holding))
    ("overhead as estimated: one top-up closes the reserve", {}, 0, FIRST + O1, RESERVE - O1),
    # The top-up's own overhead is taken halfway between the estimate and what the instances cost.
    ("overhead 1.4 times the estimate: the top-up pays 1.2 times", {}, 0, FIRST + int(1.4 * O1),
     RESERVE + O1 - int(1.4 * O1) - int(1.2 * O1)),
    ("overhead half the estimate: a larger top-up", {}, 0, FIRST + O1 // 2, RESERVE + O1 // 2 - int(0.75 * O1)),
    ("within half a percent: hold", {}, 0, 200 * MI - MI, None),
    ("short, but not by more than a top-up's own overhead: hold", {}, 0, FIRST + 2 * O1, None),
    ("pages missing (not resident): the estimate stands, capped at half the request", {}, 0, 10 * MI, 100 * MI),
    ("two top-ups made: hold anyway", {}, 2, 180 * MI, None),
    ("over the limit on purpose: never topped up", {"over_limit": True}, 0, 100 * MI, None),
    ("above the request: hold", {}, 0, 205 * MI, None),
]


@pytest.mark.parametrize("case, memory, topups, increase, launched", TOPUP, ids=[r[0] for r in TOPUP])
def test_top_up(case, memory, topups, increase, launched):
    core, _first = started(plan(memory=memory))
    core.topups = topups
    actions = core.top_up(T0 + 5, BASE + increase)
    if launched is None:
        assert actions == [{"do": "holding", "achieved_increase_bytes": increase}] and core.phase == "holding"
        assert core.achieved == increase
    else:
        assert [a["do"] for a in actions] == ["launch"] and core.topups == topups + 1
        assert abs(actions[0]["bytes"] - launched) <= 1 and actions[0]["workers"] == 1
        assert core.settle_since == T0 + 5 and core.settle_ws is None  # settling starts again


# -- exits: respawn, stop, let go -----------------------------------------------------------------------
EXITS = [
    ("keep pressure: respawn", "keep_pressure", T0 + 10, None, False, {"do": "respawn", "index": 0}),
    ("keep pressure after a stressor OOM: respawn", "keep_pressure", T0 + 10, None, True,
     {"do": "respawn", "index": 0}),
    ("on_oom stop after a stressor OOM: stop", "stop", T0 + 10, None, True, control.stop("oom")),
    ("on_oom stop, ordinary exit: respawn", "stop", T0 + 10, None, False, {"do": "respawn", "index": 0}),
    ("within a second of the deadline: let it go", "keep_pressure", T0 + 59.5, None, False, None),
    ("could not attach: stop with its error", "keep_pressure", T0 + 10, "cannot attach", False,
     control.stop("attach_failed", "cannot attach")),
]


@pytest.mark.parametrize("case, on_oom, now, error, stressor_oom, expected", EXITS, ids=[r[0] for r in EXITS])
def test_an_exited_instance(case, on_oom, now, error, stressor_oom, expected):
    core, _first = started(plan(cpu={}, on_oom=on_oom))
    actions = core.on_sample(now, BASE, exits=[error], stressor_oom=stressor_oom)
    assert actions == ([expected] if expected else [])


def test_respawns_are_capped():
    core, _first = started(plan(cpu={}))
    core.respawns = control.MAX_RESPAWNS
    assert core.on_sample(T0 + 10, BASE, exits=[None]) == []


# -- CPU correction -----------------------------------------------------------------------------------------
# 0.25 cores asked of a 0.5-core quota (50 points) at per-worker load 50; (case, cpu seconds at T0+1 and at T0+1+dt,
# dt, expected new per-worker load or None)
CPU = [
    ("on target", 1.0, 2.25, 5.0, None),
    ("1.2 points off: inside the tolerance", 1.0, 2.28, 5.0, None),
    ("window too short to judge", 1.0, 1.2, 3.0, None),
    ("undershoot under contention: half-way up", 1.0, 2.0, 5.0, 56),
    ("overshoot: half-way down", 1.0, 3.0, 5.0, 41),
    ("nothing ran: doubles, half-way", 1.0, 1.0, 5.0, 75),
    ("the instance was replaced (counter went back): window restarts", 5.0, 1.0, 5.0, None),
]


@pytest.mark.parametrize("case, before, after, dt, load", CPU, ids=[r[0] for r in CPU])
def test_cpu_correction(case, before, after, dt, load):
    core, _first = started(plan(cpu={}))
    assert core.on_sample(T0 + 1, BASE, cpu_seconds=before) == []
    actions = core.on_sample(T0 + 1 + dt, BASE, cpu_seconds=after)
    assert [a["per_worker_load"] for a in actions if a["do"] == "relaunch_cpu"] == ([load] if load else [])
    assert core.cpu_load == (load or 50)


def test_cpu_corrections_are_capped():
    core, _first = started(plan(cpu={}))
    core.cpu_corrections = control.MAX_CPU_CORRECTIONS
    core.on_sample(T0 + 1, BASE, cpu_seconds=1.0)
    assert core.on_sample(T0 + 6, BASE, cpu_seconds=1.2) == []


# -- the end --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case, mib, released", [
    ("back to the baseline", 1, True),
    ("a twentieth of the request left", 10, True),
    ("most still held", 150, False),
], ids=lambda v: v if isinstance(v, str) else "")
def test_memory_released(case, mib, released):
    core, _first = started(plan(memory={}))
    assert core.memory_released(_increase(mib)) is released


@pytest.mark.parametrize("case, size, resident_overhead_share, last_step", [
    ("20 MiB steps: the last one launches what the reserve leaves", 400, 1.0, "as planned"),
    ("10 MiB steps: the reserve leaves more than a MiB", 200, 1.0, "as planned"),
    ("10 MiB steps, overhead 10 % over the estimate: less than the MiB floor, it launches anyway", 200, 1.1, "small"),
    ("10 MiB steps, overhead 20 % over the estimate: nothing left, the top-up's minimum goes out", 200, 1.2, "minimum"),
    ("overhead twice the estimate: even the minimum would overshoot, so nothing goes out", 200, 2.0, None),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_ramp_never_ends_a_step_short_of_its_line(case, size, resident_overhead_share, last_step):
    core, _first = started(plan(memory=dict(bytes=size * MI, ramp_seconds=10, steps=20)))
    level = 0
    for step in range(19):
        actions = core.ramp(T0 + 0.25 + 0.5 * step, BASE + level)
        launched = [a["bytes"] for a in actions if a["do"] == "launch"]
        level += (launched[0] + int(O1 * resident_overhead_share)) if launched else 0
    actions = core.ramp(T0 + 9.75, BASE + level)
    launched = [a["bytes"] for a in actions if a["do"] == "launch"]
    if last_step is None:
        assert launched == []
        return
    reached = level + launched[0] + int(O1 * resident_overhead_share)
    assert reached <= size * MI - MI // 2  # never above the request: the top-up closes the rest
    assert size * MI - reached <= 0.03 * size * MI  # the ramp's 3 % at its end
    assert (launched[0] >= MI) is (last_step == "as planned")
    assert (launched[0] == control.MIN_TOPUP_BYTES) is (last_step == "minimum")
