"""The Kubernetes auth options (module_utils/_k8s_auth.py), and every copy of them checked against it."""

import os
import re
from pathlib import Path

import pytest
import yaml

from ansible.module_utils.basic import env_fallback

from ansible_collections.chaosfleet.stress.plugins.module_utils import _k8s_auth
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_auth import (
    AUTH_OPTIONS, KUBECTL_VARS, NAMES, PLAY_VARS, SECRET_NAMES, canonical, kubeconfig_secrets, leaf_values,
    missing_partner, module_spec, param_secrets, probe_spec, url_password, with_environment,
)

REPO = Path(__file__).resolve().parents[4]
KUBERNETES_CORE = REPO / ".collections" / "ansible_collections" / "kubernetes" / "core"
OPTIONS = dict((o.name, o) for o in AUTH_OPTIONS)


def _kubernetes_core_args():
    from ansible_collections.kubernetes.core.plugins.module_utils import args_common
    return args_common


def _yaml_doc(path, name="DOCUMENTATION"):
    """A plugin's documentation block, read as text (no import)."""
    text = Path(path).read_text()
    match = re.search(r'^%s = r?("""|\'\'\')\n(.*?)\1' % name, text, re.S | re.M)
    assert match, "%s has no %s" % (path, name)
    return yaml.safe_load(match.group(2))


def _text(description):
    return " ".join(description) if isinstance(description, list) else description


# ---------------------------------------------------------------- the source is kubernetes.core's

def test_names_types_aliases_and_no_log_are_kubernetes_cores():
    theirs = _kubernetes_core_args().AUTH_ARG_SPEC
    for option in AUTH_OPTIONS:
        spec = theirs[option.name]
        assert option.type == spec.get("type", "str"), option.name
        assert list(option.aliases) == spec.get("aliases", []), option.name
        assert bool(option.no_log) == spec.get("no_log", False), option.name
    # What we leave out of theirs: impersonation, proxy headers, persist_config.
    assert sorted(set(theirs) - set(NAMES)) == ["impersonate_groups", "impersonate_user", "persist_config",
                                                "proxy_headers"]


def test_environment_variables_are_the_ones_kubernetes_core_reads():
    """kubernetes.core reads K8S_AUTH_<option>, then K8S_AUTH_<kubernetes client name> (module_utils/k8s/client.py)."""
    client_name = dict((ours, theirs) for theirs, ours in _kubernetes_core_args().AUTH_ARG_MAP.items())
    for option in AUTH_OPTIONS:
        names = ["K8S_AUTH_" + option.name.upper()]
        if client_name[option.name] != option.name:
            names.append("K8S_AUTH_" + client_name[option.name].upper())
        assert list(option.env) == names, option.name


def test_kubectl_variables_are_the_kubectl_connections():
    """Each variable is one the connection reads for the option that shares our environment variables."""
    connection = _yaml_doc(KUBERNETES_CORE / "plugins" / "connection" / "kubectl.py")["options"]
    for name, var in KUBECTL_VARS:
        owner = [o for o in connection.values() if any(v["name"] == var for v in o.get("vars", []))]
        assert len(owner) == 1, var
        assert set(e["name"] for e in owner[0].get("env", [])) & set(OPTIONS[name].env), (name, var)
    without = [o.name for o in AUTH_OPTIONS if not o.kubectl]
    assert without == ["proxy", "no_proxy"]
    assert not [o for o in connection.values() if "proxy" in " ".join(e["name"] for e in o.get("env", [])).lower()]


# ---------------------------------------------------------------- helpers

def test_module_spec_has_the_fallbacks_and_the_probe_spec_none():
    spec = module_spec(env_fallback)
    assert list(spec) == list(NAMES)
    assert spec["client_cert"] == {"type": "path", "aliases": ["cert_file"],
                                   "fallback": (env_fallback, ["K8S_AUTH_CLIENT_CERT", "K8S_AUTH_CERT_FILE"])}
    assert spec["client_key"]["no_log"] is False and spec["api_key"]["no_log"] is True
    assert "no_log" not in spec["host"]
    assert probe_spec() == dict((n, dict((k, v) for k, v in s.items() if k != "fallback")) for n, s in spec.items())
    assert SECRET_NAMES == ("kubeconfig", "api_key", "password")
    assert PLAY_VARS[0] == ("kubeconfig", "k8s_kubeconfig") and len(PLAY_VARS) == len(NAMES)


