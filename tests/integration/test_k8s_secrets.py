"""No plugin that takes Kubernetes credentials writes one to syslog/journald, the Ansible log or a result.

Issue 11, point 8 (k8s_targets) and issue 22 (every plugin that takes the auth options: the probe
action with a Kubernetes probe, game_day_control, the agent hosts add_hosts.yml makes, and the
k8s_pod_stress playbook's module_defaults). Everything runs through ansible-playbook at -vvvv with
ANSIBLE_LOG_PATH set, against the API double. What Ansible would send to syslog is captured by a
stand-in ``syslog`` module put first on the module's PYTHONPATH (AnsibleModule logs every
invocation there, before the module's own code runs).
"""

import base64
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_auth import KUBECONFIG_SHOWN_AS
from tests.integration.test_k8s_targets import (  # noqa: F401
    ANSIBLE_PLAYBOOK, REPO, clean_env, cluster, double, k8s_task, run_tasks, workdir,
)

FAKE_SYSLOG = '''
import os
LOG_EMERG, LOG_ALERT, LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG = range(8)
LOG_KERN, LOG_USER, LOG_DAEMON = 0, 8, 24
LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3 = 128, 136, 144, 152
LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7 = 160, 168, 176, 184
LOG_PID, LOG_CONS, LOG_NDELAY = 1, 2, 8


def openlog(*args, **kwargs):
    pass


def closelog():
    pass


def syslog(*args):
    with open(os.environ["CFLAB_SYSLOG_CAPTURE"], "a") as handle:
        handle.write(str(args[-1]) + "\\n")
'''


def jwt(claims):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return "%s.%s.%s" % (part({"alg": "RS256", "typ": "JWT"}), part(claims), "c2lnbmF0dXJl")


SECRETS = {
    "id_token": jwt({"iss": "https://idp.cflab.invalid", "sub": "cflab", "exp": 4102444800,
                     "nonce": uuid.uuid4().hex}),
    "refresh_token": "cflab-refresh-" + uuid.uuid4().hex,
    "client_secret": "cflab-oidc-secret-" + uuid.uuid4().hex,
    "client_key_data": base64.b64encode(("cflab-key-" + uuid.uuid4().hex).encode()).decode(),
    "proxy_password": "cflab-proxy-pw-" + uuid.uuid4().hex,
    "dict_token": "cflab-dict-token-" + uuid.uuid4().hex,
    "exec_secret": "cflab-exec-secret-" + uuid.uuid4().hex,
    # issue 22: the other plugins that take the auth options
    "probe_dict_token": "cflab-probe-dict-" + uuid.uuid4().hex,
    "probe_api_key": "cflab-probe-key-" + uuid.uuid4().hex,
    "probe_refused_token": "cflab-probe-refused-" + uuid.uuid4().hex,
    "game_day_dict_token": "cflab-gd-dict-" + uuid.uuid4().hex,
    "game_day_api_key": "cflab-gd-key-" + uuid.uuid4().hex,
    "kubectl_dict_token": "cflab-kubectl-dict-" + uuid.uuid4().hex,
    "kubectl_api_key": "cflab-kubectl-key-" + uuid.uuid4().hex,
    "kubectl_password": "cflab-kubectl-pw-" + uuid.uuid4().hex,
}
POD_STRESS_TOKEN = "cflab-pod-stress-" + uuid.uuid4().hex
# The users the double records for the tokens that must get through.
USERS = {"probe_dict_token": "cflab-probe-dict", "probe_api_key": "cflab-probe-key",
         "game_day_dict_token": "cflab-gd-dict", "game_day_api_key": "cflab-gd-key"}
AGENT_NODE = "cflab-agent-node"


def oidc_kubeconfig(double):
    kubeconfig = double.kubeconfig_dict(inline_ca=True)
    kubeconfig["users"][0]["user"] = {"auth-provider": {"name": "oidc", "config": {
        "client-id": "cflab-client", "client-secret": SECRETS["client_secret"],
        "id-token": SECRETS["id_token"], "refresh-token": SECRETS["refresh_token"],
        "idp-issuer-url": "https://idp.cflab.invalid"}}}
    return kubeconfig


