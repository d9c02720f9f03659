"""action/game_day_control.py: each step (check, vars, gate, summary) run as Ansible runs the action, with a real
loader, templar and inventory_hostnames lookup; k8s_targets is answered by a stand-in for _execute_module."""

import json
import os
import types
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.plugins.lookup.inventory_hostnames import LookupModule as InventoryHostnames
from ansible.template import Templar, trust_as_template

from ansible_collections.chaosfleet.stress.plugins.action.game_day_control import ActionModule

T = trust_as_template  # a value written with Jinja in a playbook or a spec file
ROLE_DEFAULTS = {"experiment_name": "", "experiment_type": "memory", "experiment_memory_size": "64Mi",
                 "experiment_duration": "60s", "experiment_cpu_load": 50, "experiment_container_id": ""}
GROUPS = {"all": ["node1", "node2", "node3"], "web": ["node1", "node2"], "db": ["node3"], "ungrouped": []}
CID_A, CID_B = "a" * 64, "b" * 64


class FakeTask(object):
    def __init__(self, args, check_mode=False):
        self.args = args
        self.check_mode = check_mode
        self.async_val = 0
        self.diff = False
        self.action = "chaosfleet.stress.game_day_control"
        self.delegate_to = None


class Modules(object):
    """Stands for ActionBase._execute_module: records each call and answers k8s_targets from ``answers``
    (experiment name in the selector's ``test_name`` -> result)."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, module_name=None, module_args=None, task_vars=None, **_kwargs):
        self.calls.append((module_name, dict(module_args)))
        return self.answers[module_args["namespaces"][0]]


def run(args, task_vars, check_mode=False, modules=None):
    """Run the action as Ansible does: the task's args, the host's variables, a templar over them."""
    loader = DataLoader()
    action = ActionModule(FakeTask(args, check_mode), mock.MagicMock(), PlayContext(), loader=loader,
                          templar=Templar(loader=loader, variables=task_vars), shared_loader_obj=None)

    def lookup(name, loader=None, templar=None):
        assert name == "ansible.builtin.inventory_hostnames"
        return InventoryHostnames(loader=loader, templar=templar)

    # ansible-core finds plugins through its collection loader; here the real lookup is handed over directly.
    action._shared_loader_obj = types.SimpleNamespace(lookup_loader=types.SimpleNamespace(get=lookup))
    action._execute_module = modules or Modules()
    return action.run(task_vars=task_vars)


def controller(spec=None, spec_file=None, **extra):
    out = {"groups": GROUPS, "inventory_hostname": "localhost", "hostvars": {}}
    if spec is not None:
        out["game_day"] = spec
    if spec_file is not None:
        out["__gd_file"] = spec_file
    out.update(extra)
    return out


def check(task_vars, label=None, modules=None):
    args = {"step": "check", "role_defaults": ROLE_DEFAULTS}
    if label:
        args["label"] = label
    return run(args, task_vars, modules=modules)


def two(mode=None, **extra):
    spec = {"name": "gd", "experiments": [{"name": "a", "type": "memory", "hosts": "web"},
                                          {"name": "b", "type": "cpu", "hosts": "db"}]}
    if mode:
        spec["mode"] = mode
    spec.update(extra)
    return spec


DEFAULT_SETTINGS = {"gate": {"continue_on": ["pass", "inconclusive"], "cooldown": 0},
                    "report_dest": "/var/tmp/chaosfleet-reports", "report_formats": ["html", "markdown", "json"]}

# -- check ---------------------------------------------------------------------------------------------------
# (case, task vars, expected: plan, hosts, name, settings over the defaults)
CHECK = [
    ("a sequence: one experiment a batch", controller(two()), [["a"], ["b"]],
     {"a": ["node1", "node2"], "b": ["node3"]}, "gd", {}),
    ("parallel: one batch", controller(two("parallel")), [["a", "b"]], {"a": ["node1", "node2"], "b": ["node3"]},
     "gd", {}),
    ("batches as written", controller({"name": "gd", "batches": [[{"name": "a", "type": "io", "hosts": "node1"},
                                                                  {"name": "b", "type": "cpu", "hosts": "node2"}],
                                                                 {"name": "c", "type": "cpu", "hosts": "db"}]}),
     [["a", "b"], ["c"]], {"a": ["node1"], "b": ["node2"], "c": ["node3"]}, "gd", {}),
    ("the spec file read into __gd_file", controller(spec_file=two()), [["a"], ["b"]],
     {"a": ["node1", "node2"], "b": ["node3"]}, "gd", {}),
    ("game_day wins over the file", controller(two("parallel"), spec_file=two()), [["a", "b"]],
     {"a": ["node1", "node2"], "b": ["node3"]}, "gd", {}),
    ("names, hosts, gate and report_dest are templated on the controller",
     controller({"name": T("{{ team }}-gd"), "experiments": [{"name": T("{{ team }}-a"), "type": "memory",
                                                              "hosts": T("{{ tier }}")}],
                 "gate": {"continue_on": T("{{ allowed }}"), "cooldown": 30}, "report_dest": T("{{ dest }}")},
                team="shop", tier="db", allowed=["pass"], dest="/srv/reports"),
     [["shop-a"]], {"shop-a": ["node3"]}, "shop-gd",
     {"gate": {"continue_on": ["pass"], "cooldown": 30}, "report_dest": "/srv/reports"}),
    ("report formats as given", controller(two(report_formats=["json"])), [["a"], ["b"]],
     {"a": ["node1", "node2"], "b": ["node3"]}, "gd", {"report_formats": ["json"]}),
    ("a host pattern with an exclusion", controller({"name": "gd", "experiments": [
        {"name": "a", "type": "memory", "hosts": "all:!node2"}]}), [["a"]], {"a": ["node1", "node3"]}, "gd", {}),
]


@pytest.mark.parametrize("case, task_vars, plan, hosts, name, settings", CHECK, ids=[r[0] for r in CHECK])
def test_check(case, task_vars, plan, hosts, name, settings):
    out = check(task_vars)
    assert (out["plan"], out["hosts"], out["name"]) == (plan, hosts, name)
    assert dict((k, out[k]) for k in DEFAULT_SETTINGS) == dict(DEFAULT_SETTINGS, **settings)
    assert out["errors"] == [] and out["changed"] is False
    assert (out["add_hosts"], out["targets"], out["skipped"], out["agents"]) == ([], {}, {}, {})


# (case, task vars, label, the whole message)
CHECK_ERRORS = [
    ("every problem on one line, after the label", controller({"name": "", "experiments": [
        {"name": "a", "type": "disk", "hosts": "web"}, {"name": "b", "type": "cpu", "hosts": "nosuch"}]}),
     "spec.yml", "game day spec spec.yml: the spec needs a name (letters, digits, . _ -); a: unknown experiment type "
     "'disk' (memory, cpu or io); b: hosts 'nosuch' matches no inventory host"),
    ("an inline spec is labelled so", controller({"name": "gd", "experiments": []}), None,
     "game day spec (inline): the spec has no experiments (give experiments: or batches:)"),
    ("a setting the role does not have", controller({"name": "gd", "defaults": {"memroy_size": "1Mi"},
                                                     "experiments": [{"name": "a", "type": "memory",
                                                                      "hosts": "db"}]}),
     None, "game day spec (inline): defaults: unknown setting memroy_size"),
    ("hosts that need a host's variable stay as written, and match nothing", controller({"name": "gd", "experiments": [
        {"name": "a", "type": "memory", "hosts": T("{{ not_on_the_controller }}")}]}), None,
     "game day spec (inline): a: hosts '{{ not_on_the_controller }}' matches no inventory host"),
    ("two experiments of a batch on one host", controller({"name": "gd", "batches": [[
        {"name": "a", "type": "memory", "hosts": "web"}, {"name": "b", "type": "cpu", "hosts": "node2"}]]}), None,
     "game day spec (inline): b and a both run on node2 in batch 1; put them in different batches"),
    ("a spec that is a list", controller(["a"]), None, "game day spec (inline): the spec must be a mapping"),
    ("a spec that is a string (a file name given as game_day)", controller("spec.yml"), None,
     "game day spec (inline): the spec must be a mapping"),
]


@pytest.mark.parametrize("case, task_vars, label, message", CHECK_ERRORS, ids=[r[0] for r in CHECK_ERRORS])
def test_check_errors(case, task_vars, label, message):
    with pytest.raises(AnsibleActionFail) as error:
        check(task_vars, label)
    assert str(error.value) == message


# -- check with a Kubernetes selector ----------------------------------------------------------------------------
def by_node(**nodes):
    """k8s_targets' by_node: node -> [(pod, container ID)]."""
    return dict((node, {"node_ip": "10.0.0.%d" % (i + 1), "targets": [
        {"namespace": "shop", "pod": pod, "container_ids": [cid], "containers": ["app"]} for pod, cid in picked]})
        for i, (node, picked) in enumerate(sorted(nodes.items())))


