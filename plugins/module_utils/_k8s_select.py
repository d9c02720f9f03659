# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a Chaos Mesh style selector into target pods and containers.

Everything here works on plain pod and node dicts as the API server sends them,
so it is unit-testable without a cluster. ``resolve`` drives the API through a
small reader object (list_pods, list_nodes, read_node) that the caller supplies.

Standard library only, Python 3.8+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import random
import re

from ansible_collections.chaosfleet.stress.plugins.module_utils._units import UnitError, parse_cpu, parse_quantity

MODES = ("one", "all", "fixed", "fixed-percent", "random-max-percent")
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
# Chaos Mesh's podPhaseSelectors also take "!Phase": any phase but that one.
PHASE_CHOICES = PHASES + tuple("!" + phase for phase in PHASES)
# How ``nodes`` and ``node_selectors`` combine: a pod's node must match both (all) or either (any, Chaos Mesh).
NODE_MATCH = ("all", "any")
# Which containers of a pod are targets when container_names is empty: every one, or the first (Chaos Mesh).
DEFAULT_CONTAINERS = ("all", "first")
DEFAULT_PROTECTED = ("kube-system",)
# Up to this many target nodes are read one by one; more are read with one list call.
NODE_GET_LIMIT = 20
# Where the node agent runs (roles/agent); the k8s_targets options of the same names override these.
NODE_ACCESS = ("ssh", "agent")
AGENT_DEFAULTS = {"namespace": "chaosfleet-agent", "labels": {"app.kubernetes.io/name": "chaosfleet-agent"},
                  "container": "agent"}
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# Selector operators as users write them (Chaos Mesh / LabelSelectorRequirement spelling).
_OPERATORS = {"in": "in", "notin": "notin", "exists": "exists", "doesnotexist": "!"}

_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SelectionError(ValueError):
    """Bad selector input, or a selection that must not go ahead."""


class ApiError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP code or None (no answer)."""

    def __init__(self, message, status=None):
        super(ApiError, self).__init__(message)
        self.status = status


# ---------------------------------------------------------------- selectors

def _label_text(value, what):
    """Label values as the API stores them: YAML true/1 become 'true'/'1'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise SelectionError("%s: %r is not a string" % (what, value))


def check_key(key, what="label_selectors"):
    if not isinstance(key, str) or not key:
        raise SelectionError("%s: a key must be a non-empty string, got %r" % (what, key))
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX_RE.match(prefix)):
        raise SelectionError("%s: key %r has an invalid prefix (it must be a DNS subdomain like example.com)"
                             % (what, key))
    if len(name) > 63 or not _NAME_RE.match(name):
        raise SelectionError("%s: key %r is not a valid label key (at most 63 characters: letters, digits, "
                             "'-', '_', '.', starting and ending with a letter or digit)" % (what, key))


def check_value(value, what="label_selectors"):
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        raise SelectionError("%s: value %r is not a valid label value (at most 63 characters: letters, "
                             "digits, '-', '_', '.', starting and ending with a letter or digit)" % (what, value))