def _other_plugins(double, fakebin):
    """Tasks for the probe action, game_day_control and add_hosts.yml, each given credentials two ways."""
    direct = {"host": double.url, "ca_cert": double.ca_path}
    probe = {"type": "kubernetes", "namespace": "team-00", "label_selector": "tier=api", "require_ready": False,
             "max_restarts": 100000}
    game_day = {"name": "cflab-gd", "experiments": [
        {"name": "gd-1", "type": "memory", "hosts": "all", "k8s": {"namespaces": ["team-00"],
                                                                    "label_selectors": {"tier": "api"}}}]}
    # No inventory here, so the check ends at "picked no running container on hosts 'all'": after the selection.
    gd_args = {"step": "check", "role_defaults": {"experiment_name": "", "experiment_type": "memory"}}
    entry = {"name": AGENT_NODE, "node": AGENT_NODE, "in_inventory": False, "node_ip": "10.99.0.1",
             "container_id": "c" * 64, "suffix": "", "kubernetes": {"namespace": "team-00", "pod": "p",
                                                                   "container": "app", "node": AGENT_NODE}}
    agent = {"ready": True, "namespace": "chaosfleet", "pod": "agent-x", "container": "agent"}
    return [
        {"name": "probe with a kubeconfig dict", "chaosfleet.stress.probe": {"probes": [
            dict(probe, name="dict", kubeconfig=double.kubeconfig_dict(token=SECRETS["probe_dict_token"]))]}},
        {"name": "probe with api_key", "chaosfleet.stress.probe": {"probes": [
            dict(probe, name="key", api_key=SECRETS["probe_api_key"], **direct)]}},
        {"name": "probe refused", "chaosfleet.stress.probe": {"probes": [
            dict(probe, name="refused", kubeconfig=double.kubeconfig_dict(token=SECRETS["probe_refused_token"]))]}},
        {"name": "game day with a kubeconfig dict", "chaosfleet.stress.game_day_control": gd_args,
         "ignore_errors": True, "vars": {"game_day": game_day, "k8s_kubeconfig": double.kubeconfig_dict(
             token=SECRETS["game_day_dict_token"])}},
        {"name": "game day with api_key", "chaosfleet.stress.game_day_control": gd_args, "ignore_errors": True,
         "vars": {"game_day": game_day, "k8s_api_key": SECRETS["game_day_api_key"], "k8s_host": double.url,
                  "k8s_ca_cert": double.ca_path}},
        {"name": "agent hosts", "ansible.builtin.include_tasks": str(REPO / "playbooks" / "k8s_tasks" / "add_hosts.yml"),
         "vars": {"__k8s_hosts": [entry], "__k8s_agents": {AGENT_NODE: agent}, "__k8s_group": "cflab_agents",
                  "k8s_node_access": "agent",
                  "k8s_kubeconfig": double.kubeconfig_dict(token=SECRETS["kubectl_dict_token"]),
                  "k8s_api_key": SECRETS["kubectl_api_key"], "k8s_username": "cflab",
                  "k8s_password": SECRETS["kubectl_password"]}},
        # Compares without printing: an assert shows its expression, never the values.
        {"name": "the agent host has the connection", "ansible.builtin.assert": {"that": [
            "hostvars[agent].ansible_kubectl_token == lookup('env', 'CFLAB_KUBECTL_API_KEY')",
            "hostvars[agent].ansible_kubectl_password == lookup('env', 'CFLAB_KUBECTL_PASSWORD')",
            "hostvars[agent].ansible_kubectl_kubeconfig.users[0].user.token == lookup('env', 'CFLAB_KUBECTL_DICT')",
            "hostvars[agent].ansible_kubectl_username == 'cflab'",
            "hostvars[agent].ansible_connection == 'kubernetes.core.kubectl'"]},
         "vars": {"agent": AGENT_NODE}},
    ], {"PATH": "%s:%s" % (fakebin, os.environ.get("PATH", "")), "CFLAB_KUBECTL_API_KEY": SECRETS["kubectl_api_key"],
        "CFLAB_KUBECTL_PASSWORD": SECRETS["kubectl_password"], "CFLAB_KUBECTL_DICT": SECRETS["kubectl_dict_token"]}


