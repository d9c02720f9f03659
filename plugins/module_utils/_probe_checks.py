# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Steady-state probes: one spec check, and the HTTP, command and Prometheus checks.

Shared by the node-side module chaosfleet.stress.probe (probes that run on the node)
and the controller-side action of the same name (probes that run on the controller,
and Kubernetes probes, which live in plugin_utils/_probes.py). Standard library only,
Python 3.8+, because it also runs on the nodes.

Each check is split in two: a thin part that talks to the world and measures the
latency, and a pure ``judge_*`` function (observation in, verdict out) that the unit
tests drive as tables. A probe result is a plain dict:
``{name, type, run_on, ok, latency_ms, detail, observed}``; ``detail`` is the reason
in one line, on success as well as on failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os
import re
import shlex
import signal
import subprocess
import time

from urllib.parse import urlencode, urlsplit

from ansible_collections.chaosfleet.stress.plugins.module_utils._http import MAX_BODY, request
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_auth import (
    NAMES as K8S_AUTH_KEYS, SECRET_NAMES as K8S_SECRET_KEYS, canonical, param_secrets, probe_spec,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import UnitError, parse_bool, parse_duration

TYPES = ("http", "command", "prometheus", "kubernetes")
RUN_ON = ("node", "controller")
COMPARATORS = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}
MAX_TIMEOUT = 300.0

_COMMON = ("name", "type", "run_on", "timeout", "max_latency")
# The Kubernetes probe's auth keys (K8S_AUTH_KEYS) are k8s_targets', from _k8s_auth.py.
_KEYS = {
    "http": ("url", "method", "status_code", "body_regex", "headers", "body", "validate_certs"),
    "command": ("command", "expect_rc", "output_regex"),
    "prometheus": ("url", "query", "comparator", "threshold", "require_result", "headers", "validate_certs"),
    "kubernetes": ("namespace", "pod", "label_selector", "require_ready", "max_restarts", "min_pods")
    + K8S_AUTH_KEYS,
}
# Option values that are secrets: never echoed in a result or an error.
SECRET_KEYS = ("headers",) + K8S_SECRET_KEYS


class ProbeSpecError(ValueError):
    """A probe definition that cannot run; the message names the probe and the field."""


# ---------------------------------------------------------------- specs


def _duration(name, key, value, default):
    if value is None:
        return default
    try:
        return parse_duration(value, what="probe %s: %s" % (name, key), maximum=MAX_TIMEOUT)
    except UnitError as exc:
        raise ProbeSpecError(str(exc))


def _int(name, key, value, default, minimum=0):
    if value is None:
        return default
    if isinstance(value, bool) or not re.match(r"^-?[0-9]+$", str(value).strip()):
        raise ProbeSpecError("probe %s: %s must be a whole number, got %r" % (name, key, value))
    number = int(str(value).strip())
    if number < minimum:
        raise ProbeSpecError("probe %s: %s must be at least %d, got %d" % (name, key, minimum, number))
    return number


def _bool(name, key, value, default):
    try:
        return parse_bool(value, "probe %s: %s" % (name, key), default=default)
    except UnitError as exc:
        raise ProbeSpecError(str(exc))


def _regex(name, key, value):
    if value is None:
        return None
    try:
        re.compile(str(value))
    except re.error as exc:
        raise ProbeSpecError("probe %s: %s %r is not a regular expression: %s" % (name, key, value, exc))
    return str(value)


def _url(name, value, what="url"):
    if not value or not isinstance(value, str):
        raise ProbeSpecError("probe %s: %s is required" % (name, what))
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProbeSpecError("probe %s: %s %r must be an http:// or https:// URL" % (name, what, value))
    return value


