# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes client factory and read helpers for controller-side modules.

Authentication follows kubernetes.core: a kubeconfig (path or dict) and context,
or host plus api_key / username and password / client certificate, or the
in-cluster service account, with K8S_AUTH_* environment fallbacks. Modules add
AUTH_ARG_SPEC (built from _k8s_auth.py, where the options are written once) to their
argument spec and document it with the chaosfleet.stress.k8s_auth doc fragment.

Errors never carry a credential: every message is built here and scrubbed of the
tokens and passwords in use.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import traceback

from ansible.module_utils.basic import env_fallback

from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_auth import (
    KUBECONFIG_SHOWN_AS, REQUIRED_TOGETHER, leaf_values, module_spec, param_secrets,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_select import ApiError

KUBERNETES_IMPORT_ERROR = None
try:
    import urllib3
    import yaml
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
except ImportError:
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
    HAS_KUBERNETES = False
else:
    HAS_KUBERNETES = True

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"

AUTH_ARG_SPEC = module_spec(env_fallback)
AUTH_REQUIRED_TOGETHER = REQUIRED_TOGETHER


class AuthError(Exception):
    """The client could not be configured from the auth options."""


def _in_cluster():
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(SERVICE_ACCOUNT_TOKEN)


def _default_kubeconfig():
    """The kubeconfig kubectl would read: $KUBECONFIG (first existing entry) or ~/.kube/config."""
    for path in (os.environ.get("KUBECONFIG") or "").split(os.pathsep):
        if path and os.path.exists(os.path.expanduser(path)):
            return os.path.expanduser(path)
    default = os.path.expanduser("~/.kube/config")
    return default if os.path.exists(default) else None


def _secret_values(params, configuration):
    values = param_secrets(params)
    for key in (configuration.api_key or {}).values():
        if key:
            values.append(key)
            values.append(key.split(" ", 1)[-1])  # the bare token after "Bearer "
    return [v for v in values if v and len(v) >= 4]


def hide_kubeconfig(module):
    """Keep a dict kubeconfig out of every result, mask only its credentials, and return it.

    ``no_log`` on the option made Ansible mask every plain value of the dict in all output ('v1',
    'default', the server URL...); only the credentials need that. The dict itself is replaced in
    module.params, so the ``invocation`` Ansible returns never echoes it.
    """
    kubeconfig = module.params.get("kubeconfig")
    secrets = param_secrets(module.params)
    module.no_log_values.difference_update(set(leaf_values(kubeconfig)) - set(secrets))
    module.no_log_values.update(secrets)
    if isinstance(kubeconfig, dict):
        module.params["kubeconfig"] = KUBECONFIG_SHOWN_AS
    return kubeconfig


def scrub(text, secrets):
    text = str(text)
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


def release_loader_files():
    """Remove the files the kubeconfig loader wrote for inline certificate and key data.

    The loader removes them at interpreter exit, which an Ansible worker process (it ends with os._exit) never
    reaches: a controller-side plugin calls this once its requests are done, or every probe round would leave a
    copy of the kubeconfig's certificates and keys in the temporary directory."""
    cleanup = getattr(getattr(k8s_config, "kube_config", None), "_cleanup_temp_files", None)
    if cleanup is not None:
        cleanup()


def build_configuration(params):
    """A kubernetes.client.Configuration from the auth options; raises AuthError."""
    configuration = k8s_client.Configuration()
    host = params.get("host")
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    explicit = bool(host) and bool(params.get("api_key") or (params.get("username") and params.get("password"))
                                   or params.get("client_cert"))
    try:
        if isinstance(kubeconfig, dict):
            k8s_config.load_kube_config_from_dict(kubeconfig, context=context,
                                                  client_configuration=configuration, persist_config=False)
        elif kubeconfig:
            if not isinstance(kubeconfig, str):
                raise AuthError("kubeconfig must be a path or a dict, got %s" % type(kubeconfig).__name__)
            path = os.path.expanduser(kubeconfig)
            if not os.path.exists(path):
                raise AuthError("kubeconfig file %s does not exist" % path)
            k8s_config.load_kube_config(config_file=path, context=context,
                                        client_configuration=configuration, persist_config=False)
        elif not explicit:
            # Same order as kubernetes.core: a named context needs a kubeconfig, then the pod's
            # service account, then the kubeconfig kubectl would use.
            default = _default_kubeconfig()
            if context and not default:
                raise AuthError("context %s was given but no kubeconfig was found "
                                "(set kubeconfig, K8S_AUTH_KUBECONFIG or KUBECONFIG)" % context)
            if not context and _in_cluster():
                k8s_config.load_incluster_config(client_configuration=configuration)
            elif default:
                k8s_config.load_kube_config(config_file=default, context=context,
                                            client_configuration=configuration, persist_config=False)
            elif not host:
                raise AuthError(
                    "no Kubernetes credentials: give kubeconfig (path or dict), host with api_key or "
                    "client_cert/client_key, set K8S_AUTH_* or KUBECONFIG, or run inside a pod")
    except ConfigException as exc:
        raise AuthError("cannot load the Kubernetes configuration: %s" % exc)
    except (IOError, OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        raise AuthError("cannot read the kubeconfig: %s" % exc)

    if host:
        configuration.host = host
    if params.get("api_key"):
        # The kubeconfig loader installs a hook that would put its own token back.
        configuration.refresh_api_key_hook = None
        configuration.api_key = {"authorization": "Bearer " + params["api_key"]}
        configuration.api_key_prefix = {}
    elif params.get("username") and params.get("password"):
        configuration.refresh_api_key_hook = None
        configuration.username = params["username"]
        configuration.password = params["password"]
        configuration.api_key = {"authorization": configuration.get_basic_auth_token()}
        configuration.api_key_prefix = {}
    if params.get("client_cert"):
        configuration.cert_file = params["client_cert"]
    if params.get("client_key"):
        configuration.key_file = params["client_key"]
    if params.get("ca_cert"):
        configuration.ssl_ca_cert = params["ca_cert"]
    if params.get("validate_certs") is not None:
        configuration.verify_ssl = params["validate_certs"]
    if params.get("proxy"):
        configuration.proxy = params["proxy"]
    if params.get("no_proxy"):
        configuration.no_proxy = params["no_proxy"]
    for name in ("client_cert", "client_key", "ca_cert"):
        if params.get(name) and not os.path.exists(params[name]):
            raise AuthError("%s file %s does not exist" % (name, params[name]))
    return configuration


def _status_message(exc):
    """The API server's own message from a Status body, if it sent one."""
    try:
        body = json.loads(exc.body)
        return body.get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return exc.reason


class K8sReader:
    """The few reads k8s_targets needs, returning plain dicts (no model objects: they are
    slow for thousands of pods) and raising ApiError with a message safe to show.

    Each call is one HTTP request made by the client's ApiClient (its auth, TLS, proxy and retries) for
    raw JSON. Clients that build requests with ``param_serialize`` (the pydantic-model generator) are
    called without their typed API classes: importing CoreV1Api builds some 250 model classes, most of a
    second of CPU, for answers this reads as JSON anyway. Older clients go through the typed API with
    ``_preload_content=False``.
    """

    def __init__(self, configuration, params, timeout=30):
        self.host = configuration.host
        self.timeout = timeout
        self.secrets = _secret_values(params, configuration)
        self.calls = []
        self.api_client = k8s_client.ApiClient(configuration)
        self._raw = hasattr(self.api_client, "param_serialize")
        self._core = None

    @property
    def core(self):
        """The typed CoreV1Api, built on first use (older clients only)."""
        if self._core is None:
            self._core = k8s_client.CoreV1Api(self.api_client)
        return self._core

    def _call(self, what, method, path, path_params=None, query=(), body=None, typed=None):
        """One request; its JSON answer as plain dicts. ``typed()`` gives (bound typed-API method, args,
        kwargs) for clients without ``param_serialize``."""
        self.calls.append(what)
        query = [(key, value) for key, value in query if value]
        try:
            if self._raw:
                headers = {"Accept": "application/json"}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                request = self.api_client.param_serialize(
                    method=method, resource_path=path, path_params=path_params, query_params=query,
                    header_params=headers, body=body, auth_settings=["BearerToken"])
                response = self.api_client.call_api(*request, _request_timeout=self.timeout)
                data = response.read()
                if not 200 <= response.status <= 299:
                    raise ApiException.from_response(http_resp=response, body=None, data=None)
            else:
                api_method, args, kwargs = typed()
                kwargs = dict((k, v) for k, v in kwargs.items() if v)
                data = api_method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs).data
            return json.loads(data)
        except ApiException as exc:
            raise ApiError(scrub(self._api_message(what, exc), self.secrets), exc.status)
        except urllib3.exceptions.MaxRetryError as exc:
            raise ApiError(scrub(self._connection_message(what, exc.reason), self.secrets))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiError(scrub(self._connection_message(what, exc), self.secrets))
        except ValueError as exc:
            raise ApiError(scrub("the Kubernetes API at %s sent a reply that is not JSON while %s: %s"
                                 % (self.host, what, exc), self.secrets))

    def _api_message(self, what, exc):
        detail = _status_message(exc)
        if exc.status == 401:
            return ("the Kubernetes API at %s rejected the credentials (401 Unauthorized) while %s; check "
                    "api_key, the kubeconfig user or client_cert/client_key" % (self.host, what))
        if exc.status == 403:
            return "not allowed (403 Forbidden) while %s: %s" % (what, detail)
        if exc.status == 400:
            return "the Kubernetes API at %s refused the request while %s: %s" % (self.host, what, detail)
        return "the Kubernetes API at %s answered %s %s while %s: %s" % (
            self.host, exc.status, exc.reason, what, detail)

    def _connection_message(self, what, reason):
        reason_text = str(reason)
        if isinstance(reason, urllib3.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in reason_text:
            return ("TLS verification of the Kubernetes API at %s failed while %s: %s. Set ca_cert to the "
                    "cluster's CA certificate (or fix the kubeconfig's certificate-authority); "
                    "validate_certs=false skips the check" % (self.host, what, reason_text))
        return "cannot reach the Kubernetes API at %s while %s: %s" % (self.host, what, reason_text)

    def list_pods(self, namespace, label_selector="", field_selector=""):
        query = [("labelSelector", label_selector), ("fieldSelector", field_selector)]
        selectors = dict(label_selector=label_selector, field_selector=field_selector)
        if namespace is None:
            data = self._call("listing pods in all namespaces", "GET", "/api/v1/pods", query=query,
                              typed=lambda: (self.core.list_pod_for_all_namespaces, (), selectors))
        else:
            data = self._call("listing pods in namespace %s" % namespace, "GET", "/api/v1/namespaces/{namespace}/pods",
                              {"namespace": namespace}, query,
                              typed=lambda: (self.core.list_namespaced_pod, (namespace,), selectors))
        return data.get("items") or []

    def list_nodes(self, label_selector=""):
        return self._call("listing nodes", "GET", "/api/v1/nodes", query=[("labelSelector", label_selector)],
                          typed=lambda: (self.core.list_node, (), dict(label_selector=label_selector))
                          ).get("items") or []

    def read_node(self, name):
        return self._call("reading node %s" % name, "GET", "/api/v1/nodes/{name}", {"name": name},
                          typed=lambda: (self.core.read_node, (name,), {}))

    def exec_denied(self, namespace):
        """None when this user may create pods/exec in ``namespace``, else the API's reason.

        A SelfSubjectAccessReview asks before anything starts; an API that cannot answer it (404) is
        taken as allowing, and the exec itself then reports a refusal.
        """
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": namespace, "verb": "create", "resource": "pods",
                                                "subresource": "exec"}}}
        what = "asking whether pods/exec may be created in namespace %s" % namespace
        try:
            review = self._call(what, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body,
                                typed=lambda: (k8s_client.AuthorizationV1Api(self.api_client)
                                               .create_self_subject_access_review, (body,), {}))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        status = review.get("status") or {}
        if status.get("allowed"):
            return None
        return status.get("reason") or "not allowed"