def k8s_spec(hosts=None, **selector):
    experiment = {"name": "a", "type": "memory", "k8s": dict({"namespaces": ["shop"]}, **selector)}
    if hosts:
        experiment["hosts"] = hosts
    return {"name": "gd", "experiments": [experiment]}


def test_k8s_selector_picks_the_hosts_and_their_containers():
    modules = Modules({"shop": {"by_node": by_node(node1=[("web-1", CID_A)], node9=[("web-9", CID_B)]),
                                "agents": {}}})
    out = check(controller(k8s_spec()), modules=modules)
    assert out["hosts"] == {"a": ["node1", "node9"]}
    assert out["targets"]["a"]["node1"]["experiment_container_id"] == CID_A
    assert out["targets"]["a"]["node9"]["experiment_k8s_target"] == {"namespace": "shop", "pod": "web-9",
                                                                     "container": "app", "node": "node9"}
    # node9 is no inventory host: the playbook adds it.
    assert [(h["name"], h["in_inventory"], h["node_ip"]) for h in out["add_hosts"]] == [("node9", False, "10.0.0.2")]
    assert modules.calls == [("chaosfleet.stress.k8s_targets",
                              {"namespaces": ["shop"], "mode": "all", "allow_empty": True})]


def test_k8s_hosts_pattern_limits_the_nodes_and_skips_the_rest():
    modules = Modules({"shop": {"by_node": by_node(node1=[("web-1", CID_A)], node3=[("db-1", CID_B)])}})
    out = check(controller(k8s_spec(hosts="web")), modules=modules)
    assert out["hosts"] == {"a": ["node1"]} and out["skipped"] == {"a": ["node2"]}


