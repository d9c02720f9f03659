"""Issue 11, point 8: k8s_targets never writes a credential to syslog/journald, the Ansible log or its result.

The module runs through ansible-playbook at -vvv with ANSIBLE_LOG_PATH set, against the API double.
What Ansible would send to syslog is captured by a stand-in ``syslog`` module put first on the
module's PYTHONPATH (AnsibleModule logs every invocation there, before the module's own code runs).
"""

import base64
import json
import uuid
from pathlib import Path

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_client import (
    KUBECONFIG_SHOWN_AS, kubeconfig_secrets, param_secrets,
)
from tests.integration.test_k8s_targets import cluster, double, k8s_task, run_tasks, workdir  # noqa: F401

FAKE_SYSLOG = '''
import os
LOG_EMERG, LOG_ALERT, LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG = range(8)
LOG_KERN, LOG_USER, LOG_DAEMON = 0, 8, 24
LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3 = 128, 136, 144, 152
LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7 = 160, 168, 176, 184
LOG_PID, LOG_CONS, LOG_NDELAY = 1, 2, 8


def openlog(*args, **kwargs):
    pass


def closelog():
    pass


def syslog(*args):
    with open(os.environ["CFLAB_SYSLOG_CAPTURE"], "a") as handle:
        handle.write(str(args[-1]) + "\\n")
'''


def jwt(claims):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return "%s.%s.%s" % (part({"alg": "RS256", "typ": "JWT"}), part(claims), "c2lnbmF0dXJl")


SECRETS = {
    "id_token": jwt({"iss": "https://idp.cflab.invalid", "sub": "cflab", "exp": 4102444800,
                     "nonce": uuid.uuid4().hex}),
    "refresh_token": "cflab-refresh-" + uuid.uuid4().hex,
    "client_secret": "cflab-oidc-secret-" + uuid.uuid4().hex,
    "client_key_data": base64.b64encode(("cflab-key-" + uuid.uuid4().hex).encode()).decode(),
    "proxy_password": "cflab-proxy-pw-" + uuid.uuid4().hex,
    "dict_token": "cflab-dict-token-" + uuid.uuid4().hex,
    "exec_secret": "cflab-exec-secret-" + uuid.uuid4().hex,
}


def oidc_kubeconfig(double):
    kubeconfig = double.kubeconfig_dict(inline_ca=True)
    kubeconfig["users"][0]["user"] = {"auth-provider": {"name": "oidc", "config": {
        "client-id": "cflab-client", "client-secret": SECRETS["client_secret"],
        "id-token": SECRETS["id_token"], "refresh-token": SECRETS["refresh_token"],
        "idp-issuer-url": "https://idp.cflab.invalid"}}}
    return kubeconfig


@pytest.fixture(scope="module")
def secrets_run(double, workdir):  # noqa: F811
    double.add_token(SECRETS["id_token"], user="oidc")
    double.add_token(SECRETS["dict_token"], user="dict")
    fake = Path(workdir) / "fake-syslog"
    fake.mkdir()
    (fake / "syslog.py").write_text(FAKE_SYSLOG)
    captured = Path(workdir) / "syslog.txt"
    log_path = Path(workdir) / "ansible.log"
    sel = {"namespaces": ["team-00"], "mode": "all", "allow_empty": True}
    key_user = double.kubeconfig_dict(token=SECRETS["dict_token"])
    key_user["users"][0]["user"].update({"client-certificate-data": base64.b64encode(b"not a cert").decode(),
                                         "client-key-data": SECRETS["client_key_data"]})
    exec_user = double.kubeconfig_dict(token=SECRETS["dict_token"])
    exec_user["users"][0]["user"]["exec"] = {"apiVersion": "client.authentication.k8s.io/v1", "command": "true",
                                             "env": [{"name": "CFLAB_SECRET", "value": SECRETS["exec_secret"]}]}
    rows = [
        ("oidc tokens in a kubeconfig dict", dict(sel, kubeconfig=oidc_kubeconfig(double))),
        ("token in a kubeconfig dict", dict(sel, kubeconfig=double.kubeconfig_dict(token=SECRETS["dict_token"]))),
        ("client key data in a kubeconfig dict", dict(sel, kubeconfig=key_user)),
        ("exec env secret in a kubeconfig dict", dict(sel, kubeconfig=exec_user)),
        ("password inside the proxy URL", dict(sel, host=double.url, ca_cert=double.ca_path,
                                               api_key=SECRETS["dict_token"],
                                               proxy="http://cfuser:%s@127.0.0.1:9" % SECRETS["proxy_password"])),
    ]
    env = {"ANSIBLE_LOG_PATH": str(log_path), "ANSIBLE_NO_TARGET_SYSLOG": "False"}
    run = run_tasks(workdir, [k8s_task(row_id, args) for row_id, args in rows], verbosity=3, env=env,
                    play_extra={"environment": {"PYTHONPATH": str(fake), "CFLAB_SYSLOG_CAPTURE": str(captured)}})
    return run, captured.read_text() if captured.exists() else "", log_path.read_text()


def test_syslog_capture_sees_every_invocation(secrets_run):
    """The stand-in works: every k8s_targets run logged its invocation there."""
    _run, syslog, _log = secrets_run
    assert syslog.count("Invoked with") >= 5, syslog[-2000:]


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_no_secret_reaches_syslog_the_log_file_or_the_result(secrets_run, name):
    run, syslog, log = secrets_run
    secret = SECRETS[name]
    for where, text in (("syslog/journald", syslog), ("ANSIBLE_LOG_PATH", log), ("stdout -vvv", run.stdout),
                        ("stderr", run.stderr), ("registered results", run.raw_results)):
        assert secret not in text, "%s leaked to %s" % (name, where)


def test_the_dict_kubeconfig_is_not_echoed_but_plain_values_stay_readable(secrets_run):
    run, _syslog, log = secrets_run
    oidc = run["oidc tokens in a kubeconfig dict"]
    assert not oidc.get("failed"), oidc.get("msg")
    # At -vvv Ansible prints each result's invocation: the dict is replaced, the other options are readable.
    invocations = [line for line in run.stdout.splitlines() if '"module_args"' in line or "module_args" in line]
    assert run.stdout.count(KUBECONFIG_SHOWN_AS) >= 4 and log.count(KUBECONFIG_SHOWN_AS) >= 4, invocations[:3]
    assert '"team-00"' in run.stdout
    proxy = run["password inside the proxy URL"]
    assert proxy.get("failed") and "port=9" in proxy["msg"]
    assert "http://cfuser:********@127.0.0.1:9" in run.stdout


def test_secret_finders():
    kubeconfig = {"users": [{"user": {"auth-provider": {"config": {"id-token": "idtok", "refresh-token": "rftok",
                                                                  "client-id": "public"}}}},
                            {"user": {"client-key-data": "keydata", "username": "alice"}},
                            {"user": {"exec": {"env": [{"name": "API_TOKEN", "value": "envtok"},
                                                       {"name": "REGION", "value": "eu-west"}]}}}],
                  "clusters": [{"cluster": {"server": "https://x", "proxy-url": "http://u:proxypw@p:1"}}]}
    assert sorted(kubeconfig_secrets(kubeconfig)) == ["envtok", "idtok", "keydata", "proxypw", "rftok"]
    assert param_secrets({"proxy": "http://u:pw12345@proxy:3128", "kubeconfig": "/a/path"}) == ["pw12345"]
    assert param_secrets({"proxy": "http://proxy:3128"}) == []