@pytest.fixture(scope="module")
def secrets_run(double, workdir):  # noqa: F811
    double.add_token(SECRETS["id_token"], user="oidc")
    double.add_token(SECRETS["dict_token"], user="dict")
    for name, user in USERS.items():
        double.add_token(SECRETS[name], user=user)
    fake = Path(workdir) / "fake-syslog"
    fake.mkdir()
    (fake / "syslog.py").write_text(FAKE_SYSLOG)
    captured = Path(workdir) / "syslog.txt"
    log_path = Path(workdir) / "ansible.log"
    sel = {"namespaces": ["team-00"], "mode": "all", "allow_empty": True}
    key_user = double.kubeconfig_dict(token=SECRETS["dict_token"])
    key_user["users"][0]["user"].update({"client-certificate-data": base64.b64encode(b"not a cert").decode(),
                                         "client-key-data": SECRETS["client_key_data"]})
    exec_user = double.kubeconfig_dict(token=SECRETS["dict_token"])
    exec_user["users"][0]["user"]["exec"] = {"apiVersion": "client.authentication.k8s.io/v1", "command": "true",
                                             "env": [{"name": "CFLAB_SECRET", "value": SECRETS["exec_secret"]}]}
    rows = [
        ("oidc tokens in a kubeconfig dict", dict(sel, kubeconfig=oidc_kubeconfig(double))),
        ("token in a kubeconfig dict", dict(sel, kubeconfig=double.kubeconfig_dict(token=SECRETS["dict_token"]))),
        ("client key data in a kubeconfig dict", dict(sel, kubeconfig=key_user)),
        ("exec env secret in a kubeconfig dict", dict(sel, kubeconfig=exec_user)),
        ("password inside the proxy URL", dict(sel, host=double.url, ca_cert=double.ca_path,
                                               api_key=SECRETS["dict_token"],
                                               proxy="http://cfuser:%s@127.0.0.1:9" % SECRETS["proxy_password"])),
    ]
    # k8s_node_access=agent needs kubectl on the controller's PATH; nothing here runs it.
    fakebin = Path(workdir) / "fakebin"
    fakebin.mkdir()
    (fakebin / "kubectl").write_text("#!/bin/sh\nexit 1\n")
    (fakebin / "kubectl").chmod(0o755)
    others, others_env = _other_plugins(double, fakebin)
    env = dict(others_env, ANSIBLE_LOG_PATH=str(log_path), ANSIBLE_NO_TARGET_SYSLOG="False")
    run = run_tasks(workdir, [k8s_task(row_id, args) for row_id, args in rows] + others, verbosity=4, env=env,
                    play_extra={"environment": {"PYTHONPATH": str(fake), "CFLAB_SYSLOG_CAPTURE": str(captured)}})
    return run, captured.read_text() if captured.exists() else "", log_path.read_text()


def test_syslog_capture_sees_every_invocation(secrets_run):
    """The stand-in works: every k8s_targets run logged its invocation there."""
    _run, syslog, _log = secrets_run
    assert syslog.count("Invoked with") >= 5, syslog[-2000:]


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_no_secret_reaches_syslog_the_log_file_or_the_result(secrets_run, name):
    run, syslog, log = secrets_run
    secret = SECRETS[name]
    for where, text in (("syslog/journald", syslog), ("ANSIBLE_LOG_PATH", log), ("stdout -vvvv", run.stdout),
                        ("stderr", run.stderr), ("registered results", run.raw_results)):
        assert secret not in text, "%s leaked to %s" % (name, where)


def test_the_dict_kubeconfig_is_not_echoed_but_plain_values_stay_readable(secrets_run):
    run, _syslog, log = secrets_run
    oidc = run["oidc tokens in a kubeconfig dict"]
    assert not oidc.get("failed"), oidc.get("msg")
    # At -vvvv Ansible prints each result's invocation: the dict is replaced, the other options are readable.
    invocations = [line for line in run.stdout.splitlines() if '"module_args"' in line or "module_args" in line]
    assert run.stdout.count(KUBECONFIG_SHOWN_AS) >= 4 and log.count(KUBECONFIG_SHOWN_AS) >= 4, invocations[:3]
    assert '"team-00"' in run.stdout
    proxy = run["password inside the proxy URL"]
    assert proxy.get("failed") and "port=9" in proxy["msg"]
    assert "http://cfuser:********@127.0.0.1:9" in run.stdout


