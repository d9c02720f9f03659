"""chaosfleet.stress.probe through ansible-playbook against real things on loopback.

A loopback app serves /health and a metrics file; a real Prometheus (Debian's 2.42) scrapes it
every second; the Kubernetes API double serves the pods. Round one is a healthy steady state;
then the test breaks each thing for real (the app answers 503, the metric rises and Prometheus
scrapes it, a pod turns unready and restarts) and round two, counted in the same tally, says why.
"""

import json
import tempfile

import pytest

from tests.integration.service_fixtures import app, prometheus  # noqa: F401
from tests.integration.test_k8s_targets import run_tasks
from tests.k8s_double import ApiDouble, make_pod

HEADER_SECRET = "cflab-hdr-" + "7f3a9c2e5b1d"


def _web_pods(ready_b=True, restarts_b=0):
    pods = []
    for name, ready, restarts in (("web-a", True, 0), ("web-b", ready_b, restarts_b)):
        pods.append(make_pod(name, "shop", "cflab-node-1", [
            {"name": "app", "container_id": "containerd://" + ("a" if name == "web-a" else "b") * 64,
             "ready": ready, "restart_count": restarts}], labels={"app": "web"}))
    return pods


def _serve_pods(double, pods):
    double.store.pods[:] = []
    for pod in pods:
        double.store.add_pod(pod)


