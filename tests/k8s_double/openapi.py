"""Just enough OpenAPI v3 for kubectl apply and create.

kubectl validates manifests by default (--validate=strict). Before it does so on the client (which
needs the whole /openapi/v2 schema), it reads /openapi/v3 to see whether the server accepts the
``fieldValidation`` query parameter on PATCH for the object's group/version/kind; if so it leaves
validation to the server. These documents say so for every stored resource, and carry no schemas:
kubectl then builds strategic merge patches from its compiled-in types, as it does for any
built-in kind. The double accepts fieldValidation and does not check fields.
"""

import hashlib
import json

from .resources import RESOURCES

QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _api_path(res):
    return "api/v1" if not res.group else "apis/%s/%s" % (res.group, res.version)


def _operation(res, action):
    return {
        "operationId": "%s%s" % (action, res.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": res.group, "version": res.version, "kind": res.kind},
        "parameters": [{"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                       for name in QUERY_PARAMS],
        "responses": {"200": {"description": "OK"}},
    }


def group_version_doc(api_path):
    """The OpenAPI v3 document for one 'api/v1' or 'apis/{group}/{version}' path, or None."""
    paths = {}
    for res in RESOURCES:
        if _api_path(res) != api_path:
            continue
        base = "/" + api_path + ("/namespaces/{namespace}/" if res.namespaced else "/") + res.plural
        paths[base] = {"post": _operation(res, "post")}
        if res.stored:
            paths[base + "/{name}"] = {"put": _operation(res, "put"), "patch": _operation(res, "patch")}
    if not paths:
        return None
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-cflab"}, "paths": paths,
            "components": {"schemas": {}}}


def root():
    """GET /openapi/v3: where each group version's document is."""
    paths = {}
    for api_path in sorted(set(_api_path(r) for r in RESOURCES)):
        digest = hashlib.sha256(json.dumps(group_version_doc(api_path), sort_keys=True).encode()).hexdigest()
        paths[api_path] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (api_path, digest[:32].upper())}
    return {"paths": paths}