@pytest.mark.parametrize("given, environ, expected", [
    ({}, {}, {}),
    ({}, {"K8S_AUTH_HOST": "https://env:6443", "K8S_AUTH_API_KEY": "tok"},
     {"host": "https://env:6443", "api_key": "tok"}),
    # a given value beats the environment; an empty variable counts as unset
    ({"host": "https://given"}, {"K8S_AUTH_HOST": "https://env"}, {"host": "https://given"}),
    ({}, {"K8S_AUTH_HOST": ""}, {}),
    # both of kubernetes.core's names, the option's first
    ({}, {"K8S_AUTH_SSL_CA_CERT": "/ca.crt"}, {"ca_cert": "/ca.crt"}),
    ({}, {"K8S_AUTH_CA_CERT": "/a.crt", "K8S_AUTH_SSL_CA_CERT": "/b.crt"}, {"ca_cert": "/a.crt"}),
    ({}, {"K8S_AUTH_CERT_FILE": "/c", "K8S_AUTH_KEY_FILE": "/k"}, {"client_cert": "/c", "client_key": "/k"}),
    # yes/no as Ansible reads a bool fallback
    ({}, {"K8S_AUTH_VERIFY_SSL": "no"}, {"validate_certs": False}),
    ({}, {"K8S_AUTH_VALIDATE_CERTS": "True"}, {"validate_certs": True}),
    ({}, {"K8S_AUTH_VERIFY_SSL": "0"}, {"validate_certs": False}),
    ({"validate_certs": False}, {"K8S_AUTH_VERIFY_SSL": "yes"}, {"validate_certs": False}),
    # paths expand as Ansible's type=path does; kubeconfig is raw (k8s_client expands it)
    ({}, {"K8S_AUTH_CERT_FILE": "~/c", "K8S_AUTH_KUBECONFIG": "~/kc"},
     {"client_cert": os.path.expanduser("~/c"), "kubeconfig": "~/kc"}),
    # aliases given in a probe
    ({"ssl_ca_cert": "/ca", "verify_ssl": False}, {}, {"ca_cert": "/ca", "validate_certs": False}),
    # a dict kubeconfig is kept as it is
    ({"kubeconfig": {"users": []}}, {"K8S_AUTH_KUBECONFIG": "/x"}, {"kubeconfig": {"users": []}}),
])
def test_with_environment(given, environ, expected):
    params = with_environment(given, environ)
    assert sorted(params) == sorted(NAMES)
    assert dict((k, v) for k, v in params.items() if v is not None) == expected


def test_a_yes_no_variable_that_is_neither_is_an_error_naming_it():
    with pytest.raises(ValueError, match="K8S_AUTH_VERIFY_SSL must be true or false"):
        with_environment({}, {"K8S_AUTH_VERIFY_SSL": "nope"})


@pytest.mark.parametrize("values, expected", [
    ({"cert_file": "/c"}, {"client_cert": "/c"}),
    # Ansible's validation leaves the alias beside the converted value
    ({"verify_ssl": "no", "validate_certs": False}, {"validate_certs": False}),
    ({"key_file": "/alias", "client_key": "/name"}, {"client_key": "/name"}),
    ({"url": "http://x/", "headers": {}}, {"url": "http://x/", "headers": {}}),
])
def test_canonical(values, expected):
    assert canonical(values) == expected


@pytest.mark.parametrize("params, expected", [
    ({}, ""),
    ({"username": "u", "password": "p"}, ""),
    ({"username": "u"}, "username without password"),
    ({"password": "p", "username": ""}, "password without username"),
    ({"client_key": "/k"}, "client_key without client_cert"),
])
def test_missing_partner(params, expected):
    assert missing_partner(params) == expected


KUBECONFIG = {"users": [{"user": {"auth-provider": {"config": {"id-token": "idtok", "refresh-token": "rftok",
                                                               "client-id": "public"}}}},
                        {"user": {"client-key-data": "keydata", "username": "alice"}},
                        {"user": {"exec": {"env": [{"name": "API_TOKEN", "value": "envtok"},
                                                   {"name": "REGION", "value": "eu-west"}]}}}],
              "clusters": [{"cluster": {"server": "https://x", "proxy-url": "http://u:proxypw@p:1"}}]}


@pytest.mark.parametrize("params, expected", [
    ({"kubeconfig": KUBECONFIG}, ["envtok", "idtok", "keydata", "proxypw", "rftok"]),
    ({"kubeconfig": {"users": [{"user": {"token": "tok1234"}}]}, "api_key": "key1234", "password": "pw1234",
      "username": "alice"}, ["key1234", "pw1234", "tok1234"]),
    ({"proxy": "http://u:pw12345@proxy:3128", "kubeconfig": "/a/path"}, ["pw12345"]),
    ({"proxy": "http://proxy:3128", "api_key": "abc"}, []),  # too short to scrub safely
])
def test_param_secrets(params, expected):
    assert sorted(param_secrets(params)) == expected


def test_kubeconfig_secrets_and_helpers():
    assert kubeconfig_secrets("/a/path") == []
    assert url_password("http://[bad") is None and url_password(None) is None
    assert sorted(leaf_values({"a": [1, {"b": "x"}], "c": None})) == ["1", "x"]


# ---------------------------------------------------------------- every copy matches the source

def test_the_modules_argument_spec_is_the_source():
    from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_client import (
        AUTH_ARG_SPEC, AUTH_REQUIRED_TOGETHER)
    assert AUTH_ARG_SPEC == module_spec(env_fallback)
    assert AUTH_REQUIRED_TOGETHER == _k8s_auth.REQUIRED_TOGETHER


