"""Who may do what in the double, and the API server's 403 wording.

One ``Policy`` per identity. It is not RBAC (no Roles are evaluated): it is the handful of
switches tests need, answered the same way for requests and for SelfSubjectAccessReviews.
"""

READ_VERBS = frozenset(["get", "list", "watch"])
# Paths every authenticated user may read (system:discovery / system:basic-user).
DISCOVERY_PATHS = ("/version", "/api", "/apis", "/openapi", "/healthz", "/livez", "/readyz")


class Policy:
    """What one user may do.

    ``namespaces``: namespaces whose objects the user may read (None = all, and cluster-scoped
    objects too). ``nodes``: may read nodes. ``exec_namespaces``: namespaces where the user may
    create pods/exec (None = everywhere). ``write``: may create, update, patch and delete what
    it may read.
    """

    def __init__(self, user, namespaces=None, nodes=True, exec_namespaces=frozenset(), write=False):
        self.user = user
        self.namespaces = None if namespaces is None else set(namespaces)
        self.nodes = nodes
        self.exec_namespaces = None if exec_namespaces is None else frozenset(exec_namespaces)
        self.write = write

    @classmethod
    def admin(cls, user):
        return cls(user, namespaces=None, nodes=True, exec_namespaces=None, write=True)

    def may_list_pods(self, namespace):
        return self.namespaces is None or (namespace is not None and namespace in self.namespaces)

    def allows(self, verb, group, resource, subresource="", namespace=None):
        """The authorizer's answer for one resource request (namespace None = cluster scope)."""
        if group == "authorization.k8s.io" and resource.startswith("selfsubject"):
            return verb == "create"  # every authenticated user may ask about itself
        if group == "" and resource == "pods" and subresource in ("exec", "attach"):
            # kube-apiserver authorizes a WebSocket exec (a GET) as "create" since 1.30.
            return verb in ("create", "get") and namespace is not None and (
                self.exec_namespaces is None or namespace in self.exec_namespaces)
        if group == "" and resource == "nodes":
            readable = self.nodes
        else:
            readable = self.may_list_pods(namespace)
        if verb in READ_VERBS:
            return readable
        return self.write and readable

    def allows_path(self, path):
        """Non-resource URLs: discovery for everyone, the rest for cluster-wide writers."""
        if any(path == p or path.startswith(p + "/") for p in DISCOVERY_PATHS):
            return True
        return self.write and self.namespaces is None


def forbidden_message(user, verb, group, resource, subresource="", namespace=None, name=None):
    """The RBAC authorizer's sentence, e.g. 'pods "web" is forbidden: User "u" cannot create
    resource "pods/exec" in API group "" in the namespace "shop"'."""
    qualified = "%s.%s" % (resource, group) if group else resource
    named = ' "%s"' % name if name else ""
    full = resource + ("/" + subresource if subresource else "")
    where = 'in the namespace "%s"' % namespace if namespace else "at the cluster scope"
    return '%s%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
        qualified, named, user, verb, full, group, where)
