# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chaos Mesh StressChaos and Schedule manifests, translated into what this collection runs.

Controller side, pure functions (no Ansible objects): the ``chaosfleet.stress.stresschaos`` action calls
them and the playbook only sequences. Every field of a manifest is either honoured (it becomes a
k8s_targets option, an experiment role variable or a stressor setting, and the translation table says
what Chaos Mesh would do with it and what runs here) or refused with one line naming its path. Nothing
here starts anything.

- ``load_documents(sources, read)``: manifests given as files, YAML text or dicts, several per file.
- ``translate(documents, settings)``: {experiments, schedules, awx, problems, warnings}.
- ``resolve_target(experiment, target, node_memory_bytes)``: one picked container's sizes and table rows.
- ``cron_to_rrule(expr, start)``: a Chaos Mesh schedule as an AWX RRULE.
- ``container_records(experiment, assignments, results)``: Chaos Mesh's ``containerRecords`` from results.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import math
import re
import shlex

from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_select import (
    MODES, PHASES, SelectionError, mode_value, parse_requirements)
from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import (
    WORKER_LIMITS, PlanError, check_stress_ng_args)
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import (
    MAX_DURATION_SECONDS, UnitError, format_bytes, format_duration, parse_bool)

API_VERSION = "chaos-mesh.org/v1alpha1"
# Manifest-level switches (metadata.annotations); the play's stresschaos_* variables set the same for every
# manifest, and an annotation wins over the play.
ANNOTATION_PERCENT_OF = "stress.chaosfleet.io/memory-percent-of"   # limit (default) | node
ANNOTATION_VERSION = "stress.chaosfleet.io/chaos-mesh-version"     # "2.1" and older: memory size per worker
PERCENT_OF = ("limit", "node")

TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
METADATA_FIELDS = ("name", "namespace", "labels", "annotations")
# What `kubectl get -o yaml` adds: read and ignored.
METADATA_IGNORED = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "finalizers",
                    "selfLink", "ownerReferences", "generateName", "deletionTimestamp",
                    "deletionGracePeriodSeconds")
SPEC_FIELDS = ("selector", "mode", "value", "containerNames", "stressors", "stressngStressors", "duration",
               "remoteCluster")
SELECTOR_FIELDS = ("namespaces", "nodes", "pods", "nodeSelectors", "fieldSelectors", "labelSelectors",
                   "annotationSelectors", "podPhaseSelectors", "expressionSelectors")
STRESSOR_FIELDS = ("memory", "cpu")
MEMORY_FIELDS = ("workers", "size", "oomScoreAdj", "options")
CPU_FIELDS = ("workers", "load", "options")
SCHEDULE_FIELDS = ("schedule", "startingDeadlineSeconds", "concurrencyPolicy", "historyLimit", "type",
                   "stressChaos")
CONCURRENCY = ("Forbid", "Allow")
# Schedule children of other types, named when they appear (they cannot be stressed here).
OTHER_CHAOS = ("podChaos", "networkChaos", "ioChaos", "timeChaos", "kernelChaos", "dnsChaos", "httpChaos",
               "jvmChaos", "awsChaos", "gcpChaos", "azureChaos", "blockChaos", "physicalmachineChaos",
               "workflow")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")

ISSUES = {
    "stressng": "chaos-mesh#3783",
    "percent": "chaos-mesh#4536, #4547, #4507",
    "timeout": "chaos-mesh#4452",
}


class ManifestError(ValueError):
    """A source that cannot be read as manifests at all."""


# ---------------------------------------------------------------- loading

def load_documents(sources, read=None):
    """[(label, document)] from ``sources``: dicts (one manifest), YAML text, or file paths (``read(path)``
    returns the text). A file or text may hold several documents; empty documents are skipped.
    Raises ManifestError naming the source that is not YAML."""
    import yaml  # controller only

    if isinstance(sources, (str, dict)):
        sources = [sources]
    if not isinstance(sources, list):
        raise ManifestError("manifests must be a list of files, YAML texts or manifests, got %s"
                            % type(sources).__name__)
    out = []
    for index, source in enumerate(sources):
        if isinstance(source, dict):
            out.append(("manifest %d" % (index + 1), source))
            continue
        if not isinstance(source, str) or not source.strip():
            raise ManifestError("manifest %d is neither a file, YAML text nor a mapping" % (index + 1))
        is_text = "\n" in source or source.lstrip().startswith(("{", "apiVersion", "kind", "---"))
        label = "manifest %d" % (index + 1) if is_text else source
        text = source if is_text else read(source)
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise ManifestError("%s is not YAML: %s" % (label, " ".join(str(exc).split())))
        docs = [d for d in docs if d is not None]
        for number, doc in enumerate(docs):
            out.append(("%s#%d" % (label, number + 1) if len(docs) > 1 else label, doc))
    return out


# ---------------------------------------------------------------- small readers


class Checker(object):
    """Collects one line per problem, each naming the field's path."""

    def __init__(self, where):
        self.where = where
        self.problems = []

    def add(self, path, text):
        self.problems.append("%s: %s: %s" % (self.where, path, text))

    def unknown(self, value, known, path, hint=None):
        if not isinstance(value, dict):
            return
        for key in sorted(set(value) - set(known), key=str):
            self.add("%s.%s" % (path, key) if path else str(key),
                     hint.get(key) if hint and key in hint else
                     "unknown field (known here: %s); nothing was started" % ", ".join(known))

    def mapping(self, value, path, required=False):
        if value is None:
            if required:
                self.add(path, "required")
            return {}
        if not isinstance(value, dict):
            self.add(path, "expected a mapping, got %s" % _type_name(value))
            return {}
        return value

    def integer(self, value, path, low=None, high=None):
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, "expected a whole number, got %s %r" % (_type_name(value), value))
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            self.add(path, "%d is out of range (%s to %s)" % (
                value, low if low is not None else "-inf", high if high is not None else "inf"))
            return None
        return value

    def string(self, value, path, allow_empty=False):
        if not isinstance(value, str):
            self.add(path, "expected a string, got %s %r" % (_type_name(value), value))
            return None
        if not allow_empty and not value.strip():
            self.add(path, "must not be empty")
            return None
        return value

    def strings(self, value, path):
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(path, "expected a list of strings, got %r" % (value,))
            return []
        return value

    def string_map(self, value, path):
        if value is None:
            return {}
        plain = all(isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
                    for k, v in (value.items() if isinstance(value, dict) else ()))
        if not isinstance(value, dict) or not plain:
            self.add(path, "expected a mapping of strings (key: value), got %r" % (value,))
            return {}
        return dict((k, str(v)) for k, v in value.items())


def _type_name(value):
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


_GO_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text):
    """Seconds of a Go duration ('30s', '1h30m', '1.5h', '500ms'), as Chaos Mesh reads ``duration``; None if not one."""
    if not isinstance(text, str) or not text or len(text) > 64:
        return None
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _GO_DURATION_RE.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


