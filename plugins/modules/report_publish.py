#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done on the controller by the action plugin of the
# same name (plugins/action/report_publish.py), in plugins/plugin_utils/_publish.py.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: report_publish
short_description: Get experiment reports out of the job - copy to a directory, upload over HTTP, post a summary
version_added: 0.2.0
description:
  - Reports written inside an AWX execution environment are lost when the job ends. This copies them to a
    directory on the controller (for example a volume mounted into the execution environment), uploads each file
    with one HTTP PUT or POST of its raw bytes (an S3 or GCS pre-signed URL, an Artifactory or Nexus raw
    repository all accept that), and posts a summary to a Slack-compatible incoming webhook (Slack, Mattermost,
    Rocket.Chat, and others that read a JSON C(text) field).
  - Every destination is tried even when an earlier one failed; the task then fails listing each failure
    (see O(fail_on_error)).
  - Header values, the query string of O(upload.url) (where pre-signed signatures live), a password in a URL and
    the whole O(webhook.url) (Slack puts its token in the path) never appear in the result or in an error.
    Uploads are shown as scheme://host/path, the webhook as scheme://host.
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be copied, uploaded and posted; sends nothing.
  diff_mode:
    support: none
options:
  files:
    description:
      - The report files to publish, as a list of paths on the controller, or the RV(chaosfleet.stress.stress_report#module:paths)
        mapping that M(chaosfleet.stress.stress_report) returns.
      - Their names must differ; they keep them at the destination.
    type: raw
    required: true
  copy_to:
    description: A directory on the controller to copy the files into. Created when missing. A file already there
      with the same content is left alone.
    type: path
  upload:
    description: Upload each file with one HTTP request whose body is the file.
    type: dict
    suboptions:
      url:
        description:
          - Where to send a file. C({file}) in it is replaced by the file's name; it is required when more than one
            file is uploaded.
          - 'For example V(https://artifacts.example.com/artifactory/chaos/game-days/2026-11-29/{file}), or an S3
            pre-signed URL (upload one file per task then, each with its own URL).'
        type: str
        required: true
      method:
        description: The HTTP method.
        type: str
        choices: [PUT, POST]
        default: PUT
      headers:
        description: Extra request headers, for example C(Authorization) or C(X-JFrog-Art-Api). Their values are
          secrets and never shown.
        type: dict
        default: {}
      content_type:
        description: The C(Content-Type) of every file. By default it follows the file's extension (C(text/html),
          C(text/markdown), C(application/json)).
        type: str
      timeout:
        description: Seconds to wait for each answer.
        type: float
        default: 30
      validate_certs:
        description: Verify the server's TLS certificate.
        type: bool
        default: true
  webhook:
    description: Post one summary message as Slack-compatible JSON (C(text) plus a C(blocks) section).
    type: dict
    suboptions:
      url:
        description: The incoming-webhook URL. It is a secret.
        type: str
        required: true
      stats:
        description: The RV(chaosfleet.stress.stress_report#module:stats) of the report; the message gives the
          verdict, host counts and each host that did not pass with its notes.
        type: dict
      text:
        description: The message text, instead of one built from O(webhook.stats).
        type: str
      link:
        description: A link added to the message, for example where the report was uploaded.
        type: str
      headers:
        description: Extra request headers. Their values are secrets and never shown.
        type: dict
        default: {}
      timeout:
        description: Seconds to wait for the answer.
        type: float
        default: 30
      validate_certs:
        description: Verify the server's TLS certificate.
        type: bool
        default: true
  fail_on_error:
    description: Fail the task when a copy, an upload or the webhook post failed. When false, failures are only
      listed in RV(errors).
    type: bool
    default: true
seealso:
  - module: chaosfleet.stress.stress_report
'''

EXAMPLES = r'''
- name: Write the report
  chaosfleet.stress.stress_report:
    results: "{{ experiment_results }}"
    dest: /runner/artifacts/reports
  register: report

- name: Keep it, upload it and tell the team
  chaosfleet.stress.report_publish:
    files: "{{ report.paths }}"
    copy_to: /mnt/chaos-reports
    upload:
      url: https://artifacts.example.com/artifactory/chaos-reports/{{ report.stats.experiment }}/{file}
      headers:
        X-JFrog-Art-Api: "{{ artifactory_api_key }}"
    webhook:
      url: "{{ slack_webhook_url }}"
      stats: "{{ report.stats }}"
      link: https://artifacts.example.com/artifactory/chaos-reports/{{ report.stats.experiment }}/

- name: One file to an S3 pre-signed URL
  chaosfleet.stress.report_publish:
    files: ["{{ report.paths.json }}"]
    upload:
      url: "{{ presigned_put_url }}"
'''

RETURN = r'''
copied:
  description: Paths of the copies in O(copy_to).
  returned: always
  type: list
  elements: str
uploaded:
  description: One entry per uploaded file.
  returned: always
  type: list
  elements: dict
  contains:
    file:
      description: The local file.
      type: str
    url:
      description: Where it went, without query string.
      type: str
    status:
      description: The HTTP status of the answer; null when none came (or in check mode).
      type: int
    ok:
      description: Whether the upload succeeded (a 2xx answer).
      type: bool
    error:
      description: Why it failed, in one line; empty when it succeeded.
      type: str
  sample:
    - {file: /runner/artifacts/reports/stress-report-x.json, url: 'https://s3.example.com/bucket/stress-report-x.json',
       status: 200, ok: true, error: ''}
webhook:
  description: The webhook post, or null when none was asked for.
  returned: always
  type: dict
  contains:
    url:
      description: The webhook's scheme and host only.
      type: str
    status:
      description: The HTTP status of the answer.
      type: int
    ok:
      description: Whether the post succeeded.
      type: bool
    error:
      description: Why it failed; empty when it succeeded.
      type: str
    text:
      description: The message that was posted.
      type: str
errors:
  description: Every failure, one line each.
  returned: always
  type: list
  elements: str
outcome:
  description:
    - What the publish did, for a caller that runs this task with C(no_log) and shows it afterwards (the experiment
      role and the game day do). The task fails with RV(outcome.failure) when it is not empty.
  returned: always
  type: dict
  contains:
    lines:
      description: "C(copied to ...), C(uploaded to ...), C(summary posted to ...) and C(FAILED: ...) lines."
      type: list
      elements: str
    failure:
      description: Why the task fails - bad input (nothing published), or with O(fail_on_error) every destination
        that failed; empty otherwise.
      type: str
'''