def _headers(name, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProbeSpecError("probe %s: headers must be a mapping of header name to value" % name)
    return dict((str(k), str(v)) for k, v in value.items())


def normalize(spec, index=0):
    """One probe definition checked and completed with its defaults; raises ProbeSpecError."""
    if not isinstance(spec, dict):
        raise ProbeSpecError("probes[%d] must be a mapping, got %s" % (index, type(spec).__name__))
    spec = set_only(spec)
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ProbeSpecError("probes[%d] needs a name" % index)
    kind = spec.get("type") or "http"
    if kind not in TYPES:
        raise ProbeSpecError("probe %s: type must be one of %s, got %r" % (name, ", ".join(TYPES), kind))
    unknown = sorted(set(spec) - set(_COMMON) - set(_KEYS[kind]))
    if unknown:
        raise ProbeSpecError("probe %s: unknown option(s) for a %s probe: %s (allowed: %s)"
                             % (name, kind, ", ".join(unknown), ", ".join(_COMMON + _KEYS[kind])))
    default_place = "node" if kind in ("http", "command") else "controller"
    run_on = spec.get("run_on") or default_place
    if run_on not in RUN_ON:
        raise ProbeSpecError("probe %s: run_on must be node or controller, got %r" % (name, run_on))
    if kind == "kubernetes" and run_on != "controller":
        raise ProbeSpecError("probe %s: kubernetes probes run on the controller (they need the kubernetes "
                             "client); drop run_on" % name)
    out = {"name": name, "type": kind, "run_on": run_on,
           "timeout": _duration(name, "timeout", spec.get("timeout"), 5.0),
           "max_latency": _duration(name, "max_latency", spec.get("max_latency"), None)}
    if kind == "http":
        method = str(spec.get("method") or "GET").upper()
        if not re.match(r"^[A-Z]+$", method):
            raise ProbeSpecError("probe %s: method %r is not an HTTP method" % (name, method))
        codes = spec.get("status_code", 200)
        codes = codes if isinstance(codes, list) else [codes]
        out.update(url=_url(name, spec.get("url")), method=method,
                   status_code=[_int(name, "status_code", c, None, 100) for c in codes],
                   body_regex=_regex(name, "body_regex", spec.get("body_regex")),
                   headers=_headers(name, spec.get("headers")),
                   body=None if spec.get("body") is None else str(spec.get("body")),
                   validate_certs=_bool(name, "validate_certs", spec.get("validate_certs"), True))
    elif kind == "command":
        command = spec.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        if not isinstance(command, list) or not command or not all(isinstance(a, (str, int, float)) for a in command):
            raise ProbeSpecError("probe %s: command must be a non-empty list of arguments or a string" % name)
        out.update(command=[str(a) for a in command],
                   expect_rc=_int(name, "expect_rc", spec.get("expect_rc"), 0),
                   output_regex=_regex(name, "output_regex", spec.get("output_regex")))
    elif kind == "prometheus":
        query = spec.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ProbeSpecError("probe %s: query (PromQL) is required" % name)
        comparator, threshold = spec.get("comparator"), spec.get("threshold")
        if (comparator is None) != (threshold is None):
            raise ProbeSpecError("probe %s: comparator and threshold go together" % name)
        if comparator is not None and comparator not in COMPARATORS:
            raise ProbeSpecError("probe %s: comparator must be one of %s, got %r"
                                 % (name, " ".join(COMPARATORS), comparator))
        if threshold is not None:
            try:
                threshold = float(threshold)
            except (TypeError, ValueError):
                raise ProbeSpecError("probe %s: threshold must be a number, got %r" % (name, threshold))
            if isinstance(spec.get("threshold"), bool) or math.isnan(threshold):
                raise ProbeSpecError("probe %s: threshold must be a number, got %r" % (name, spec.get("threshold")))
        out.update(url=_url(name, spec.get("url")), query=query, comparator=comparator, threshold=threshold,
                   require_result=_bool(name, "require_result", spec.get("require_result"), True),
                   headers=_headers(name, spec.get("headers")),
                   validate_certs=_bool(name, "validate_certs", spec.get("validate_certs"), True))
    else:
        namespace = spec.get("namespace")
        if not isinstance(namespace, str) or not namespace:
            raise ProbeSpecError("probe %s: namespace is required" % name)
        if bool(spec.get("pod")) == bool(spec.get("label_selector")):
            raise ProbeSpecError("probe %s: give exactly one of pod and label_selector" % name)
        out.update(namespace=namespace, pod=spec.get("pod"), label_selector=spec.get("label_selector"),
                   require_ready=_bool(name, "require_ready", spec.get("require_ready"), True),
                   max_restarts=_int(name, "max_restarts", spec.get("max_restarts"), 0),
                   min_pods=_int(name, "min_pods", spec.get("min_pods"), 1))
        out["auth"] = dict((k, spec[k]) for k in K8S_AUTH_KEYS if spec.get(k) is not None)
    return out


def normalize_all(specs):
    """A list of probe definitions checked; names must be unique."""
    if specs is None:
        return []
    if not isinstance(specs, list):
        raise ProbeSpecError("probes must be a list of probe definitions, got %s" % type(specs).__name__)
    out, seen = [], set()
    for index, spec in enumerate(specs):
        probe = normalize(spec, index)
        if probe["name"] in seen:
            raise ProbeSpecError("probe name %s is used twice; names must be unique" % probe["name"])
        seen.add(probe["name"])
        out.append(probe)
    return out


def secrets_of(probes):
    """Values that must never appear in output: header values, tokens, passwords."""
    found = []
    for probe in probes:
        for value in (probe.get("headers") or {}).values():
            found.append(value)
            found.append(value.split(" ", 1)[-1])  # the bare token after "Bearer "
        found += param_secrets(probe.get("auth") or {})  # api_key, password, a kubeconfig dict's tokens
    return [s for s in found if s and len(s) >= 4]


def scrub(text, secrets):
    text = str(text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


# ---------------------------------------------------------------- verdicts (pure)


def result(probe, ok, latency, detail, observed=None):
    return {"name": probe["name"], "type": probe["type"], "run_on": probe["run_on"], "ok": bool(ok),
            "latency_ms": None if latency is None else round(latency * 1000.0, 1),
            "detail": detail, "observed": observed or {}}


def _latency_problem(probe, latency):
    limit = probe.get("max_latency")
    if limit is not None and latency is not None and latency > limit:
        return "latency %.0f ms over max_latency %.0f ms" % (latency * 1000, limit * 1000)
    return ""


def _excerpt(text, limit=120):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def judge_http(probe, status, body, latency, error=None):
    """status: the HTTP status or None when no answer came; body: the text read (may be cut)."""
    observed = {"status": status}
    if status is None:
        return result(probe, False, latency, "no answer from %s: %s" % (probe["url"], error or "unknown error"),
                      observed)
    if status not in probe["status_code"]:
        want = " or ".join(str(c) for c in probe["status_code"])
        extra = ": %s" % _excerpt(body) if body else ""
        return result(probe, False, latency, "HTTP %d, expected %s%s" % (status, want, extra), observed)
    if probe.get("body_regex") and not re.search(probe["body_regex"], body or ""):
        return result(probe, False, latency, "HTTP %d but the body does not match %r" % (status, probe["body_regex"]),
                      observed)
    slow = _latency_problem(probe, latency)
    if slow:
        return result(probe, False, latency, "HTTP %d but %s" % (status, slow), observed)
    return result(probe, True, latency, "HTTP %d in %.0f ms" % (status, latency * 1000), observed)


def judge_command(probe, rc, output, latency, error=None):
    """rc: exit code, or None when the command could not start or timed out (``error`` says which)."""
    observed = {"rc": rc}
    if rc is None:
        return result(probe, False, latency, error or "the command did not run", observed)
    if rc != probe["expect_rc"]:
        extra = ": %s" % _excerpt(output) if output else ""
        return result(probe, False, latency, "rc %d, expected %d%s" % (rc, probe["expect_rc"], extra), observed)
    if probe.get("output_regex") and not re.search(probe["output_regex"], output or ""):
        return result(probe, False, latency, "rc %d but the output does not match %r" % (rc, probe["output_regex"]),
                      observed)
    slow = _latency_problem(probe, latency)
    if slow:
        return result(probe, False, latency, "rc %d but %s" % (rc, slow), observed)
    return result(probe, True, latency, "rc %d in %.0f ms" % (rc, latency * 1000), observed)


def _series_label(metric):
    if not metric:
        return "{}"
    name = metric.get("__name__", "")
    rest = ",".join('%s="%s"' % (k, v) for k, v in sorted(metric.items()) if k != "__name__")
    return "%s{%s}" % (name, rest)


def prometheus_samples(payload):
    """(label, value) pairs from a /api/v1/query answer; raises ValueError for anything else."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, dict) else None
        raise ValueError("Prometheus refused the query: %s" % (error or "status is not success"))
    data = payload.get("data") or {}
    kind, found = data.get("resultType"), data.get("result")
    if kind == "vector":
        return [(_series_label(s.get("metric")), float(s["value"][1])) for s in found or []]
    if kind == "scalar":
        return [("scalar", float(found[1]))]
    raise ValueError("the query returned a %s; use an expression that returns an instant vector or a scalar" % kind)


def judge_prometheus(probe, payload, latency, error=None):
    """payload: the decoded JSON answer of /api/v1/query, or None with ``error``."""
    if payload is None:
        return result(probe, False, latency, "no answer from Prometheus at %s: %s" % (probe["url"], error), {})
    try:
        samples = prometheus_samples(payload)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return result(probe, False, latency, str(exc), {})
    observed = {"series": len(samples), "values": dict(samples[:20])}
    if not samples:
        if probe["require_result"]:
            return result(probe, False, latency, "the query returned no series (require_result is true)", observed)
        return result(probe, True, latency, "no series (allowed: require_result is false)", observed)
    if probe.get("comparator") is None:
        return result(probe, True, latency, "%d series" % len(samples), observed)
    test = COMPARATORS[probe["comparator"]]
    failing = [(label, value) for label, value in samples if math.isnan(value) or not test(value, probe["threshold"])]
    wanted = "%s %g" % (probe["comparator"], probe["threshold"])
    # The one figure a chart plots for this check: the first failing series, else the one nearest the threshold.
    values = [value for _label, value in samples if not math.isnan(value)]
    nearest = (max if probe["comparator"] in ("<", "<=") else min)(values) if values else None
    observed["value"] = failing[0][1] if failing and not math.isnan(failing[0][1]) else nearest
    if failing:
        label, value = failing[0]
        more = " (and %d more series)" % (len(failing) - 1) if len(failing) > 1 else ""
        return result(probe, False, latency, "%s = %g, expected %s%s" % (label, value, wanted, more), observed)
    slow = _latency_problem(probe, latency)
    if slow:
        return result(probe, False, latency, "values %s but %s" % (wanted, slow), observed)
    shown = samples[0][1] if len(samples) == 1 else None
    what = ("value %g" % shown) if shown is not None else "all %d series" % len(samples)
    return result(probe, True, latency, "%s %s in %.0f ms" % (what, wanted, latency * 1000), observed)


# ---------------------------------------------------------------- checks (talk to the world)


def check_http(probe):
    status, body, latency, error = request(probe["url"], probe["method"], probe["headers"], probe["body"],
                                           probe["timeout"], probe["validate_certs"])
    return judge_http(probe, status, body, latency, error)


def check_prometheus(probe):
    base = probe["url"].rstrip("/")
    query = urlencode({"query": probe["query"], "timeout": "%ds" % max(1, int(probe["timeout"]))})
    status, body, latency, error = request(base + "/api/v1/query?" + query, "GET", probe["headers"], None,
                                           probe["timeout"], probe["validate_certs"])
    if status is None:
        return judge_prometheus(probe, None, latency, error)
    try:
        payload = json.loads(body)
    except ValueError:
        return judge_prometheus(probe, None, latency, "HTTP %d with a body that is not JSON: %s"
                                % (status, _excerpt(body)))
    return judge_prometheus(probe, payload, latency)


def check_command(probe, clock=time.monotonic):
    """Run the command in its own session so a timeout ends the whole process group."""
    started = clock()
    try:
        proc = subprocess.Popen(probe["command"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        return judge_command(probe, None, "", clock() - started,
                             "cannot run %s: %s" % (probe["command"][0], exc.strerror or exc))
    try:
        output = proc.communicate(timeout=probe["timeout"])[0]
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we started, nothing else
        except OSError:
            pass
        proc.communicate()
        return judge_command(probe, None, "", clock() - started, "timed out after %gs" % probe["timeout"])
    return judge_command(probe, proc.returncode, output.decode("utf-8", "replace")[-MAX_BODY:], clock() - started)


CHECKS = {"http": check_http, "command": check_command, "prometheus": check_prometheus}


def run_local(probes):
    """Run the HTTP, command and Prometheus probes here, in order; scrub secrets from the details."""
    secrets = secrets_of(probes)
    out = []
    for probe in probes:
        checked = CHECKS[probe["type"]](probe)
        checked["detail"] = scrub(checked["detail"], secrets)
        out.append(checked)
    return out


# ---------------------------------------------------------------- argument spec

# One probe, as Ansible validates it (the module and the action share it). Every key of every
# type is listed; normalize() then checks which ones a type takes. Secrets are no_log. The
# Kubernetes auth options (validate_certs among them) are k8s_targets', aliases included.
PROBE_OPTIONS = dict(
    name=dict(type="str", required=True),
    type=dict(type="str", choices=list(TYPES)),
    run_on=dict(type="str", choices=list(RUN_ON)),
    timeout=dict(type="raw"),
    max_latency=dict(type="raw"),
    url=dict(type="str"),
    method=dict(type="str"),
    status_code=dict(type="raw"),
    body_regex=dict(type="str"),
    headers=dict(type="dict", no_log=True),
    body=dict(type="str"),
    command=dict(type="raw"),
    expect_rc=dict(type="int"),
    output_regex=dict(type="str"),
    query=dict(type="str"),
    comparator=dict(type="str", choices=list(COMPARATORS)),
    threshold=dict(type="float"),
    require_result=dict(type="bool"),
    namespace=dict(type="str"),
    pod=dict(type="str"),
    label_selector=dict(type="str"),
    require_ready=dict(type="bool"),
    max_restarts=dict(type="int"),
    min_pods=dict(type="int"),
    **probe_spec()
)

# One probe task (the module and its action): a round of probes, the running tally, and the retry that a
# search level's recovery window uses (the round again every retry_every seconds, for up to retry_for).
PROBE_TASK_SPEC = dict(
    probes=dict(type="list", elements="dict", required=True, options=PROBE_OPTIONS),
    phase=dict(type="str", default="check"),
    tally=dict(type="dict", default={}),
    retry_for=dict(type="float", default=0),
    retry_every=dict(type="float", default=5),
)


def set_only(spec):
    """A probe definition without the keys Ansible filled with None, aliases under their option's name."""
    if not isinstance(spec, dict):
        return spec
    return canonical(dict((k, v) for k, v in spec.items() if v is not None))
