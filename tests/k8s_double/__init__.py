"""A Kubernetes API double: the only fake in this project, and it speaks the real REST API.

    from tests.k8s_double import ApiDouble, synthetic_cluster
    with ApiDouble(synthetic_cluster(pods=50), exec_backend=my_backend) as api:
        ...  # api.kubeconfig_path, api.url, api.token, api.ca_path, api.calls("pods")

Real clients work against it over HTTPS with a bearer token (kubectl 1.30 and later, the
``kubernetes`` Python client: typed, dynamic and ``kubernetes.stream``):

- Discovery (legacy JSON: /api, /api/v1, /apis, /apis/{group}/{version}) and a minimal
  /openapi/v3 so that ``kubectl apply`` leaves field validation to the server.
- Objects (resources.py): namespaces, nodes, pods, serviceaccounts; apps/v1 daemonsets;
  rbac.authorization.k8s.io/v1 roles, rolebindings, clusterroles, clusterrolebindings:
  get, list (labelSelector, fieldSelector), watch, create, replace, patch (merge, strategic,
  JSON patch, server-side apply), delete. A deleted namespace is Terminating for
  ``api.namespace_grace`` seconds, then it and everything in it are gone. See store.py.
- authorization.k8s.io/v1 selfsubjectaccessreviews, answered from the caller's Policy (also the
  protobuf body ``kubectl auth can-i`` sends; other protobuf bodies get 415).
- pods/exec over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io; exec.py, websocket.py): the
  command runs through ``exec_backend(namespace, pod, container)`` -> argv prefix. kubectl 1.30
  is the minimum: older clients (SPDY/3.1 only) get a 400 that says so. The ``kubectl`` on this
  image's PATH is Google's dispatcher: it runs the versioned kubectl.1.NN matching the server's
  /version, which is why the double says v1.32.

Identities: the admin token (everything), ``add_token(token, user, namespaces=None, nodes=True,
exec_namespaces=frozenset(), write=False)``, the admin client certificate, and
``add_basic_user(user, password)`` (read-only). policy.py has the rules and the 403 wording.

For a lab: ``add_pod``, ``remove_pod``, ``set_status``, ``get_object`` (thread-safe);
``daemonset_controller = fn(event, daemonset)`` is called with ADDED / MODIFIED / DELETED after each
DaemonSet change, one call at a time and in order, before the writing request is answered (errors
land in ``controller_errors``); ``cut_exec_streams(namespace, pod)`` drops live exec connections
like a lost link; ``exec_sessions()`` lists them. Every request is in ``requests`` / ``calls()``.

Not modelled: field ownership (server-side apply is create-or-merge, so a field dropped from an
applied manifest stays), strategic merge keys other than "name", fieldValidation (accepted,
not enforced), managedFields, deletecollection, pods/log and other subresources, TTYs in exec.

Files: server.py (HTTP, routes, ApiDouble), store.py + patch.py (objects), resources.py +
openapi.py (discovery), policy.py (who may), exec.py + websocket.py (pods/exec), protobuf.py.
Run it by hand with ``python -m tests.k8s_double --help`` from the repository root.
"""

from .objects import load_fixture, make_node, make_pod, objects_from_lab_state, synthetic_cluster
from .label_field_selectors import SelectorError, labels_match, parse_field_selector, parse_label_selector
from .policy import Policy
from .server import ApiDouble

__all__ = ["ApiDouble", "Policy", "SelectorError", "labels_match", "load_fixture", "make_node", "make_pod",
           "objects_from_lab_state", "parse_field_selector", "parse_label_selector", "synthetic_cluster"]
