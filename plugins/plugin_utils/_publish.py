# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report publishing for the report_publish action: copy to a directory, upload, post a summary.

Controller-side. Reports written inside an AWX execution environment vanish with the
job; this gets them out: into a directory on the controller (a mounted volume), to
object storage or an artifact repository with one HTTP PUT or POST per file (an S3
pre-signed URL, Artifactory and Nexus raw repositories all take a raw body), and a
one-message summary to a Slack-compatible webhook.

Secrets: header values, the query string of upload URLs (pre-signed signatures) and the
whole webhook URL (Slack puts its token in the path) never appear in a result or an
error. URLs are shown as scheme://host/path for uploads and scheme://host for webhooks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import tempfile

from urllib.parse import urlsplit, urlunsplit

from ansible_collections.chaosfleet.stress.plugins.module_utils._http import request
from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import scrub

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".md": "text/markdown; charset=utf-8",
                 ".json": "application/json", ".txt": "text/plain; charset=utf-8"}
VERDICT_MARK = {"pass": ":white_check_mark:", "inconclusive": ":grey_question:", "error": ":warning:",
                "fail": ":x:"}

ARGUMENT_SPEC = dict(
    files=dict(type="raw", required=True),
    copy_to=dict(type="path"),
    upload=dict(type="dict", options=dict(
        url=dict(type="str", required=True, no_log=False),
        method=dict(type="str", choices=["PUT", "POST"], default="PUT"),
        headers=dict(type="dict", default={}, no_log=True),
        content_type=dict(type="str"),
        timeout=dict(type="float", default=30),
        validate_certs=dict(type="bool", default=True),
    )),
    webhook=dict(type="dict", options=dict(
        url=dict(type="str", required=True, no_log=True),
        stats=dict(type="dict"),
        text=dict(type="str"),
        link=dict(type="str"),
        headers=dict(type="dict", default={}, no_log=True),
        timeout=dict(type="float", default=30),
        validate_certs=dict(type="bool", default=True),
    )),
    fail_on_error=dict(type="bool", default=True),
)


class PublishError(Exception):
    """Bad input; nothing was published."""


# ---------------------------------------------------------------- pure parts


def file_list(files):
    """Report paths from a list, or from stress_report's ``paths`` mapping (format -> path)."""
    if isinstance(files, dict):
        files = [files[k] for k in sorted(files)]
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise PublishError("files must be a non-empty list of report paths, or the paths mapping of "
                           "chaosfleet.stress.stress_report")
    names = [os.path.basename(f) for f in files]
    twice = sorted(set(n for n in names if names.count(n) > 1))
    if twice:
        raise PublishError("files share a name (%s); they would overwrite each other" % ", ".join(twice))
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise PublishError("no such report file: %s. Nothing was published." % ", ".join(missing))
    return list(files)


def shown_url(url, keep_path=True):
    """The URL without credentials or query string (pre-signed signatures), for output."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = "%s:%d" % (host, parts.port)
    return urlunsplit((parts.scheme, host, parts.path if keep_path else "", "", ""))


def upload_url(template, path, count):
    """The URL for one file: ``{file}`` in the template is the file's name."""
    name = os.path.basename(path)
    if "{file}" not in template and count > 1:
        raise PublishError("upload.url must contain {file} when more than one file is uploaded (each file needs "
                           "its own URL), or upload the files one task at a time")
    return template.replace("{file}", name)


def check_url(url, what):
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PublishError("%s must be an http:// or https:// URL, got %s" % (what, shown_url(url or "") or "nothing"))


def content_type(path, given=None):
    return given or CONTENT_TYPES.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


def _game_day_stats(summary):
    """A game day summary (chaosfleet_game_day) in the shape of a report's stats: one line per experiment."""
    entries = [e for batch in summary.get("batches") or [] for e in batch]
    return {"title": "Game day %s" % summary.get("name"), "verdict": summary.get("verdict"),
            "per_host": dict((e["name"], {"verdict": e.get("verdict"),
                                          "notes": ["skipped (no target): " + ", ".join(e["skipped"])]
                                          if e.get("skipped") else []}) for e in entries),
            "hosts": {}}


