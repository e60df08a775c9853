#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_cutover
short_description: The end of a live migration in one task - pause the writers, drain kv_sync, verify, release
version_added: 0.2.0
description:
  - Runs, in one process, everything the applications wait for at the end of a live migration (the C(live) strategy
    of C(playbooks/migrate.yml)), so that the pause holds no task start-up.
  - Isolates the source (C(CLIENT PAUSE WRITE) or the application users off, as M(kvtools.migration.kv_isolate)
    does), drains the C(kvtools.migration.kv_sync) follower (the source's replication offset stands still and the
    target has applied and acknowledged everything up to it), verifies (the keys the follower wrote since
    O(keys_file_offset) and the key counts of every db, or every key), then releases the isolation.
  - The isolation is released also when a step fails, so the source is never left paused; the task then fails with
    the reason and the timestamps.
  - The pause is a lease (O(pause_ms)) without a renewer - if the task dies, the server ends the pause by itself.
  - RV(writes_paused_s) is the pause as measured here, from just before the isolating command to just after the
    release.
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint.SOURCE_TARGET
options:
  sync_record:
    description: The record of the running kv_sync follower (its O(kvtools.migration.kv_sync#module:record)).
    type: path
    required: true
  isolation:
    description:
      - V(pause) - C(CLIENT PAUSE WRITE) on the source; V(acl) - switch O(users) off and drop their connections;
        V(none) - the writers were stopped otherwise (for example unbound in Cloud Foundry).
    type: str
    choices: [pause, acl, none]
    default: pause
  users:
    description: The application users to switch off with O(isolation=acl).
    type: list
    elements: str
    default: []
  isolate_record:
    description: With O(isolation=acl), the record of the users' prior state (as kv_isolate's O(kvtools.migration.kv_isolate#module:record)).
    type: path
  verify:
    description:
      - V(keys) - the keys the follower wrote since O(keys_file_offset) (its touched-keys log) and the key count of every
        db pair on both sides; a db whose counts differ is compared whole. Proves the copy when every key was compared
        (M(kvtools.migration.kv_verify), in rounds) after the follower's log had O(keys_file_offset) bytes.
      - V(full) - every key, value and TTL (takes longer, and the writers wait for it).
    type: str
    choices: [keys, full]
    default: keys
  keys_file_offset:
    description:
      - Byte offset of the follower's touched-keys log to verify from (the C(keys_log_size) kv_sync returned
        before the last full comparison began). Not given (or V(0)) reads the whole log.
      - A cluster source has one follower, and one log, per source master - a list with one offset per follower, in
        the order of its parts (the C(keys_log_sizes) kv_sync returned).
    type: list
    elements: int
  dbs:
    description: Source databases to verify; default every non-empty one.
    type: list
    elements: int
  db_map:
    description: Map of source database to target database.
    type: dict
  ttl_tolerance:
    description: Seconds two expiry times may differ by.
    type: float
    default: 2
  drain_timeout:
    description: Seconds the drain may wait for the source's offset to stand still and the target to have applied it.
    type: int
    default: 30
  pause_ms:
    description:
      - The lease of the pause in milliseconds; it must exceed O(drain_timeout) by at least 10 s. Default
        O(drain_timeout) + 60 s. A run that takes longer fails (writes may have resumed).
    type: int
  release:
    description: Release the isolation at the end. V(false) leaves the writers paused (the operator releases them with
      kv_isolate); a failure always releases.
    type: bool
    default: true
  verify_report:
    description: Write the final verification's result to this file (JSON, mode 0600).
    type: path
attributes:
  check_mode:
    support: full
    description: Returns the plan; nothing is paused, drained or written.
  diff_mode:
    support: none
    description: Nothing to compare.
notes:
  - The source user needs what kv_isolate and kv_verify need (C(+client|pause +client|unpause) for V(pause)).
seealso:
  - module: kvtools.migration.kv_isolate
  - module: kvtools.migration.kv_verify
'''

EXAMPLES = r'''
- name: Pause, drain, verify the keys written since the rounds began, release
  kvtools.migration.kv_cutover:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    sync_record: /var/tmp/kv-sync-pair.json
    keys_file_offset: "{{ sync_started.keys_log_sizes if sync_started.keys_log_sizes is defined else sync_started.keys_log_size }}"
  register: cutover

- name: The pause, for the change ticket
  ansible.builtin.debug:
    msg: "writes paused {{ cutover.writes_paused_s }} s"
'''

RETURN = r'''
isolated_at:
  description: When writes stopped (epoch seconds), null with O(isolation=none).
  returned: always
  type: float
isolated_on:
  description: C(host:port) of the node the isolation was made on (behind Sentinel, the master of that moment).
  returned: when the source was isolated
  type: str
isolated_nodes:
  description: A cluster source - C(host:port) of every node the isolation acted on (every master is paused; with
    C(acl) the replicas too); null for one server.
  returned: when the source was isolated
  type: list
  elements: str
released_at:
  description: When writes were let back (epoch seconds), null when not released.
  returned: always
  type: float
writes_paused_s:
  description: RV(released_at) - RV(isolated_at), rounded to milliseconds; null when either is null.
  returned: always
  type: float
drain:
  description: The result of kv_sync C(state=stopped) - C(final_offset), C(drain_seconds), C(keys_log),
    C(keys_written_since_snapshot), C(commands_applied), per-db counts (with a cluster source C(final_offsets),
    C(keys_logs) and C(parts)).
  returned: unless in check mode
  type: dict
verification:
  description: The result of the final verification, as M(kvtools.migration.kv_verify) returns it.
  returned: unless in check mode
  type: dict
released:
  description: On failure, whether the isolation was released.
  returned: failure
  type: bool
plan:
  description: In check mode, the steps that would run.
  returned: check mode
  type: list
  elements: str
'''

from ansible_collections.kvtools.migration.plugins.module_utils._cutover import Cutover, CutoverOptions
from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule


def main():
    module = KVModule(
        argument_spec=dict(
            sync_record=dict(type='path', required=True),
            isolation=dict(type='str', default='pause', choices=['pause', 'acl', 'none']),
            users=dict(type='list', elements='str', default=[]),
            isolate_record=dict(type='path'),
            verify=dict(type='str', default='keys', choices=['keys', 'full']),
            keys_file_offset=dict(type='list', elements='int', no_log=False),
            dbs=dict(type='list', elements='int'),
            db_map=dict(type='dict'),
            ttl_tolerance=dict(type='float', default=2),
            drain_timeout=dict(type='int', default=30),
            pause_ms=dict(type='int'),
            release=dict(type='bool', default=True),
            verify_report=dict(type='path'),
        ),
        endpoints=('source', 'target'),
    )
    source = module.endpoint('source')
    target = module.endpoint('target')
    p = module.params

    def run():
        options = CutoverOptions(p['sync_record'], isolation=p['isolation'], users=p['users'],
                                 isolate_record=p['isolate_record'], verify=p['verify'],
                                 keys_file_offset=p['keys_file_offset'], dbs=p['dbs'], db_map=p['db_map'],
                                 ttl_tolerance=p['ttl_tolerance'], drain_timeout=p['drain_timeout'],
                                 pause_ms=p['pause_ms'], release=p['release'], verify_report=p['verify_report'])
        return Cutover(source, target, options, check_mode=module.check_mode, warn=module.warn).run()

    module.run(run)


if __name__ == '__main__':
    main()
