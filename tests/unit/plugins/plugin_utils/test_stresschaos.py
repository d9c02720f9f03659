"""Table tests of the Chaos Mesh translation (plugins/plugin_utils/_stresschaos.py), one row per manifest of
tests/unit/fixtures/stresschaos/, plus the cron/RRULE conversion, per-target sizes and container records."""

import datetime
import random
from pathlib import Path

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _k8s_select as sel
from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import PlanError, check_stress_ng_args, make_plan
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _stresschaos as sc

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stresschaos"
START = "2027-01-06T00:00:00"
MI = 1024 * 1024


def run(name, **settings):
    docs = sc.load_documents([str(FIXTURES / name)], read=lambda p: Path(p).read_text())
    return sc.translate(docs, dict({"schedule_start": START}, **settings))


def only(name, **settings):
    out = run(name, **settings)
    assert out["problems"] == [], out["problems"]
    assert len(out["experiments"]) == 1
    return out["experiments"][0]


def differs(experiment):
    return sorted(r["field"] for r in experiment["table"] if r["differs"])


# ---------------------------------------------------------------- honoured manifests: k8s options, role vars

HONOURED = [
    # fixture, k8s_targets options (exact), role variables (subset), fields whose table row differs
    ("memory-total.yaml",
     {"namespaces": ["shop"], "label_selectors": {"app": "checkout"}, "pod_phase_selectors": ["Running"],
      "mode": "one", "default_containers": "first"},
     {"experiment_type": "memory", "experiment_memory_size": "256000000", "experiment_memory_workers": 4,
      "experiment_duration": "30s", "experiment_stressor_extra": {}},
     ["spec.selector.podPhaseSelectors", "spec.stressors.memory.oomScoreAdj"]),
    ("memory-percent.yaml",
     {"namespaces": ["shop", "shop-canary"], "label_selectors": {"app": "cart"}, "pod_phase_selectors": ["Running"],
      "mode": "all", "default_containers": "first"},
     {"experiment_memory_size": "50%", "experiment_duration": "120s"},
     ["spec.selector.podPhaseSelectors", "spec.stressors.memory.oomScoreAdj",
      "spec.stressors.memory.size"]),
    ("memory-percent-node.yaml",
     {"namespaces": ["batch"], "label_selectors": {"app": "worker"}, "pod_phase_selectors": ["Running"],
      "mode": "one", "default_containers": "first"},
     {"experiment_memory_workers": 2, "experiment_duration": "60s"},
     ["spec.selector.podPhaseSelectors", "spec.stressors.memory.oomScoreAdj"]),
    ("memory-legacy-per-worker.yaml",
     {"namespaces": ["shop"], "label_selectors": {"app": "ledger"}, "pod_phase_selectors": ["Running"],
      "mode": "all", "default_containers": "first"},
     {"experiment_memory_size": str(200 * MI), "experiment_memory_workers": 2},
     ["spec.selector.podPhaseSelectors", "spec.stressors.memory.oomScoreAdj",
      "spec.stressors.memory.size"]),
    ("memory-ramp-oom.yaml",
     {"namespaces": ["shop"], "label_selectors": {"app": "checkout"}, "pod_phase_selectors": ["Running"],
      "mode": "all", "default_containers": "first"},
     {"experiment_memory_size": str(1024 * MI), "experiment_memory_ramp": "30s", "experiment_oom_score_adj": "-500",
      "experiment_duration": "300s"},
     ["spec.selector.podPhaseSelectors", "spec.stressors.memory.oomScoreAdj"]),
    ("cpu-fixed.yaml",
     {"namespaces": ["payments"], "label_selectors": {"app": "payments"}, "pod_phase_selectors": ["Running"],
      "mode": "fixed", "value": "2", "default_containers": "first"},
     # --timeout 60s in options ends the stress before duration 90s.
     {"experiment_type": "cpu", "experiment_cpu_load": "30", "experiment_cpu_workers": "2",
      "experiment_duration": "60s"},
     ["spec.selector.podPhaseSelectors", "spec.stressors.cpu.load / workers"]),
    ("memory-and-cpu.yaml",
     {"namespaces": ["shop"], "label_selectors": {"app": "checkout"}, "pod_phase_selectors": ["Running"],
      "mode": "fixed-percent", "value": "50", "container_names": ["app"]},
     {"experiment_type": "memory", "experiment_memory_size": str(64 * MI),
      "experiment_stressor_extra": {"cpu": {"load": 50.0, "workers": 1}}},
     ["spec.containerNames", "spec.selector.podPhaseSelectors", "spec.stressors.cpu.load / workers",
      "spec.stressors.memory.oomScoreAdj"]),
    ("selectors-every-kind.yaml",
     {"namespaces": ["shop"],
      "label_selectors": [{"key": "tier", "operator": "In", "values": ["web"]},
                          {"key": "track", "operator": "NotIn", "values": ["stable"]},
                          {"key": "chaos", "operator": "Exists"}],
      "annotation_selectors": {"chaos.example.com/allowed": "true"},
      "field_selectors": {"spec.restartPolicy": "Always"}, "nodes": ["node-a"], "node_selectors": {"pool": "stress"},
      "node_match": "any", "pod_phase_selectors": ["!Pending"], "mode": "random-max-percent", "value": "40",
      "container_names": ["app", "sidecar"]},
     {"experiment_memory_size": str(32 * MI), "experiment_duration": "20s"},
     ["spec.containerNames", "spec.stressors.memory.oomScoreAdj"]),
    ("selector-pods.yaml",
     {"pods": {"shop": ["checkout-0", "checkout-1"], "cart": ["cart-0"]}, "namespaces": [],
      "pod_phase_selectors": [], "mode": "all", "default_containers": "first"},
     {"experiment_type": "cpu", "experiment_cpu_load": "80", "experiment_cpu_workers": "1"},
     ["spec.stressors.cpu.load / workers"]),
    ("stressng-opt-in.yaml",
     {"namespaces": ["shop"], "label_selectors": {"app": "checkout"}, "pod_phase_selectors": ["Running"],
      "mode": "one", "default_containers": "first"},
     {"experiment_type": "cpu", "experiment_stressor_extra": {
         "cpu": None, "stress_ng_args": ["--cpu", "1", "--cpu-load", "40", "--cpu-method", "sqrt"]}},
     ["spec.selector.podPhaseSelectors", "spec.stressngStressors"]),
]


