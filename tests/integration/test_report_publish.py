"""chaosfleet.stress.report_publish through ansible-playbook against a local receiver on loopback.

The receiver (service_fixtures.App) records every PUT and POST with its headers and body, so the
tests check what arrived, byte for byte, not what the action says it sent.
"""

import json
import os
import shutil
import tempfile

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import fast_experiment, run_playbook, unique
from tests.integration.service_fixtures import app, free_port  # noqa: F401
from tests.integration.test_k8s_targets import run_tasks

TOKEN = "cflab-art-key-4c1d9e"
SIGNATURE = "X-Amz-Signature=cflab5e7a11"
HOOK_PATH = "/services/T0CFLAB/B0CFLAB/cflabhooksecret"
STATS = {"experiment": "checkout-mem", "title": "Game day: checkout", "verdict": "fail",
         "hosts": {"ok": ["n1", "n2"], "missing": [], "failed": []},
         "per_host": {"n1": {"verdict": "pass", "notes": []},
                      "n2": {"verdict": "fail", "notes": ["probe web failed 2 of 4 checks"]}}}


@pytest.fixture(scope="module")
def reports():
    workdir = tempfile.mkdtemp(prefix="cflab-publish-")
    files = {}
    for fmt, name, body in (("html", "r.html", b"<html>\xc3\xa9</html>"), ("markdown", "r.md", b"# report\n"),
                            ("json", "r.json", b'{"verdict": "fail"}')):
        files[fmt] = os.path.join(workdir, name)
        with open(files[fmt], "wb") as handle:
            handle.write(body)
    try:
        yield workdir, files
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def published(app, reports):
    workdir, files = reports
    dest = os.path.join(workdir, "kept", "2026-11-29")
    dead = "http://127.0.0.1:%d" % free_port()
    app.upload_status["/denied/r.json"] = 403
    publish = "chaosfleet.stress.report_publish"
    tasks = [
        {"name": "check", publish: {"files": files, "copy_to": dest, "upload": {"url": app.url + "/raw/{file}"},
                                    "webhook": {"url": app.url + HOOK_PATH, "stats": STATS}}, "check_mode": True},
        {"name": "all", publish: {
            "files": files, "copy_to": dest,
            "upload": {"url": app.url + "/raw/{file}", "headers": {"X-JFrog-Art-Api": TOKEN}},
            "webhook": {"url": app.url + HOOK_PATH, "stats": STATS, "link": app.url + "/raw/r.html"}}},
        {"name": "again", publish: {"files": files, "copy_to": dest}},
        {"name": "presigned", publish: {"files": [files["json"]],
                                        "upload": {"url": app.url + "/bucket/r.json?" + SIGNATURE, "method": "POST"}}},
        {"name": "denied", publish: {"files": [files["json"]], "upload": {"url": app.url + "/denied/{file}?" + SIGNATURE},
                                     "webhook": {"url": dead + HOOK_PATH, "text": "hello"}},
         "ignore_errors": True},
        {"name": "lenient", publish: {"files": [files["json"]], "upload": {"url": app.url + "/denied/r.json"},
                                      "fail_on_error": False}},
        {"name": "missing", publish: {"files": [os.path.join(workdir, "nope.html")], "copy_to": dest},
         "ignore_errors": True},
        {"name": "several", publish: {"files": files, "upload": {"url": app.url + "/one?" + SIGNATURE}},
         "ignore_errors": True},
    ]
    before = len(app.received())
    run = run_tasks(workdir, tasks, vars_extra={"ansible_connection": "local"}, verbosity=3)
    return run, app.received()[before:], dest, dead


def test_files_are_copied_to_the_controller_directory(published, reports):
    run, _, dest, _ = published
    _, files = reports
    assert run["all"]["copied"] == [os.path.join(dest, os.path.basename(files[k])) for k in sorted(files)]
    for path in files.values():
        with open(path, "rb") as a, open(os.path.join(dest, os.path.basename(path)), "rb") as b:
            assert a.read() == b.read()
    assert run["again"]["changed"] is False


def test_uploads_arrive_byte_for_byte_with_content_type_and_auth(published, reports):
    run, received, _, _ = published
    _, files = reports
    puts = dict((r["path"], r) for r in received if r["method"] == "PUT" and r["path"].startswith("/raw/"))
    assert sorted(puts) == ["/raw/r.html", "/raw/r.json", "/raw/r.md"]
    for path in files.values():
        got = puts["/raw/" + os.path.basename(path)]
        with open(path, "rb") as handle:
            assert got["body"] == handle.read()
        assert got["headers"]["x-jfrog-art-api"] == TOKEN
    assert puts["/raw/r.html"]["headers"]["content-type"] == "text/html; charset=utf-8"
    assert puts["/raw/r.json"]["headers"]["content-type"] == "application/json"
    assert [u["status"] for u in run["all"]["uploaded"]] == [201, 201, 201]
    posts = [r for r in received if r["method"] == "POST" and r["path"].startswith("/bucket/")]
    assert len(posts) == 1 and posts[0]["path"] == "/bucket/r.json?" + SIGNATURE
    assert run["presigned"]["uploaded"][0]["url"].endswith("/bucket/r.json")


