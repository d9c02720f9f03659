"""_k8s_client.py: the client factory (build_configuration: which credentials win, kubeconfig as a path and as a
dict, what it falls back to), hide_kubeconfig, and K8sReader against the API double (tests/k8s_double, in this
process) and a plain HTTP server: clear error messages with no credential in them."""

import base64
import json
import os
import socket
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _k8s_client
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_client import (
    KUBECONFIG_SHOWN_AS, AuthError, K8sReader, build_configuration, hide_kubeconfig, scrub,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_select import ApiError
from kubernetes.config import incluster_config
from tests.k8s_double import ApiDouble, make_node, make_pod

TOKEN = "kubeconfig-token-0001"
API_KEY = "given-api-key-0002"
PASSWORD = "given-password-0003"
SERVERS = {"blue": "https://blue.example:6443", "green": "https://green.example:6443"}


def kubeconfig(current="blue", token=TOKEN):
    """Two clusters, a token user each; ``current`` is the current context."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": n, "cluster": {"server": s}} for n, s in sorted(SERVERS.items())],
        "users": [{"name": n + "-user", "user": {"token": "%s-%s" % (token, n)}} for n in sorted(SERVERS)],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n + "-user"}} for n in sorted(SERVERS)],
    }


def write(path, data):
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)  # JSON is valid YAML
    return str(path)


@pytest.fixture(autouse=True)
def clean_environment(tmp_path, monkeypatch):
    """No kubeconfig, service account or home directory of the machine running the tests gets in."""
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(_k8s_client, "SERVICE_ACCOUNT_TOKEN", str(tmp_path / "no-service-account" / "token"))
    return home


@pytest.fixture
def in_cluster(tmp_path, monkeypatch):
    """A pod's service account: KUBERNETES_SERVICE_* and the token and CA files, where the loaders look."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    token, ca = account / "token", account / "ca.crt"
    token.write_text("service-account-token-0004")
    ca.write_text("not read before a request\n")
    monkeypatch.setattr(_k8s_client, "SERVICE_ACCOUNT_TOKEN", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")


def bearer(configuration):
    """The Authorization header the client would send (the refresh hook, if any, runs first)."""
    return (configuration.auth_settings().get("BearerToken") or {}).get("value")


# -- which configuration the factory builds ---------------------------------------------------------------------
# (case, setup(tmp_path, home) -> params, expected host, expected Authorization header)
def _dict(tmp_path, home):
    return {"kubeconfig": kubeconfig()}


def _dict_context(tmp_path, home):
    return {"kubeconfig": kubeconfig(), "context": "green"}


def _path(tmp_path, home):
    return {"kubeconfig": write(tmp_path / "config", kubeconfig())}


def _path_context(tmp_path, home):
    return {"kubeconfig": write(tmp_path / "config", kubeconfig()), "context": "green"}


def _tilde_path(tmp_path, home):
    write(home / "my-config", kubeconfig("green"))
    return {"kubeconfig": "~/my-config"}


def _kubeconfig_env(tmp_path, home):
    os.environ["KUBECONFIG"] = os.pathsep.join([str(tmp_path / "missing"), write(tmp_path / "second",
                                                                                 kubeconfig("green"))])
    return {}


def _home_default(tmp_path, home):
    (home / ".kube").mkdir()
    write(home / ".kube" / "config", kubeconfig())
    return {}


def _kubeconfig_env_context(tmp_path, home):
    os.environ["KUBECONFIG"] = write(tmp_path / "config", kubeconfig())
    return {"context": "green"}


def _given_path_over_env(tmp_path, home):
    os.environ["KUBECONFIG"] = write(tmp_path / "env-config", kubeconfig("green"))
    return {"kubeconfig": write(tmp_path / "config", kubeconfig("blue"))}


def _api_key_over_kubeconfig(tmp_path, home):
    return {"kubeconfig": kubeconfig(), "api_key": API_KEY}


def _host_over_kubeconfig(tmp_path, home):
    return {"kubeconfig": kubeconfig(), "host": "https://other.example:6443"}


def _explicit_ignores_default(tmp_path, home):
    os.environ["KUBECONFIG"] = write(tmp_path / "config", "clusters: [unclosed")  # would fail if it were read
    return {"host": "https://explicit.example:6443", "api_key": API_KEY}


def _basic_auth(tmp_path, home):
    return {"host": "https://explicit.example:6443", "username": "alice", "password": PASSWORD}


def _host_alone(tmp_path, home):
    return {"host": "https://anonymous.example:6443"}


def _host_alone_with_default(tmp_path, home):
    os.environ["KUBECONFIG"] = write(tmp_path / "config", kubeconfig())
    return {"host": "https://other.example:6443"}


def _service_account(tmp_path, home):
    return {}


def _service_account_over_default(tmp_path, home):
    os.environ["KUBECONFIG"] = write(tmp_path / "config", kubeconfig())
    return {}


def _context_needs_kubeconfig_in_a_pod(tmp_path, home):
    os.environ["KUBECONFIG"] = write(tmp_path / "config", kubeconfig())
    return {"context": "green"}


BASIC = "Basic " + base64.b64encode(("alice:" + PASSWORD).encode()).decode()
SA = "bearer service-account-token-0004"  # as the kubernetes in-cluster loader writes it
FACTORY = [
    ("kubeconfig as a dict: its current context", _dict, False, SERVERS["blue"], "Bearer %s-blue" % TOKEN),
    ("kubeconfig as a dict, context given", _dict_context, False, SERVERS["green"], "Bearer %s-green" % TOKEN),
    ("kubeconfig as a path", _path, False, SERVERS["blue"], "Bearer %s-blue" % TOKEN),
    ("kubeconfig as a path, context given", _path_context, False, SERVERS["green"], "Bearer %s-green" % TOKEN),
    ("kubeconfig path with ~", _tilde_path, False, SERVERS["green"], "Bearer %s-green" % TOKEN),
    ("nothing given: the first existing entry of KUBECONFIG", _kubeconfig_env, False, SERVERS["green"],
     "Bearer %s-green" % TOKEN),
    ("nothing given: ~/.kube/config", _home_default, False, SERVERS["blue"], "Bearer %s-blue" % TOKEN),
    ("a context of the KUBECONFIG file", _kubeconfig_env_context, False, SERVERS["green"], "Bearer %s-green" % TOKEN),
    ("a given kubeconfig wins over KUBECONFIG", _given_path_over_env, False, SERVERS["blue"],
     "Bearer %s-blue" % TOKEN),
    ("api_key replaces the kubeconfig's token, and stays", _api_key_over_kubeconfig, False, SERVERS["blue"],
     "Bearer " + API_KEY),
    ("host replaces the kubeconfig's server", _host_over_kubeconfig, False, "https://other.example:6443",
     "Bearer %s-blue" % TOKEN),
    ("host and api_key: no kubeconfig is read", _explicit_ignores_default, False, "https://explicit.example:6443",
     "Bearer " + API_KEY),
    ("host, username and password: basic auth", _basic_auth, False, "https://explicit.example:6443", BASIC),
    ("host alone, nothing else found: anonymous", _host_alone, False, "https://anonymous.example:6443", None),
    ("host alone takes the default kubeconfig's user", _host_alone_with_default, False, "https://other.example:6443",
     "Bearer %s-blue" % TOKEN),
    ("inside a pod: the service account", _service_account, True, "https://10.96.0.1:443", SA),
    ("inside a pod the service account wins over the default kubeconfig", _service_account_over_default, True,
     "https://10.96.0.1:443", SA),
    ("inside a pod, a context picks the kubeconfig", _context_needs_kubeconfig_in_a_pod, True, SERVERS["green"],
     "Bearer %s-green" % TOKEN),
]


@pytest.mark.parametrize("case, setup, pod, host, authorization", FACTORY, ids=[r[0] for r in FACTORY])
def test_factory(tmp_path, clean_environment, monkeypatch, request, case, setup, pod, host, authorization):
    monkeypatch.setenv("KUBECONFIG", "")  # restored after the test; setup may set it
    if pod:
        request.getfixturevalue("in_cluster")
    params = setup(tmp_path, clean_environment)
    given = json.dumps(params, sort_keys=True)
    configuration = build_configuration(params)
    assert configuration.host == host
    assert bearer(configuration) == authorization
    assert json.dumps(params, sort_keys=True) == given  # the options are not changed


# (case, extra params, attribute, expected)
SETTINGS = [
    ("validate_certs false", {"validate_certs": False}, "verify_ssl", False),
    ("validate_certs true", {"validate_certs": True}, "verify_ssl", True),
    ("validate_certs not given: verified", {}, "verify_ssl", True),
    ("proxy", {"proxy": "http://proxy.example:3128"}, "proxy", "http://proxy.example:3128"),
    ("no_proxy", {"no_proxy": "10.0.0.0/8,.svc"}, "no_proxy", "10.0.0.0/8,.svc"),
]


@pytest.mark.parametrize("case, extra, attribute, expected", SETTINGS, ids=[r[0] for r in SETTINGS])
def test_connection_settings(case, extra, attribute, expected):
    configuration = build_configuration(dict({"kubeconfig": kubeconfig()}, **extra))
    assert getattr(configuration, attribute) == expected


def test_certificate_files(tmp_path):
    files = dict((name, write(tmp_path / name, "-----BEGIN X-----\n")) for name in ("cert", "key", "ca"))
    configuration = build_configuration({"host": "https://h.example", "client_cert": files["cert"],
                                         "client_key": files["key"], "ca_cert": files["ca"]})
    assert (configuration.cert_file, configuration.key_file, configuration.ssl_ca_cert) == (
        files["cert"], files["key"], files["ca"])


# (case, setup(tmp_path) -> params, pod, words of the message)
def _missing_path(tmp_path):
    return {"kubeconfig": str(tmp_path / "nope")}


def _list_kubeconfig(tmp_path):
    return {"kubeconfig": ["not", "a", "config"]}


def _unknown_context(tmp_path):
    return {"kubeconfig": kubeconfig(), "context": "purple"}


def _unknown_context_in_file(tmp_path):
    return {"kubeconfig": write(tmp_path / "config", kubeconfig()), "context": "purple"}


def _not_yaml(tmp_path):
    return {"kubeconfig": write(tmp_path / "config", "clusters: [unclosed\n  token: %s" % TOKEN)}


def _empty_file(tmp_path):
    return {"kubeconfig": write(tmp_path / "config", "")}


def _not_a_mapping(tmp_path):
    return {"kubeconfig": write(tmp_path / "config", "just a string holding %s" % TOKEN)}


def _no_current_context(tmp_path):
    config = kubeconfig()
    del config["current-context"]
    return {"kubeconfig": config}


def _user_without_cluster(tmp_path):
    config = kubeconfig()
    config["contexts"][0]["context"]["cluster"] = "gone"
    return {"kubeconfig": config}


def _nothing(tmp_path):
    return {}


def _context_without_kubeconfig(tmp_path):
    return {"context": "blue"}


def _missing_cert(tmp_path):
    return {"host": "https://h.example", "client_cert": str(tmp_path / "c.crt"),
            "client_key": write(tmp_path / "k.key", "-")}


def _missing_key(tmp_path):
    return {"host": "https://h.example", "client_cert": write(tmp_path / "c.crt", "-"),
            "client_key": str(tmp_path / "k.key")}


def _missing_ca(tmp_path):
    return {"kubeconfig": kubeconfig(), "ca_cert": str(tmp_path / "ca.crt")}


def _broken_service_account(tmp_path):
    (tmp_path / "serviceaccount" / "token").write_text("")
    return {}


AUTH_ERRORS = [
    ("a kubeconfig path that does not exist", _missing_path, False, ["kubeconfig file", "nope", "does not exist"]),
    ("a kubeconfig that is neither a path nor a dict", _list_kubeconfig, False,
     ["kubeconfig must be a path or a dict, got list"]),
    ("an unknown context (dict)", _unknown_context, False, ["cannot load the Kubernetes configuration", "purple"]),
    ("an unknown context (file)", _unknown_context_in_file, False,
     ["cannot load the Kubernetes configuration", "purple"]),
    ("a kubeconfig file that is not YAML", _not_yaml, False, ["cannot read the kubeconfig", "line 2"]),
    ("an empty kubeconfig file", _empty_file, False, ["cannot load the Kubernetes configuration", "empty"]),
    ("a kubeconfig file that is not a mapping", _not_a_mapping, False, ["cannot read the kubeconfig"]),
    ("no current context and none given", _no_current_context, False, ["cannot load the Kubernetes configuration"]),
    ("a context naming a cluster that is not there", _user_without_cluster, False,
     ["cannot load the Kubernetes configuration", "gone"]),
    ("nothing at all", _nothing, False, ["no Kubernetes credentials", "kubeconfig", "K8S_AUTH_", "inside a pod"]),
    ("a context with no kubeconfig anywhere", _context_without_kubeconfig, False,
     ["context blue was given but no kubeconfig was found"]),
    ("a context with no kubeconfig, inside a pod", _context_without_kubeconfig, True,
     ["context blue was given but no kubeconfig was found"]),
    ("client_cert missing", _missing_cert, False, ["client_cert file", "c.crt", "does not exist"]),
    ("client_key missing", _missing_key, False, ["client_key file", "k.key", "does not exist"]),
    ("ca_cert missing", _missing_ca, False, ["ca_cert file", "ca.crt", "does not exist"]),
    ("an empty service account token", _broken_service_account, True, ["cannot load the Kubernetes configuration"]),
]


@pytest.mark.parametrize("case, setup, pod, words", AUTH_ERRORS, ids=[r[0] for r in AUTH_ERRORS])
def test_factory_errors(tmp_path, request, case, setup, pod, words):
    if pod:
        request.getfixturevalue("in_cluster")
    with pytest.raises(AuthError) as error:
        build_configuration(setup(tmp_path))
    message = str(error.value)
    for word in words:
        assert word in message
    assert TOKEN not in message and "service-account-token" not in message
    assert "Traceback" not in message


# -- hide_kubeconfig: what the module's output may show --------------------------------------------------------
def fake_module(params, no_log_names=("kubeconfig", "api_key", "password")):
    """What AnsibleModule holds after validating the auth options: every scalar of a no_log option is masked."""
    masked = set()
    for name in no_log_names:
        masked.update(_k8s_client.leaf_values(params.get(name)))
    return types.SimpleNamespace(params=dict(params), no_log_values=masked)


def test_hide_kubeconfig_masks_only_the_credentials_of_a_dict():
    config = kubeconfig()
    module = fake_module({"kubeconfig": config, "api_key": API_KEY, "proxy": "http://u:proxy-pass-5@p.example:3128"})
    returned = hide_kubeconfig(module)
    assert returned == config
    assert module.params["kubeconfig"] == KUBECONFIG_SHOWN_AS
    # The tokens, the api_key and the proxy's password stay masked; names and URLs of the kubeconfig do not.
    assert {TOKEN + "-blue", TOKEN + "-green", API_KEY, "proxy-pass-5"} <= module.no_log_values
    assert not {"v1", "Config", "blue", "blue-user", SERVERS["blue"]} & module.no_log_values


def test_hide_kubeconfig_leaves_a_path_as_it_is(tmp_path):
    path = write(tmp_path / "config", kubeconfig())
    module = fake_module({"kubeconfig": path})
    assert hide_kubeconfig(module) == path
    assert module.params["kubeconfig"] == path and path not in module.no_log_values


@pytest.mark.parametrize("text, secrets, expected", [
    ("token abcd in the middle", ["abcd"], "token ******** in the middle"),
    ("twice: abcd abcd", ["abcd"], "twice: ******** ********"),
    ("two: abcd efgh", ["abcd", "efgh"], "two: ******** ********"),
    ("nothing to hide", ["abcd"], "nothing to hide"),
    (ValueError("an exception: abcd"), ["abcd"], "an exception: ********"),
])
def test_scrub(text, secrets, expected):
    assert scrub(text, secrets) == expected


# -- K8sReader against the API double ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def double():
    objects = {"nodes": [make_node("n1", "10.0.0.1", labels={"pool": "a"}), make_node("n2", "10.0.0.2")],
               "pods": [make_pod("web-1", "shop", "n1", [{"name": "app", "container_id": "containerd://" + "a" * 64}],
                                 labels={"app": "web"}),
                        make_pod("db-1", "shop", "n2", [{"name": "db", "container_id": "containerd://" + "b" * 64}],
                                 labels={"app": "db"}),
                        make_pod("cron-1", "ops", "n2", [{"name": "job", "container_id": None}])]}
    api = ApiDouble(objects, token="admin-token-0005")
    api.add_token("limited-token-0006", user="limited", namespaces=["ops"], nodes=False)
    api.add_basic_user("alice", PASSWORD)
    with api:
        yield api


def names(items):
    return sorted(i["metadata"]["name"] for i in items)


def reader(params, timeout=5):
    return K8sReader(build_configuration(params), params, timeout=timeout)


def test_reads_with_a_kubeconfig_path(double):
    r = reader({"kubeconfig": double.kubeconfig_path})
    assert names(r.list_pods(None)) == ["cron-1", "db-1", "web-1"]
    assert names(r.list_pods("shop", label_selector="app=web")) == ["web-1"]
    assert names(r.list_pods("shop", field_selector="spec.nodeName=n2")) == ["db-1"]
    assert names(r.list_nodes(label_selector="pool=a")) == ["n1"]
    assert r.read_node("n2")["metadata"]["name"] == "n2"
    assert r.exec_denied("shop") is None
    assert r.calls == ["listing pods in all namespaces", "listing pods in namespace shop",
                       "listing pods in namespace shop", "listing nodes", "reading node n2",
                       "asking whether pods/exec may be created in namespace shop"]
    # An empty selector is not sent at all.
    assert [c["query"] for c in double.calls() if c["path"] == "/api/v1/namespaces/shop/pods"][-2:] == [
        {"labelSelector": "app=web"}, {"fieldSelector": "spec.nodeName=n2"}]


IDENTITIES = [
    ("kubeconfig as a dict, CA inline", lambda d: {"kubeconfig": d.kubeconfig_dict(inline_ca=True)}),
    ("host, api_key and ca_cert", lambda d: {"host": d.url, "api_key": d.token, "ca_cert": d.ca_path}),
    ("host, client certificate and ca_cert", lambda d: {"host": d.url, "client_cert": d.client_cert,
                                                        "client_key": d.client_key, "ca_cert": d.ca_path}),
    ("host, username and password", lambda d: {"host": d.url, "username": "alice", "password": PASSWORD,
                                               "ca_cert": d.ca_path}),
    ("validate_certs false: no CA needed", lambda d: {"host": d.url, "api_key": d.token, "validate_certs": False}),
]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("case, params", IDENTITIES, ids=[r[0] for r in IDENTITIES])
def test_each_way_in_reaches_the_api(double, case, params):
    assert names(reader(params(double)).list_pods("shop")) == ["db-1", "web-1"]


def _wrong_token(d):
    return {"host": d.url, "api_key": "wrong-token-0007", "ca_cert": d.ca_path}


def _limited(d):
    return {"kubeconfig": d.kubeconfig_dict(token="limited-token-0006")}


def _no_ca(d):
    return {"host": d.url, "api_key": d.token}


def _wrong_password(d):
    return {"host": d.url, "username": "alice", "password": "wrong-password-0008", "ca_cert": d.ca_path}


# (case, params(double), call(reader), status, words, secrets that must not show)
READ_ERRORS = [
    ("a wrong token: 401, what to check", _wrong_token, lambda r: r.list_pods("shop"), 401,
     ["rejected the credentials (401 Unauthorized) while listing pods in namespace shop", "check api_key"],
     ["wrong-token-0007"]),
    ("a wrong password: 401", _wrong_password, lambda r: r.list_nodes(), 401,
     ["rejected the credentials (401 Unauthorized) while listing nodes"], ["wrong-password-0008"]),
    ("not allowed in the namespace: 403 with the server's reason", _limited, lambda r: r.list_pods("shop"), 403,
     ["not allowed (403 Forbidden) while listing pods in namespace shop:", 'User "limited"'],
     ["limited-token-0006"]),
    ("nodes forbidden: 403", _limited, lambda r: r.read_node("n1"), 403,
     ["not allowed (403 Forbidden) while reading node n1"], ["limited-token-0006"]),
    ("a node that does not exist: 404 with the server's message", lambda d: {"kubeconfig": d.kubeconfig_path},
     lambda r: r.read_node("n9"), 404, ["answered 404 Not Found while reading node n9", "n9"], ["admin-token-0005"]),
    ("an unknown CA: what to set", _no_ca, lambda r: r.list_nodes(), None,
     ["TLS verification of the Kubernetes API at https://127.0.0.1:", "failed while listing nodes",
      "Set ca_cert", "validate_certs=false"], ["admin-token-0005"]),
]


@pytest.mark.parametrize("case, params, call, status, words, hidden", READ_ERRORS, ids=[r[0] for r in READ_ERRORS])
def test_read_errors(double, case, params, call, status, words, hidden):
    with pytest.raises(ApiError) as error:
        call(reader(params(double)))
    message = str(error.value)
    for word in words:
        assert word in message
    for secret in hidden + [double.token]:
        assert secret not in message
    assert error.value.status == status


def test_exec_denied_asks_the_api(double):
    assert reader(_limited(double)).exec_denied("ops") == "not allowed"  # the double gives no reason
    assert reader({"kubeconfig": double.kubeconfig_path}).exec_denied("ops") is None
    review = [c for c in double.calls() if c.get("review")][-1]["review"]
    assert review == {"namespace": "ops", "verb": "create", "resource": "pods", "subresource": "exec",
                      "allowed": True}


# -- K8sReader against a server that misbehaves ---------------------------------------------------------------
class Scripted(BaseHTTPRequestHandler):
    """Answers every GET/POST with the server's ``answer(headers) -> (status, content type, body)``."""

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, kind, body = self.server.answer(self.headers)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def status_body(message, code):
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code})