@pytest.mark.parametrize("fixture,k8s,role,differ", HONOURED, ids=[c[0] for c in HONOURED])
def test_each_manifest_translates_as_its_table_says(fixture, k8s, role, differ):
    experiment = only(fixture, allow_stressng="stressng" in fixture)
    assert experiment["k8s"] == k8s
    for key, value in role.items():
        assert experiment["role"][key] == value, key
    assert differs(experiment) == differ
    # Every row says what Chaos Mesh would do and what runs here; a difference always says why.
    for r in experiment["table"]:
        assert r["chaos_mesh"] and r["here"] and (bool(r["why"]) == r["differs"])
    # The selection options are ones k8s_targets accepts.
    sel.parse_options(dict(experiment["k8s"], protected_namespaces=["kube-system"]))


def test_several_documents_in_one_file_become_experiments_in_order(tmp_path):
    # Kept as .txt: the collection's YAML lint allows one document per .yaml file, a manifests folder does not.
    path = tmp_path / "multi-document.yaml"
    path.write_text((FIXTURES / "multi-document.txt").read_text())
    docs = sc.load_documents([str(path)], read=lambda p: Path(p).read_text())
    out = sc.translate(docs, {"schedule_start": START})
    assert out["problems"] == []
    assert [e["name"] for e in out["experiments"]] == ["first", "second"]
    assert [e["source"] for e in out["experiments"]] == [str(path) + "#1", str(path) + "#2"]
    assert out["experiments"][0]["role"]["experiment_memory_size"] == "10000000"   # 10MB is decimal
    assert out["experiments"][1]["role"]["experiment_type"] == "cpu"