# (case, selector options, play variables, options k8s_targets gets)
K8S_OPTIONS = [
    ("defaults: every matching pod, an empty pick is judged by the check", {}, {},
     {"namespaces": ["shop"], "mode": "all", "allow_empty": True}),
    ("the selector's own mode stays", {"mode": "one"}, {},
     {"namespaces": ["shop"], "mode": "one", "allow_empty": True}),
    ("the play's connection and access variables, templated", {},
     {"k8s_kubeconfig": T("{{ kube_dir }}/config"), "k8s_context": "prod", "k8s_validate_certs": False,
      "k8s_node_access": "agent", "kube_dir": "/etc/kube", "k8s_agent_namespace": "chaosfleet"},
     {"namespaces": ["shop"], "mode": "all", "allow_empty": True, "kubeconfig": "/etc/kube/config",
      "context": "prod", "validate_certs": False, "node_access": "agent", "agent_namespace": "chaosfleet"}),
    ("the selector's own option wins over the play's", {"context": "staging"}, {"k8s_context": "prod"},
     {"namespaces": ["shop"], "mode": "all", "allow_empty": True, "context": "staging"}),
    ("play variables that are not set are not passed", {}, {"k8s_context": None, "k8s_something_else": "x"},
     {"namespaces": ["shop"], "mode": "all", "allow_empty": True}),
]