def _echo_token(headers):
    # A server (or a proxy) that repeats the credential it was sent in its error.
    return 500, "application/json", status_body("etcd timeout for %s" % headers.get("Authorization"), 500)


SERVER_ERRORS = [
    ("a 500 with a Status: its message, the credential scrubbed", _echo_token, 500,
     ["answered 500 Internal Server Error while listing nodes", "etcd timeout for Bearer ********"]),
    ("a 400: the request was refused", lambda h: (400, "application/json", status_body("bad selector", 400)), 400,
     ["refused the request while listing nodes: bad selector"]),
    ("an error without a Status body: the reason", lambda h: (503, "text/plain", "upstream down"), 503,
     ["answered 503 Service Unavailable while listing nodes: Service Unavailable"]),
    ("a 200 that is not JSON", lambda h: (200, "text/html", "<html>login</html>"), None,
     ["sent a reply that is not JSON while listing nodes"]),
]


@pytest.mark.parametrize("case, answer, status, words", SERVER_ERRORS, ids=[r[0] for r in SERVER_ERRORS])
def test_server_errors(scripted, case, answer, status, words):
    scripted.answer = answer
    host = "http://127.0.0.1:%d" % scripted.server_address[1]
    with pytest.raises(ApiError) as error:
        reader({"host": host, "api_key": API_KEY}).list_nodes()
    message = str(error.value)
    for word in words:
        assert word in message
    assert API_KEY not in message and error.value.status == status