def test_name_prefix_and_inline_yaml_text_and_mappings():
    text = (FIXTURES / "memory-total.yaml").read_text()
    docs = sc.load_documents([text, {"apiVersion": sc.API_VERSION, "kind": "StressChaos",
                                     "metadata": {"name": "inline"},
                                     "spec": {"mode": "all", "selector": {}, "duration": "10s",
                                              "stressors": {"cpu": {"workers": 1}}}}])
    out = sc.translate(docs, {"name_prefix": "t1-"})
    assert out["problems"] == []
    assert [e["name"] for e in out["experiments"]] == ["t1-checkout-memory", "t1-inline"]
    # No namespace: "default"; no load: stress-ng's default, 100 %.
    assert out["experiments"][1]["k8s"]["namespaces"] == ["default"]
    assert out["experiments"][1]["role"]["experiment_cpu_load"] == "100"


@pytest.mark.parametrize("text,expected", [
    ("256MB", ("bytes", 256 * 10 ** 6)), ("256mb", ("bytes", 256 * 10 ** 6)), ("1GB", ("bytes", 10 ** 9)),
    ("1GiB", ("bytes", 2 ** 30)), ("100MiB", ("bytes", 100 * MI)), ("512KB", ("bytes", 512000)),
    ("512KiB", ("bytes", 512 * 1024)), ("1.5GiB", ("bytes", 3 * 2 ** 29)), ("64 MB", ("bytes", 64 * 10 ** 6)),
    ("1024", ("bytes", 1024)), ("25%", ("percent", 25.0)), ("12.5 %", ("percent", 12.5)),
])
def test_memory_units_follow_chaos_mesh(text, expected):
    assert sc.chaos_mesh_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "10XB", "0%", "101%", "-5MB", "0MB"])
def test_bad_memory_sizes(text):
    with pytest.raises(ValueError):
        sc.chaos_mesh_size(text)


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("1h30m", 5400), ("1.5h", 5400), ("500ms", 0.5),
                                          ("2m30s", 150), ("90m", 5400), ("10", None), ("1d", None), ("", None)])
def test_go_durations(text, seconds):
    assert sc.go_duration(text) == seconds


# ---------------------------------------------------------------- refused manifests: one line per field

REFUSED = [
    ("refused-remote-cluster.yaml", {}, ["spec.remoteCluster: refused"]),
    ("refused-workers.yaml", {}, ["spec.stressors.memory.workers: 0: Chaos Mesh accepts it and stresses nothing",
                                  "spec.stressors.cpu.workers: -1: Chaos Mesh accepts it and stresses nothing"]),
    ("refused-empty-size.yaml", {}, ["spec.stressors.memory.size: empty"]),
    ("refused-unknown-fields.yaml", {}, ["spec.durations: unknown field", "spec.selector.labelSelector: unknown field",
                                         "spec.stressors.memory.sizes: unknown field"]),
    ("refused-workflow.yaml", {}, ["kind Workflow is refused: its steps are the game day's batches"]),
    ("refused-schedule-podchaos.yaml", {}, ["spec.type: 'PodChaos': only Schedules of type StressChaos"]),
    ("refused-types.yaml", {}, ["spec.value: 'two' for mode fixed is not a whole number",
                                "spec.stressors.memory.workers: expected a whole number, got a string '4'",
                                "spec.stressors.memory.oomScoreAdj: 2000 is out of range (-1000 to 1000)",
                                "spec.stressors.cpu.load: 150 is out of range (0 to 100)",
                                "spec.duration: expected a duration string such as 30s or 5m, got a number 30"]),
    ("refused-memory-options.yaml", {}, ["spec.stressors.memory.options[0]: '--vm-keep' is refused: memStress takes "
                                         "only --time"]),
    ("refused-no-duration.yaml", {}, ["spec.duration: missing", "chaos-mesh#4452"]),
    ("stressng-opt-in.yaml", {}, ["spec.stressngStressors: refused unless the play sets stresschaos_allow_stressng",
                                  "chaos-mesh#3783"]),
    ("schedule-hourly-no-duration.yaml", {}, ["spec.stressChaos.duration: missing"]),
    ("memory-total.yaml", {"max_duration": "10s"}, ["spec.duration: '30s' is out of range (at most 10s"]),
]