# Chaos Mesh reads memory sizes with go-humanize: case-insensitive, KB/MB/GB decimal, KiB/MiB/GiB binary.
_CM_UNITS = {"": 1, "b": 1, "byte": 1, "bytes": 1,
             "k": 10 ** 3, "kb": 10 ** 3, "ki": 2 ** 10, "kib": 2 ** 10,
             "m": 10 ** 6, "mb": 10 ** 6, "mi": 2 ** 20, "mib": 2 ** 20,
             "g": 10 ** 9, "gb": 10 ** 9, "gi": 2 ** 30, "gib": 2 ** 30,
             "t": 10 ** 12, "tb": 10 ** 12, "ti": 2 ** 40, "tib": 2 ** 40}
_CM_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$", re.ASCII)
_CM_PERCENT_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$", re.ASCII)


def chaos_mesh_size(text):
    """('bytes', n) or ('percent', p) for a Chaos Mesh memory size; raises ValueError with the reason."""
    percent = _CM_PERCENT_RE.match(text)
    if percent:
        value = float(percent.group(1))
        if not 0 < value <= 100:
            raise ValueError("%s%% is out of range (a percentage above 0 and at most 100)" % percent.group(1))
        return "percent", value
    match = _CM_SIZE_RE.match(text)
    if not match:
        raise ValueError("%r is not a size (examples: 256MB, 1GiB, 25%%)" % text)
    unit = match.group(2).lower()
    if unit not in _CM_UNITS:
        raise ValueError("%r has an unknown unit %r (B, KB, MB, GB, TB are decimal; KiB, MiB, GiB, TiB binary)"
                         % (text, match.group(2)))
    nbytes = int(float(match.group(1)) * _CM_UNITS[unit])
    if nbytes <= 0:
        raise ValueError("%r is not above zero" % text)
    return "bytes", nbytes


def _mib(nbytes):
    return format_bytes(nbytes)


def _cores(value):
    return "%.2f cores" % value


# ---------------------------------------------------------------- settings

DEFAULT_SETTINGS = {
    "memory_percent_of": "limit",     # or node: Chaos Mesh's "% of the node's RAM"
    "chaos_mesh_version": "",         # "2.1" (or older): memory size is per worker
    "allow_stressng": False,          # run stressngStressors as given
    "max_duration": "",               # duration for manifests without one (and the most any may ask)
    "name_prefix": "",                # put before every experiment name (tests, several teams)
    "schedule_start": "",             # DTSTART of converted schedules (ISO time in their zone); empty: now
    "job_template_prefix": "chaosfleet stresschaos",
}


def settings_of(raw):
    """The play's stresschaos_* settings, checked; returns (settings, problems)."""
    out = dict(DEFAULT_SETTINGS)
    problems = []
    for key, value in (raw or {}).items():
        if key not in out:
            problems.append("settings: unknown setting %r (known: %s)" % (key, ", ".join(sorted(out))))
        elif value is not None:
            out[key] = value
    if out["memory_percent_of"] not in PERCENT_OF:
        problems.append("stresschaos_memory_percent_of must be limit or node, got %r" % (out["memory_percent_of"],))
    try:
        out["allow_stressng"] = parse_bool(out["allow_stressng"], "stresschaos_allow_stressng")
    except UnitError as exc:
        problems.append(str(exc))
        out["allow_stressng"] = False
    out["max_duration_seconds"] = None
    if out["max_duration"] not in ("", None):
        seconds = go_duration(str(out["max_duration"]).strip())
        if seconds is None and re.match(r"^[0-9]+$", str(out["max_duration"]).strip()):
            seconds = float(out["max_duration"])
        if not seconds or seconds > MAX_DURATION_SECONDS:
            problems.append("stresschaos_max_duration %r is not a duration from 1s to 24h" % (out["max_duration"],))
        else:
            out["max_duration_seconds"] = seconds
    if not re.match(r"^[A-Za-z0-9._-]*$", str(out["name_prefix"] or "")):
        problems.append("stresschaos_name_prefix %r may only use letters, digits, '.', '_' and '-'"
                        % (out["name_prefix"],))
    return out, problems


def legacy_per_worker(version):
    """True for Chaos Mesh 2.1 and older, where memory size was per worker."""
    match = re.match(r"^v?([0-9]+)\.([0-9]+)", str(version or "").strip())
    return bool(match) and (int(match.group(1)), int(match.group(2))) < (2, 2)


# ---------------------------------------------------------------- one StressChaos


def row(field, chaos_mesh, here, why=""):
    """One line of the translation table; ``why`` is set where the two differ."""
    return {"field": field, "chaos_mesh": chaos_mesh, "here": here, "differs": bool(why), "why": why}


def _selector(check, spec, namespace, table):
    """k8s_targets options from spec.selector, with their table rows."""
    selector = check.mapping(spec.get("selector"), "spec.selector")
    check.unknown(selector, SELECTOR_FIELDS, "spec.selector")
    k8s = {}
    pods = selector.get("pods")
    if pods is not None:
        if not isinstance(pods, dict) or not pods or not all(
                isinstance(ns, str) and isinstance(names, list) and names and all(isinstance(n, str) for n in names)
                for ns, names in pods.items()):
            check.add("spec.selector.pods", "expected a mapping of namespace: [pod names], got %r" % (pods,))
        else:
            k8s.update(pods=dict((ns, list(names)) for ns, names in pods.items()), namespaces=[],
                       pod_phase_selectors=[])
            others = sorted(k for k in selector if k != "pods" and selector[k] not in (None, [], {}))
            table.append(row("spec.selector.pods", "these pods, by name; the other selectors are not used",
                             "the same: %s%s" % (", ".join("%s/%s" % (ns, n) for ns in sorted(pods)
                                                           for n in pods[ns]),
                                                 ("; ignored: " + ", ".join(others)) if others else "")))
            # Chaos Mesh looks named pods up whatever their phase; a container that does not run is skipped here.
            for key in others:
                _check_selector_field(check, selector, key)
            return k8s
    namespaces = check.strings(selector.get("namespaces"), "spec.selector.namespaces")
    if namespaces:
        k8s["namespaces"] = namespaces
        table.append(row("spec.selector.namespaces", ", ".join(namespaces), "the same"))
    else:
        k8s["namespaces"] = [namespace]
        table.append(row("spec.selector.namespaces", "the manifest's namespace (%s)" % namespace,
                         "the same (%s)" % namespace))
    labels = check.string_map(selector.get("labelSelectors"), "spec.selector.labelSelectors")
    expressions = selector.get("expressionSelectors")
    requirements = [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(labels.items())]
    if expressions is not None:
        if not isinstance(expressions, list):
            check.add("spec.selector.expressionSelectors", "expected a list of {key, operator, values}, got %r"
                      % (expressions,))
        else:
            requirements += expressions
    if requirements:
        try:
            parse_requirements(requirements, "spec.selector.expressionSelectors" if expressions else
                               "spec.selector.labelSelectors")
            k8s["label_selectors"] = requirements if expressions else labels
        except SelectionError as exc:
            check.add("spec.selector.labelSelectors/expressionSelectors", str(exc))
    if labels:
        table.append(row("spec.selector.labelSelectors", _pairs(labels), "the same, sent to the API server"))
    if expressions:
        table.append(row("spec.selector.expressionSelectors", "%d expression(s), ANDed with labelSelectors"
                         % len(expressions), "the same, sent to the API server"))
    annotations = check.string_map(selector.get("annotationSelectors"), "spec.selector.annotationSelectors")
    if annotations:
        k8s["annotation_selectors"] = annotations
        table.append(row("spec.selector.annotationSelectors", _pairs(annotations), "the same, checked on the controller"))
    fields = check.string_map(selector.get("fieldSelectors"), "spec.selector.fieldSelectors")
    if fields:
        k8s["field_selectors"] = fields
        table.append(row("spec.selector.fieldSelectors", _pairs(fields), "the same, sent to the API server"))
    nodes = check.strings(selector.get("nodes"), "spec.selector.nodes")
    node_labels = check.string_map(selector.get("nodeSelectors"), "spec.selector.nodeSelectors")
    if nodes:
        k8s["nodes"] = nodes
    if node_labels:
        k8s["node_selectors"] = node_labels
    if nodes and node_labels:
        k8s["node_match"] = "any"
        table.append(row("spec.selector.nodes + nodeSelectors",
                         "pods on the named nodes or on nodes with those labels (a union)",
                         "the same union (k8s_targets node_match: any)"))
    elif nodes:
        table.append(row("spec.selector.nodes", ", ".join(nodes), "the same"))
    elif node_labels:
        table.append(row("spec.selector.nodeSelectors", _pairs(node_labels), "the same"))
    phases = check.strings(selector.get("podPhaseSelectors"), "spec.selector.podPhaseSelectors")
    bad = [p for p in phases if p.lstrip("!") not in PHASES]
    if bad:
        check.add("spec.selector.podPhaseSelectors", "%s is not a pod phase (%s, or one after '!')"
                  % (", ".join(bad), ", ".join(PHASES)))
    elif phases:
        k8s["pod_phase_selectors"] = phases
        table.append(row("spec.selector.podPhaseSelectors", ", ".join(phases),
                         "the same ('!' refuses a phase); a container that does not run is skipped"))
    else:
        k8s["pod_phase_selectors"] = ["Running"]
        table.append(row("spec.selector.podPhaseSelectors", "(none) every phase",
                         "Running pods only",
                         "a pod that does not run has no process to stress; Chaos Mesh picks it and fails there"))
    return k8s


