"""Report publishing (plugin_utils/_publish.py): the pure parts, as tables."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._publish import (
    PublishError, content_type, file_list, run, secrets_of, shown_url, slack_message, upload_url,
)


@pytest.mark.parametrize("url, keep_path, shown", [
    ("https://bucket.s3.amazonaws.com/r/x.json?X-Amz-Signature=abc&X-Amz-Credential=k", True,
     "https://bucket.s3.amazonaws.com/r/x.json"),
    ("https://user:pw@repo.example.com:8443/raw/x.html", True, "https://repo.example.com:8443/raw/x.html"),
    ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", False, "https://hooks.slack.com"),
])
def test_urls_are_shown_without_secrets(url, keep_path, shown):
    assert shown_url(url, keep_path) == shown


@pytest.mark.parametrize("template, count, url", [
    ("https://repo/raw/{file}", 3, "https://repo/raw/report.html"),
    ("https://bucket/one?sig=1", 1, "https://bucket/one?sig=1"),
])
def test_upload_url(template, count, url):
    assert upload_url(template, "/tmp/x/report.html", count) == url


def test_several_files_need_a_file_placeholder():
    with pytest.raises(PublishError, match=r"must contain \{file\}"):
        upload_url("https://bucket/one?sig=1", "/tmp/a.html", 2)


@pytest.mark.parametrize("path, given, expected", [
    ("r.html", None, "text/html; charset=utf-8"),
    ("r.md", None, "text/markdown; charset=utf-8"),
    ("r.JSON", None, "application/json"),
    ("r.bin", None, "application/octet-stream"),
    ("r.html", "application/x-custom", "application/x-custom"),
])
def test_content_type(path, given, expected):
    assert content_type(path, given) == expected


STATS = {"experiment": "checkout-mem", "title": "Game day: checkout", "verdict": "fail",
         "hosts": {"ok": ["n1", "n2"], "missing": ["n3"], "failed": []},
         "per_host": {"n1": {"verdict": "pass", "notes": []},
                      "n2": {"verdict": "fail", "notes": ["probe web failed 3 of 10 checks", "x", "y", "z"]}}}


@pytest.mark.parametrize("stats, text, link, expected", [
    (STATS, None, None,
     ":x: *Game day: checkout*: FAIL (2 ok, 1 missing)\n- n2: fail - probe web failed 3 of 10 checks; x; y"),
    ({"experiment": "e", "verdict": "pass", "hosts": {"ok": ["a"]}}, None, "https://r/x.html",
     ":white_check_mark: *e*: PASS (1 ok)\nReport: <https://r/x.html>"),
    (None, "custom words", None, "custom words"),
    ({}, None, None, ":grey_question: *chaosfleet.stress experiment*: UNKNOWN"),
    ({"name": "weekly", "verdict": "fail", "batches": [[{"name": "mem", "verdict": "pass", "skipped": ["n3"]}],
                                                       [{"name": "cpu", "verdict": "fail", "skipped": []}]]},
     None, None, ":x: *Game day weekly*: FAIL\n- cpu: fail"),
])
def test_slack_message(stats, text, link, expected):
    message = slack_message(stats, text, link)
    assert message["text"] == expected
    assert message["blocks"][0]["text"] == {"type": "mrkdwn", "text": expected}


@pytest.mark.parametrize("files, message", [
    ([], "files must be a non-empty list"),
    ("", "files must be a non-empty list"),
    (["/nonexistent/cflab/a.html"], "no such report file: /nonexistent/cflab/a.html"),
])
def test_bad_file_lists(files, message):
    with pytest.raises(PublishError, match=message):
        file_list(files)


def test_files_with_the_same_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "r.json").write_text("{}")
    with pytest.raises(PublishError, match="share a name"):
        file_list({"json": str(tmp_path / "a" / "r.json"), "other": str(tmp_path / "b" / "r.json")})


def test_nothing_to_do_is_an_error(tmp_path):
    with pytest.raises(PublishError, match="nothing to do"):
        run({"files": [str(tmp_path)]})


def test_secrets_cover_headers_signatures_and_the_webhook():
    args = {"upload": {"url": "https://u:pa55word@b/x?X-Amz-Signature=s1g", "headers": {"Authorization": "Bearer tok1"}},
            "webhook": {"url": "https://hooks.example.com/services/T1/B1/hooksecret", "headers": {}}}
    found = secrets_of(args)
    for secret in ("X-Amz-Signature=s1g", "tok1", "pa55word", "/services/T1/B1/hooksecret"):
        assert secret in found


def test_slack_lines_name_the_kubernetes_target():
    stats = {"experiment": "pods", "verdict": "fail", "hosts": {"ok": ["w1--aaaaaaaaaaaa", "w2"]},
             "per_host": {"w1--aaaaaaaaaaaa": {"verdict": "fail", "notes": ["steady state broke"],
                                               "kubernetes": {"namespace": "shop", "pod": "web-1",
                                                              "container": "app", "node": "w1"}},
                          "w2": {"verdict": "inconclusive", "notes": []}}}
    assert slack_message(stats)["text"] == (
        ":x: *pods*: FAIL (2 ok)\n"
        "- w1--aaaaaaaaaaaa (pod shop/web-1, container app, node w1): fail - steady state broke\n"
        "- w2: inconclusive")


PUBLISHED = {"copied": ["/mnt/r/a.html"], "uploaded": [{"url": "https://b/a.html", "ok": True},
                                                       {"url": "https://b/a.json", "ok": False}],
             "webhook": {"url": "https://hooks.slack.com", "ok": True}, "errors": ["upload of a.json: HTTP 403"]}
OUTCOME_CASES = [
    # (case, publish result, fail_on_error, lines, failure)
    ("all went", dict(PUBLISHED, errors=[], uploaded=PUBLISHED["uploaded"][:1]), True,
     ["copied to /mnt/r", "uploaded to https://b/a.html", "summary posted to https://hooks.slack.com"], ""),
    ("one failed, fatal", PUBLISHED, True,
     ["copied to /mnt/r", "uploaded to https://b/a.html", "summary posted to https://hooks.slack.com",
      "FAILED: upload of a.json: HTTP 403"], "upload of a.json: HTTP 403"),
    ("one failed, tolerated", PUBLISHED, False,
     ["copied to /mnt/r", "uploaded to https://b/a.html", "summary posted to https://hooks.slack.com",
      "FAILED: upload of a.json: HTTP 403"], ""),
    ("webhook failed", {"copied": [], "uploaded": [], "webhook": {"url": "https://h", "ok": False},
                        "errors": ["webhook post: refused"]}, True, ["FAILED: webhook post: refused"],
     "webhook post: refused"),
    ("bad input always fails", {"msg": "files share a name (a.html)"}, False, ["FAILED: files share a name (a.html)"],
     "files share a name (a.html)"),
    ("bad input without a message", {}, False, ["FAILED: unknown error"], "unknown error"),
]


@pytest.mark.parametrize("result, fail_on_error, lines, failure", [c[1:] for c in OUTCOME_CASES],
                         ids=[c[0] for c in OUTCOME_CASES])
def test_outcome(result, fail_on_error, lines, failure):
    from ansible_collections.chaosfleet.stress.plugins.plugin_utils._publish import outcome
    assert outcome(result, "/mnt/r", fail_on_error) == {"lines": lines, "failure": failure}
