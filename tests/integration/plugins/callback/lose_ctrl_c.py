# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only: makes ansible-playbook lose its first Ctrl-C, as ansible-core does by chance.

ansible-core's SIGINT handler resets SIGINT to its default, forwards it to the live workers and raises
KeyboardInterrupt. When that lands inside an at-fork hook while Ansible forks a worker, CPython prints
"Exception ignored in: <function _releaseLock ...>" and the play goes on. This callback wraps the handler
so that the KeyboardInterrupt is always dropped there, the same way.

With CHAOSFLEET_TEST_CTRL_C_FILE set, it also sends the Ctrl-C itself, at the first task start after a test
created that file, once the previous task's workers have exited, and writes the time it sent into the file's
place (``<file>.sent``). No worker runs then, so none dies of the forwarded signal and the play goes on whole.
(A worker that has sent its result may still be exiting at the next task's start; killed by the forwarded
SIGINT while it holds the results queue's lock, it leaves every later worker waiting on that lock forever: the
play then hangs, a hazard of ansible-core's handler that this test is not about.)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import sys
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: lose_ctrl_c
type: aggregate
short_description: Test-only, drops ansible-playbook's first KeyboardInterrupt
description: Used by tests/integration/test_interrupt.py.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lose_ctrl_c"
    CALLBACK_NEEDS_ENABLED = True
    task_queue = None  # ansible-core's TaskQueueManager, whose SIGINT handler this wraps

    def v2_playbook_on_play_start(self, play):
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler) or getattr(handler, "loses_ctrl_c", False):
            return

        self.task_queue = getattr(handler, "__self__", None)

        def losing(signum, frame):
            try:
                handler(signum, frame)
            except KeyboardInterrupt:
                sys.stderr.write("Exception ignored in: lose_ctrl_c\nKeyboardInterrupt\n")

        losing.loses_ctrl_c = True
        signal.signal(signal.SIGINT, losing)

    def v2_playbook_on_task_start(self, task, is_conditional):
        trigger = os.environ.get("CHAOSFLEET_TEST_CTRL_C_FILE")
        if not trigger or not os.path.exists(trigger):
            return
        os.unlink(trigger)
        workers = getattr(self.task_queue, "_workers", None) or []
        deadline = time.time() + 10
        while time.time() < deadline and any(w is not None and w.is_alive() for w in workers):
            time.sleep(0.01)
        with open(trigger + ".sent", "w") as out:
            out.write(repr(time.time()))
        os.kill(os.getpid(), signal.SIGINT)