def _k8s_label(names):
    """' (pod shop/web-1, container app, node w1)' for a target k8s_targets picked, else ''."""
    if not isinstance(names, dict) or not names:
        return ""
    parts = []
    if names.get("pod"):
        parts.append("pod %s" % "/".join(str(n) for n in (names.get("namespace"), names["pod"]) if n))
    parts.extend("%s %s" % (key, names[key]) for key in ("container", "node") if names.get(key))
    return " (%s)" % ", ".join(parts) if parts else ""


def slack_message(stats=None, text=None, link=None):
    """A Slack-compatible incoming-webhook body: ``text`` (every such receiver reads it) plus blocks.

    ``stats`` is a report's stats (stress_report) or a game day summary (chaosfleet_game_day).
    """
    if isinstance(stats, dict) and "batches" in stats:
        stats = _game_day_stats(stats)
    if text:
        summary = text
    else:
        stats = stats or {}
        verdict = str(stats.get("verdict") or "unknown")
        hosts = stats.get("hosts") or {}
        counts = ", ".join("%d %s" % (len(hosts.get(k) or []), k) for k in ("ok", "failed", "missing")
                           if hosts.get(k))
        summary = "%s *%s*: %s%s" % (VERDICT_MARK.get(verdict, ":grey_question:"),
                                     stats.get("title") or stats.get("experiment") or "chaosfleet.stress experiment",
                                     verdict.upper(), " (%s)" % counts if counts else "")
        lines = []
        for host, entry in sorted((stats.get("per_host") or {}).items()):
            if (entry or {}).get("verdict") not in (None, "pass"):
                notes = "; ".join(str(n) for n in (entry.get("notes") or [])[:3])
                lines.append("- %s%s: %s%s" % (host, _k8s_label(entry.get("kubernetes")), entry.get("verdict"),
                                               " - " + notes if notes else ""))
        if len(lines) > 10:
            lines = lines[:10] + ["- ... and %d more hosts" % (len(lines) - 10)]
        if lines:
            summary += "\n" + "\n".join(lines)
    if link:
        summary += "\nReport: <%s>" % link
    return {"text": summary, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": summary[:2900]}}]}


# ---------------------------------------------------------------- the world


def copy_files(files, directory, check_mode=False):
    """Copy each file into ``directory`` (created if missing), atomically; returns (copied, changed)."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise PublishError("copy_to %s exists and is not a directory" % directory)
    copied, changed = [], []
    if not check_mode:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise PublishError("cannot create copy_to directory %s: %s" % (directory, exc.strerror or exc))
    for path in files:
        dest = os.path.join(directory, os.path.basename(path))
        copied.append(dest)
        if os.path.isfile(dest) and _same(path, dest):
            continue
        changed.append(dest)
        if check_mode:
            continue
        try:
            handle, tmp = tempfile.mkstemp(dir=directory, prefix=".publish-")
            with os.fdopen(handle, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except (IOError, OSError) as exc:
            raise PublishError("cannot copy %s to %s: %s" % (path, directory, exc.strerror or exc))
    return copied, changed


def _same(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as x, open(b, "rb") as y:
        return x.read() == y.read()


def _send(url, method, headers, body, options):
    """(status or None, answer text, error) of one request."""
    status, text, _seconds, error = request(url, method, headers, body, options["timeout"], options["validate_certs"])
    return status, text, error


def _outcome(what, shown, status, text, error):
    if status is None:
        return False, "%s to %s failed: no answer (%s)" % (what, shown, error)
    if not 200 <= status < 300:
        excerpt = " ".join((text or "").split())[:200]
        return False, "%s to %s failed: HTTP %d%s" % (what, shown, status, ": " + excerpt if excerpt else "")
    return True, ""


def upload_files(files, options, check_mode=False):
    """PUT or POST each file's bytes; returns [{file, url, status, ok, error}]."""
    check_url(options["url"].replace("{file}", "x"), "upload.url")
    done = []
    for path in files:
        url = upload_url(options["url"], path, len(files))
        entry = {"file": path, "url": shown_url(url), "status": None, "ok": True, "error": ""}
        done.append(entry)
        if check_mode:
            continue
        headers = dict(options.get("headers") or {})
        headers.setdefault("Content-Type", content_type(path, options.get("content_type")))
        with open(path, "rb") as handle:
            body = handle.read()
        status, text, error = _send(url, options["method"], headers, body, options)
        entry["status"] = status
        entry["ok"], entry["error"] = _outcome("upload of %s" % os.path.basename(path), entry["url"], status, text,
                                               error)
    return done


def post_webhook(options, check_mode=False):
    check_url(options["url"], "webhook.url")
    message = slack_message(options.get("stats"), options.get("text"), options.get("link"))
    entry = {"url": shown_url(options["url"], keep_path=False), "status": None, "ok": True, "error": "",
             "text": message["text"]}
    if check_mode:
        return entry
    headers = dict(options.get("headers") or {})
    headers["Content-Type"] = "application/json"
    status, text, error = _send(options["url"], "POST", headers, json.dumps(message).encode("utf-8"), options)
    entry["status"] = status
    entry["ok"], entry["error"] = _outcome("webhook post", entry["url"], status, text, error)
    return entry


def secrets_of(args):
    found = []
    for key in ("upload", "webhook"):
        options = args.get(key) or {}
        for value in (options.get("headers") or {}).values():
            found.extend([str(value), str(value).split(" ", 1)[-1]])
    upload = (args.get("upload") or {}).get("url") or ""
    if urlsplit(upload).query:
        found.append(urlsplit(upload).query)
    hook = (args.get("webhook") or {}).get("url")
    if hook:
        found.append(hook)
        found.append(urlsplit(hook).path)
    parts = [urlsplit(u) for u in (upload, hook or "")]
    found.extend(p.password for p in parts if p.password)
    return [s for s in found if s and len(s) >= 4 and s != "/"]


def outcome(result, copy_to=None, fail_on_error=True):
    """What a publish did, as lines to show, and why it fails the play ('' when it does not).

    ``result``: run()'s answer, or {msg} when the input was bad and nothing was published (that
    always fails). A destination that failed fails the play only with ``fail_on_error``; the role
    and the game day show the lines and fail with ``failure``, so their wording is this one.
    """
    if "errors" not in result:
        why = str(result.get("msg") or "unknown error")
        return {"lines": ["FAILED: " + why], "failure": why}
    webhook = result.get("webhook") or {}
    lines = ((["copied to %s" % copy_to] if result.get("copied") else [])
             + ["uploaded to %s" % u["url"] for u in result.get("uploaded") or [] if u.get("ok")]
             + (["summary posted to %s" % webhook["url"]] if webhook.get("ok") else [])
             + ["FAILED: %s" % e for e in result["errors"]])
    return {"lines": lines, "failure": "; ".join(result["errors"]) if result["errors"] and fail_on_error else ""}


def run(args, check_mode=False):
    """Copy, upload and post as asked; returns the action's result (failures listed, not raised)."""
    if not (args.get("copy_to") or args.get("upload") or args.get("webhook")):
        raise PublishError("nothing to do: give copy_to, upload or webhook")
    files = file_list(args["files"])
    secrets = secrets_of(args)
    out = {"changed": False, "copied": [], "uploaded": [], "webhook": None, "errors": []}
    if args.get("copy_to"):
        out["copied"], changed = copy_files(files, args["copy_to"], check_mode)
        out["changed"] = out["changed"] or bool(changed)
    if args.get("upload"):
        out["uploaded"] = upload_files(files, args["upload"], check_mode)
        out["errors"].extend(u["error"] for u in out["uploaded"] if not u["ok"])
        out["changed"] = out["changed"] or any(u["ok"] for u in out["uploaded"])
    if args.get("webhook"):
        out["webhook"] = post_webhook(args["webhook"], check_mode)
        if not out["webhook"]["ok"]:
            out["errors"].append(out["webhook"]["error"])
        out["changed"] = out["changed"] or out["webhook"]["ok"]
    return json.loads(scrub(json.dumps(out), secrets))
