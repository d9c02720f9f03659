# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes auth options, written once: names, types, secrets, aliases, environment variables.

Every place that takes a Kubernetes connection derives its copy from AUTH_OPTIONS:

- the modules' argument spec (module_spec, through _k8s_client.AUTH_ARG_SPEC);
- a Kubernetes probe's options (probe_spec, in _probe_checks.PROBE_OPTIONS) and, on the
  controller, their environment fallbacks (with_environment);
- the kubernetes.core.kubectl connection variables of agent hosts (KUBECTL_VARS);
- the playbooks' k8s_* variables (PLAY_VARS), which game_day_control passes on.

The doc fragment k8s_auth, probe.py's docs and the playbooks' module_defaults are written out
by hand; tests/unit/plugins/module_utils/test_k8s_auth.py checks each against this file.

Options, types, aliases and no_log are kubernetes.core's (module_utils/args_common.py), and so
are the environment variables: K8S_AUTH_ and the option's name, then K8S_AUTH_ and its
kubernetes client name (the alias) where that differs.

Also here: the credentials among the options (a kubeconfig dict's tokens, a proxy URL's
password), to hide them from output. Standard library only: node-side probe code imports it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from collections import namedtuple
from urllib.parse import urlsplit

from ansible_collections.chaosfleet.stress.plugins.module_utils._units import parse_bool

# no_log None: not set (the option is no secret). kubectl: the kubernetes.core.kubectl variable, or None.
AuthOption = namedtuple("AuthOption", "name type no_log aliases env kubectl")

AUTH_OPTIONS = (
    # A path, or the kubeconfig as a dict, which holds tokens (k8s_client unmasks its plain values again).
    AuthOption("kubeconfig", "raw", True, (), ("K8S_AUTH_KUBECONFIG",), "ansible_kubectl_kubeconfig"),
    AuthOption("context", "str", None, (), ("K8S_AUTH_CONTEXT",), "ansible_kubectl_context"),
    AuthOption("host", "str", None, (), ("K8S_AUTH_HOST",), "ansible_kubectl_host"),
    AuthOption("api_key", "str", True, (), ("K8S_AUTH_API_KEY",), "ansible_kubectl_token"),
    AuthOption("username", "str", None, (), ("K8S_AUTH_USERNAME",), "ansible_kubectl_username"),
    AuthOption("password", "str", True, (), ("K8S_AUTH_PASSWORD",), "ansible_kubectl_password"),
    AuthOption("client_cert", "path", None, ("cert_file",), ("K8S_AUTH_CLIENT_CERT", "K8S_AUTH_CERT_FILE"),
               "ansible_kubectl_cert_file"),
    # A path to the key, not the key itself; no_log=False tells the sanity test so.
    AuthOption("client_key", "path", False, ("key_file",), ("K8S_AUTH_CLIENT_KEY", "K8S_AUTH_KEY_FILE"),
               "ansible_kubectl_key_file"),
    AuthOption("ca_cert", "path", None, ("ssl_ca_cert",), ("K8S_AUTH_CA_CERT", "K8S_AUTH_SSL_CA_CERT"),
               "ansible_kubectl_ssl_ca_cert"),
    AuthOption("validate_certs", "bool", None, ("verify_ssl",), ("K8S_AUTH_VALIDATE_CERTS", "K8S_AUTH_VERIFY_SSL"),
               "ansible_kubectl_verify_ssl"),
    # kubernetes.core.kubectl has no proxy settings.
    AuthOption("proxy", "str", None, (), ("K8S_AUTH_PROXY",), None),
    AuthOption("no_proxy", "str", None, (), ("K8S_AUTH_NO_PROXY",), None),
)

NAMES = tuple(o.name for o in AUTH_OPTIONS)
SECRET_NAMES = tuple(o.name for o in AUTH_OPTIONS if o.no_log)
ALIASES = dict((alias, o.name) for o in AUTH_OPTIONS for alias in o.aliases)
REQUIRED_TOGETHER = [["username", "password"], ["client_cert", "client_key"]]
# Option -> the kubernetes.core.kubectl connection variable an agent host gets.
KUBECTL_VARS = tuple((o.name, o.kubectl) for o in AUTH_OPTIONS if o.kubectl)
# Option -> the playbooks' variable (k8s_pod_stress, stresschaos, game_day, agent).
PLAY_VARS = tuple((o.name, "k8s_" + o.name) for o in AUTH_OPTIONS)