@pytest.mark.parametrize("case, selector, play_vars, options", K8S_OPTIONS, ids=[r[0] for r in K8S_OPTIONS])
def test_k8s_targets_options(case, selector, play_vars, options):
    modules = Modules({"shop": {"by_node": by_node(node1=[("web-1", CID_A)])}})
    check(controller(k8s_spec(**selector), **play_vars), modules=modules)
    assert [args for _name, args in modules.calls] == [options]


def test_k8s_agents_are_passed_on_and_their_hosts_added():
    agents = {"node1": {"pod": "agent-x", "namespace": "chaosfleet"}}
    modules = Modules({"shop": {"by_node": by_node(node1=[("web-1", CID_A)]), "agents": agents}})
    out = check(controller(k8s_spec()), modules=modules)
    assert out["agents"] == agents
    assert [h["name"] for h in out["add_hosts"]] == ["node1"]  # an inventory host, reached through its agent now


@pytest.mark.parametrize("case, answer, message", [
    ("k8s_targets failed", {"failed": True, "msg": "cannot reach the Kubernetes API"},
     "game day spec (inline): a: k8s selector: cannot reach the Kubernetes API"),
    ("nothing picked", {"by_node": {}},
     "game day spec (inline): a: the Kubernetes selector picked no running container"),
])
def test_k8s_selector_errors(case, answer, message):
    with pytest.raises(AnsibleActionFail) as error:
        check(controller(k8s_spec()), modules=Modules({"shop": answer}))
    assert str(error.value) == message


# -- vars: one host's experiment in a batch ------------------------------------------------------------------------
PLAN = {"name": "gd", "plan": [["a", "b"], ["c"]], "hosts": {"a": ["node1"], "b": ["node3"], "c": ["node1", "node2"]},
        "targets": {"b": {"node3": {"experiment_container_id": CID_B}}}, "report_dest": None}
VARS_SPEC = {"name": "gd", "defaults": {"duration": "2m", "memory_size": "128Mi"},
             "batches": [[{"name": T("{{ 'a' }}"), "type": "memory", "hosts": "node1",
                           "memory_size": T("{{ node_memory_mb // 4 }}Mi")},
                          {"name": "b", "type": "cpu", "hosts": "node3", "cpu_load": 80}],
                         [{"name": "c", "type": "io", "hosts": "web"}]]}
# (case, host, batch, its variables, expected name, expected variables beyond the role defaults)
VARS = [
    ("the host's own variables template its experiment", "node1", 0, {"node_memory_mb": 2048}, "a",
     {"experiment_type": "memory", "experiment_memory_size": "512Mi", "experiment_duration": "2m"}),
    ("the spec's defaults over the role's", "node1", 1, {}, "c",
     {"experiment_type": "io", "experiment_memory_size": "128Mi", "experiment_duration": "2m"}),
    ("a Kubernetes target's container", "node3", 0, {}, "b",
     {"experiment_type": "cpu", "experiment_cpu_load": 80, "experiment_container_id": CID_B,
      "experiment_duration": "2m", "experiment_memory_size": "128Mi"}),
    ("a host with nothing in this batch", "node3", 1, {}, "", None),
]


@pytest.mark.parametrize("case, host, batch, host_vars, name, expected", VARS, ids=[r[0] for r in VARS])
def test_vars(case, host, batch, host_vars, name, expected):
    task_vars = dict(host_vars, game_day=VARS_SPEC, inventory_hostname=host, groups=GROUPS)
    out = run({"step": "vars", "plan": PLAN, "batch": batch, "role_defaults": ROLE_DEFAULTS}, task_vars)
    assert out["name"] == name and out["changed"] is False
    if expected is None:
        assert out["vars"] == {}
        return
    want = dict(ROLE_DEFAULTS, experiment_name=name, experiment_report=False, experiment_fail_on_abort=False,
                experiment_expected_hosts=PLAN["hosts"][name], **expected)
    assert out["vars"] == want