def _check_selector_field(check, selector, key):
    """Type-check a selector field that ``pods`` overrides, so a typo still gets its line."""
    path = "spec.selector." + key
    if key in ("namespaces", "nodes", "podPhaseSelectors"):
        check.strings(selector[key], path)
    elif key == "expressionSelectors":
        if not isinstance(selector[key], list):
            check.add(path, "expected a list of {key, operator, values}")
    else:
        check.string_map(selector[key], path)


def _pairs(mapping):
    return ", ".join("%s=%s" % (k, v) for k, v in sorted(mapping.items()))


def _mode(check, spec, table, k8s):
    mode = spec.get("mode")
    if mode is None:
        check.add("spec.mode", "required (one of %s)" % ", ".join(MODES))
        return
    if mode not in MODES:
        check.add("spec.mode", "%r is not one of %s" % (mode, ", ".join(MODES)))
        return
    value = spec.get("value")
    if mode in ("one", "all"):
        k8s["mode"] = mode
        table.append(row("spec.mode", mode, "the same"))
        if value not in (None, ""):
            table.append(row("spec.value", "%s (not used by mode %s)" % (value, mode), "not used"))
        return
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value in ("",):
        check.add("spec.value", "mode %s needs value, a %s" % (
            mode, "number of pods" if mode == "fixed" else "percentage from 1 to 100"))
        return
    try:
        number = mode_value(mode, value)
    except SelectionError as exc:
        check.add("spec.value", str(exc).replace("value ", "", 1))
        return
    k8s.update(mode=mode, value=str(number))
    written = "%r (a YAML number)" % value if not isinstance(value, str) else repr(value)
    what = {"fixed": "%d pods, all of them when fewer match" % number,
            "fixed-percent": "%d%% of the matching pods, rounded up" % number,
            "random-max-percent": "a percentage drawn from 0 to %d, that share of the pods rounded up "
                                  "(possibly none)" % number}[mode]
    table.append(row("spec.mode / spec.value", "%s %s: %s" % (mode, written, what), "the same arithmetic"))


def _workers(check, workers, path, kind, out):
    """A stressor's workers: Chaos Mesh lets 0 (or none) through and then stresses nothing, so it is refused."""
    if workers is None:
        check.add(path + ".workers", "missing: Chaos Mesh reads it as 0 and stresses nothing; give 1 or more")
    elif check.integer(workers, path + ".workers") is not None:
        if workers <= 0:
            check.add(path + ".workers", "%d: Chaos Mesh accepts it and stresses nothing; give 1 or more" % workers)
        elif workers > WORKER_LIMITS[kind]:
            check.add(path + ".workers", "%d is out of range (1 to %d)" % (workers, WORKER_LIMITS[kind]))
        else:
            out["workers"] = workers