def review(allowed, reason=None):
    status = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return 201, "application/json", json.dumps({"kind": "SelfSubjectAccessReview", "status": status})


# (case, answer, what exec_denied says, or the words of its error)
EXEC_REVIEWS = [
    ("allowed", lambda h: review(True), None),
    ("denied with the authorizer's reason", lambda h: review(False, "RBAC: no binding"), "RBAC: no binding"),
    ("denied without a reason", lambda h: review(False), "not allowed"),
    ("an API without access reviews (404) is taken as allowing", lambda h: (404, "application/json",
                                                                            status_body("not found", 404)), None),
    ("any other error is an error", lambda h: (403, "application/json", status_body("reviews forbidden", 403)),
     ApiError("not allowed (403 Forbidden) while asking whether pods/exec may be created in namespace shop: "
              "reviews forbidden")),
]


@pytest.mark.parametrize("case, answer, expected", EXEC_REVIEWS, ids=[r[0] for r in EXEC_REVIEWS])
def test_exec_denied(scripted, case, answer, expected):
    scripted.answer = answer
    r = reader({"host": "http://127.0.0.1:%d" % scripted.server_address[1], "api_key": API_KEY})
    if isinstance(expected, ApiError):
        with pytest.raises(ApiError) as error:
            r.exec_denied("shop")
        assert str(error.value) == str(expected) and error.value.status == 403
    else:
        assert r.exec_denied("shop") == expected


