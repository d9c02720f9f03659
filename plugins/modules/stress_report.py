#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done on the controller by the action plugin of the
# same name (plugins/action/stress_report.py), which renders the collection's Jinja2
# templates from plugins/plugin_utils/templates/stress_report/.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: stress_report
short_description: Write an experiment report (HTML, Markdown, JSON) from the per-host results of a stress experiment
version_added: 0.1.0
description:
  - Takes the experiment results the roles collect from each host (the collection's experiment result,
    C(format_version) 1) and writes up to three files into O(dest) on the controller.
  - A self-contained HTML report that opens with no network (inline CSS and SVG, no script) showing, per
    target, the working set over time against its limit, the requested level and ramp, when the stress
    started and ended, each OOM kill marked by victim (app process, stressor, or a group kill), the CPU
    usage against the quota, and a verdict table.
  - Markdown with the verdict table and per-host figures and OOM kills, for tickets and chat.
  - JSON with the normalized results and the computed verdicts, for machines (C(format_version) 1).
  - Hosts in O(expected_hosts) without a result (unreachable, or not in this AWX slice) are listed as missing;
    the rest still render.
  - Returns a compact summary in RV(stats) meant for M(ansible.builtin.set_stats), so AWX job artifacts and
    later workflow nodes receive the verdicts and report paths.
  - Each host gets a verdict. V(fail) when the steady state broke, the working set did not recover, or the
    OOM killer took an app process (see O(fail_on_app_oom)). V(error) when the stress never ran
    (no samples, or it could not attach). V(inconclusive) when there were no steady-state probes, the
    result was collected while still running, or the stress reached less than O(achieved_min_percent)
    of what was asked. Otherwise V(pass). The overall verdict is the worst of them; failed hosts count as
    V(error) and missing hosts as V(inconclusive).
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - Renders the report and returns the paths it would write, without writing anything.
  diff_mode:
    support: none