def _memory(check, stressors, table, settings, annotations):
    memory = check.mapping(stressors.get("memory"), "spec.stressors.memory")
    if stressors.get("memory") is None:
        return None
    check.unknown(memory, MEMORY_FIELDS, "spec.stressors.memory")
    path = "spec.stressors.memory"
    out = {}
    _workers(check, memory.get("workers"), path, "memory", out)
    size = memory.get("size")
    if size is None or (isinstance(size, str) and not size.strip()):
        check.add(path + ".size", "empty: Chaos Mesh would start a stressor that adds nothing; give a size "
                                  "(256MB, 1GiB) or a percentage")
    elif not isinstance(size, str):
        check.add(path + ".size", "expected a string such as 256MB or 25%%, got %s %r" % (_type_name(size), size))
    else:
        try:
            out["size_kind"], out["size_value"] = chaos_mesh_size(size)
            out["size_text"] = size.strip()
        except ValueError as exc:
            check.add(path + ".size", str(exc))
    adj = memory.get("oomScoreAdj")
    if adj is not None and check.integer(adj, path + ".oomScoreAdj", -1000, 1000) is not None:
        out["oom_score_adj"] = adj
    ramp = None
    options = check.strings(memory.get("options"), path + ".options")
    index = 0
    while index < len(options):
        option = options[index].strip()
        name, _eq, value = option.partition("=")
        if " " in name and not _eq:
            name, _sp, value = name.partition(" ")
        if name in ("--time", "-time"):
            if not value and index + 1 < len(options):
                index += 1
                value = options[index].strip()
            seconds = go_duration(value.strip())
            if not seconds:
                check.add("%s.options[%d]" % (path, index), "--time needs a duration such as 30s, got %r" % value)
            else:
                ramp = seconds
        else:
            check.add("%s.options[%d]" % (path, index),
                      "%r is refused: memStress takes only --time here (a ramp); with stress-ng flags such as this "
                      "Chaos Mesh's memStress exits at once while the status says Injected" % option)
        index += 1
    if "workers" not in out or "size_kind" not in out:
        return None
    out["ramp_seconds"] = ramp
    version = annotations.get(ANNOTATION_VERSION, settings.get("chaos_mesh_version"))
    out["per_worker"] = legacy_per_worker(version)
    percent_of = annotations.get(ANNOTATION_PERCENT_OF, settings.get("memory_percent_of") or "limit")
    if percent_of not in PERCENT_OF:
        check.add("metadata.annotations.%s" % ANNOTATION_PERCENT_OF, "%r is not limit or node" % (percent_of,))
        return None
    out["percent_of"] = percent_of
    workers = out["workers"]
    if out["size_kind"] == "bytes":
        total = out["size_value"] * (workers if out["per_worker"] else 1)
        out["bytes"] = total
        cm = "%s = %s in total across %d worker%s" % (out["size_text"], _mib(out["size_value"]) if not out["per_worker"]
                                                      else "%s per worker, %s" % (_mib(out["size_value"]), _mib(total)),
                                                      workers, "s" if workers > 1 else "")
        why = ""
        if out["per_worker"]:
            why = "written for Chaos Mesh %s, where size was per worker; since 2.2 it is the total" % version
        table.append(row("spec.stressors.memory.size", cm,
                         "%s in total (%s bytes), shared by %d worker%s, held without burning CPU"
                         % (_mib(total), total, workers, "s" if workers > 1 else ""), why))
    else:
        pct = out["size_value"]
        if out["per_worker"]:
            pct_total = pct * workers
            if pct_total > 100:
                check.add(path + ".size", "%s per worker x %d workers (Chaos Mesh %s) is %g%%, over 100%%"
                          % (out["size_text"], workers, version, pct_total))
                return None
            out["size_value"] = pct = pct_total
        of = "of the container's memory limit" if percent_of == "limit" else "of the node's RAM"
        why = ("Chaos Mesh takes %% of the node's RAM (%s); here it is %% of the container's limit, which is "
               "what the author meant (set %s: node to reproduce Chaos Mesh)" % (ISSUES["percent"], ANNOTATION_PERCENT_OF)
               if percent_of == "limit" else "")
        table.append(row("spec.stressors.memory.size", "%s of the node's RAM (total across workers%s)"
                         % (out["size_text"], ", per worker before 2.2" if out["per_worker"] else ""),
                         "%g%% %s, resolved per target below" % (pct, of), why))
    table.append(row("spec.stressors.memory.workers", "%d memStress worker(s)" % workers,
                     "%d stress-ng vm worker(s) sharing the total" % workers))
    if "oom_score_adj" in out:
        table.append(row("spec.stressors.memory.oomScoreAdj", "%d for memStress" % out["oom_score_adj"],
                         "%d for the stress processes (experiment_oom_score_adj); stress-ng's allocating workers "
                         "raise themselves to 1000" % out["oom_score_adj"],
                         "stress-ng's vm workers stay the OOM killer's first choice" if out["oom_score_adj"] < 1000
                         else ""))
    else:
        table.append(row("spec.stressors.memory.oomScoreAdj", "(unset) 0: memStress competes with the app for "
                         "the OOM killer", "1000: the stressor is the OOM killer's first choice, the app survives",
                         "the collection keeps the app safe by default; set oomScoreAdj to choose"))
    table.append(row("spec.stressors.memory.options", "--time %s" % format_duration(ramp) if ramp else "(none)",
                     "a ramp of %s to the full size" % format_duration(ramp) if ramp else "added at once"))
    return out


def _cpu(check, stressors, table):
    if stressors.get("cpu") is None:
        return None
    cpu = check.mapping(stressors.get("cpu"), "spec.stressors.cpu")
    check.unknown(cpu, CPU_FIELDS, "spec.stressors.cpu")
    path = "spec.stressors.cpu"
    out = {}
    _workers(check, cpu.get("workers"), path, "cpu", out)
    load = cpu.get("load")
    if load is None:
        out["load"] = 100
    elif check.integer(load, path + ".load", 0, 100) is not None:
        if load == 0:
            check.add(path + ".load", "0: stress-ng reads it as a sleep, nothing would be stressed; give 1 to 100")
        else:
            out["load"] = load
    timeout = None
    options = check.strings(cpu.get("options"), path + ".options")
    index = 0
    while index < len(options):
        option = options[index].strip()
        name, eq, value = option.partition("=")
        if " " in name and not eq:
            name, _sp, value = name.partition(" ")
        if name in ("--timeout", "-t"):
            if not value and index + 1 < len(options):
                index += 1
                value = options[index].strip()
            seconds = go_duration(value) if not re.match(r"^[0-9]+$", value) else float(value)
            if not seconds:
                check.add("%s.options[%d]" % (path, index), "--timeout needs a duration such as 60s, got %r" % value)
            else:
                timeout = seconds
        else:
            check.add("%s.options[%d]" % (path, index),
                      "%r is refused: stress-ng options other than --timeout change what the CPU stressor measures "
                      "(it sets its own method and load slice); use stressngStressors with "
                      "stresschaos_allow_stressng to pass stress-ng's own flags" % option)
        index += 1
    if "workers" not in out or "load" not in out:
        return None
    out["timeout_seconds"] = timeout
    table.append(row("spec.stressors.cpu.load / workers",
                     "stress-ng --cpu %d --cpu-load %d: each worker %d%% of one CPU, %s in all (up to the quota)"
                     % (out["workers"], out["load"], out["load"], _cores(out["workers"] * out["load"] / 100.0)),
                     "%d%% of the container's CPU quota, with %d worker(s); resolved per target below"
                     % (out["load"], out["workers"]),
                     "stress-ng reads --cpu-load per worker of one CPU; the author meant a share of the container"
                     if out["workers"] * out["load"] != 100 * out["workers"] or out["workers"] > 1 else ""))
    if timeout:
        table.append(row("spec.stressors.cpu.options", "--timeout %s: stress-ng stops then" % format_duration(timeout),
                         "the stress ends at the earlier of --timeout and duration (the node's deadline)"))
    return out


def _duration(check, spec, settings, table):
    value = spec.get("duration")
    maximum = settings.get("max_duration_seconds")
    if value is None:
        if not maximum:
            check.add("spec.duration", "missing: Chaos Mesh then runs until the chaos is deleted, and stress-ng "
                                       "stops on its own after 24 h (%s); give a duration or set "
                                       "stresschaos_max_duration" % ISSUES["timeout"])
            return None
        table.append(row("spec.duration", "(none) until the chaos is deleted; stress-ng itself stops after 24 h (%s)"
                         % ISSUES["timeout"], "%s, the play's stresschaos_max_duration, as a deadline on the node"
                         % format_duration(maximum), "a stress always has a deadline here"))
        return maximum
    if not isinstance(value, str):
        check.add("spec.duration", "expected a duration string such as 30s or 5m, got %s %r" % (_type_name(value), value))
        return None
    seconds = go_duration(value.strip())
    if seconds is None:
        check.add("spec.duration", "%r is not a duration (30s, 5m, 1h30m)" % value)
        return None
    if seconds < 1:
        check.add("spec.duration", "%r is out of range (1s to 24h)" % value)
        return None
    limit = min(MAX_DURATION_SECONDS, maximum or MAX_DURATION_SECONDS)
    if seconds > limit:
        check.add("spec.duration", "%r is out of range (at most %s%s)" % (
            value, format_duration(limit), ", stresschaos_max_duration" if maximum and maximum < MAX_DURATION_SECONDS
            else ""))
        return None
    table.append(row("spec.duration", "%s; stress-ng stops on its own after 24 h unless options carry --timeout (%s)"
                     % (value, ISSUES["timeout"]), "%s, a deadline the node enforces (stress-ng --timeout too), "
                     "and a dead-man when the controller goes away" % format_duration(seconds),
                     "" if seconds <= 24 * 3600 else "longer than stress-ng's 24 h"))
    return seconds