def _spec(option, fallback=None):
    spec = {"type": option.type}
    if option.no_log is not None:
        spec["no_log"] = option.no_log
    if option.aliases:
        spec["aliases"] = list(option.aliases)
    if fallback is not None:
        spec["fallback"] = (fallback, list(option.env))
    return spec


def module_spec(env_fallback):
    """The argument_spec entries of a module; ``env_fallback`` is Ansible's (this file imports no Ansible)."""
    return dict((o.name, _spec(o, env_fallback)) for o in AUTH_OPTIONS)


def probe_spec():
    """A probe's auth options. No fallback: every probe of a list shares the spec, and an HTTP probe must
    not get K8S_AUTH_HOST; with_environment applies the environment to Kubernetes probes on the controller."""
    return dict((o.name, _spec(o)) for o in AUTH_OPTIONS)


def canonical(values):
    """``values`` with each alias under its option's name (Ansible's validation keeps the alias key too)."""
    out = dict(values)
    for alias, name in ALIASES.items():
        if alias in out:
            value = out.pop(alias)
            if out.get(name) is None:
                out[name] = value
    return out


def _typed(option, variable, value):
    if option.type == "bool":
        return parse_bool(value, variable, default=None)
    if option.type == "path":
        return os.path.expanduser(os.path.expandvars(value))
    return value


def with_environment(given, environ=None):
    """Every auth option: its given value, else the first K8S_AUTH_* variable set, read as Ansible reads a
    fallback of that type (k8s_targets' way). Raises ValueError for a yes/no variable that is neither."""
    environ = os.environ if environ is None else environ
    given = canonical(given or {})
    params = {}
    for option in AUTH_OPTIONS:
        value = given.get(option.name)
        if value is None:
            variable = next((name for name in option.env if environ.get(name)), None)
            if variable:
                value = _typed(option, variable, environ[variable])
        params[option.name] = value
    return params


def missing_partner(params):
    """Why the options that go together do not ('username without password'), or ''."""
    for group in REQUIRED_TOGETHER:
        given = [name for name in group if params.get(name) not in (None, "")]
        if given and len(given) < len(group):
            return "%s without %s" % (", ".join(given), ", ".join(n for n in group if n not in given))
    return ""


# ---------------------------------------------------------------- credentials, to hide

# kubeconfig keys whose values are credentials, wherever they sit under a user (auth-provider
# config for OIDC, exec plugins) or a cluster (a proxy URL with a password).
KUBECONFIG_SECRET_KEYS = frozenset(("token", "password", "client-key-data", "id-token", "refresh-token",
                                    "client-secret", "access-token", "secret"))
_SECRET_ENV_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
KUBECONFIG_SHOWN_AS = "(kubeconfig given as a dict: not shown)"


def url_password(url):
    """The password inside a URL such as http://user:secret@proxy:3128, or None."""
    try:
        return urlsplit(url).password if isinstance(url, str) else None
    except ValueError:
        return None


def _walk_secrets(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in KUBECONFIG_SECRET_KEYS and isinstance(value, str):
                found.append(value)
            elif key == "proxy-url":
                found.append(url_password(value))
            elif key == "env" and isinstance(value, list):  # exec plugin: [{name, value}]
                for entry in value:
                    if isinstance(entry, dict) and any(w in str(entry.get("name", "")).upper()
                                                       for w in _SECRET_ENV_WORDS):
                        found.append(entry.get("value"))
            else:
                _walk_secrets(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_secrets(value, found)


def kubeconfig_secrets(kubeconfig):
    """Tokens, passwords, key data and OIDC tokens in a kubeconfig given as a dict, to hide from output."""
    found = []
    if isinstance(kubeconfig, dict):
        _walk_secrets(kubeconfig.get("users") or [], found)
        _walk_secrets(kubeconfig.get("clusters") or [], found)
    return [v for v in found if isinstance(v, str) and len(v) >= 4]


def param_secrets(params):
    """Every credential among the auth options: the no_log ones, a dict kubeconfig's, the proxy's password."""
    found = kubeconfig_secrets(params.get("kubeconfig"))
    found += [url_password(params.get("proxy"))] + [params.get(n) for n in SECRET_NAMES if n != "kubeconfig"]
    return [v for v in found if isinstance(v, str) and len(v) >= 4]


def leaf_values(node):
    """Every scalar in a dict/list, as Ansible's no_log collects it."""
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        return [leaf for value in node for leaf in leaf_values(value)]
    return [] if node in (None, "") else [str(node)]
