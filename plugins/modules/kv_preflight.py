#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_preflight
short_description: Check that a Redis or Valkey migration can work, choose the copy method and plan it
version_added: 0.1.0
description:
  - Reads the source and the target (the facts of M(kvtools.migration.kv_info) for both) and finds what would stop a
    migration - a target that holds other data, too small under its C(maxmemory), a replica, missing databases, users
    without the permissions a copy needs.
  - A target in cluster mode is read through every master (found from the node given) - every slot served and no node
    failing, its keys summed, the data that lands on each master (by its share of the slots) against that master's free
    memory, the plan per node (RV(cluster)).
  - A source in cluster mode is read through every master too - every slot served and no node failing, its keys (db 0)
    and data summed over the masters, the keys per master in the plan; a sample of the target's keys is compared with
    the master that serves each key's slot.
  - With a cluster on either side the method is C(dump_restore) (M(kvtools.migration.kv_dump_restore) reads every
    source master and restores each key on the target master that serves its slot), or C(migrate) when
    O(method=migrate) (M(kvtools.migration.kv_migrate) - one C(MIGRATE) call per target master, out of a cluster one
    per slot on the master that holds it). Where RV(live_possible) is false for a cluster (RV(live_reason) says why),
    the playbooks' C(kv_strategy=auto) copies offline.
  - A target database that holds keys is judged on a sample (the first 200 keys C(SCAN) returns there) - when every
    sampled key is on the source with the same value, the target holds an earlier copy of this source (a rerun, an
    interrupted run) and that is no problem; otherwise it holds other data and that is a problem unless
    O(allow_nonempty_target) is set.
  - Decides whether the target accepts the source's DUMP payloads and chooses the copy method - C(migrate)
    (M(kvtools.migration.kv_migrate)) where the payloads are accepted, the transports match (a TLS target needs
    C(tls-cluster yes) on the source) and the source is not paused, else C(dump_restore)
    (M(kvtools.migration.kv_dump_restore)).
  - Returns the plan per database and an estimate of the duration. Never writes to either server.
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint.SOURCE_TARGET
  - kvtools.migration.attributes.PAIR
  - kvtools.migration.attributes.CHECK_MODE_READ_ONLY
  - kvtools.migration.job.DB_MAP
options:
  dbs:
    description:
      - Source databases to migrate. Default - every non-empty database of the source.
    type: list
    elements: int
  method:
    description:
      - V(auto) chooses as described above; V(migrate) and V(dump_restore) force a method (V(migrate) fails here when
        it cannot work).
    type: str
    choices: [auto, migrate, dump_restore]
    default: auto
  isolation:
    description:
      - How the source is isolated during the copy. V(pause) (C(CLIENT PAUSE WRITE)) rules out MIGRATE.
    type: str
    choices: [none, pause, acl, cf]
    default: none
  allow_nonempty_target:
    description:
      - Accept a target that already holds keys other than an earlier copy of this source. Identical keys are then
        skipped by the copy and differing keys are handled by its C(on_conflict).
    type: bool
    default: false
  on_unsupported:
    description:
      - The O(kvtools.migration.kv_dump_restore#module:on_unsupported) the copy will run with. Hash field TTLs
        (Redis 7.4+, Valkey 9+) the target cannot hold are counted either way (RV(unsupported)) and the plan says
        so; with V(fail) they are a problem (the copy would refuse), with V(drop) a warning (they would be lost).
    type: str
    choices: [fail, drop]
    default: fail
  fail_on_problems:
    description:
      - Fail when RV(problems) is not empty. With V(false) the problems are only returned.
    type: bool
    default: true
  match:
    description:
      - The key pattern the migration will be limited to, if any. Only RV(live_possible) depends on it - a command
        stream cannot be filtered by key pattern.
    type: str
attributes:
  diff_mode:
    support: none
    description: Nothing changes.
seealso:
  - module: kvtools.migration.kv_info
  - module: kvtools.migration.kv_migrate
  - module: kvtools.migration.kv_dump_restore
'''

EXAMPLES = r'''
- name: Check the migration and choose the method
  kvtools.migration.kv_preflight:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
  register: preflight

- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ preflight.plan }}"
'''

RETURN = r'''
unsupported:
  description: Hash field TTLs of the source the target cannot hold, as C({hash_field_ttls - {keys, fields}}); null
    when there are none (or the target holds them).
  returned: always
  type: dict
ok:
  description: Whether no problem was found.
  returned: always
  type: bool
problems:
  description: What stops the migration, one sentence each with what to do.
  returned: always
  type: list
  elements: str
method:
  description: The chosen copy method, C(migrate) or C(dump_restore).
  returned: success
  type: str