def _stressng(check, spec, settings, table):
    raw = spec.get("stressngStressors")
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        check.add("spec.stressngStressors", "expected stress-ng's arguments as one string, got %r" % (raw,))
        return None
    try:
        tokens = shlex.split(raw)
    except ValueError as exc:
        check.add("spec.stressngStressors", "cannot be split into arguments: %s" % exc)
        return None
    try:
        tokens = check_stress_ng_args(tokens, "spec.stressngStressors")
    except PlanError as exc:
        check.add("spec.stressngStressors", str(exc).replace("spec.stressngStressors: ", ""))
        return None
    if not settings.get("allow_stressng"):
        check.add("spec.stressngStressors",
                  "refused unless the play sets stresschaos_allow_stressng=true: these are stress-ng's own flags, "
                  "with stress-ng's meanings (--vm-bytes split per worker, %% of the node's RAM), so their sizes "
                  "cannot be checked against the container's limit; and Chaos Mesh 2.2+ drops this field without "
                  "a word while the status says Injected (%s), so it may never have run" % ISSUES["stressng"])
        return None
    table.append(row("spec.stressngStressors", "%s: ignored since Chaos Mesh 2.2 while the status says Injected (%s)"
                     % (raw.strip(), ISSUES["stressng"]),
                     "stress-ng %s, inside the container's cgroup, with the deadline, --timeout and dead-man; sizes "
                     "keep stress-ng's meanings" % " ".join(tokens),
                     "it runs here; Chaos Mesh 2.2+ runs nothing"))
    return tokens


def translate_stresschaos(label, doc, settings, spec_path="spec", meta=None):
    """One StressChaos (or a Schedule's child) -> (experiment or None, problems, warnings)."""
    meta = meta if meta is not None else (doc.get("metadata") or {})
    name = meta.get("name") if isinstance(meta, dict) else None
    namespace = (meta.get("namespace") if isinstance(meta, dict) else None) or "default"
    where = "%s (StressChaos %s/%s)" % (label, namespace, name or "?")
    check = Checker(where)
    if spec_path == "spec":
        _check_top(check, doc, "StressChaos")
    if not isinstance(name, str) or not NAME_RE.match(name):
        check.add("metadata.name", "required, a Kubernetes name (lower-case letters, digits, '-', '.'), got %r"
                  % (name,))
    annotations = check.string_map(meta.get("annotations") if isinstance(meta, dict) else None,
                                   "metadata.annotations")
    spec = check.mapping(doc.get("spec") if spec_path == "spec" else doc, spec_path, required=True)
    if spec_path != "spec":
        check.where = "%s (Schedule %s/%s, %s)" % (label, namespace, name or "?", spec_path)
    check.unknown(spec, SPEC_FIELDS, "spec")
    warnings = []
    table = []
    if spec.get("remoteCluster") not in (None, ""):
        check.add("spec.remoteCluster", "refused: this collection stresses the cluster its API connection "
                                        "reaches; run the playbook against %r's API instead" % spec["remoteCluster"])
    k8s = _selector(check, spec, namespace, table)
    _mode(check, spec, table, k8s)
    names = check.strings(spec.get("containerNames"), "spec.containerNames")
    if names:
        k8s["container_names"] = names
        table.append(row("spec.containerNames", ", ".join(names), "the same: each picked pod's containers of "
                         "these names", "the mode counts pods that have one of them running; Chaos Mesh counts "
                         "every selected pod"))
    else:
        k8s["default_containers"] = "first"
        table.append(row("spec.containerNames", "(none) the pod's first container", "the same"))
    stressors = check.mapping(spec.get("stressors"), "spec.stressors")
    check.unknown(stressors, STRESSOR_FIELDS, "spec.stressors")
    memory = _memory(check, stressors, table, settings, annotations)
    cpu = _cpu(check, stressors, table)
    stressng = _stressng(check, spec, settings, table)
    if spec.get("stressors") is None and spec.get("stressngStressors") is None:
        check.add("spec.stressors", "required: give stressors.memory, stressors.cpu or stressngStressors")
    elif isinstance(spec.get("stressors"), dict) and not spec["stressors"] and spec.get("stressngStressors") is None:
        check.add("spec.stressors", "empty: nothing to stress")
    duration = _duration(check, spec, settings, table)
    if check.problems:
        return None, check.problems, warnings
    if cpu and cpu.get("timeout_seconds") and cpu["timeout_seconds"] < duration:
        duration_run = cpu["timeout_seconds"]
        warnings.append("%s: spec.stressors.cpu.options --timeout %s ends the stress before duration %s"
                        % (where, format_duration(duration_run), format_duration(duration)))
        duration = duration_run
    experiment_name = "%s%s" % (settings.get("name_prefix") or "", name)
    role = {"experiment_name": experiment_name, "experiment_duration": "%ds" % int(math.ceil(duration))}
    extra = {}
    if memory:
        role.update(experiment_type="memory", experiment_memory_workers=memory["workers"])
        if memory["size_kind"] == "bytes":
            role["experiment_memory_size"] = str(memory["bytes"])
        elif memory["percent_of"] == "limit":
            role["experiment_memory_size"] = "%g%%" % memory["size_value"]
        if memory["ramp_seconds"]:
            role["experiment_memory_ramp"] = "%gs" % memory["ramp_seconds"]
        if cpu:
            extra["cpu"] = {"load": float(cpu["load"]), "workers": cpu["workers"]}
    elif cpu:
        role.update(experiment_type="cpu", experiment_cpu_load=str(cpu["load"]),
                    experiment_cpu_workers=str(cpu["workers"]))
    else:
        # Only stress-ng's own arguments: a CPU experiment whose CPU part is taken out.
        role.update(experiment_type="cpu")
        extra["cpu"] = None
    if memory and "oom_score_adj" in memory:
        role["experiment_oom_score_adj"] = str(memory["oom_score_adj"])
    if stressng:
        extra["stress_ng_args"] = stressng
    role["experiment_stressor_extra"] = extra
    experiment = {
        "name": experiment_name,
        "source": label,
        "kind": "StressChaos",
        "manifest": {"name": name, "namespace": namespace},
        "k8s": k8s,
        "role": role,
        "memory": memory,
        "cpu": cpu,
        "stressng": stressng,
        "duration_seconds": duration,
        "table": table,
    }
    return experiment, [], warnings


def _check_top(check, doc, kind):
    check.unknown(doc, TOP_FIELDS, "")
    if doc.get("apiVersion") != API_VERSION:
        check.add("apiVersion", "%r is not %s" % (doc.get("apiVersion"), API_VERSION))
    meta = check.mapping(doc.get("metadata"), "metadata", required=True)
    check.unknown(meta, METADATA_FIELDS + METADATA_IGNORED, "metadata")


# ---------------------------------------------------------------- Schedule -> AWX

_CRON_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTHS = dict((name, number) for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1))
_DAYS = dict((name, number) for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
_RRULE_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")
_CRON_FIELDS = (("second", 0, 59, None), ("minute", 0, 59, None), ("hour", 0, 23, None),
                ("day of month", 1, 31, None), ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))


class CronError(ValueError):
    pass