def parse_requirements(spec, what="label_selectors", label_values=True):
    """Read a selector given as a dict (key: value) or a list of expressions.

    Expressions are {key, operator: In|NotIn|Exists|DoesNotExist, values}. Returns a
    list of (key, op, values) with op one of '=', 'in', 'notin', 'exists', '!'.
    ``label_values`` checks values against label syntax (annotations are free text).
    """
    if spec is None or spec == {} or spec == []:
        return []
    reqs = []
    if isinstance(spec, dict):
        for key in sorted(spec):
            check_key(key, what)
            value = _label_text(spec[key], "%s.%s" % (what, key))
            if label_values:
                check_value(value, what)
            reqs.append((key, "=", (value,)))
        return reqs
    if not isinstance(spec, list):
        raise SelectionError("%s must be a dict of key: value or a list of expressions, got %s"
                             % (what, type(spec).__name__))
    for index, expr in enumerate(spec):
        where = "%s[%d]" % (what, index)
        if not isinstance(expr, dict) or "key" not in expr:
            raise SelectionError("%s must be a dict with key, operator and values, got %r" % (where, expr))
        unknown = set(expr) - set(("key", "operator", "values"))
        if unknown:
            raise SelectionError("%s has unknown fields %s (use key, operator, values)"
                                 % (where, ", ".join(sorted(unknown))))
        key = expr["key"]
        check_key(key, where)
        operator = str(expr.get("operator", "")).replace("_", "").replace("-", "").lower()
        if operator not in _OPERATORS:
            raise SelectionError("%s: operator %r is not one of In, NotIn, Exists, DoesNotExist"
                                 % (where, expr.get("operator")))
        op = _OPERATORS[operator]
        values = expr.get("values") or []
        if not isinstance(values, list):
            values = [values]
        values = [_label_text(v, where) for v in values]
        if op in ("in", "notin"):
            if not values:
                raise SelectionError("%s: operator %s needs a non-empty values list" % (where, expr["operator"]))
            if label_values:
                for value in values:
                    check_value(value, where)
        elif values:
            raise SelectionError("%s: operator %s takes no values" % (where, expr["operator"]))
        reqs.append((key, op, tuple(values)))
    return reqs


def requirements_string(reqs):
    """The labelSelector query string for requirements (API server syntax)."""
    parts = []
    for key, op, values in reqs:
        if op == "=":
            parts.append("%s=%s" % (key, values[0]))
        elif op in ("in", "notin"):
            parts.append("%s %s (%s)" % (key, op, ",".join(values)))
        elif op == "exists":
            parts.append(key)
        else:
            parts.append("!" + key)
    return ",".join(parts)


def requirements_match(reqs, labels):
    """Match like the API server: NotIn and DoesNotExist also match a missing key."""
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        if op in ("=", "in"):
            ok = present and labels[key] in values
        elif op == "notin":
            ok = not present or labels[key] not in values
        elif op == "exists":
            ok = present
        else:
            ok = not present
        if not ok:
            return False
    return True


def _escape_field(value):
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def field_selector_string(spec):
    """A fieldSelector from a dict (field: value, '!value' for not-equal) or a string."""
    if spec is None or spec == {} or spec == "":
        return ""
    if isinstance(spec, str):
        return spec.strip()
    if not isinstance(spec, dict):
        raise SelectionError("field_selectors must be a dict of field: value or a string like "
                             "'spec.nodeName=node1', got %s" % type(spec).__name__)
    parts = []
    for field in sorted(spec):
        if not isinstance(field, str) or not field:
            raise SelectionError("field_selectors: %r is not a field name" % (field,))
        value = _label_text(spec[field], "field_selectors.%s" % field)
        parts.append("%s=%s" % (field, _escape_field(value)))
    return ",".join(parts)


# ---------------------------------------------------------------- mode

_WHOLE_RE = re.compile(r"-?[0-9]{1,9}", re.ASCII)


def mode_value(mode, value):
    """Validate ``value`` for ``mode``; returns the integer (None for one/all)."""
    if mode not in MODES:
        raise SelectionError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
    if mode in ("one", "all"):
        return None
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise SelectionError("value %r for mode %s is not a whole number" % (value, mode))
    if isinstance(value, float):
        value = int(value)
    if value is None or str(value).strip() == "":
        raise SelectionError("mode %s needs value (%s)" % (
            mode, "a number of pods" if mode == "fixed" else "a percentage from 1 to 100"))
    text = str(value).strip()
    if mode != "fixed" and text.endswith("%"):
        text = text[:-1]
    # ASCII digits only, as in _units: int() alone would take '٣', '1_000' or ' 5'.
    if not _WHOLE_RE.fullmatch(text):
        raise SelectionError("value %r for mode %s is not a whole number" % (value, mode))
    number = int(text)
    if mode == "fixed" and number <= 0:
        raise SelectionError("value for mode fixed must be at least 1, got %d" % number)
    if mode != "fixed" and not 0 < number <= 100:
        raise SelectionError("value for mode %s must be a percentage from 1 to 100, got %d" % (mode, number))
    return number