def test_the_webhook_gets_a_slack_compatible_summary(published, app):
    run, received, _, _ = published
    hooks = [r for r in received if r["path"] == HOOK_PATH]
    assert len(hooks) == 1
    assert hooks[0]["headers"]["content-type"] == "application/json"
    message = json.loads(hooks[0]["body"])
    assert message["text"] == (":x: *Game day: checkout*: FAIL (2 ok)\n- n2: fail - probe web failed 2 of 4 checks"
                               "\nReport: <%s/raw/r.html>" % app.url)
    assert message["blocks"][0]["text"]["type"] == "mrkdwn"
    assert run["all"]["webhook"] == {"url": app.url, "status": 201, "ok": True, "error": "", "text": message["text"]}


def test_check_mode_sends_and_writes_nothing(published):
    run, received, dest, _ = published
    assert run["check"]["changed"] is True  # would copy, upload and post
    # Only the "all" task's three PUTs reached /raw/, and the first copy was written by "all".
    assert len([r for r in received if r["path"].startswith("/raw/")]) == 3


def test_failures_are_clear_and_every_destination_is_tried(published, app):
    run, received, _, dead = published
    result = run["denied"]
    assert result["failed"]
    assert result["errors"][0] == ("upload of r.json to %s/denied/r.json failed: HTTP 403: denied: bad signature"
                                   % app.url)
    assert result["errors"][1].startswith("webhook post to %s failed: no answer (" % dead)
    assert result["msg"] == "; ".join(result["errors"])
    assert run["lenient"].get("failed") is not True and run["lenient"]["errors"]
    assert run["missing"]["msg"].startswith("no such report file: ")
    assert "must contain {file}" in run["several"]["msg"]
    assert not [r for r in received if r["path"].startswith("/one")]


def test_secrets_never_reach_the_output(published):
    run, _, _, _ = published
    text = run.stdout + run.stderr + run.raw_results
    for secret in (TOKEN, SIGNATURE, "cflabhooksecret", HOOK_PATH):
        assert secret not in text, secret


# --- the experiment role publishes its own report (memory_stress on the lab fleet) -------------------------


@pytest.mark.lab
@pytest.mark.slow
def test_memory_stress_publishes_its_report_and_summary(fleet, app, tmp_path):  # noqa: F811
    """experiment_publish_*: the role uploads every report file byte for byte and posts a Slack-compatible summary
    with the verdict, once, from the controller; the URLs' tokens and the header never reach the output."""
    name = unique("pubrole")
    hook = "/services/T0CFLAB/B0ROLE/cflabrolehooksecret-%s" % name
    extra = fast_experiment(
        experiment_name=name, experiment_report_dest=str(tmp_path / "reports"),
        experiment_probes=[{"name": "hello-http", "url": "http://127.0.0.1:{{ fleet_pods.hello.http_port }}/"}],
        experiment_publish_upload_url=app.url + "/chaos/%s/{file}?%s" % (name, SIGNATURE),
        experiment_publish_upload_headers={"X-JFrog-Art-Api": TOKEN},
        experiment_publish_webhook_url=app.url + hook,
        experiment_publish_copy_to=str(tmp_path / "kept"))
    before = len(app.received())
    run = run_playbook(fleet, "chaosfleet.stress.memory_stress", extra, limit="node1,node2")
    assert run.rc == 0, run
    received = app.received()[before:]

    report = json.loads((tmp_path / "reports" / ("stress-report-%s.json" % name)).read_text())
    assert report["verdict"] == "pass", report["verdicts"]
    puts = dict((r["path"].split("?")[0], r) for r in received if r["method"] == "PUT")
    names = ["stress-report-%s.%s" % (name, ext) for ext in ("html", "json", "md")]
    assert sorted(puts) == ["/chaos/%s/%s" % (name, n) for n in names]
    for file_name in names:
        sent = (tmp_path / "reports" / file_name).read_bytes()
        assert puts["/chaos/%s/%s" % (name, file_name)]["body"] == sent
        assert puts["/chaos/%s/%s" % (name, file_name)]["headers"]["x-jfrog-art-api"] == TOKEN
        assert (tmp_path / "kept" / file_name).read_bytes() == sent
    hooks = [r for r in received if r["path"] == hook]
    assert len(hooks) == 1  # once per play, not once per host
    message = json.loads(hooks[0]["body"])
    assert message["text"] == ":white_check_mark: *Stress experiment %s*: PASS (2 ok)" % name
    assert message["blocks"][0]["text"] == {"type": "mrkdwn", "text": message["text"]}
    assert "summary posted to %s" % app.url in run.out
    for secret in (TOKEN, SIGNATURE, "cflabrolehooksecret"):
        assert secret not in run.text, secret