def _cron_field(text, low, high, names, what):
    """(sorted values, star) for one cron field; star: it starts with * or ? (cron's day rule)."""
    star = text.startswith(("*", "?"))
    values = set()
    for part in text.split(","):
        if not part:
            raise CronError("%s: empty item in %r" % (what, text))
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError("%s: step %r is not a whole number of 1 or more" % (what, step_text))
            step = int(step_text)
        if body in ("*", "?"):
            start, end = low, high if what != "day of week" else 6
        else:
            first, dash, last = body.partition("-")
            start = _cron_number(first, low, high, names, what)
            end = _cron_number(last, low, high, names, what) if dash else (
                (6 if what == "day of week" else high) if slash else start)
            if what == "day of week" and end == 7 and dash:  # 5-7: Friday to Sunday
                end = 6
                values.add(0)
            if end < start:
                raise CronError("%s: range %r runs backwards" % (what, body))
        values.update(range(start, end + 1, step))
    if what == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return sorted(values), star


def _cron_number(text, low, high, names, what):
    if names and text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise CronError("%s: %r is not a number%s" % (what, text, " or a name" if names else ""))
    number = int(text)
    if not low <= number <= high:
        raise CronError("%s: %d is out of range (%d to %d)" % (what, number, low, high))
    return number