def test_basic_auth_password_is_scrubbed_too(scripted):
    scripted.answer = lambda h: (500, "application/json", status_body("saw %s" % h.get("Authorization"), 500))
    host = "http://127.0.0.1:%d" % scripted.server_address[1]
    with pytest.raises(ApiError) as error:
        reader({"host": host, "username": "alice", "password": PASSWORD}).list_nodes()
    assert "saw ********" in str(error.value)
    assert base64.b64encode(("alice:" + PASSWORD).encode()).decode() not in str(error.value)


def test_a_token_from_a_kubeconfig_file_is_scrubbed_bare_too(scripted, tmp_path):
    """The token is in no option (it came from the file), and the server repeats it without "Bearer"."""
    scripted.answer = lambda h: (500, "application/json", status_body(
        "saw %s" % h.get("Authorization", "").split(" ", 1)[-1], 500))
    config = kubeconfig()
    config["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:%d" % scripted.server_address[1]
    with pytest.raises(ApiError) as error:
        reader({"kubeconfig": write(tmp_path / "config", config)}).list_nodes()
    assert "saw ********" in str(error.value) and TOKEN not in str(error.value)


def test_an_api_that_is_not_there():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens there
    params = {"host": "http://127.0.0.1:%d" % port, "api_key": API_KEY}
    configuration = build_configuration(params)
    configuration.retries = 0
    with pytest.raises(ApiError) as error:
        K8sReader(configuration, params, timeout=2).list_nodes()
    message = str(error.value)
    assert message.startswith("cannot reach the Kubernetes API at http://127.0.0.1:%d while listing nodes: " % port)
    assert API_KEY not in message and error.value.status is None