def test_the_probe_takes_every_auth_option_with_the_same_spec():
    from ansible_collections.chaosfleet.stress.plugins.module_utils import _probe_checks
    assert _probe_checks.K8S_AUTH_KEYS == NAMES
    assert set(NAMES) <= set(_probe_checks._KEYS["kubernetes"])
    for name, spec in probe_spec().items():
        assert _probe_checks.PROBE_OPTIONS[name] == spec, name
    secret = set(k for k, s in _probe_checks.PROBE_OPTIONS.items() if s.get("no_log"))
    assert secret == set(_probe_checks.SECRET_KEYS) == set(SECRET_NAMES) | {"headers"}


def test_the_probe_docs_match_its_options():
    from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import PROBE_OPTIONS
    documented = _yaml_doc(REPO / "plugins" / "modules" / "probe.py")["options"]["probes"]["suboptions"]
    assert sorted(documented) == sorted(PROBE_OPTIONS)
    for name, spec in PROBE_OPTIONS.items():
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("aliases", []) == spec.get("aliases", []), name
    for name in NAMES:
        assert "V(kubernetes)" in _text(documented[name]["description"]), name


def test_the_doc_fragment_matches_the_source():
    from ansible_collections.chaosfleet.stress.plugins.doc_fragments.k8s_auth import ModuleDocFragment
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    assert list(doc["options"]) == list(NAMES)
    for option in AUTH_OPTIONS:
        documented = doc["options"][option.name]
        assert documented["type"] == option.type, option.name
        assert documented.get("aliases", []) == list(option.aliases), option.name
        assert re.findall(r"E\((K8S_AUTH_\w+)\)", _text(documented["description"])) == list(option.env), option.name
    notes = " ".join(doc["notes"])
    for name in SECRET_NAMES:
        assert "O(%s)" % name in notes, name


def test_the_kubernetes_modules_use_the_spec_and_the_fragment_and_form_the_action_group():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    users = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if "AUTH_ARG_SPEC" in p.read_text())
    assert users == sorted(runtime["action_groups"]["k8s"]) == ["k8s_targets"]
    for name in users:
        doc = _yaml_doc(REPO / "plugins" / "modules" / ("%s.py" % name))
        assert "chaosfleet.stress.k8s_auth" in doc["extends_documentation_fragment"]
        assert not set(doc.get("options") or {}) & set(NAMES)


def test_game_day_passes_every_auth_option_on():
    from ansible_collections.chaosfleet.stress.plugins.action.game_day_control import K8S_CONNECTION
    assert tuple(K8S_CONNECTION) == NAMES


def test_agent_hosts_get_the_kubectl_variables_of_the_source():
    from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _k8s_hosts
    assert _k8s_hosts.KUBECTL_VARS is KUBECTL_VARS
    doc = _yaml_doc(REPO / "plugins" / "filter" / "k8s_hosts.py")["options"]["kubectl"]
    assert re.findall(r"C\((\w+)\)", _text(doc["description"]).split(";")[0]) == [entry[0] for entry in KUBECTL_VARS]


def _plays(path):
    return yaml.safe_load((REPO / "playbooks" / path).read_text())


@pytest.mark.parametrize("playbook", ["k8s_pod_stress.yml", "stresschaos.yml"])
def test_playbook_module_defaults_set_every_auth_option_from_its_k8s_variable(playbook):
    defaults = [play["module_defaults"]["group/chaosfleet.stress.k8s"] for play in _plays(playbook)
                if "group/chaosfleet.stress.k8s" in (play.get("module_defaults") or {})]
    assert defaults == [dict((name, "{{ %s | default(omit) }}" % var) for name, var in PLAY_VARS)]


def test_add_hosts_passes_every_kubectl_option_from_its_k8s_variable():
    task = next(t for t in _plays("k8s_tasks/add_hosts.yml") if "ansible.builtin.add_host" in t)
    play_var = dict(PLAY_VARS)
    assert task["vars"]["__k8s_kubectl"] == dict((name, "{{ %s | default(none) }}" % play_var[name])
                                                 for name, _var in KUBECTL_VARS)
    assert task["no_log"] is True


def test_the_agent_role_takes_every_auth_option_with_an_agent_prefix():
    role = REPO / "roles" / "agent"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    assert dict((n, defaults.get("agent_" + n, "missing")) for n in NAMES) == dict((n, None) for n in NAMES)
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = next(iter(specs["argument_specs"].values()))["options"]
    for option in AUTH_OPTIONS:
        spec = options["agent_" + option.name]
        assert spec["type"] == option.type and bool(spec.get("no_log")) == bool(option.no_log), option.name
    for tasks in ("present.yml", "absent.yml"):
        block = yaml.safe_load((role / "tasks" / tasks).read_text())[0]
        assert block["module_defaults"]["group/kubernetes.core.k8s"] == dict(
            (n, "{{ agent_%s }}" % n) for n in NAMES), tasks
    play = _plays("agent.yml")[0]
    given = play["roles"][0]["vars"]
    assert dict((k, v) for k, v in given.items() if k[len("agent_"):] in NAMES) == dict(
        ("agent_" + name, "{{ %s | default(none) }}" % var) for name, var in PLAY_VARS)