options:
  results:
    description:
      - The experiment results, either a list of result dicts (each names its C(host)) or a mapping of
        inventory host name to result, as collected from C(hostvars).
      - In the mapping, a host whose value is null, empty or a skipped task result counts as missing, and a
        failed task result (C(failed=true) with a C(msg)) is listed as failed with its message.
      - Every result must have C(format_version) 1 and all must be from the same experiment.
      - Exactly one of O(results) and O(slice_reports) is required.
    type: raw
  slice_reports:
    description:
      - JSON reports (this module's C(.json) files) of the slices of one experiment, run apart - AWX job
        slices, C(serial) batches, or several controllers. Their results make one report.
      - A host is missing only when no slice has a result or a failure for it; a host with a result in two
        slices is an error.
    type: list
    elements: path
  expected_hosts:
    description:
      - Hosts that should have a result. Those without one are listed as missing.
      - Usually C(ansible_play_hosts_all), which keeps hosts that became unreachable.
    type: list
    elements: str
    default: []
  title:
    description: Report title. Defaults to C(Stress experiment <experiment>).
    type: str
  dest:
    description:
      - Directory on the controller to write the files into. Missing directories are created.
      - If it cannot be written, the task fails before anything is written.
    type: path
    required: true
  basename:
    description:
      - File name without extension. Defaults to C(stress-report-<experiment>).
      - Letters, digits, C(.), C(_) and C(-) only, not starting with C(.).
    type: str
  formats:
    description: Which files to write; C(.html), C(.md) and C(.json) respectively.
    type: list
    elements: str
    choices: [html, json, markdown]
    default: [html, markdown, json]
  achieved_min_percent:
    description:
      - Under this share of the requested stress, the host's verdict is V(inconclusive) because the stress did
        not test what was asked.
      - The share is of what could be reached, the request capped by the room the memory limit leaves above
        the baseline or by the CPU quota.
    type: float
    default: 80.0
  fail_on_app_oom:
    description:
      - Whether an OOM kill of an app process (not the stressor) makes the host's verdict V(fail).
      - Set to V(false) for experiments meant to show the app is killed and comes back.
    type: bool
    default: true
  stop_record:
    description:
      - The stop record the experiment role's stop guard wrote when the playbook was interrupted or killed
        (C(<experiment_report_dest>/<basename>.stop.json)). The report then says the experiment was interrupted,
        by which signal, and when each node stopped or that the stop could not reach it; each such host's result
        carries C(interrupted) and its verdict is at best V(inconclusive).
    type: path
notes:
  - Always runs and writes on the controller, whatever host the task is for. Use C(run_once) so that one
    report is written per run.
  - Files are written to a temporary file in O(dest) and renamed into place, all or nothing; a file whose
    content would not change is left alone, and the task is C(changed) only when some file changed.
    The output is deterministic (no generation time in it), so rerunning on the same results is not a change.
  - The HTML has no script and loads nothing; every point of a chart line is one sample, at a coordinate given
    by the C(data-*) mapping on its C(<svg>) element.
  - A host whose result is a headroom search gets a headroom section first - the answer in one line, the levels
    table and, in HTML, one chart per probe (its SLO figure per stress level, the SLO line, the edge between the
    last pass and the first fail). Its verdict is the search's - finding the edge fails nothing; a headroom below
    the required minimum, a target that did not recover, or an error do. See the headroom guide in the
    collection's docs.
seealso:
  - module: chaosfleet.stress.stressor
  - module: chaosfleet.stress.cgroup_sample
  - module: ansible.builtin.set_stats
'''

EXAMPLES = r'''
- name: Write the experiment report on the controller
  chaosfleet.stress.stress_report:
    results: >-
      {{ dict(ansible_play_hosts_all
              | zip(ansible_play_hosts_all | map('extract', hostvars, 'stress_result') | map('default', none))) }}
    expected_hosts: "{{ ansible_play_hosts_all }}"
    dest: "{{ playbook_dir }}/reports"
  delegate_to: localhost
  run_once: true
  register: report

- name: Publish the summary and report paths as AWX artifacts
  ansible.builtin.set_stats:
    data:
      stress_report: "{{ report.stats }}"
  run_once: true

- name: Only the Markdown, for a ticket, with a title of our own
  chaosfleet.stress.stress_report:
    results: "{{ collected_results }}"
    title: "Checkout: 400 MiB memory pressure, canary nodes"
    dest: /var/tmp/chaos
    basename: checkout-canary
    formats: [markdown]
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
paths:
  description: Where each format is (or, in check mode, would be) written.
  returned: always
  type: dict
  sample:
    html: /srv/chaos/reports/stress-report-checkout-memory-pressure.html
    markdown: /srv/chaos/reports/stress-report-checkout-memory-pressure.md
    json: /srv/chaos/reports/stress-report-checkout-memory-pressure.json
written:
  description: Files whose content changed and were written; empty in check mode and when nothing changed.
  returned: always
  type: list
  elements: str
stats:
  description: Compact summary for M(ansible.builtin.set_stats).
  returned: always
  type: dict
  contains:
    experiment:
      description: Experiment name, or null when no host reported.
      type: str
    title:
      description: Report title.
      type: str
    verdict:
      description: Worst verdict over all hosts.
      type: str
      choices: [pass, inconclusive, error, fail]
    hosts:
      description: Host names with a result (V(ok)), without one (V(missing)) and with a failed task (V(failed)).
      type: dict
    per_host:
      description: For each host with a result, its verdict, notes, how it ended, whether the steady state
        held, recovery seconds, achieved percent of what could be reached, and OOM kills by victim. A host
        whose result is a headroom search (C(experiment_search)) also has C(headroom), as in RV(headroom).
      type: dict
    reports:
      description: Same as RV(paths).
      type: dict
  sample:
    experiment: checkout-memory-pressure
    title: Stress experiment checkout-memory-pressure
    verdict: fail
    hosts: {ok: [node1, node2], missing: [node5], failed: []}
    per_host:
      node2:
        verdict: fail
        notes: ["OOM killer took app process gunicorn (pid 3121)"]
        ended: stop
        steady_state_held: false
        recovery_seconds: 1.0
        achieved_percent: 100.0
        oom_kills: {app: 1, stressor: 0}
    reports: {html: /srv/chaos/reports/stress-report-checkout-memory-pressure.html}
headroom:
  description:
    - For the hosts whose result is a headroom search, what AWX can track from run to run, by experiment and
      host; an empty dict when no host searched. These are the figures the experiment role publishes with
      M(ansible.builtin.set_stats) as C(chaosfleet_headroom), plus the label, the confirmation and the host's
      verdict.
    - C(headroom) is the last level that passed, in C(unit) (V(percent) of the memory limit, V(bytes), or CPU
      V(load) percent of the quota); C(headroom_percent) and C(headroom_bytes) say it as a share and as memory
      added; C(first_fail) is the other side of the edge; C(ended_by) is V(edge), V(range_end), V(fleet_stop),
      V(recovery), V(app_oom) or V(error); C(required) and C(regression_ok) are the
      C(experiment_search_min_headroom) check.
  returned: always
  type: dict
  sample:
    checkout:
      node1:
        headroom: 60
        headroom_label: 60%
        unit: percent
        headroom_percent: 60.0
        headroom_bytes: 322122547
        first_fail: 70
        ended_by: edge
        confirmed: null
        required: 50
        regression_ok: true
        verdict: pass
'''