@pytest.fixture(scope="module")
def double():
    api = ApiDouble({"pods": _web_pods(), "nodes": []})
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def workdir():
    import shutil
    path = tempfile.mkdtemp(prefix="cflab-probes-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _probes(app, prometheus, double):
    k8s_auth = {"host": double.url, "api_key": double.token, "ca_cert": double.ca_path}
    return [
        {"name": "health-node", "url": app.url + "/health", "body_regex": '"status": "ok"', "max_latency": "10s",
         "headers": {"Authorization": "Bearer " + HEADER_SECRET}},
        {"name": "health-controller", "url": app.url + "/health", "run_on": "controller", "timeout": "10s"},
        {"name": "cmd", "type": "command", "command": ["sh", "-c", "echo ready"], "output_regex": "^ready"},
        {"name": "errors", "type": "prometheus", "url": prometheus.url,
         "query": 'cflab_errors_ratio{service="checkout"}', "comparator": "<", "threshold": 0.05},
        {"name": "no-alerts", "type": "prometheus", "url": prometheus.url, "query": "cflab_never_exported",
         "require_result": False},
        dict({"name": "web-pods", "type": "kubernetes", "namespace": "shop", "label_selector": "app=web",
              "min_pods": 2}, **k8s_auth),
    ]


def _round(workdir, probes, phase, tally=None, verbosity=0):
    task = {"name": "probe", "chaosfleet.stress.probe": {"probes": probes, "phase": phase, "tally": tally or {}}}
    return run_tasks(workdir, [task], vars_extra={"ansible_connection": "local"}, verbosity=verbosity)


@pytest.fixture(scope="module")
def rounds(app, prometheus, double, workdir):
    probes = _probes(app, prometheus, double)
    healthy = _round(workdir, probes, "baseline", verbosity=3)
    # Break everything for real.
    app.health.update(status=503, body="upstream down")
    app.set_metrics(errors_ratio=0.4, ready=0)
    prometheus.wait_for('cflab_errors_ratio{service="checkout"}', lambda r: r and float(r[0]["value"][1]) == 0.4)
    _serve_pods(double, _web_pods(ready_b=False, restarts_b=2))
    broken = _round(workdir, probes, "stress", tally=healthy["probe"]["tally"], verbosity=3)
    return healthy, broken


def _by_name(run):
    return dict((p["name"], p) for p in run["probe"]["probes"])


def test_a_healthy_steady_state_passes(rounds):
    healthy, _ = rounds
    result = healthy["probe"]
    assert result["ok"], result
    got = _by_name(healthy)
    assert [p["name"] for p in result["probes"]] == ["health-node", "health-controller", "cmd", "errors",
                                                     "no-alerts", "web-pods"]
    assert got["health-node"]["run_on"] == "node" and got["health-node"]["observed"]["status"] == 200
    assert got["health-controller"]["run_on"] == "controller"
    values = got["errors"]["observed"]["values"]
    assert list(values.values()) == [0.01] and 'job="cflab-app",service="checkout"' in list(values)[0]
    assert got["errors"]["detail"].startswith("value 0.01 < 0.05")
    assert got["no-alerts"]["ok"] and "no series" in got["no-alerts"]["detail"]
    assert got["web-pods"]["observed"] == {"pods": 2, "ready": 2, "restarts": {}}
    for probe in result["probes"]:
        assert probe["latency_ms"] is not None and 0 <= probe["latency_ms"] < 5000, probe


def test_a_broken_steady_state_fails_with_reasons(rounds):
    _, broken = rounds
    result = broken["probe"]
    assert not result["ok"]
    got = _by_name(broken)
    assert got["health-node"]["detail"] == "HTTP 503, expected 200: upstream down"
    assert got["health-controller"]["detail"] == "HTTP 503, expected 200: upstream down"
    assert got["cmd"]["ok"]
    assert got["errors"]["detail"].endswith("= 0.4, expected < 0.05")
    assert got["web-pods"]["detail"] == "not Ready: web-b (Running); restarted more than 0 time(s): web-b/app +2"
    assert sorted(result["failed_probes"]) == ["errors", "health-controller", "health-node", "web-pods"]


def test_the_tally_counts_both_rounds(rounds):
    _, broken = rounds
    lines = dict((line["name"], line) for line in broken["probe"]["summary"])
    assert lines["errors"]["pass_rate"] == 50.0
    phases = lines["errors"]["phases"]
    assert {name: (phase["checks"], phase["passed"]) for name, phase in phases.items()} == \
        {"baseline": (1, 1), "stress": (1, 0)}
    # Each phase carries the figures the PromQL check read (the fake Prometheus serves 0.01, then 0.4).
    assert phases["baseline"]["value"]["last"] == 0.01 and phases["stress"]["value"]["last"] == 0.4
    assert lines["cmd"]["pass_rate"] == 100.0
    assert lines["web-pods"]["last_failure"]["phase"] == "stress"
    assert lines["health-node"]["latency_ms"]["max"] >= lines["health-node"]["latency_ms"]["p50"] > 0


def test_secrets_never_reach_the_output(rounds, double):
    for run in rounds:
        text = run.stdout + run.stderr + run.raw_results
        assert HEADER_SECRET not in text
        assert double.token not in text


BAD_DEFINITIONS = [
    ([{"name": "a", "url": "http://127.0.0.1:1/", "status": 200}], "Unsupported parameters for"),
    ([{"name": "a", "type": "command", "command": "true", "url": "http://127.0.0.1:1/"}],
     "probe a: unknown option(s) for a command probe: url"),
    ([{"name": "a", "type": "prometheus", "url": "http://127.0.0.1:1/", "query": "up", "comparator": "<"}],
     "probe a: comparator and threshold go together"),
]


@pytest.fixture(scope="module")
def faults(app, double, workdir):
    """One playbook: slow answers, a dead Prometheus, a refused token, and bad definitions."""
    from tests.integration.service_fixtures import free_port
    dead = "http://127.0.0.1:%d" % free_port()
    tasks = [{"name": "slow", "chaosfleet.stress.probe": {"probes": [
                 {"name": "slow", "url": app.url + "/health", "max_latency": "300ms"},
                 {"name": "timeout", "url": app.url + "/health", "timeout": "200ms", "run_on": "controller"}]}},
             {"name": "down", "chaosfleet.stress.probe": {"probes": [
                 {"name": "prom-down", "type": "prometheus", "url": dead, "query": "up"},
                 {"name": "k8s-denied", "type": "kubernetes", "namespace": "shop", "pod": "web-a",
                  "host": double.url, "api_key": "cflab-wrong-token-0000", "ca_cert": double.ca_path}]}}]
    for index, (probes, _) in enumerate(BAD_DEFINITIONS):
        tasks.append({"name": "bad%d" % index, "chaosfleet.stress.probe": {"probes": probes}, "ignore_errors": True})
    app.health.update(status=200, body='{"status": "ok"}', delay=0.6)
    try:
        run = run_tasks(workdir, tasks, vars_extra={"ansible_connection": "local"})
    finally:
        app.health["delay"] = 0.0
    return run, dead


@pytest.mark.serial
def test_slow_answers_fail_the_latency_threshold(faults, app):
    run, _ = faults
    got = dict((p["name"], p) for p in run["slow"]["probes"])
    assert got["slow"]["detail"].startswith("HTTP 200 but latency ")
    assert got["slow"]["latency_ms"] >= 600
    assert got["timeout"]["detail"].startswith("no answer from %s/health: " % app.url)
    assert got["timeout"]["latency_ms"] < 600


def test_unreachable_and_refused_services_are_failed_checks_with_reasons(faults):
    run, dead = faults
    got = dict((p["name"], p) for p in run["down"]["probes"])
    assert got["prom-down"]["detail"].startswith("no answer from Prometheus at %s: " % dead)
    assert "rejected the credentials (401 Unauthorized)" in got["k8s-denied"]["detail"]
    assert "cflab-wrong-token-0000" not in run.stdout + run.raw_results


@pytest.mark.parametrize("index", range(len(BAD_DEFINITIONS)))
def test_bad_probe_definitions_fail_the_task_in_one_line(faults, index):
    run, _ = faults
    message = BAD_DEFINITIONS[index][1]
    assert run["bad%d" % index]["failed"]
    assert message in run["bad%d" % index]["msg"] and "\n" not in run["bad%d" % index]["msg"]


def test_results_are_json(rounds):
    tally = rounds[1]["probe"]["tally"]
    assert tally and json.loads(json.dumps(tally)) == tally


# ---------------------------------------------------------------- Kubernetes probes authenticate as k8s_targets does

KUBE_BASIC_PASSWORD = "cflab-basic-pw-" + "4c1e9a"
KUBE_ENV_TOKEN = "cflab-env-token-" + "b82d5f0e"


@pytest.fixture(scope="module")
def kube_auth_runs(double, workdir):
    """One probe per way k8s_targets takes credentials (options, aliases), then the K8S_AUTH_* environment alone."""
    from tests.k8s_double.tls import CertificateAuthority
    _serve_pods(double, _web_pods())  # healthy again, whichever fixture of this module ran before
    other_ca = CertificateAuthority(tempfile.mkdtemp(prefix="cflab-other-ca-", dir=workdir))
    double.add_basic_user("cflab-basic", KUBE_BASIC_PASSWORD)
    double.add_token(KUBE_ENV_TOKEN, user="cflab-env")
    two_contexts = double.kubeconfig_dict()
    second = double.kubeconfig_dict(inline_ca=True, context="second")
    for key in ("contexts", "clusters", "users"):
        two_contexts[key] += second[key]
    direct = {"host": double.url, "ca_cert": double.ca_path}
    ways = [
        ("kubeconfig-path", {"kubeconfig": double.kubeconfig_path}),
        ("kubeconfig-dict", {"kubeconfig": double.kubeconfig_dict(inline_ca=True)}),
        ("kubeconfig-dict-context", {"kubeconfig": two_contexts, "context": "second"}),
        ("api-key", dict(direct, api_key=double.token)),
        ("basic-auth", dict(direct, username="cflab-basic", password=KUBE_BASIC_PASSWORD)),
        ("client-cert-aliases", {"host": double.url, "ssl_ca_cert": double.ca_path,
                                 "cert_file": double.client_cert, "key_file": double.client_key}),
        ("verify-ssl-alias-off", {"kubeconfig": double.kubeconfig_path, "ca_cert": other_ca.ca_path,
                                  "verify_ssl": False}),
        ("bad-ca", {"kubeconfig": double.kubeconfig_path, "ca_cert": other_ca.ca_path}),
    ]
    probe = {"type": "kubernetes", "namespace": "shop", "label_selector": "app=web", "min_pods": 2}
    given = run_tasks(workdir, [{"name": "probe", "chaosfleet.stress.probe": {
        "probes": [dict(probe, name=name, **auth) for name, auth in ways]}}],
        vars_extra={"ansible_connection": "local"}, verbosity=4)
    # The environment of the controller (where the action runs), with kubernetes.core's second names.
    environ = {"K8S_AUTH_HOST": double.url, "K8S_AUTH_API_KEY": KUBE_ENV_TOKEN, "K8S_AUTH_CA_CERT": double.ca_path}
    from_env = run_tasks(workdir, [{"name": "probe", "chaosfleet.stress.probe": {"probes": [dict(probe, name="env")]}}],
                         vars_extra={"ansible_connection": "local"}, env=environ, verbosity=4)
    return given, from_env


@pytest.mark.parametrize("name", ["kubeconfig-path", "kubeconfig-dict", "kubeconfig-dict-context", "api-key",
                                  "basic-auth", "client-cert-aliases", "verify-ssl-alias-off"])
def test_kubernetes_probe_takes_every_way_k8s_targets_authenticates(kube_auth_runs, name):
    got = _by_name(kube_auth_runs[0])[name]
    assert got["ok"] and got["observed"]["pods"] == 2, got["detail"]


def test_kubernetes_probe_checks_the_ca(kube_auth_runs):
    got = _by_name(kube_auth_runs[0])["bad-ca"]
    assert not got["ok"] and "TLS verification of the Kubernetes API at" in got["detail"]


def test_kubernetes_probe_reads_the_k8s_auth_environment(kube_auth_runs, double):
    from_env = kube_auth_runs[1]
    got = from_env["probe"]["probes"][0]
    assert got["ok"] and got["observed"]["pods"] == 2, got["detail"]
    assert any(c["user"] == "cflab-env" for c in double.calls("pods"))


def test_kubernetes_probe_credentials_never_reach_the_output(kube_auth_runs, double):
    for run in kube_auth_runs:
        text = run.stdout + run.stderr + run.raw_results
        for secret in (double.token, KUBE_BASIC_PASSWORD, KUBE_ENV_TOKEN):
            assert secret not in text