def _every_rrule(text):
    """FREQ/INTERVAL/BYSECOND for robfig's '@every <duration>'."""
    seconds = go_duration(text)
    if not seconds or seconds != int(seconds) or seconds < 1:
        raise CronError("@every %s: not a whole number of seconds of 1 or more" % text)
    seconds = int(seconds)
    if seconds < 60:
        if 60 % seconds:
            raise CronError("@every %s: AWX has no schedule by the second; every N seconds converts only when N "
                            "divides a minute (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)" % text)
        return "FREQ=MINUTELY;INTERVAL=1;BYSECOND=%s" % ",".join(str(s) for s in range(0, 60, seconds))
    if seconds % 60:
        raise CronError("@every %s: AWX schedules are whole minutes (or divisors of a minute)" % text)
    minutes = seconds // 60
    if minutes % (24 * 60) == 0:
        return "FREQ=DAILY;INTERVAL=%d" % (minutes // (24 * 60))
    if minutes % 60 == 0:
        return "FREQ=HOURLY;INTERVAL=%d" % (minutes // 60)
    return "FREQ=MINUTELY;INTERVAL=%d" % minutes


def _by(name, values):
    return "%s=%s" % (name, ",".join(str(v) for v in values))


def cron_to_rrule(expression, start=None):
    """{rrule, timezone, rules, notes} for a Chaos Mesh schedule; raises CronError.

    Five fields (minute hour day-of-month month day-of-week), six (seconds first), the @ macros and @every,
    each optionally after TZ=<zone> or CRON_TZ=<zone>. ``start``: the first moment (naive, in the zone); the
    DTSTART AWX needs. Without a zone Chaos Mesh uses its controller's clock, normally UTC.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise CronError("empty schedule")
    text = expression.strip()
    zone = None
    notes = []
    match = re.match(r"^(?:CRON_)?TZ=(\S+)\s+(.*)$", text)
    if match:
        zone, text = match.group(1), match.group(2).strip()
        try:
            from zoneinfo import ZoneInfo  # Python 3.9+, controller side
            ZoneInfo(zone)
        except Exception:  # noqa: BLE001 - any failure means the zone is unknown
            raise CronError("time zone %r is unknown" % zone)
    start = start or (datetime.datetime.utcnow().replace(second=0, microsecond=0) + datetime.timedelta(minutes=1))
    if zone:
        dtstart = "DTSTART;TZID=%s:%s" % (zone, start.strftime("%Y%m%dT%H%M%S"))
    else:
        dtstart = "DTSTART:%sZ" % start.strftime("%Y%m%dT%H%M%S")
        notes.append("no TZ=: Chaos Mesh uses its controller's clock (normally UTC); the schedule is in UTC")
    if text.startswith("@every"):
        rules = [_every_rrule(text[len("@every"):].strip())]
        notes.append("@every counts from DTSTART here; Chaos Mesh counts from when the Schedule was created")
        return {"rrule": " ".join([dtstart] + ["RRULE:" + r for r in rules]), "timezone": zone or "UTC",
                "rules": rules, "notes": notes}
    if text.startswith("@"):
        if text not in _CRON_MACROS:
            raise CronError("%r is not one of %s or @every <duration>" % (text, ", ".join(sorted(_CRON_MACROS))))
        text = _CRON_MACROS[text]
    fields = text.split()
    if len(fields) == 5:
        fields = ["0"] + fields
    elif len(fields) != 6:
        raise CronError("%r has %d fields; give 5 (minute hour day-of-month month day-of-week) or 6 (seconds "
                        "first)" % (expression, len(fields)))
    parsed = [_cron_field(f, lo, hi, names, what) for f, (what, lo, hi, names) in zip(fields, _CRON_FIELDS)]
    (seconds, _s), (minutes, _m), (hours, _h), (doms, dom_star), (months, _mo), (dows, dow_star) = parsed

    def full(values, lo, hi):
        return values == list(range(lo, hi + 1))

    dom_all, dow_all = full(doms, 1, 31), full(dows, 0, 6)
    common = []
    if not full(months, 1, 12):
        common.append(_by("BYMONTH", months))
    minute_all, hour_all = full(minutes, 0, 59), full(hours, 0, 23)
    times = ([] if hour_all else [_by("BYHOUR", hours)]) + ([] if minute_all else [_by("BYMINUTE", minutes)]) + \
        ([] if seconds == [0] else [_by("BYSECOND", seconds)])
    freq = "MINUTELY" if minute_all else "HOURLY" if hour_all else "DAILY"
    days = [_RRULE_DAYS[d] for d in dows]
    rules = []
    if dom_all and dow_all:
        rules.append(["FREQ=%s" % freq] + common + times)
    elif not dom_star and not dow_star and not dom_all and not dow_all:
        # cron runs when either day field matches: two rules, one per field.
        notes.append("day of month and day of week are both set: cron runs on either, so two RRULEs")
        rules.append(["FREQ=%s" % ("MONTHLY" if freq == "DAILY" else freq)] + common + [_by("BYMONTHDAY", doms)] + times)
        rules.append(["FREQ=%s" % ("WEEKLY" if freq == "DAILY" else freq)] + common + [_by("BYDAY", days)] + times)
    else:
        by_days = ([] if dom_all else [_by("BYMONTHDAY", doms)]) + ([] if dow_all else [_by("BYDAY", days)])
        if freq == "DAILY" and dom_all:
            freq = "WEEKLY"
        elif freq == "DAILY" and dow_all:
            freq = "MONTHLY"
        rules.append(["FREQ=%s" % freq] + common + by_days + times)
    texts = [";".join(r[:1] + ["INTERVAL=1"] + r[1:]) for r in rules]
    return {"rrule": " ".join([dtstart] + ["RRULE:" + r for r in texts]), "timezone": zone or "UTC",
            "rules": texts, "notes": notes}


def _start_time(settings):
    text = str(settings.get("schedule_start") or "").strip()
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text.replace("Z", ""), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def translate_schedule(label, doc, settings):
    """A Schedule of type StressChaos -> (entry or None, problems, warnings). Its child is translated like a
    StressChaos (the table), and the schedule becomes an AWX job template and schedule."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name, namespace = meta.get("name"), meta.get("namespace") or "default"
    where = "%s (Schedule %s/%s)" % (label, namespace, name or "?")
    check = Checker(where)
    _check_top(check, doc, "Schedule")
    if not isinstance(name, str) or not NAME_RE.match(name):
        check.add("metadata.name", "required, a Kubernetes name, got %r" % (name,))
    spec = check.mapping(doc.get("spec"), "spec", required=True)
    kind = spec.get("type")
    if kind != "StressChaos":
        check.add("spec.type", "%r: only Schedules of type StressChaos are run here%s" % (
            kind, "; a Workflow's steps are the game day's batches (playbooks/game_day.yml)" if kind == "Workflow"
            else ""))
        return None, check.problems, []
    hints = dict((k, "a %s child does not belong in a Schedule of type StressChaos" % k) for k in OTHER_CHAOS)
    check.unknown(spec, SCHEDULE_FIELDS, "spec", hint=hints)
    policy = spec.get("concurrencyPolicy", "Forbid")
    if policy not in CONCURRENCY:
        check.add("spec.concurrencyPolicy", "%r is not one of %s" % (policy, ", ".join(CONCURRENCY)))
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        check.integer(deadline, "spec.startingDeadlineSeconds", 0)
    history = spec.get("historyLimit")
    if history is not None:
        check.integer(history, "spec.historyLimit", 1)
    rrule = None
    try:
        rrule = cron_to_rrule(spec.get("schedule"), _start_time(settings))
    except CronError as exc:
        check.add("spec.schedule", str(exc))
    child = spec.get("stressChaos")
    experiment, child_problems, warnings = (None, [], [])
    if child is None:
        check.add("spec.stressChaos", "required for type StressChaos")
    elif not isinstance(child, dict):
        check.add("spec.stressChaos", "expected a mapping, got %s" % _type_name(child))
    else:
        experiment, child_problems, warnings = translate_stresschaos(
            label, child, settings, spec_path="spec.stressChaos", meta=meta)
        # The child's fields are under spec.stressChaos in the Schedule.
        child_problems = [p.replace(": spec.", ": spec.stressChaos.", 1) for p in child_problems]
        for line in (experiment or {}).get("table") or []:
            line["field"] = line["field"].replace("spec.", "spec.stressChaos.")
    problems = check.problems + child_problems
    if problems:
        return None, problems, warnings
    table = [row("spec.schedule", spec["schedule"], rrule["rrule"], "; ".join(rrule["notes"]))]
    template = "%s %s/%s" % (settings.get("job_template_prefix") or "chaosfleet stresschaos", namespace, name)
    if policy == "Forbid":
        table.append(row("spec.concurrencyPolicy", "Forbid: a run that is due while one runs is skipped",
                         "allow_simultaneous: false on the job template",
                         "AWX queues the due run and starts it when the running one ends, instead of skipping it"))
        if "duration" not in child:
            warnings.append("%s: concurrencyPolicy Forbid and the child has no duration: in Chaos Mesh its first "
                            "run never ends, so only that first run would ever happen" % where)
    else:
        table.append(row("spec.concurrencyPolicy", "Allow: runs may overlap",
                         "allow_simultaneous: true on the job template"))
    if deadline is not None:
        table.append(row("spec.startingDeadlineSeconds", "%ds: a run that missed its time by more is skipped"
                         % deadline, "no equivalent: AWX starts a missed run when it can (or not at all while "
                         "the schedule is disabled)", "AWX has no per-schedule start deadline"))
    if history is not None:
        table.append(row("spec.historyLimit", "keep the last %d finished experiments" % history,
                         "no per-template equivalent: AWX keeps jobs until its cleanup_jobs system job removes "
                         "them (days, for every template)", "AWX keeps history by age, not by count"))
    child_manifest = {"apiVersion": API_VERSION, "kind": "StressChaos",
                      "metadata": dict((k, v) for k, v in meta.items() if k in ("name", "namespace", "annotations")),
                      "spec": child}
    job_template = {"name": template,
                    "description": "Chaos Mesh Schedule %s/%s, converted by chaosfleet.stress.stresschaos" % (namespace, name),
                    "playbook": "playbooks/stresschaos.yml",
                    "needs_k8s_credential": True,
                    "allow_simultaneous": policy == "Allow",
                    "extra_vars": {"stresschaos_manifests": [child_manifest]}}
    schedule = {"name": "%s schedule" % template, "description": "%s (%s)" % (spec["schedule"], rrule["timezone"]),
                "unified_job_template": template, "rrule": rrule["rrule"]}
    entry = {"name": name, "namespace": namespace, "source": label, "schedule": spec["schedule"], "rrule": rrule,
             "table": table, "child": experiment, "job_template": job_template, "awx_schedule": schedule}
    return entry, [], warnings


# ---------------------------------------------------------------- everything


def translate(documents, settings=None):
    """All documents -> {experiments, schedules, awx, problems, warnings}. Any problem means nothing starts."""
    settings, problems = settings_of(settings)
    warnings, experiments, schedules = [], [], []
    for label, doc in documents:
        if not isinstance(doc, dict):
            problems.append("%s: expected a manifest (a mapping), got %s" % (label, _type_name(doc)))
            continue
        kind = doc.get("kind")
        if kind == "StressChaos":
            experiment, found, warned = translate_stresschaos(label, doc, settings)
            if experiment:
                experiments.append(experiment)
        elif kind == "Schedule":
            entry, found, warned = translate_schedule(label, doc, settings)
            if entry:
                schedules.append(entry)
        elif kind == "Workflow":
            found, warned = ["%s: kind Workflow is refused: its steps are the game day's batches here "
                             "(playbooks/game_day.yml, one batch per step, a gate between them)" % label], []
        else:
            found, warned = ["%s: kind %r is refused: only StressChaos, and Schedule with type StressChaos"
                             % (label, kind)], []
        problems += found
        warnings += warned
    seen = {}
    for experiment in experiments:
        if experiment["name"] in seen:
            problems.append("%s: experiment name %s is also used by %s; names must be unique"
                            % (experiment["source"], experiment["name"], seen[experiment["name"]]))
        seen[experiment["name"]] = experiment["source"]
    awx = {"chaosfleet_awx_extra_job_templates": [s["job_template"] for s in schedules],
           "chaosfleet_awx_schedules": [s["awx_schedule"] for s in schedules]}
    return {"experiments": experiments, "schedules": schedules, "awx": awx, "problems": problems,
            "warnings": warnings, "settings": dict((k, v) for k, v in settings.items())}


# ---------------------------------------------------------------- per target


def resolve_target(experiment, target, node_memory_bytes=None):
    """One picked container: {vars (role variables for it), rows (the table's resolved lines), problem}.

    ``target``: a k8s_targets container entry plus namespace/pod/node ({memory_limit_bytes, cpu_limit_cores}).
    ``node_memory_bytes``: the node's RAM (MemTotal), needed only for "% of the node's RAM".
    """
    rows, out_vars, problem = [], {}, None
    limit = target.get("memory_limit_bytes")
    quota = target.get("cpu_limit_cores")
    memory = experiment.get("memory")
    if memory:
        workers = memory["workers"]
        if memory["size_kind"] == "percent":
            pct = memory["size_value"]
            node_bytes = int(node_memory_bytes * pct / 100) if node_memory_bytes else None
            cm = ("%g%% of the node's %s = %s" % (pct, _mib(node_memory_bytes), _mib(node_bytes))
                  if node_bytes else "%g%% of the node's RAM" % pct)
            if memory["percent_of"] == "limit":
                if limit is None:
                    problem = "memory size %s is a share of the container's limit, and %s has none" % (
                        memory["size_text"], target.get("container"))
                    here = "refused: no memory limit"
                else:
                    here = "%g%% of the %s limit = %s" % (pct, _mib(limit), _mib(int(limit * pct / 100)))
                rows.append(row("spec.stressors.memory.size", cm, here,
                                "Chaos Mesh takes %% of the node's RAM (%s)" % ISSUES["percent"]))
            else:
                if not node_bytes:
                    problem = "the node's RAM is unknown, so %g%% of it cannot be sized" % pct
                    here = "refused: node RAM unknown"
                else:
                    out_vars["experiment_memory_size"] = str(node_bytes)
                    here = "%s (%g%% of the node's RAM, as Chaos Mesh)" % (_mib(node_bytes), pct)
                    if limit is not None and node_bytes > limit:
                        here += "; above the %s limit: refused unless experiment_allow_oom" % _mib(limit)
                rows.append(row("spec.stressors.memory.size", cm, here))
        else:
            total = memory["bytes"]
            here = "%s in total" % _mib(total)
            if limit is not None:
                here += " (%d%% of the %s limit)" % (round(100.0 * total / limit), _mib(limit))
            rows.append(row("spec.stressors.memory.size", "%s in total across %d worker(s)" % (_mib(total), workers)
                            if not memory["per_worker"] else "%s per worker x %d = %s" % (
                                _mib(memory["size_value"]), workers, _mib(total)), here))
    cpu = experiment.get("cpu")
    if cpu:
        cm_cores = cpu["workers"] * cpu["load"] / 100.0
        if quota:
            capped = ", capped by the %s quota" % _cores(quota) if cm_cores > quota else ""
            cm = "%s (%d x %d%% of one CPU)%s" % (_cores(min(cm_cores, quota)), cpu["workers"], cpu["load"], capped)
            here = "%s (%d%% of the %s quota)" % (_cores(quota * cpu["load"] / 100.0), cpu["load"], _cores(quota))
            why = "" if abs(min(cm_cores, quota) - quota * cpu["load"] / 100.0) < 0.005 else \
                "stress-ng reads --cpu-load per worker of one CPU"
        else:
            cm = "%s (%d x %d%% of one CPU)" % (_cores(cm_cores), cpu["workers"], cpu["load"])
            here = "%d%% of the CPUs the node gives (no quota)" % cpu["load"]
            why = "the container has no CPU limit: the share is of the node's CPUs"
        rows.append(row("spec.stressors.cpu.load", cm, here, why))
    return {"vars": out_vars, "rows": rows, "problem": problem}


def plan_targets(experiment, picked, node_memory=None):
    """The picked containers of one experiment (k8s_targets' ``targets``): [{namespace, pod, container, node,
    container_id, ...resolve_target}] in the order hosts are planned."""
    out = []
    for pod in picked.get("targets") or []:
        for container in pod.get("containers") or []:
            target = dict(container, namespace=pod["namespace"], pod=pod["pod"], node=pod["node"],
                          container=container["name"])
            resolved = resolve_target(experiment, target, (node_memory or {}).get(pod["node"]))
            out.append(dict(resolved, namespace=pod["namespace"], pod=pod["pod"], container=container["name"],
                            node=pod["node"], container_id=container["id"],
                            id="%s/%s/%s" % (pod["namespace"], pod["pod"], container["name"])))
    return out


def meminfo_total(text):
    """MemTotal in bytes from /proc/meminfo text; None when missing."""
    match = re.search(r"^MemTotal:\s+([0-9]+)\s*kB", text or "", re.M)
    return int(match.group(1)) * 1024 if match else None


# ---------------------------------------------------------------- results -> containerRecords

START_FAILURES = ("attach_failed", "start_failed", "supervisor_error")


def _iso(epoch):
    if epoch is None:
        return None
    return datetime.datetime.utcfromtimestamp(float(epoch)).strftime("%Y-%m-%dT%H:%M:%SZ")


def injected(result):
    """(True, None) when the stress took hold in the container, else (False, why)."""
    if not isinstance(result, dict):
        return False, "no result from the node"
    if result.get("failed"):
        return False, str(result.get("msg") or "failed")
    reason = result.get("reason")
    if reason in START_FAILURES:
        return False, "the stressor did not start: %s" % reason
    if not result.get("started_at"):
        return False, "the stress never started (%s)" % (result.get("controller_error") or reason or "no start time")
    achieved = result.get("achieved") or {}
    request = result.get("request") or {}
    grown = achieved.get("working_set_increase_bytes")
    cores = achieved.get("cpu_cores")
    want = request.get("memory_bytes")
    if want:
        if grown is None or grown < want * 0.1:
            return False, "the stressor died at start or never held: +%s of %s" % (
                _mib(grown or 0), _mib(want))
        return True, None
    if (cores is None or cores < 0.01) and (grown is None or grown < 1024 * 1024):
        return False, "the stressor died at start: nothing was measured in the container"
    return True, None


def container_record(assignment, result):
    """One Chaos Mesh-shaped containerRecord for a picked container and its host's result (or None)."""
    ok, why = injected(result)
    events = []
    if isinstance(result, dict) and result.get("started_at"):
        events.append({"operation": "Apply", "type": "Succeeded" if ok else "Failed",
                       "timestamp": _iso(result["started_at"]),
                       "message": "stress-ng started in %s" % ((result.get("target") or {}).get("path") or "the cgroup")
                       if ok else why})
        if result.get("ended_at"):
            events.append({"operation": "Recover", "type": "Succeeded", "timestamp": _iso(result["ended_at"]),
                           "message": "stopped: %s" % (result.get("reason") or result.get("status"))})
    else:
        events.append({"operation": "Apply", "type": "Failed", "timestamp": None, "message": why})
    return {"id": assignment["id"], "phase": "Injected" if ok else "Not Injected", "selectorKey": ".",
            "injectedCount": 1 if ok else 0,
            "recoveredCount": 1 if ok and isinstance(result, dict) and result.get("ended_at") else 0,
            "events": events, "reason": why, "host": assignment.get("host"), "node": assignment.get("node")}


def container_records(assignments, results):
    """containerRecords for an experiment: ``assignments`` [{id, host, node}], ``results`` {host: result}."""
    return [container_record(a, (results or {}).get(a.get("host"))) for a in assignments]


def table_text(rows):
    """The translation table as plain lines (check mode output)."""
    lines = []
    for r in rows:
        lines.append("%s%s: Chaos Mesh: %s | here: %s%s" % ("* " if r["differs"] else "  ", r["field"], r["chaos_mesh"],
                                                            r["here"], (" | differs: " + r["why"]) if r["differs"]
                                                            else ""))
    return lines