def mode_count(mode, number, total, rng):
    """How many of ``total`` candidates to pick, and the percentage drawn (random-max-percent).

    As Chaos Mesh: percentages round up, so fixed-percent picks at least one pod;
    random-max-percent draws a percentage from 0 to the value, so it may pick none.
    """
    if total <= 0:
        return 0, None
    if mode == "one":
        return 1, None
    if mode == "all":
        return total, None
    if mode == "fixed":
        return min(number, total), None
    percent = number if mode == "fixed-percent" else rng.randint(0, number)
    return int(math.ceil(total * percent / 100.0)), percent


def pick(candidates, mode, number, seed=None):
    """Pick pods for ``mode``; the same seed and candidates give the same pick.

    Candidates are sorted by namespace and name first, so the API's order does not
    change a seeded pick. Returns (picked pods sorted, percent drawn or None).
    """
    ordered = sorted(candidates, key=pod_key)
    rng = random.Random(seed) if seed is not None else random.Random()
    count, percent = mode_count(mode, number, len(ordered), rng)
    if count >= len(ordered):
        return ordered, percent
    chosen = rng.sample(ordered, count)
    return sorted(chosen, key=pod_key), percent


# ---------------------------------------------------------------- pods

def pod_key(pod):
    meta = pod.get("metadata", {})
    return (meta.get("namespace", ""), meta.get("name", ""))


def split_container_id(container_id):
    """'containerd://<hex>' -> ('containerd', '<hex>'); no scheme -> (None, id)."""
    if not container_id:
        return None, None
    scheme, sep, rest = container_id.partition("://")
    if not sep:
        return None, container_id
    return scheme, rest


# Parsed quantities by (kind, text): thousands of containers share a handful of sizes ("256Mi", "500m").
_QUANTITIES = {}
_QUANTITIES_MAX = 4096


def _quantity(kind, quantity, parse):
    key = (kind, type(quantity), quantity)
    try:
        return _QUANTITIES[key]
    except KeyError:
        pass
    except TypeError:  # not hashable: not a quantity the API sends, parse it as it is
        return parse(quantity)
    value = parse(quantity)
    if len(_QUANTITIES) >= _QUANTITIES_MAX:
        _QUANTITIES.clear()
    _QUANTITIES[key] = value
    return value


def _memory_bytes(quantity):
    try:
        return int(math.ceil(parse_quantity(quantity, "memory")))
    except UnitError:
        return None


def _cpu_cores(quantity):
    try:
        return parse_cpu(quantity, "cpu")
    except UnitError:
        return None


def memory_bytes(quantity):
    """A memory quantity in whole bytes (rounded up, as the API server does); None when unset."""
    if quantity is None or quantity == "":
        return None
    return _quantity("memory", quantity, _memory_bytes)


def cpu_cores(quantity):
    if quantity is None or quantity == "":
        return None
    return _quantity("cpu", quantity, _cpu_cores)


def _effective(resources):
    """requests and limits for cpu/memory, requests defaulting to limits as admission does."""
    limits = {k: v for k, v in (resources.get("limits") or {}).items() if k in ("cpu", "memory")}
    requests = {k: v for k, v in (resources.get("requests") or {}).items() if k in ("cpu", "memory")}
    for name, value in limits.items():
        requests.setdefault(name, value)
    return requests, limits


def compute_qos_class(pod):
    """The pod's QoS class from its spec, by the kubelet's rules (init containers count)."""
    spec = pod.get("spec", {})
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    req_sum, lim_sum = {}, {}
    guaranteed = True
    for container in containers:
        requests, limits = _effective(container.get("resources") or {})
        for name, value in requests.items():
            amount = parse_quantity(value, name)
            if amount != 0:
                req_sum[name] = req_sum.get(name, 0) + amount
        found = set()
        for name, value in limits.items():
            amount = parse_quantity(value, name)
            if amount != 0:
                found.add(name)
                lim_sum[name] = lim_sum.get(name, 0) + amount
        if found != set(("cpu", "memory")):
            guaranteed = False
    if not req_sum and not lim_sum:
        return "BestEffort"
    if guaranteed and req_sum == lim_sum:
        return "Guaranteed"
    return "Burstable"


