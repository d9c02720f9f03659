"""The resource types the double serves, and the discovery documents built from them.

Discovery is the legacy JSON kind (APIVersions, APIGroupList, APIResourceList). kubectl asks
for aggregated discovery (apidiscovery.k8s.io/v2) first and accepts a plain application/json
answer, as it does from any server older than 1.26.
"""

from .label_field_selectors import NODE_FIELDS, POD_FIELDS

CRUD = ["create", "delete", "get", "list", "patch", "update", "watch"]

# What every object can be field-selected on (kubectl delete --wait lists by metadata.name).
GENERIC_FIELDS = {
    "metadata.name": lambda o: o["metadata"].get("name", ""),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
}


class Resource:
    """One REST resource: where it lives, its kind, and how it behaves on writes."""

    def __init__(self, group, version, plural, singular, kind, namespaced, short_names=(), verbs=CRUD,
                 fields=GENERIC_FIELDS, status_subresource=False, stored=True, delete_returns_object=False):
        self.group = group
        self.version = version
        self.plural = plural
        self.singular = singular
        self.kind = kind
        self.namespaced = namespaced
        self.short_names = list(short_names)
        self.verbs = list(verbs)
        self.fields = fields
        # With a status subresource, writes to the main resource leave .status alone.
        self.status_subresource = status_subresource
        self.stored = stored
        # Pods and namespaces are deleted gracefully: the server answers with the object itself.
        self.delete_returns_object = delete_returns_object

    @property
    def group_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def key(self):
        return (self.group_version, self.plural)

    @property
    def qualified(self):
        """'daemonsets.apps', or 'pods' for the core group: how error messages name it."""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    def discovery(self):
        entry = {"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
                 "kind": self.kind, "verbs": self.verbs}
        if self.short_names:
            entry["shortNames"] = self.short_names
        return entry


RESOURCES = [
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ["ns"], status_subresource=True,
             delete_returns_object=True),
    Resource("", "v1", "nodes", "node", "Node", False, ["no"], fields=NODE_FIELDS, status_subresource=True),
    Resource("", "v1", "pods", "pod", "Pod", True, ["po"], fields=POD_FIELDS, status_subresource=True,
             delete_returns_object=True),
    Resource("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"]),
    Resource("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ["ds"], status_subresource=True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
             "ClusterRoleBinding", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
             "SelfSubjectAccessReview", False, verbs=["create"], stored=False),
]
BY_KEY = dict((r.key, r) for r in RESOURCES)
# Subresources listed in discovery: (group_version, entry). kubectl exec wants pods/exec with "create".
SUBRESOURCES = [
    ("v1", {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
            "verbs": ["create", "get"]}),
]
# Namespaces every cluster has, created with the double.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _group_versions():
    out = []
    for res in RESOURCES:
        if res.group and res.group_version not in [gv for _, gv, _ in out]:
            out.append((res.group, res.group_version, res.version))
    return out


def api_versions():
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def _group_doc(group, group_version, version):
    gv = {"groupVersion": group_version, "version": version}
    return {"name": group, "versions": [gv], "preferredVersion": gv}


def api_group_list():
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(*g) for g in _group_versions()]}


def api_group(group):
    for g in _group_versions():
        if g[0] == group:
            return dict(_group_doc(*g), kind="APIGroup", apiVersion="v1")
    return None


def api_resource_list(group_version):
    entries = [r.discovery() for r in RESOURCES if r.group_version == group_version]
    entries += [entry for gv, entry in SUBRESOURCES if gv == group_version]
    if not entries:
        return None
    doc = {"kind": "APIResourceList", "groupVersion": group_version, "resources": entries}
    if group_version != "v1":
        doc["apiVersion"] = "v1"  # the legacy core list has no apiVersion; group lists do
    return doc