@pytest.mark.parametrize("fixture,settings,lines", REFUSED, ids=["%s%s" % (c[0], "+" if c[1] else "") for c in REFUSED])
def test_refused_manifests_name_each_field_and_start_nothing(fixture, settings, lines):
    out = run(fixture, **settings)
    assert out["experiments"] == [] and out["schedules"] == []
    text = "\n".join(out["problems"])
    for line in lines:
        assert line in text, text
    # One line per problem, each naming its source.
    assert all(p.startswith(str(FIXTURES / fixture)) for p in out["problems"])
    if fixture == "refused-types.yaml":
        assert len(out["problems"]) == 5


def test_a_refusal_anywhere_keeps_the_good_manifests_from_starting_too():
    docs = sc.load_documents([str(FIXTURES / n) for n in ("memory-total.yaml", "refused-workers.yaml")],
                             read=lambda p: Path(p).read_text())
    out = sc.translate(docs, {})
    assert out["problems"] and len(out["experiments"]) == 1  # the playbook's translate step fails on problems


def test_missing_duration_takes_the_plays_maximum():
    experiment = only("refused-no-duration.yaml", max_duration="3m")
    assert experiment["role"]["experiment_duration"] == "180s"
    assert "spec.duration" in differs(experiment)


def test_other_kinds_and_api_versions_are_refused():
    out = sc.translate([("x", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
                        ("y", {"apiVersion": "chaos-mesh.org/v1beta1", "kind": "StressChaos",
                               "metadata": {"name": "s"},
                               "spec": {"mode": "all", "duration": "1s", "stressors": {"cpu": {"workers": 1}}}})])
    assert "x: kind 'Pod' is refused" in out["problems"][0]
    assert "apiVersion: 'chaos-mesh.org/v1beta1' is not chaos-mesh.org/v1alpha1" in out["problems"][1]


def test_kubectl_metadata_and_status_are_read_and_ignored():
    doc = {"apiVersion": sc.API_VERSION, "kind": "StressChaos", "status": {"experiment": {}},
           "metadata": {"name": "s", "uid": "u", "resourceVersion": "1", "creationTimestamp": "t", "generation": 2},
           "spec": {"mode": "all", "duration": "1s", "stressors": {"cpu": {"workers": 1}}}}
    assert sc.translate([("k", doc)])["problems"] == []


# ---------------------------------------------------------------- mode arithmetic (k8s_targets, as Chaos Mesh)

@pytest.mark.parametrize("mode,value,total,expected", [
    ("fixed", 3, 10, 3), ("fixed", 30, 10, 10), ("fixed-percent", 50, 3, 2), ("fixed-percent", 10, 9, 1),
    ("fixed-percent", 100, 7, 7), ("all", None, 4, 4), ("one", None, 4, 1),
])
def test_mode_arithmetic(mode, value, total, expected):
    assert sel.mode_count(mode, value, total, random.Random(1))[0] == expected


def test_random_max_percent_draws_from_zero_to_the_maximum():
    drawn = set(sel.mode_count("random-max-percent", 40, 10, random.Random(seed))[1] for seed in range(400))
    assert drawn == set(range(0, 41))


def test_value_as_a_yaml_number_or_string():
    assert sel.mode_value("fixed", 2) == sel.mode_value("fixed", "2") == 2
    assert sel.mode_value("fixed-percent", "50%") == 50


# ---------------------------------------------------------------- selectors in k8s_targets (the extensions)

def _pod(name, node, phase="Running", containers=("app", "sidecar")):
    from tests.k8s_double import make_pod
    return make_pod(name, "shop", node, [{"name": c, "container_id": "containerd://%064x" % random.Random(name + c)
                                          .getrandbits(256)} for c in containers], phase=phase)


def test_nodes_and_node_selectors_are_a_union_with_node_match_any():
    criteria = sel.parse_options({"namespaces": ["shop"], "nodes": ["n1"], "node_selectors": {"pool": "x"},
                                  "node_match": "any", "mode": "all", "pod_phase_selectors": []})

    class Api(object):
        def list_nodes(self, selector):
            from tests.k8s_double import make_node
            node = make_node("n2", "10.0.0.2")
            node["metadata"]["labels"] = {"pool": "x"}
            return [node]

        def list_pods(self, namespace, labels, fields):
            return [_pod("a", "n1"), _pod("b", "n2"), _pod("c", "n3")]

        def read_node(self, name):
            from tests.k8s_double import make_node
            return make_node(name, "10.0.0.9")

    picked = sel.resolve(criteria, Api())
    assert [t["pod"] for t in picked["targets"]] == ["a", "b"]
    criteria["node_match"] = "all"
    assert sel.resolve(criteria, Api())["targets"] == []


def test_phase_negation_and_first_container():
    assert sel.phase_match(["!Pending"], "Running") and not sel.phase_match(["!Pending"], "Pending")
    assert sel.phase_match(["Running", "!Failed"], "Running") and not sel.phase_match(["Running"], "Failed")
    criteria = sel.parse_options({"namespaces": ["shop"], "pod_phase_selectors": ["!Pending"], "mode": "all",
                                  "default_containers": "first"})
    candidates, _skipped, _funnel = sel.filter_pods([_pod("a", "n1"), _pod("b", "n1", phase="Pending")], criteria)
    assert [(p["metadata"]["name"], [c["name"] for c in cs]) for p, cs in candidates] == [("a", ["app"])]


# ---------------------------------------------------------------- Schedules -> AWX

SCHEDULES = [
    ("schedule-weekly.yaml", "DTSTART:20270106T000000Z RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=WE;BYHOUR=10;BYMINUTE=0",
     False, ["spec.concurrencyPolicy", "spec.historyLimit", "spec.schedule", "spec.startingDeadlineSeconds"]),
    ("schedule-every.yaml", "DTSTART:20270106T000000Z RRULE:FREQ=HOURLY;INTERVAL=2", True, ["spec.schedule"]),
    ("schedule-timezone.yaml",
     "DTSTART;TZID=Europe/Paris:20270106T000000 RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR;BYHOUR=6;BYMINUTE=30",
     False, ["spec.concurrencyPolicy"]),
]


@pytest.mark.parametrize("fixture,rrule,simultaneous,differ", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedules_become_awx_schedule_as_code(fixture, rrule, simultaneous, differ):
    out = run(fixture)
    assert out["problems"] == [] and out["experiments"] == []
    (entry,) = out["schedules"]
    assert entry["rrule"]["rrule"] == rrule
    assert sorted(r["field"] for r in entry["table"] if r["differs"]) == differ
    (template,) = out["awx"]["chaosfleet_awx_extra_job_templates"]
    (schedule,) = out["awx"]["chaosfleet_awx_schedules"]
    assert template["allow_simultaneous"] is simultaneous and template["playbook"] == "playbooks/stresschaos.yml"
    assert schedule["unified_job_template"] == template["name"] and schedule["rrule"] == rrule
    # The job template runs the child as a StressChaos, which translates on its own.
    (child,) = template["extra_vars"]["stresschaos_manifests"]
    again = sc.translate([("child", child)], {})
    assert again["problems"] == [] and again["experiments"][0]["name"] == entry["name"]
    assert entry["child"]["table"][0]["field"].startswith("spec.stressChaos.")


def test_forbid_without_duration_warns_that_only_the_first_run_would_happen():
    out = run("schedule-hourly-no-duration.yaml", max_duration="5m")
    assert out["problems"] == []
    assert any("only that first run would ever happen" in w for w in out["warnings"])
    assert out["schedules"][0]["rrule"]["rules"] == ["FREQ=HOURLY;INTERVAL=1;BYMINUTE=0"]


CRON = [
    ("0 10 * * 3", ["FREQ=WEEKLY;INTERVAL=1;BYDAY=WE;BYHOUR=10;BYMINUTE=0"]),
    ("*/15 * * * *", ["FREQ=HOURLY;INTERVAL=1;BYMINUTE=0,15,30,45"]),
    ("0 0 12 * * *", ["FREQ=DAILY;INTERVAL=1;BYHOUR=12;BYMINUTE=0"]),
    ("30 */10 * * * *", ["FREQ=HOURLY;INTERVAL=1;BYMINUTE=0,10,20,30,40,50;BYSECOND=30"]),
    ("0 9-17 * * mon-fri", ["FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9,10,11,12,13,14,15,16,17;BYMINUTE=0"]),
    ("0 0 1,15 * MON", ["FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=1,15;BYHOUR=0;BYMINUTE=0",
                        "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;BYHOUR=0;BYMINUTE=0"]),
    ("0 6 * jan,jul 0", ["FREQ=WEEKLY;INTERVAL=1;BYMONTH=1,7;BYDAY=SU;BYHOUR=6;BYMINUTE=0"]),
    ("0 0 * * 7", ["FREQ=WEEKLY;INTERVAL=1;BYDAY=SU;BYHOUR=0;BYMINUTE=0"]),
    ("* 9 * * *", ["FREQ=MINUTELY;INTERVAL=1;BYHOUR=9"]),
    ("@yearly", ["FREQ=MONTHLY;INTERVAL=1;BYMONTH=1;BYMONTHDAY=1;BYHOUR=0;BYMINUTE=0"]),
    ("@annually", ["FREQ=MONTHLY;INTERVAL=1;BYMONTH=1;BYMONTHDAY=1;BYHOUR=0;BYMINUTE=0"]),
    ("@monthly", ["FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=1;BYHOUR=0;BYMINUTE=0"]),
    ("@weekly", ["FREQ=WEEKLY;INTERVAL=1;BYDAY=SU;BYHOUR=0;BYMINUTE=0"]),
    ("@daily", ["FREQ=DAILY;INTERVAL=1;BYHOUR=0;BYMINUTE=0"]),
    ("@midnight", ["FREQ=DAILY;INTERVAL=1;BYHOUR=0;BYMINUTE=0"]),
    ("@hourly", ["FREQ=HOURLY;INTERVAL=1;BYMINUTE=0"]),
    ("@every 30s", ["FREQ=MINUTELY;INTERVAL=1;BYSECOND=0,30"]),
    ("@every 5m", ["FREQ=MINUTELY;INTERVAL=5"]),
    ("@every 1h30m", ["FREQ=MINUTELY;INTERVAL=90"]),
    ("@every 48h", ["FREQ=DAILY;INTERVAL=2"]),
    ("TZ=Asia/Tokyo 0 8 * * *", ["FREQ=DAILY;INTERVAL=1;BYHOUR=8;BYMINUTE=0"]),
]


@pytest.mark.parametrize("expr,rules", CRON, ids=[c[0] for c in CRON])
def test_cron_to_rrule(expr, rules):
    out = sc.cron_to_rrule(expr, datetime.datetime(2027, 1, 6))
    assert out["rules"] == rules
    start = "DTSTART;TZID=Asia/Tokyo:20270106T000000" if expr.startswith("TZ=") else "DTSTART:20270106T000000Z"
    assert out["rrule"].split(" ", maxsplit=1)[0] == start


def _cron_matches(expr, moment):
    """A plain cron evaluation (robfig's rules) to check the RRULEs against."""
    fields = expr.split()
    if len(fields) == 5:
        fields = ["0"] + fields
    parsed = [sc._cron_field(f, lo, hi, names, what) for f, (what, lo, hi, names) in zip(fields, sc._CRON_FIELDS)]
    (sec, _sec_star), (mins, _min_star), (hours, _hour_star), (doms, dom_star), (months, _month_star), \
        (dows, dow_star) = parsed
    dow = (moment.weekday() + 1) % 7
    day_ok = (moment.day in doms and dow in dows) if (dom_star or dow_star) else (moment.day in doms or dow in dows)
    return (moment.second in sec and moment.minute in mins and moment.hour in hours and moment.month in months
            and day_ok)


@pytest.mark.parametrize("expr", ["0 10 * * 3", "*/15 9-10 * * *", "0 0 1,15 * MON", "0 6 * jan,jul 0",
                                  "30 */10 * * * *", "0 0 */2 * *", "0 12 1-7 * 5"])
def test_rrules_fire_exactly_when_cron_does(expr):
    rrulestr = pytest.importorskip("dateutil.rrule").rrulestr
    start = datetime.datetime(2027, 1, 6)
    out = sc.cron_to_rrule(expr, start)
    rules = rrulestr(out["rrule"].replace("Z", "").replace(" ", "\n"), forceset=True)
    end = start + datetime.timedelta(days=35 if len(expr.split()) == 5 else 4)
    fired = set(rules.between(start, end - datetime.timedelta(seconds=1), inc=True))
    # Every minute (every 10 s where the cron has seconds) over five weeks, by brute force.
    step = datetime.timedelta(seconds=10 if len(expr.split()) == 6 else 60)
    moment, expected = start, set()
    while moment < end:
        if _cron_matches(expr, moment):
            expected.add(moment)
        moment += step
    assert fired == expected


@pytest.mark.parametrize("expr,error", [
    ("@every 7s", "no schedule by the second"), ("@every 90s", "whole minutes"), ("61 * * * *", "out of range"),
    ("* * * *", "has 4 fields"), ("TZ=Mars/Olympus 0 * * * *", "time zone 'Mars/Olympus' is unknown"),
    ("@fortnightly", "is not one of"), ("", "empty schedule"), ("5-1 * * * *", "runs backwards"),
])
def test_bad_schedules(expr, error):
    with pytest.raises(sc.CronError) as info:
        sc.cron_to_rrule(expr, datetime.datetime(2027, 1, 6))
    assert error in str(info.value)


# ---------------------------------------------------------------- per target: sizes against real limits

def target(limit=500 * MI, quota=0.5):
    return {"namespace": "shop", "pod": "p", "container": "app", "memory_limit_bytes": limit, "cpu_limit_cores": quota}


def test_percent_of_the_limit_against_the_node_meaning():
    experiment = only("memory-percent.yaml")
    out = sc.resolve_target(experiment, target(), node_memory_bytes=24 * 1024 * MI)
    (line,) = out["rows"]
    assert line["here"] == "50% of the 500.0 MiB limit = 250.0 MiB"
    assert line["chaos_mesh"] == "50% of the node's 24.0 GiB = 12.0 GiB" and line["differs"]
    assert out["problem"] is None and out["vars"] == {}
    # No limit: refused for that target, with the reason.
    assert "has none" in sc.resolve_target(experiment, target(limit=None))["problem"]


def test_node_meaning_reproduces_chaos_mesh_on_request():
    experiment = only("memory-percent-node.yaml")
    out = sc.resolve_target(experiment, target(), node_memory_bytes=24 * 1024 * MI)
    assert out["vars"] == {"experiment_memory_size": str(int(24 * 1024 * MI * 0.05))}
    assert "above the 500.0 MiB limit" in out["rows"][0]["here"]
    assert sc.meminfo_total("MemTotal:       24684096 kB\nMemFree: 1 kB\n") == 24684096 * 1024


def test_cpu_load_is_a_share_of_the_quota():
    experiment = only("cpu-fixed.yaml")
    (line,) = sc.resolve_target(experiment, target(quota=0.5))["rows"]
    assert line["chaos_mesh"] == "0.50 cores (2 x 30% of one CPU), capped by the 0.50 cores quota"
    assert line["here"] == "0.15 cores (30% of the 0.50 cores quota)" and line["differs"]
    (line,) = sc.resolve_target(experiment, target(quota=2.0))["rows"]
    assert line["chaos_mesh"].startswith("0.60 cores") and line["here"].startswith("0.60 cores") and not line["differs"]


def test_plan_targets_lists_every_picked_container():
    experiment = only("memory-and-cpu.yaml")
    picked = {"targets": [{"namespace": "shop", "pod": "p1", "node": "n1", "containers": [
        {"name": "app", "id": "a" * 64, "memory_limit_bytes": 256 * MI, "cpu_limit_cores": 1.0}]}]}
    (planned,) = sc.plan_targets(experiment, picked)
    assert planned["id"] == "shop/p1/app" and planned["container_id"] == "a" * 64
    assert [r["field"] for r in planned["rows"]] == ["spec.stressors.memory.size", "spec.stressors.cpu.load"]


# ---------------------------------------------------------------- container records

def result(**fields):
    base = {"experiment": "e", "started_at": 1800000000.0, "ended_at": 1800000010.0, "status": "finished",
            "reason": "deadline", "target": {"path": "/kubepods/x"}, "request": {"memory_bytes": 32 * MI},
            "achieved": {"working_set_increase_bytes": 32 * MI, "cpu_cores": 0.0}}
    base.update(fields)
    return base


RECORDS = [
    (result(), "Injected", None),
    (result(reason="attach_failed"), "Not Injected", "the stressor did not start: attach_failed"),
    (result(achieved={"working_set_increase_bytes": 0}), "Not Injected", "the stressor died at start or never held"),
    (result(request={}, achieved={"cpu_cores": 0.0, "working_set_increase_bytes": 0}), "Not Injected",
     "the stressor died at start: nothing was measured"),
    (result(request={"cpu_load_percent": 50}, achieved={"cpu_cores": 0.25}), "Injected", None),
    ({"failed": True, "msg": "not started: refused: memory 600 MiB would take the target over its limit"},
     "Not Injected", "not started: refused"),
    (None, "Not Injected", "no result from the node"),
]


@pytest.mark.parametrize("res,phase,reason", RECORDS)
def test_container_records_show_chaos_mesh_shape_and_the_truth(res, phase, reason):
    (record,) = sc.container_records([{"id": "shop/p/app", "host": "n1", "node": "n1"}], {"n1": res})
    assert record["id"] == "shop/p/app" and record["phase"] == phase and record["selectorKey"] == "."
    assert (record["reason"] or "").startswith(reason) if reason else record["reason"] is None
    assert record["events"][0]["operation"] == "Apply"
    assert record["events"][0]["type"] == ("Succeeded" if phase == "Injected" else "Failed")
    if phase == "Injected":
        assert record["events"][1] == {"operation": "Recover", "type": "Succeeded",
                                       "timestamp": "2027-01-15T08:00:10Z", "message": "stopped: deadline"}
        assert (record["injectedCount"], record["recoveredCount"]) == (1, 1)


# ---------------------------------------------------------------- stressor: raw stress-ng arguments

def test_stress_ng_args_are_checked():
    assert check_stress_ng_args(["--cpu", "1", "--cpu-load=40"]) == ["--cpu", "1", "--cpu-load=40"]
    for bad, text in [(["--timeout", "5s"], "--timeout is refused"), (["--job", "x"], "--job is refused"),
                      (["--cpu", "1;rm"], "is not a stress-ng argument"), ([], "is empty"),
                      (["cpu"], "must start with a stress-ng option"), ("--cpu 1", "must be a list"),
                      (["--temp-path=tmp"], "--temp-path is refused"), (["--cpu"] * 65, "at most 64")]:
        with pytest.raises(PlanError) as info:
            check_stress_ng_args(bad)
        assert text in str(info.value)


def test_the_plan_runs_raw_arguments_with_the_collections_timeout():
    from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import planned_argvs
    usage = {"memory": {"limit_bytes": 500 * MI, "working_set_bytes": MI}, "cpu": {"quota_cores": 0.5}}
    plan = make_plan({"name": "x", "duration": "10s", "stress_ng_args": ["--cpu", "1"]}, usage, "/var/tmp/x")
    assert planned_argvs(plan, "/usr/bin/stress-ng") == [["/usr/bin/stress-ng", "--cpu", "1", "--timeout", "12s"]]


@pytest.mark.parametrize("value, allowed, problem", [
    (True, True, ""), ("yes", True, ""), ("Off", False, ""), (None, False, ""), ("", False, ""),
    ("perhaps", False, "stresschaos_allow_stressng must be true or false"),
])
def test_allow_stressng_takes_the_collections_yes_no_words(value, allowed, problem):
    settings, problems = sc.settings_of({"allow_stressng": value})
    assert settings["allow_stressng"] is allowed
    assert any(problem in p for p in problems) if problem else problems == []