# -- gate ------------------------------------------------------------------------------------------------------
GATE_PLAN = {"name": "gd", "plan": [["a", "b"], ["c"]], "hosts": {"a": ["node1"], "b": ["node2", "node3"],
                                                                  "c": ["node1"]},
             "gate": {"continue_on": ["pass", "inconclusive"], "cooldown": 0}}


def reports(**verdicts):
    return {"experiment_reports": dict((n, {"verdict": v, "reports": {}}) for n, v in verdicts.items())}


# (case, hostvars, batch, continue_on, what the gate says)
GATE = [
    ("every verdict acceptable", {"node1": reports(a="pass"), "node2": reports(b="inconclusive")}, 0, None, ""),
    ("a failed experiment closes it", {"node1": reports(a="fail"), "node2": reports(b="pass")}, 0, None,
     "gate after batch 1 closed: a ended fail"),
    ("an experiment with no report is an error", {"node1": reports(a="pass")}, 0, None,
     "gate after batch 1 closed: b ended error"),
    ("a host missing from hostvars is skipped; another host has the report",
     {"node1": reports(a="pass"), "node3": reports(b="pass")}, 0, None, ""),
    ("the plan's continue_on", {"node1": reports(a="pass"), "node2": reports(b="inconclusive")}, 0, ["pass"],
     "gate after batch 1 closed: b ended inconclusive"),
    ("only the batch's own experiments count", {"node1": reports(a="fail", c="pass")}, 1, None, ""),
]


@pytest.mark.parametrize("case, hostvars, batch, continue_on, stopped", GATE, ids=[r[0] for r in GATE])
def test_gate(case, hostvars, batch, continue_on, stopped):
    plan = dict(GATE_PLAN, gate=dict(GATE_PLAN["gate"], continue_on=continue_on or GATE_PLAN["gate"]["continue_on"]))
    out = run({"step": "gate", "plan": plan, "batch": batch}, controller(hostvars=hostvars))
    assert out == {"stopped": stopped, "changed": False}


# -- report_vars: each experiment's report settings, from a host that ran it --------------------------------------
REPORT_DEFAULTS = {"experiment_achieved_min_percent": 80, "experiment_publish_copy_to": "",
                   "experiment_publish_upload_url": "", "experiment_publish_upload_method": "PUT",
                   "experiment_publish_upload_headers": {}, "experiment_publish_webhook_url": "",
                   "experiment_publish_webhook_link": "", "experiment_publish_validate_certs": True,
                   "experiment_publish_fail_on_error": True}
REPORT_PLAN = {"name": "gd", "plan": [["a", "b"], ["c"]],
               "hosts": {"a": ["node1", "node2"], "b": ["node3"], "c": ["node1"]}}


def own(percent, copy_to):
    return {"experiment_achieved_min_percent": percent, "experiment_publish_copy_to": copy_to}


# (case, hostvars, play hosts, batch, {experiment: (achieved_min_percent, copy_to)})
REPORT_VARS = [
    ("each from its first host", {"node1": own(90, "/a"), "node2": own(70, "/x"), "node3": own(60, "/b")},
     ["node1", "node2", "node3"], 0, {"a": (90, "/a"), "b": (60, "/b")}),
    ("a host that left the play gives way to the next", {"node1": own(90, "/a"), "node2": own(70, "/x"),
                                                         "node3": own(60, "/b")},
     ["node2", "node3"], 0, {"a": (70, "/x"), "b": (60, "/b")}),
    ("no host of it in the play: its first host still", {"node1": own(90, "/a"), "node3": own(60, "/b")},
     ["localhost"], 0, {"a": (90, "/a"), "b": (60, "/b")}),
    ("a value the host does not have is the role's default", {"node1": {"experiment_publish_copy_to": "/a"},
                                                              "node3": own(None, "/b")},
     ["node1", "node3"], 0, {"a": (80, "/a"), "b": (80, "/b")}),
    ("a host missing from hostvars: the role's defaults", {}, ["node1", "node3"], 0, {"a": (80, ""), "b": (80, "")}),
    ("only the batch's own experiments", {"node1": own(95, "/c")}, ["node1"], 1, {"c": (95, "/c")}),
]