def qos_class(pod):
    try:
        return pod.get("status", {}).get("qosClass") or compute_qos_class(pod)
    except UnitError:
        return None


def _state_reason(status):
    """None when the container runs; otherwise why it cannot be a target."""
    state = status.get("state") or {}
    if not state or "running" in state:
        return None
    for name in ("waiting", "terminated"):
        if name in state:
            reason = (state[name] or {}).get("reason")
            return "%s (%s)" % (name, reason) if reason else name
    return "not running"


def pod_containers(pod, container_names=None, include_ephemeral=False, default_containers="all"):
    """Targetable containers of a pod, and the ones skipped with a reason.

    Regular containers always count; ephemeral ones only on request; init containers
    and the sandbox never (the sandbox is not in the pod spec at all). A container
    without a containerID has not been created yet; one not running has no processes.
    Without ``container_names``, ``default_containers="first"`` takes only the pod's first
    container, as Chaos Mesh does.
    """
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    if not container_names and default_containers == "first" and spec.get("containers"):
        container_names = [spec["containers"][0].get("name")]
    groups = [(spec.get("containers") or [], status.get("containerStatuses") or [], False)]
    if include_ephemeral:
        groups.append((spec.get("ephemeralContainers") or [], status.get("ephemeralContainerStatuses") or [],
                       True))
    wanted = set(container_names) if container_names else None
    targets, skipped = [], []
    for spec_list, status_list, ephemeral in groups:
        by_name = dict((s.get("name"), s) for s in status_list)
        for container in spec_list:
            name = container.get("name")
            if wanted is not None and name not in wanted:
                continue
            cstatus = by_name.get(name) or {}
            container_id = cstatus.get("containerID")
            if not container_id:
                skipped.append({"container": name, "reason": "not started yet: %s"
                                % (_state_reason(cstatus) or "no container status")})
                continue
            reason = _state_reason(cstatus)
            if reason:
                skipped.append({"container": name, "reason": reason})
                continue
            runtime, bare = split_container_id(container_id)
            requests, limits = _effective(container.get("resources") or {})
            targets.append({
                "name": name,
                "container_id": container_id,
                "id": bare,
                "runtime": runtime,
                "image": cstatus.get("image") or container.get("image"),
                "ephemeral": ephemeral,
                "memory_request_bytes": memory_bytes(requests.get("memory")),
                "memory_limit_bytes": memory_bytes(limits.get("memory")),
                "cpu_request_cores": cpu_cores(requests.get("cpu")),
                "cpu_limit_cores": cpu_cores(limits.get("cpu")),
                "restart_count": cstatus.get("restartCount", 0),
                "ready": bool(cstatus.get("ready")),
            })
    return targets, skipped