def test_the_probe_takes_a_kubeconfig_dict_and_api_key_and_hides_a_refused_token(secrets_run, double):
    run = secrets_run[0]
    for task, name in (("probe with a kubeconfig dict", "probe_dict_token"), ("probe with api_key", "probe_api_key")):
        got = run[task]["probes"][0]
        assert got["ok"] and got["observed"]["pods"] > 0, got["detail"]
        assert any(c["user"] == USERS[name] for c in double.calls("pods")), name
    refused = run["probe refused"]["probes"][0]
    assert not refused["ok"] and "rejected the credentials (401 Unauthorized)" in refused["detail"]


@pytest.mark.parametrize("task, name", [("game day with a kubeconfig dict", "game_day_dict_token"),
                                        ("game day with api_key", "game_day_api_key")])
def test_game_day_passes_the_play_credentials_to_k8s_targets(secrets_run, double, task, name):
    result = secrets_run[0][task]
    assert result["msg"] == ("game day spec (inline): gd-1: the Kubernetes selector picked no running container on "
                             "hosts 'all'"), result["msg"]
    assert any(c["user"] == USERS[name] for c in double.calls("pods")), result.get("msg")


def test_agent_hosts_get_the_credentials_as_kubectl_variables(secrets_run):
    run = secrets_run[0]
    assert not run["the agent host has the connection"].get("failed"), run["the agent host has the connection"]
    assert "censored" in run.stdout  # add_host ran with no_log


@pytest.fixture(scope="module")
def pod_stress_run(double, workdir):  # noqa: F811
    """The k8s_pod_stress playbook with a kubeconfig dict in k8s_kubeconfig (its module_defaults); the
    selector matches nothing, so the run stops at k8s_targets, before any node is touched."""
    extra = Path(workdir) / "pod-stress-vars.json"
    double.add_token(POD_STRESS_TOKEN, user="cflab-pod-stress")
    extra.write_text(json.dumps({"k8s_kubeconfig": double.kubeconfig_dict(token=POD_STRESS_TOKEN),
                                 "k8s_namespaces": ["cflab-nothing-here"], "experiment_name": "cflab-secrets"}))
    extra.chmod(0o600)
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "chaosfleet.stress.k8s_pod_stress", "-e", "@" + str(extra), "-vvvv"],
                          cwd=str(REPO), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)
    return proc


def test_k8s_pod_stress_takes_a_kubeconfig_dict_and_never_shows_its_token(pod_stress_run, double):
    assert "no pod matched: searched pods in namespace cflab-nothing-here" in pod_stress_run.stdout, \
        pod_stress_run.stdout[-3000:]
    assert any(c["user"] == "cflab-pod-stress" for c in double.calls("pods"))
    assert POD_STRESS_TOKEN not in pod_stress_run.stdout + pod_stress_run.stderr


def test_the_experiment_roles_request_step_does_not_show_probe_credentials(workdir):  # noqa: F811
    secret = "cflab-role-probe-key-" + uuid.uuid4().hex
    probes = [{"name": "k", "type": "kubernetes", "namespace": "n", "pod": "p", "api_key": secret}]
    given = {"experiment_name": "cflab-secrets", "experiment_type": "memory", "experiment_container_id": "a" * 64,
             "experiment_memory_size": "10Mi", "experiment_probes": probes}
    run = run_tasks(workdir, [{"name": "request", "chaosfleet.stress.experiment_control": {"step": "request"},
                               "vars": given}],
                    play_extra={"vars_files": [str(REPO / "roles" / "experiment" / "defaults" / "main.yml")]},
                    verbosity=1)
    assert run["request"]["probes"][0]["name"] == "k"
    assert secret not in run.stdout + run.stderr