method_reasons:
  description: Why this method (for C(dump_restore) chosen by V(auto) - everything that rules MIGRATE out).
  returned: success
  type: list
  elements: str
migrate_possible:
  description: Whether MIGRATE can work as far as can be told without trying.
  returned: success
  type: bool
dbs:
  description: The plan per database - C(db), C(target_db), C(keys), C(expires), C(target_keys), and for target
    databases that hold keys C(target_sample_foreign) (sampled target keys the source does not hold identically)
    and C(target_sampled) (how many target keys were sampled).
  returned: success
  type: list
  elements: dict
keys:
  description: Keys to copy in total.
  returned: success
  type: int
previous_copy_complete:
  description: Whether every target database already holds as many keys as its source database, every sampled key
    identical - an earlier complete copy (a rerun). The playbook then skips isolation and backup.
  returned: success
  type: bool
target_empty:
  description: Whether the target holds no key at all.
  returned: success
  type: bool
payload:
  description: C(source_rdb), C(target_rdb) and C(accepts) (true, false, or null when only RESTORE can tell).
  returned: success
  type: dict
memory:
  description: C(source_data) (used_memory minus startup), C(target_maxmemory) and C(target_free) (null without a limit
    or when unknown).
  returned: success
  type: dict
not_checked:
  description: What the plan could not check because a fact is unknown on a server (an admin command renamed, disabled
    or denied, as managed plans do), one sentence each with the reason - for example the capacity of the target.
    These do not stop the migration; RV(plan) lists them too.
  returned: success
  type: list
  elements: str
estimate_seconds:
  description: A rough duration of the copy, from the keys and bytes and the rates measured in the project's benchmark.
  returned: success
  type: float
plan:
  description: The plan as lines of text for an operator.
  returned: success
  type: list
  elements: str
source:
  description: The facts of the source, as M(kvtools.migration.kv_info) returns them, plus C(address) and C(tls_cluster).
  returned: success
  type: dict
target:
  description: The facts of the target, like RV(source).
  returned: success
  type: dict
cluster:
  description:
    - Null unless a side is a cluster. C(target) - the target's masters with their slot ranges, its state and the
      command that found them; C(target_nodes) - per master C(address), C(node_id), C(slots), C(keys_now),
      C(keys_estimate) and C(bytes_estimate) (the source's keys and data by the master's share of the slots) and
      C(free) (bytes left under its maxmemory, null without a limit). C(source) and C(source_nodes) - the same for a
      source cluster, per master C(address), C(node_id), C(slots), C(keys), C(expires) and C(data) (bytes above
      C(used_memory_startup)). The entries of a side that is not a cluster are null.
  returned: success
  type: dict
live_possible:
  description:
    - Whether a live copy with M(kvtools.migration.kv_sync) can start - the source user may replicate (C(PSYNC),
      C(REPLCONF)), the target accepts the payload version the source will send, no O(match) filter, a cluster
      target only with Valkey 8.1 or later (its import mode). A playbook can choose the offline
      path when it is false. Not a problem of the offline copy.
  returned: success
  type: bool
live_reason:
  description: Why a live copy is not possible, with the way out; null when it is.
  returned: success
  type: str
preflight_warnings:
  description: Things worth knowing that do not stop the migration.
  returned: success
  type: list
  elements: str
'''

from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule
from ansible_collections.kvtools.migration.plugins.module_utils._preflight import preflight


def main():
    module = KVModule(
        argument_spec=dict(
            dbs=dict(type='list', elements='int'),
            db_map=dict(type='dict'),
            allow_db_merge=dict(type='bool', default=False),
            method=dict(type='str', choices=['auto', 'migrate', 'dump_restore'], default='auto'),
            isolation=dict(type='str', choices=['none', 'pause', 'acl', 'cf'], default='none'),
            allow_nonempty_target=dict(type='bool', default=False),
            on_unsupported=dict(type='str', choices=['fail', 'drop'], default='fail'),
            fail_on_problems=dict(type='bool', default=True),
            match=dict(type='str'),
        ),
        endpoints=('source', 'target'),
    )
    source = module.endpoint('source')
    target = module.endpoint('target')
    p = module.params

    def run():
        result = preflight(source, target, dbs=p['dbs'], db_map=p['db_map'], method=p['method'],
                           isolation=p['isolation'], allow_nonempty_target=p['allow_nonempty_target'],
                           on_unsupported=p['on_unsupported'], match=p['match'], allow_db_merge=p['allow_db_merge'])
        for warning in result['preflight_warnings']:
            module.warn(warning)
        if result['problems'] and p['fail_on_problems']:
            msg = 'preflight found %d problem(s): %s' % (len(result['problems']), ' '.join(result['problems']))
            module.fail_json(msg=msg, **result)
        return result

    module.run(run)


if __name__ == '__main__':
    main()