def node_internal_ip(node):
    for address in (node or {}).get("status", {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return address.get("address")
    return None


# ---------------------------------------------------------------- options

def parse_options(params):
    """Check every selection option before any API call; returns a plain dict of criteria."""
    namespaces = list(params.get("namespaces") or [])
    pods = params.get("pods") or {}
    if not isinstance(pods, dict):
        raise SelectionError("pods must be a dict of namespace: [pod names]")
    pod_names = {}
    for namespace, names in pods.items():
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise SelectionError("pods.%s must be a non-empty list of pod names" % namespace)
        pod_names[namespace] = set(names)
    phases = list(params.get("pod_phase_selectors") or [])
    for phase in phases:
        if phase not in PHASE_CHOICES:
            raise SelectionError("pod_phase_selectors: %r is not a pod phase (%s, or one of them after '!')"
                                 % (phase, ", ".join(PHASES)))
    node_match = params.get("node_match") or "all"
    if node_match not in NODE_MATCH:
        raise SelectionError("node_match must be one of %s, got %r" % (", ".join(NODE_MATCH), node_match))
    default_containers = params.get("default_containers") or "all"
    if default_containers not in DEFAULT_CONTAINERS:
        raise SelectionError("default_containers must be one of %s, got %r"
                             % (", ".join(DEFAULT_CONTAINERS), default_containers))
    protected = set(params.get("protected_namespaces") or [])
    allow_protected = bool(params.get("allow_protected_namespaces"))
    if pod_names:
        to_list = [ns for ns in sorted(pod_names) if not namespaces or ns in namespaces]
    else:
        to_list = sorted(set(namespaces))
    if not allow_protected:
        refused = sorted(set(to_list) & protected)
        if refused:
            raise SelectionError(
                "namespace %s is protected (protected_namespaces); set allow_protected_namespaces=true "
                "to select pods there" % ", ".join(refused))
    label_reqs = parse_requirements(params.get("label_selectors"), "label_selectors")
    node_reqs = parse_requirements(params.get("node_selectors"), "node_selectors")
    mode = params.get("mode") or "one"
    return {
        "namespaces": namespaces,
        "list_namespaces": to_list,
        "cluster_wide": not namespaces and not pod_names,
        "pod_names": pod_names,
        "label_reqs": label_reqs,
        "label_selector": requirements_string(label_reqs),
        "field_selector": field_selector_string(params.get("field_selectors")),
        "annotation_reqs": parse_requirements(params.get("annotation_selectors"), "annotation_selectors",
                                              label_values=False),
        "phases": phases,
        "node_reqs": node_reqs,
        "node_selector": requirements_string(node_reqs),
        "nodes": list(params.get("nodes") or []),
        "container_names": list(params.get("container_names") or []),
        "default_containers": default_containers,
        "node_match": node_match,
        "include_ephemeral": bool(params.get("include_ephemeral")),
        "protected": protected,
        "allow_protected": allow_protected,
        "mode": mode,
        "value": mode_value(mode, params.get("value")),
        # Read as text so that 42 and "42" pick alike; None keeps the pick unseeded.
        "seed": None if params.get("seed") is None else str(params["seed"]),
        "agent": agent_options(params),
    }


def agent_options(params):
    """The agent to look up ({namespace, selector, container}), or None for SSH access."""
    access = params.get("node_access") or "ssh"
    if access not in NODE_ACCESS:
        raise SelectionError("node_access must be one of %s, got %r" % (", ".join(NODE_ACCESS), access))
    if access == "ssh":
        return None
    agent = dict(AGENT_DEFAULTS)
    for key in agent:
        value = params.get("agent_" + key)
        if value not in (None, "", {}):
            agent[key] = value
    if not isinstance(agent["namespace"], str) or not _DNS_LABEL_RE.match(agent["namespace"]):
        raise SelectionError("agent_namespace %r is not a namespace name" % (agent["namespace"],))
    if not isinstance(agent["labels"], dict):
        raise SelectionError("agent_labels must be a dict of label: value, got %s" % type(agent["labels"]).__name__)
    agent["selector"] = requirements_string(parse_requirements(agent["labels"], "agent_labels"))
    return agent


def pod_ready(pod):
    """Running, with the Ready condition true (what kubectl exec and a rollout wait for)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def agents_by_node(agent_pods, nodes, container):
    """{node: {namespace, pod, container, ready, problem}} for each of ``nodes``.

    A node's agent is its Ready pod (the newest when a rollout briefly runs two); without one, the entry
    says why, so a play can name every node it cannot reach before anything starts.
    """
    on_node = {}
    for pod in agent_pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node in nodes:
            on_node.setdefault(node, []).append(pod)
    out = {}
    for node in sorted(nodes):
        pods = sorted(on_node.get(node, []), key=lambda p: (pod_ready(p), p["metadata"].get("creationTimestamp") or ""),
                      reverse=True)
        if not pods:
            out[node] = {"namespace": None, "pod": None, "container": container, "ready": False,
                         "problem": "no agent pod on this node"}
            continue
        best = pods[0]
        names = [c.get("name") for c in (best.get("spec") or {}).get("containers") or []]
        entry = {"namespace": best["metadata"].get("namespace"), "pod": best["metadata"].get("name"),
                 "container": container, "ready": pod_ready(best), "problem": None}
        if container not in names:
            entry.update(ready=False, problem="agent pod %s has no container %r (it has %s)"
                         % (entry["pod"], container, ", ".join(names) or "none"))
        elif not entry["ready"]:
            entry["problem"] = "agent pod %s is %s, not Ready" % (
                entry["pod"], (best.get("status") or {}).get("phase") or "in no phase")
        out[node] = entry
    return out


def agent_problems(agents):
    """One line naming each node whose agent cannot take an exec, or an empty string."""
    return "; ".join("%s: %s" % (node, info["problem"]) for node, info in sorted(agents.items())
                     if not info["ready"])


def describe(criteria):
    """One sentence naming what was searched, for results and error messages."""
    if criteria["pod_names"]:
        names = ["%s/%s" % (ns, n) for ns in sorted(criteria["pod_names"]) for n in sorted(criteria["pod_names"][ns])]
        text = "pods named %s" % ", ".join(names)
        if criteria["namespaces"]:
            text += " within namespaces %s" % ", ".join(criteria["namespaces"])
    elif criteria["namespaces"]:
        plural = "s" if len(criteria["namespaces"]) > 1 else ""
        text = "pods in namespace%s %s" % (plural, ", ".join(criteria["namespaces"]))
    else:
        text = "pods in all namespaces"
        if criteria["protected"] and not criteria["allow_protected"]:
            text += " except protected %s" % ", ".join(sorted(criteria["protected"]))
    if criteria["label_selector"]:
        text += " with labels '%s'" % criteria["label_selector"]
    if criteria["field_selector"]:
        text += " with fields '%s'" % criteria["field_selector"]
    if criteria["annotation_reqs"]:
        text += " with annotations '%s'" % requirements_string(criteria["annotation_reqs"])
    if criteria["phases"]:
        text += " %s" % phase_text(criteria["phases"])
    if criteria["node_selector"]:
        text += " on nodes labelled '%s'" % criteria["node_selector"]
    if criteria["nodes"]:
        text += " %son node%s %s" % ("or " if criteria["node_selector"] and criteria.get("node_match") == "any" else "",
                                     "s" if len(criteria["nodes"]) > 1 else "", ", ".join(criteria["nodes"]))
    if criteria["container_names"]:
        text += " having container%s %s" % ("s" if len(criteria["container_names"]) > 1 else "",
                                            ", ".join(criteria["container_names"]))
    return text


# ---------------------------------------------------------------- filtering

def filter_pods(pods, criteria, allowed_nodes=None):
    """Apply the client-side part of the selector.

    Returns (candidates, skipped, funnel): candidates are (pod, containers) pairs with at
    least one targetable container; skipped lists containers that matched but cannot be
    targets; funnel is [(stage, pods left)] for messages that explain an empty result.
    """
    funnel = [("listed", len(pods))]

    def stage(name, keep, items):
        kept = [p for p in items if keep(p)]
        funnel.append((name, len(kept)))
        return kept

    items = pods
    if criteria["pod_names"]:
        items = stage("named", lambda p: p["metadata"].get("name") in
                      criteria["pod_names"].get(p["metadata"].get("namespace"), ()), items)
    if criteria["protected"] and not criteria["allow_protected"]:
        items = stage("outside protected namespaces",
                      lambda p: p["metadata"].get("namespace") not in criteria["protected"], items)
    if criteria["label_reqs"]:  # the server filtered already; this guards against one that did not
        items = stage("with matching labels",
                      lambda p: requirements_match(criteria["label_reqs"], p["metadata"].get("labels")), items)
    if criteria["annotation_reqs"]:
        items = stage("with matching annotations",
                      lambda p: requirements_match(criteria["annotation_reqs"], p["metadata"].get("annotations")),
                      items)
    if criteria["phases"]:
        items = stage(phase_text(criteria["phases"]),
                      lambda p: phase_match(criteria["phases"], p.get("status", {}).get("phase")), items)
    if allowed_nodes is not None:
        items = stage("on the selected nodes", lambda p: p.get("spec", {}).get("nodeName") in allowed_nodes, items)

    candidates, skipped = [], []
    for pod in items:
        containers, not_ready = pod_containers(pod, criteria["container_names"], criteria["include_ephemeral"],
                                               criteria.get("default_containers") or "all")
        meta = pod["metadata"]
        for entry in not_ready:
            skipped.append(dict(entry, namespace=meta.get("namespace"), pod=meta.get("name"),
                                pod_uid=meta.get("uid")))
        if containers:
            candidates.append((pod, containers))
    if criteria["container_names"]:
        with_names = sum(1 for p in items if any(c.get("name") in criteria["container_names"]
                                                 for c in (p.get("spec", {}).get("containers") or [])
                                                 + (p.get("spec", {}).get("ephemeralContainers") or [])))
        funnel.append(("having the named containers", with_names))
    funnel.append(("with a running container", len(candidates)))
    return candidates, skipped, funnel


def phase_match(phases, phase):
    """Chaos Mesh's podPhaseSelectors: any of the plain phases (all when none is given), none of the '!' ones."""
    wanted = [p for p in phases if not p.startswith("!")]
    refused = [p[1:] for p in phases if p.startswith("!")]
    return (not wanted or phase in wanted) and phase not in refused


def phase_text(phases):
    wanted = [p for p in phases if not p.startswith("!")]
    refused = [p[1:] for p in phases if p.startswith("!")]
    parts = (["in phase %s" % " or ".join(wanted)] if wanted else []) + \
        (["not in phase %s" % " or ".join(refused)] if refused else [])
    return " and ".join(parts)


def funnel_text(funnel):
    return "; ".join("%d %s" % (count, name) if name != "listed" else "%d listed" % count
                     for name, count in funnel)


def target_entry(pod, containers, node_ip=None):
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    return {
        "namespace": meta.get("namespace"),
        "pod": meta.get("name"),
        "uid": meta.get("uid"),
        "node": spec.get("nodeName"),
        "node_ip": node_ip,
        "qos_class": qos_class(pod),
        "phase": status.get("phase"),
        "labels": meta.get("labels") or {},
        "containers": containers,
    }


def group_by_node(targets):
    """{node: {node_ip, targets: [{namespace, pod, pod_uid, qos_class, container_ids, containers}]}}.

    ``container_ids`` are bare IDs (no runtime scheme), as the node-side modules take them.
    """
    grouped = {}
    for target in targets:
        node = grouped.setdefault(target["node"], {"node_ip": target["node_ip"], "targets": []})
        if node["node_ip"] is None:
            node["node_ip"] = target["node_ip"]
        node["targets"].append({
            "namespace": target["namespace"],
            "pod": target["pod"],
            "pod_uid": target["uid"],
            "qos_class": target["qos_class"],
            "container_ids": [c["id"] for c in target["containers"]],
            "containers": [c["name"] for c in target["containers"]],
        })
    return grouped


# ---------------------------------------------------------------- resolve

def resolve(criteria, api):
    """Run the selection against ``api`` (list_pods, list_nodes, read_node).

    API calls: at most one node list for node_selectors, one pod list per namespace
    (or one cluster-wide), then the target nodes' addresses (one read each up to
    NODE_GET_LIMIT nodes, else one list). Never one call per pod.
    """
    warnings = []
    node_objs = {}
    allowed_nodes = None
    if criteria["node_reqs"]:
        for node in api.list_nodes(criteria["node_selector"]):
            node_objs[node["metadata"]["name"]] = node
        allowed_nodes = set(node_objs)
    if criteria["nodes"]:
        named = set(criteria["nodes"])
        if allowed_nodes is None:
            allowed_nodes = named
        elif criteria.get("node_match") == "any":  # Chaos Mesh: the named nodes and the labelled ones
            allowed_nodes = allowed_nodes | named
        else:
            allowed_nodes = allowed_nodes & named

    pods = []
    if criteria["cluster_wide"]:
        pods.extend(api.list_pods(None, criteria["label_selector"], criteria["field_selector"]))
    else:
        for namespace in criteria["list_namespaces"]:
            pods.extend(api.list_pods(namespace, criteria["label_selector"], criteria["field_selector"]))

    candidates, skipped, funnel = filter_pods(pods, criteria, allowed_nodes)
    if criteria["pod_names"]:
        found = set(pod_key(p) for p in pods)
        missing = sorted("%s/%s" % (ns, n) for ns, names in criteria["pod_names"].items() for n in names
                         if (ns, n) not in found and (not criteria["namespaces"] or ns in criteria["namespaces"]))
        if missing:
            warnings.append("named pods not found (or not matching the label and field selectors): %s"
                            % ", ".join(missing))

    by_pod = dict((pod_key(p), c) for p, c in candidates)
    picked, percent = pick([p for p, _containers in candidates], criteria["mode"], criteria["value"], criteria["seed"])
    if candidates and not picked:
        warnings.append("mode random-max-percent drew 0%% of %d candidate pods this time; no targets"
                        % len(candidates))

    node_ips = _node_addresses(api, picked, node_objs, warnings)
    targets = [target_entry(p, by_pod[pod_key(p)], node_ips.get(p.get("spec", {}).get("nodeName")))
               for p in picked]
    searched = {
        "description": describe(criteria),
        "namespaces": criteria["list_namespaces"],
        "label_selector": criteria["label_selector"],
        "field_selector": criteria["field_selector"],
        "node_selector": criteria["node_selector"],
        "pod_phases": criteria["phases"],
        "funnel": [{"stage": name, "pods": count} for name, count in funnel],
        "candidates": len(candidates),
        "mode": criteria["mode"],
        "value": criteria["value"],
        "drawn_percent": percent if criteria["mode"] == "random-max-percent" else None,
        "selected": len(targets),
    }
    result = {"targets": targets, "by_node": group_by_node(targets), "skipped": skipped,
              "searched": searched, "warnings": warnings}
    if criteria.get("agent"):
        result["agents"] = find_agents(api, criteria["agent"], sorted(result["by_node"]))
    return result


def find_agents(api, agent, nodes):
    """The picked nodes' agents: one permission check and one pod list in the agent's namespace."""
    if not nodes:
        return {}
    denied = api.exec_denied(agent["namespace"])
    if denied:
        raise ApiError("node_access=agent needs the right to create pods/exec in namespace %s, and this API user "
                       "lacks it (%s); nothing was started. Grant it with the Role in "
                       "docs/examples/rbac-agent-operator.yml" % (agent["namespace"], denied), 403)
    pods = api.list_pods(agent["namespace"], agent["selector"], "")
    return agents_by_node(pods, set(nodes), agent["container"])


def _node_addresses(api, picked, node_objs, warnings):
    """InternalIP of each picked pod's node; the pod's hostIP when nodes cannot be read."""
    wanted = sorted(set(p.get("spec", {}).get("nodeName") for p in picked) - set(node_objs) - set([None]))
    if wanted:
        try:
            if len(wanted) <= NODE_GET_LIMIT:
                for name in wanted:
                    try:
                        node_objs[name] = api.read_node(name)
                    except ApiError as exc:
                        if exc.status != 404:
                            raise
                        warnings.append("node %s was not found; using its pods' hostIP" % name)
            else:
                for node in api.list_nodes(""):
                    node_objs[node["metadata"]["name"]] = node
        except ApiError as exc:
            if exc.status != 403:
                raise
            warnings.append("not allowed to read nodes, so node_ip is the pods' hostIP: %s" % exc)
    ips = {}
    for pod in picked:
        name = pod.get("spec", {}).get("nodeName")
        if name not in ips or ips[name] is None:
            ips[name] = node_internal_ip(node_objs.get(name)) or pod.get("status", {}).get("hostIP")
    return ips
