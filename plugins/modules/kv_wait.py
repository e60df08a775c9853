#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_wait
short_description: Wait for a copy, backup or verification started with async and show its progress while waiting
version_added: 0.1.0
description:
  - Polls the job of a M(kvtools.migration.kv_dump_restore), M(kvtools.migration.kv_migrate),
    M(kvtools.migration.kv_rdb_backup) or M(kvtools.migration.kv_verify) task started with C(async) and C(poll=0) and,
    while it runs, prints one line per change of its progress file - the keys done of the total (per database for a
    copy), the bytes moved (of the expected size when it is known - the RDB a backup receives, the payloads of a backup
    file), the keys and megabytes per second and the time left - so a long step, or one big value, does not look hung.
    When the job ends, its last state is printed too.
  - Returns the job's own result when it ends (and fails when the job failed), so later tasks read the
    same result as from a task run without C(async).
  - This is an action plugin; it runs on the controller and calls C(ansible.builtin.async_status) and
    C(ansible.builtin.slurp) on the host.
author:
  - kvtools.migration contributors (!UNKNOWN)
options:
  jid:
    description:
      - The C(ansible_job_id) returned by the task started with C(async).
    type: str
    required: true
  progress:
    description:
      - The path given to the job's C(progress) option, on the host that runs it.
    type: path
  interval:
    description:
      - Seconds between two polls once the job has run for a while (the first polls come sooner - after 0.5, 1, 2,
        ... seconds - so that short copies end quickly). From 0.2 to 3600.
    type: float
    default: 10
  timeout:
    description:
      - Give up waiting after this many seconds (the job keeps running). V(0) waits as long as the job's own
        C(async) limit.
    type: float
    default: 0
  label:
    description:
      - Text in front of each progress line. Default - the task's name.
    type: str
attributes:
  check_mode:
    support: none
    description: A task started with C(async) cannot run in check mode; run the copy without C(async) there.
  diff_mode:
    support: none
    description: Nothing changes.
  action:
    support: full
    description: Runs on the controller.
  async:
    support: none
    description: It waits for an async job itself.
notes:
  - With O(progress), kv_wait renews a watch file (the progress path plus C(.watch)) at every poll. When the playbook
    is interrupted (Ctrl-C) or killed, the renewals stop and the copy stops itself once the watch file is older than
    three O(interval) plus ten seconds, with C(error=interrupted) and its checkpoint kept; a rerun with the same
    checkpoint resumes. kv_wait also prints the copy's pid and the command that stops it.
seealso:
  - module: kvtools.migration.kv_dump_restore
  - module: kvtools.migration.kv_migrate
'''

EXAMPLES = r'''
- name: Start the copy
  kvtools.migration.kv_dump_restore:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    progress: /var/tmp/kv-copy.progress
  async: 86400
  poll: 0
  register: copy_job

- name: Wait for the copy, showing its progress
  kvtools.migration.kv_wait:
    jid: "{{ copy_job.ansible_job_id }}"
    progress: /var/tmp/kv-copy.progress
    interval: 5
  register: copy
'''

RETURN = r'''
dbs:
  description: The result of the copy module, as it returned it (see its documentation).
  returned: when the job finished
  type: list
  elements: dict
'''