@pytest.mark.parametrize("case, hostvars, play_hosts, batch, expected", REPORT_VARS, ids=[r[0] for r in REPORT_VARS])
def test_report_vars(case, hostvars, play_hosts, batch, expected):
    out = run({"step": "report_vars", "plan": REPORT_PLAN, "batch": batch, "role_defaults": REPORT_DEFAULTS},
              controller(hostvars=hostvars, ansible_play_hosts=play_hosts))
    assert out["changed"] is False
    assert sorted(out["experiments"]) == sorted(expected)
    for name, (percent, copy_to) in expected.items():
        assert out["experiments"][name] == dict(REPORT_DEFAULTS, experiment_achieved_min_percent=percent,
                                                experiment_publish_copy_to=copy_to)


# -- summary ---------------------------------------------------------------------------------------------------
def summary_plan(dest):
    return dict(GATE_PLAN, report_dest=str(dest), skipped={"c": ["node2"]})


# (case, hostvars, verdict, stopped, not run)
SUMMARY = [
    ("everything passed", {"node1": reports(a="pass", c="pass"), "node2": reports(b="pass")}, "pass", None, []),
    ("the worst verdict", {"node1": reports(a="pass", c="fail"), "node2": reports(b="inconclusive")}, "fail", None,
     []),
    ("stopped by the gate: what did not run makes it an error",
     {"node1": dict(reports(a="fail"), __gd_stopped="gate after batch 1 closed: a ended fail"),
      "node2": reports(b="pass")}, "fail", "gate after batch 1 closed: a ended fail", ["c"]),
    ("passed but something did not run", {"node1": reports(a="pass"), "node2": reports(b="pass")}, "error", None,
     ["c"]),
]


@pytest.mark.parametrize("case, hostvars, verdict, stopped, not_run", SUMMARY, ids=[r[0] for r in SUMMARY])
def test_summary(tmp_path, case, hostvars, verdict, stopped, not_run):
    out = run({"step": "summary", "plan": summary_plan(tmp_path / "reports")}, controller(hostvars=hostvars))
    summary = out["summary"]
    assert out["changed"] is True
    assert (summary["name"], summary["verdict"], summary["stopped"], summary["not_run"]) == ("gd", verdict, stopped,
                                                                                             not_run)
    assert [[e["name"] for e in batch] for batch in summary["batches"]] == [["a", "b"], ["c"]]
    assert summary["batches"][1][0]["skipped"] == ["node2"]
    assert summary["reports"] == {"json": str(tmp_path / "reports" / "game-day-gd.json"),
                                  "markdown": str(tmp_path / "reports" / "game-day-gd.md")}
    with open(summary["reports"]["json"]) as handle:
        written = json.load(handle)
    assert written == dict((k, v) for k, v in summary.items() if k != "reports")
    with open(summary["reports"]["markdown"]) as handle:
        assert "gd" in handle.read()


def test_summary_in_check_mode_writes_nothing(tmp_path):
    out = run({"step": "summary", "plan": summary_plan(tmp_path / "reports")},
              controller(hostvars={"node1": reports(a="pass")}), check_mode=True)
    assert out["summary"]["reports"]["json"] == str(tmp_path / "reports" / "game-day-gd.json")
    assert not os.path.exists(str(tmp_path / "reports"))


def test_summary_that_cannot_be_written_fails_the_task(tmp_path):
    (tmp_path / "reports").write_text("a file where the directory should be")
    with pytest.raises(AnsibleActionFail) as error:
        run({"step": "summary", "plan": summary_plan(tmp_path / "reports")}, controller(hostvars={}))
    assert str(tmp_path / "reports") in str(error.value)


# -- arguments -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    ({}, "missing required arguments: step"),
    ({"step": "launch"}, "value of step must be one of: check, vars, "),
    ({"step": "gate", "plan": {}, "batch": "first"}, "argument 'batch' is of type str and we were unable to convert"),
])
def test_argument_errors(args, words):
    with pytest.raises(AnsibleActionFail) as error:
        run(args, controller())
    assert words in str(error.value)
