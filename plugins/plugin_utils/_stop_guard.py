# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stop guard: ends every node's stress at once when the playbook is interrupted or killed.

Nothing inside the playbook's process group can act on a cancel: ansible-runner (AWX) cancels
with SIGKILL to the whole group. So the experiment role's decision action (experiment_control,
step arm) starts this guard as a separate Python process in its own session, before the stress
starts. It keeps a private copy of the participating hosts with their connection variables, the
playbook's PID with its start time, and waits for one of:

- the role's normal end (step disarm writes DISARM_FILE): it exits and does nothing;
- a stop request (STOP_FILE), written by the monitor's worker when ansible-playbook forwards it
  SIGINT or SIGTERM: it stops at once, without waiting for the playbook to exit;
- the playbook's SIGINT or SIGTERM handler having run (its disposition in /proc/PID/status went
  from caught to default): it stops, even when ansible-core then lost the KeyboardInterrupt and the
  play goes on (CPython drops one raised inside an at-fork hook while Ansible forks a worker);
- the playbook process vanishing (SIGKILL, a second Ctrl-C, SIGTERM, or an exit before the role
  disarmed it): it stops;
- its bound (the experiment's deadline plus a margin): the nodes ended the stress by themselves,
  it exits.

The stop is one parallel run of ``chaosfleet.stress.stressor state=absent`` through Ansible itself,
in this process (Ansible is imported and the inventory built while it waits, so the stop costs only
the connections), over each host's own connection (SSH, kubectl, become...). It prints one line per
node on the playbook's stdout, writes a stop record for the report, removes its directory and exits.

The decisions (what to do next, what a /proc stat says, what to print and record) are plain
functions here, unit-tested as tables (tests/unit/plugins/plugin_utils/test_stop_guard.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

GUARD_DIR_PREFIX = "chaosfleet-guard-"
MARKER = "chaosfleet-stop-guard"       # in the guard's command line, so ps and leftovers.sh can name it
CONFIG_FILE = "config.json"           # the private snapshot (0600), removed as soon as the guard read it
RECORD_FILE = "guard.json"            # the guard's PID and start time
READY_FILE = "ready"
FAILED_FILE = "failed"
STOP_FILE = "stop"                    # a stop request: {"signal": "SIGINT", "at": epoch}
DISARM_FILE = "disarm"
POLL_SECONDS = 0.1
READY_TIMEOUT = 20.0
MARGIN_SECONDS = 60.0                 # the guard outlives the experiment's deadline by at most this
LINE_PREFIX = "[chaosfleet stop]"
KEYBOARD_INTERRUPT_EXIT = 99          # ansible-playbook's exit code after Ctrl-C (ExitCode.KEYBOARD_INTERRUPT)
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 9: "SIGKILL", 15: "SIGTERM"}

# Connection variables copied into the snapshot, besides each plugin's own variables (asked from
# Ansible's configuration for the host's connection, become and shell plugins).
CONNECTION_VARS = (
    "ansible_host", "ansible_port", "ansible_user", "ansible_connection", "ansible_password",
    "ansible_private_key_file", "ansible_timeout", "ansible_pipelining", "ansible_host_key_checking",
    "ansible_remote_tmp", "ansible_shell_type", "ansible_shell_executable", "ansible_module_compression",
    "ansible_become", "ansible_become_method", "ansible_become_user", "ansible_become_password",
    "ansible_become_pass", "ansible_become_flags", "ansible_become_exe",
)
CONNECTION_PREFIXES = ("ansible_ssh_", "ansible_become_", "ansible_kubectl_", "ansible_paramiko_",
                       "ansible_libssh_", "ansible_docker_", "ansible_podman_", "ansible_winrm_", "ansible_psrp_",
                       "ansible_sudo_")


# ---------------------------------------------------------------- decisions (pure)


def connection_vars(host_vars_keys, plugin_vars=()):
    """Which of a host's variable names carry its connection: the known ones, each plugin's own,
    and the interpreters. Facts and everything else stay out of the snapshot."""
    wanted = set(CONNECTION_VARS) | set(plugin_vars)
    return sorted(key for key in host_vars_keys
                  if key in wanted or key.startswith(CONNECTION_PREFIXES)
                  or (key.startswith("ansible_") and key.endswith("_interpreter")))


def stat_fields(text):
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses):
    index 0 is field 3 (the state)."""
    return text[text.rfind(")") + 2:].split()


def start_time(text):
    """Field 22 of /proc/PID/stat: the start time in clock ticks since boot."""
    return int(stat_fields(text)[19])


def process_state(recorded_start, text):
    """('running', None), or ('gone', waitpid status or None) for the recorded process.

    ``text`` is its /proc/PID/stat (None: no such PID). Another start time means the PID was
    reused: the recorded process is gone. A zombie is gone too; its field 52 (exit_code, the
    waitpid status) tells how it ended, until its parent reaps it.
    """
    if text is None:
        return "gone", None
    fields = stat_fields(text)
    if int(fields[19]) != recorded_start:
        return "gone", None
    if fields[0] in ("Z", "X"):
        return "gone", int(fields[49]) if len(fields) > 49 else None
    return "running", None


def caught_signals(status_text):
    """The set of signals a process catches, from its /proc/PID/status (SigCgt), or None when unreadable."""
    for line in (status_text or "").splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return frozenset(number for number in range(1, 65) if mask >> (number - 1) & 1)
    return None


def handled_interrupt(armed, current):
    """SIGINT or SIGTERM when the playbook caught it at arm and no longer does, else None.

    ansible-playbook's handler first resets the signal to its default, then raises KeyboardInterrupt
    (SIGINT) or kills itself (SIGTERM). A KeyboardInterrupt raised inside an at-fork hook is dropped by
    CPython and the play goes on; the reset disposition still tells that the interrupt came.
    """
    if armed is None or current is None:
        return None
    for number in (signal.SIGINT, signal.SIGTERM):
        if number in armed and number not in current:
            return SIGNAL_NAMES[number]
    return None


def with_the_playbooks_signal(request, handled, now):
    """The stop request, naming the signal the running playbook's own handler took (``handled``).

    A worker's request says SIGTERM both when ansible-playbook got SIGTERM and when its Ctrl-C cleanup
    terminates the workers; the handler ran before either, so its reset disposition is the truth. With no
    request, a reset handler is one (ansible-core may lose the KeyboardInterrupt and play on).
    """
    if not handled:
        return request
    return dict(request or {"at": now}, signal=handled)


def cause_of(status):
    """What ended the playbook, from its waitpid status: a signal name, or None when unknown.

    ansible-playbook catches the first SIGINT and exits 99; it re-raises SIGTERM; a second
    SIGINT and SIGKILL (ansible-runner's cancel) kill it outright.
    """
    if status is None:
        return None
    if status & 0x7F:
        number = status & 0x7F
        return SIGNAL_NAMES.get(number, "signal %d" % number)
    if (status >> 8) & 0xFF == KEYBOARD_INTERRUPT_EXIT:
        return "SIGINT"
    return "exit %d" % ((status >> 8) & 0xFF)


def decide(now, bound, disarmed, request, playbook):
    """What the guard does next: ('exit', why), ('stop', cause) or ('wait', '').

    ``request``: the stop request a worker wrote ({signal, at}) or None; ``playbook``: the result
    of process_state(). A normal end wins over everything; past its bound the nodes ended the
    stress by themselves; a request or a vanished playbook means stop, now.
    """
    if disarmed:
        return "exit", "the experiment ended; the role stopped the stress itself"
    if now >= bound:
        return "exit", "past the experiment's deadline; the nodes ended the stress by themselves"
    if request is not None:
        return "stop", request.get("signal") or "a stop request"
    if playbook[0] == "gone":
        return "stop", cause_of(playbook[1]) or "the playbook vanished"
    return "wait", ""


def guard_bound(armed_at, duration_seconds, heartbeat_timeout_seconds, margin=MARGIN_SECONDS):
    """When the guard ends regardless: after the deadline, by then every node ended the stress by itself
    (the supervisor ends it at the deadline; a stuck start is caught by the dead-man)."""
    return armed_at + float(duration_seconds) + float(heartbeat_timeout_seconds or 0) + margin


def host_outcome(kind, result, at):
    """One host's stop from its Ansible result: kind is ok, failed, unreachable or None (no answer)."""
    result = result or {}
    if kind == "ok":
        return {"state": "stopped", "at": at, "changed": bool(result.get("changed")),
                "status": result.get("status"), "reason": result.get("reason"), "msg": ""}
    msg = " ".join(str(result.get("msg") or "").split())[:300]
    if kind == "failed" and not result.get("unreachable") and "timed out" not in msg.lower():
        return {"state": "failed", "at": at, "msg": msg or "the stop failed"}
    return {"state": "unreachable", "at": at, "msg": msg or "no answer"}


def describe_cause(cause):
    if cause is None or cause == "the playbook vanished":
        return "the playbook vanished"
    if cause.startswith("exit "):
        return "the playbook ended (%s) before the experiment did" % cause
    return cause


def stop_lines(experiment, cause, outcomes, hosts, signalled_at, timeout, dead_man_seconds):
    """The lines the guard prints: a header, then one per host, sorted (stopped, or could not be
    reached / stopped, naming the dead-man as the backstop)."""
    lines = ["%s experiment %s interrupted (%s): stopping the stress on %d node%s" % (
        LINE_PREFIX, experiment, describe_cause(cause), len(hosts), "" if len(hosts) == 1 else "s")]
    for host in sorted(hosts):
        lines.append(host_line(experiment, host, outcomes.get(host), signalled_at, timeout, dead_man_seconds))
    return lines


def host_line(experiment, host, outcome, signalled_at, timeout, dead_man_seconds):
    backstop = "its dead-man ends the stress within %ss of the last heartbeat" % _num(dead_man_seconds)
    if outcome is None:
        return "%s %s on %s: could not be reached (no answer within %ss); %s" % (
            LINE_PREFIX, experiment, host, _num(timeout), backstop)
    if outcome["state"] == "stopped":
        already = ""
        if not outcome.get("changed") and outcome.get("status") not in (None, "running"):
            already = " (it had already ended: %s, %s)" % (outcome.get("status"), outcome.get("reason"))
        return "%s %s on %s: stopped, %.1f s after the interrupt%s" % (
            LINE_PREFIX, experiment, host, max(0.0, outcome["at"] - signalled_at), already)
    verb = "could not be reached" if outcome["state"] == "unreachable" else "could not be stopped"
    return "%s %s on %s: %s (%s); %s" % (LINE_PREFIX, experiment, host, verb, outcome.get("msg"), backstop)


def stop_record(experiment, cause, signalled_at, stop_started, stop_ended, outcomes, hosts):
    """What the report reads back: the interruption, its cause, and when each node stopped."""
    out = {"experiment": experiment, "interrupted": True, "signal": cause if cause and cause.startswith("SIG") else None,
           "cause": describe_cause(cause), "at": round(signalled_at, 3), "stop_started_at": round(stop_started, 3),
           "stop_ended_at": round(stop_ended, 3), "hosts": {}}
    for host in sorted(hosts):
        outcome = outcomes.get(host)
        if outcome is None:
            out["hosts"][host] = {"stopped": False, "stopped_at": None, "state": "unreachable", "msg": "no answer"}
        else:
            out["hosts"][host] = {"stopped": outcome["state"] == "stopped",
                                  "stopped_at": round(outcome["at"], 3) if outcome["state"] == "stopped" else None,
                                  "state": outcome["state"], "msg": outcome.get("msg") or ""}
    out["unreachable"] = sorted(h for h, o in out["hosts"].items() if not o["stopped"])
    return out


def stop_record_path(dest, basename):
    return os.path.join(dest, basename + ".stop.json")


def _num(value):
    value = float(value or 0)
    return ("%d" % value) if value.is_integer() else ("%g" % value)


# ---------------------------------------------------------------- small file helpers


def read_stat(pid, name="stat"):
    try:
        with open("/proc/%d/%s" % (pid, name)) as handle:
            return handle.read()
    except (OSError, ValueError):
        return None


def caught_by(pid):
    """The signals process ``pid`` catches now (None when it cannot be read)."""
    return caught_signals(read_stat(pid, "status"))


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _write_private(path, data):
    """Write JSON readable only by us, whole (a temporary file renamed into place)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(handle, "w") as out:
        json.dump(data, out, default=str)
    os.rename(tmp, path)


def alive(record):
    """Whether the recorded process ({pid, start_time}) still runs (not a zombie, not a reused PID)."""
    if not record or not record.get("pid"):
        return False
    return process_state(record.get("start_time"), read_stat(int(record["pid"])))[0] == "running"


def signal_recorded(record, signum):
    """Signal the recorded process only while its start time still matches."""
    if not alive(record):
        return False
    try:
        os.kill(int(record["pid"]), signum)
    except OSError:
        return False
    return True


def remove_dir(directory):
    """Remove the guard's own directory (flat, only the files it knows)."""
    if not directory or not os.path.basename(directory).startswith(GUARD_DIR_PREFIX):
        return
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass


# ---------------------------------------------------------------- the role's side (in an Ansible worker)

_STARTED = []  # keeps the Popen of each guard this worker started (no warning when it outlives the worker)

BOOT = (
    "# %s: ends the experiment's stress when the playbook is interrupted (chaosfleet.stress)\n"
    "import json, sys\n"
    "from ansible.plugins.loader import init_plugin_loader\n"
    "init_plugin_loader(json.loads(sys.argv[2]))\n"
    "from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _stop_guard\n"
    "sys.exit(_stop_guard.main(sys.argv[1]))\n" % MARKER)


def _stdio_of(pid, fd):
    """A descriptor on the playbook's own stdout or stderr (a worker's are /dev/null), or None."""
    try:
        return os.open("/proc/%d/fd/%d" % (pid, fd), os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None


def arm(config, root=None, ready_timeout=READY_TIMEOUT):
    """Start the guard for ``config`` (see main()) and wait until it is ready.

    ``config["playbook"]`` is {pid, start_time}. Returns {dir, pid, start_time}; raises RuntimeError
    with the guard's own reason when it could not start.
    """
    root = root or tempfile.gettempdir()
    if not os.path.isdir(root):
        os.makedirs(root, 0o700)
    directory = tempfile.mkdtemp(prefix=GUARD_DIR_PREFIX, dir=root)  # mode 0700
    outs = []
    try:
        _write_private(os.path.join(directory, CONFIG_FILE), config)
        pid = config["playbook"]["pid"]
        outs = [_stdio_of(pid, 1), _stdio_of(pid, 2)]
        popen = subprocess.Popen(
            [sys.executable, "-c", BOOT, directory, json.dumps(config.get("collections_paths") or [])],
            stdin=subprocess.DEVNULL,
            stdout=outs[0] if outs[0] is not None else subprocess.DEVNULL,
            stderr=outs[1] if outs[1] is not None else subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        _STARTED.append(popen)
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            if os.path.exists(os.path.join(directory, READY_FILE)):
                record = _read_json(os.path.join(directory, RECORD_FILE)) or {}
                return {"dir": directory, "pid": record.get("pid"), "start_time": record.get("start_time")}
            failed = _read_json(os.path.join(directory, FAILED_FILE))
            if failed is not None or popen.poll() is not None:
                raise RuntimeError((failed or {}).get("msg") or "the stop guard exited (code %s)" % popen.poll())
            time.sleep(0.05)
        popen.kill()
        raise RuntimeError("the stop guard was not ready within %ds" % ready_timeout)
    except BaseException:
        remove_dir(directory)
        raise
    finally:
        for fd in outs:
            if fd is not None:
                os.close(fd)


def request_stop(directory, signame, now=None):
    """Ask the guard to stop now (the monitor's worker got SIGINT or SIGTERM from ansible-playbook)."""
    if directory and os.path.isdir(directory) and not os.path.exists(os.path.join(directory, STOP_FILE)):
        _write_private(os.path.join(directory, STOP_FILE), {"signal": signame, "at": now or time.time()})


def disarm(guard, wait=3.0):
    """The role's normal end: the guard exits without stopping anything. Returns whether it was running."""
    directory = (guard or {}).get("dir")
    if not directory or not os.path.isdir(directory):
        return False
    with open(os.path.join(directory, DISARM_FILE), "w"):
        pass
    deadline = time.time() + wait
    while time.time() < deadline and alive(guard):
        time.sleep(0.05)
    if alive(guard):
        signal_recorded(guard, signal.SIGTERM)
    remove_dir(directory)
    return True


class signal_hooks(object):
    """While in effect (the monitor's wait), SIGINT and SIGTERM first ask the guard to stop, then
    go on to the worker's own handler (which ends the worker as before)."""

    def __init__(self, directory):
        self.directory = directory
        self.previous = {}

    def _handler(self, signum, frame):
        try:
            request_stop(self.directory, SIGNAL_NAMES.get(signum, "signal %d" % signum))
        except OSError:
            pass
        previous = self.previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def __enter__(self):
        if self.directory:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        return False


# ---------------------------------------------------------------- the guard process


class Stopper(object):
    """Runs the stop through Ansible in this process. Built while the guard waits (imports, the
    inventory and the play), so that the stop costs only the connections and the module run."""

    def __init__(self, config):
        # pylint: disable=import-outside-toplevel
        from ansible import context
        from ansible.executor.task_queue_manager import TaskQueueManager
        from ansible.inventory.manager import InventoryManager
        from ansible.module_utils.common.collections import ImmutableDict
        from ansible.parsing.dataloader import DataLoader
        from ansible.playbook.play import Play
        from ansible.plugins.callback import CallbackBase
        from ansible.plugins.loader import connection_loader, module_loader
        from ansible.vars.manager import VariableManager

        self.config = config
        self.hosts = sorted(config["hosts"])
        self.timeout = float(config.get("timeout") or 10)
        self.outcomes = {}
        cliargs = dict(config.get("cliargs") or {})
        # The playbook's command-line options (user, key, timeouts, become...), without what selects tasks.
        cliargs.update(check=False, diff=False, subset=None, tags=("all",), skip_tags=(), start_at_task=None,
                       step=False, listhosts=False, listtasks=False, listtags=False, syntax=False,
                       flush_cache=False, forks=max(1, min(len(self.hosts), 500)))
        from ansible import constants as C
        cliargs.setdefault("connection", C.DEFAULT_TRANSPORT)
        context.CLIARGS = ImmutableDict(cliargs)
        self.loader = DataLoader()
        self.inventory = InventoryManager(loader=self.loader, sources=[], parse=False)
        for host in self.hosts:
            self.inventory.add_host(host, group="all")
            entry = self.inventory.get_host(host)
            for key, value in (config["hosts"][host] or {}).items():
                entry.set_variable(key, value)
        self.variable_manager = VariableManager(loader=self.loader, inventory=self.inventory)
        task = {"name": "stop the stress", "timeout": int(max(1, round(self.timeout))),
                "chaosfleet.stress.stressor": {"name": config["node_name"], "state": "absent",
                                               "state_dir": config["state_dir"]}}
        play = dict(config.get("play_keywords") or {}, name="chaosfleet stop guard", hosts="all",
                    gather_facts=False, tasks=[task])
        self.play = Play().load(play, variable_manager=self.variable_manager, loader=self.loader)
        self._prebuild(task["chaosfleet.stress.stressor"])
        for name in set((config["hosts"][h] or {}).get("ansible_connection") or "ssh" for h in self.hosts):
            connection_loader.get(name, class_only=True)
        self._tqm_class = TaskQueueManager
        stopper = self

        class Collector(CallbackBase):
            CALLBACK_VERSION = 2.0
            CALLBACK_TYPE = "stdout"
            CALLBACK_NAME = "chaosfleet_stop_guard"

            def _done(self, kind, result):
                host = result._host.get_name()
                stopper.record(host, host_outcome(kind, result._result, time.time()))

            def v2_runner_on_ok(self, result):
                self._done("ok", result)

            def v2_runner_on_failed(self, result, ignore_errors=False):
                self._done("failed", result)

            def v2_runner_on_unreachable(self, result):
                self._done("unreachable", result)

        self.collector = Collector()
        self.collector._init_callback_methods()
        self.on_outcome = None

    @staticmethod
    def _prebuild(args):
        """Build the module's payload now: the workers then find it in this process's AnsiballZ cache."""
        # pylint: disable=import-outside-toplevel
        from ansible import constants as C
        from ansible.executor.module_common import modify_module
        from ansible.plugins.loader import module_loader
        from ansible.template import Templar
        path = module_loader.find_plugin("chaosfleet.stress.stressor")
        try:
            modify_module(module_name="chaosfleet.stress.stressor", module_path=path, module_args=dict(args),
                          templar=Templar(loader=None), task_vars={},
                          module_compression=C.config.get_config_value("DEFAULT_MODULE_COMPRESSION"))
        except Exception:  # pylint: disable=broad-except  # only an optimisation: the stop builds it otherwise
            pass

    def record(self, host, outcome):
        self.outcomes[host] = outcome
        if self.on_outcome is not None:
            self.on_outcome(host, outcome)

    def run(self):
        tqm = self._tqm_class(inventory=self.inventory, variable_manager=self.variable_manager, loader=self.loader,
                              passwords={}, forks=max(1, min(len(self.hosts), 500)))
        # Only the collector: the playbook's callbacks (AWX's included) are not this run's.
        tqm._callback_plugins = [self.collector]
        try:
            tqm.run(self.play)
        finally:
            tqm.cleanup()
            self.loader.cleanup_all_tmp_files()
        return self.outcomes


def _own_record():
    return {"pid": os.getpid(), "start_time": start_time(read_stat(os.getpid()))}


def _say(lines):
    for line in lines:
        try:
            os.write(1, (line + "\n").encode("utf-8", "replace"))
        except OSError:
            pass


def _release_stdio():
    """Let go of the playbook's stdout and stderr (ansible-runner waits for the pty to close)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def wait(directory, config, clock=time.time, sleep=time.sleep, use_pidfd=True):
    """Wait for a reason to stop or exit; returns (what, why, when the stop was asked or noticed)."""
    playbook = config["playbook"]
    pidfd = None
    if use_pidfd and hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(playbook["pid"])
        except OSError:
            pidfd = None
    if pidfd is not None and process_state(playbook["start_time"], read_stat(playbook["pid"]))[0] != "running":
        os.close(pidfd)  # the PID is already someone else's: the playbook is gone
        pidfd = None
    poller = None
    if pidfd is not None:
        import select  # pylint: disable=import-outside-toplevel
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
    armed = caught_by(playbook["pid"])
    try:
        while True:
            now = clock()
            request = _read_json(os.path.join(directory, STOP_FILE))
            state = process_state(playbook["start_time"], read_stat(playbook["pid"]))
            if state[0] == "running":
                handled = handled_interrupt(armed, caught_by(playbook["pid"]))
                request = with_the_playbooks_signal(request, handled, now)
            what, why = decide(now, config["bound"], os.path.exists(os.path.join(directory, DISARM_FILE)),
                               request, state)
            if what != "wait":
                at = (request or {}).get("at") or now
                return what, why, at
            if poller is not None:
                poller.poll(POLL_SECONDS * 1000)  # wakes the moment the playbook ends
            else:
                sleep(POLL_SECONDS)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def main(directory):
    """The guard process (started by arm() through BOOT)."""
    config_path = os.path.join(directory, CONFIG_FILE)
    config = _read_json(config_path)
    try:
        os.unlink(config_path)  # the secrets stay in this process's memory only
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the playbook, not for us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal is no reason to leave the nodes running
    try:
        if config is None:
            raise RuntimeError("no configuration in %s" % directory)
        _write_private(os.path.join(directory, RECORD_FILE), _own_record())
        stopper = Stopper(config)
    except Exception as exc:  # pylint: disable=broad-except
        _write_private(os.path.join(directory, FAILED_FILE), {"msg": "the stop guard could not start: %s" % exc})
        return 1
    with open(os.path.join(directory, READY_FILE), "w"):
        pass
    what, cause, signalled_at = wait(directory, config)
    if what == "exit":
        remove_dir(directory)
        return 0
    return stop(directory, config, stopper, cause, signalled_at)


def better_cause(cause, playbook):
    """The cause to report: how the playbook ended when its exit status could be read, else what the stop
    request said. A worker sees SIGTERM both when ansible-playbook got SIGTERM and when it terminates its
    workers after a Ctrl-C; the playbook's own exit status tells them apart. SIGINT only ever comes from
    ansible-playbook's own handler, so it stands against a plain exit (a Ctrl-C that ansible-core lost
    ends the play with exit 1 when the worker it killed is found dead)."""
    if playbook[0] == "gone" and playbook[1] is not None:
        ended = cause_of(playbook[1])
        return cause if cause == "SIGINT" and ended.startswith("exit ") else ended
    return cause


class _Cause(object):
    """The cause, settled at the first line printed (the stop is under way by then, and the playbook has
    usually ended, so its exit status can be read)."""

    def __init__(self, cause, playbook):
        self.cause, self.playbook, self.settled = cause, playbook, False

    def get(self):
        if not self.settled:
            self.cause = better_cause(self.cause, process_state(self.playbook["start_time"],
                                                                read_stat(self.playbook["pid"])))
            self.settled = True
        return self.cause


def stop(directory, config, stopper, cause, signalled_at):
    experiment = config["experiment"]
    hosts = stopper.hosts
    timeout = stopper.timeout
    dead_man = config.get("dead_man_seconds")
    started = time.time()
    cause = _Cause(cause, config["playbook"])
    header = []

    def say_host(host, outcome):
        if not header:
            header.append(stop_lines(experiment, cause.get(), {}, hosts, signalled_at, timeout, dead_man)[0])
            _say(header)
        _say([host_line(experiment, host, outcome, signalled_at, timeout, dead_man)])

    stopper.on_outcome = say_host
    # A backstop for the backstop: whatever hangs, name the silent nodes and leave by the bound.
    finish_by = started + timeout + 3.0
    watchdog = _Watchdog(finish_by, lambda: _finish(directory, config, stopper, cause.get(), signalled_at, started,
                                                    late=True, header=header))
    watchdog.start()
    try:
        stopper.run()
    except Exception as exc:  # pylint: disable=broad-except
        _say(["%s %s: the stop run failed: %s" % (LINE_PREFIX, experiment, exc)])
    watchdog.cancel()
    return _finish(directory, config, stopper, cause.get(), signalled_at, started, late=False, header=header)


def _finish(directory, config, stopper, cause, signalled_at, started, late, header=None):
    experiment = config["experiment"]
    silent = [h for h in stopper.hosts if h not in stopper.outcomes]
    if header is not None and not header:
        header.append(stop_lines(experiment, cause, {}, stopper.hosts, signalled_at, stopper.timeout,
                                 config.get("dead_man_seconds"))[0])
        _say(header)
    _say([host_line(experiment, h, None, signalled_at, stopper.timeout, config.get("dead_man_seconds"))
          for h in silent])
    record = stop_record(experiment, cause, signalled_at, started, time.time(), dict(stopper.outcomes),
                         stopper.hosts)
    path = config.get("stop_record")
    if path:
        try:
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path), 0o755)
            _write_private(path, record)
            _say(["%s %s: stop record %s" % (LINE_PREFIX, experiment, path)])
        except OSError as exc:
            _say(["%s %s: could not write the stop record %s: %s" % (LINE_PREFIX, experiment, path, exc)])
    _release_stdio()
    remove_dir(directory)
    if late:
        os._exit(3)  # the Ansible run hangs; its workers end at their own task timeout
    return 0 if not record["unreachable"] else 3


class _Watchdog(object):
    def __init__(self, at, action):
        import threading  # pylint: disable=import-outside-toplevel
        self.timer = threading.Timer(max(0.0, at - time.time()), action)
        self.timer.daemon = True

    def start(self):
        self.timer.start()

    def cancel(self):
        self.timer.cancel()
