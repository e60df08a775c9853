#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_migrate
short_description: Copy the keys of a Redis or Valkey server to another one with server-side MIGRATE
version_added: 0.1.0
description:
  - Walks the source with C(SCAN) and sends each batch as one C(MIGRATE host port "" db timeout COPY [REPLACE]
    [AUTH pw | AUTH2 user pw] KEYS ...). The source server itself connects to the target and transfers the keys;
    no value passes through the machine running the module.
  - C(COPY) is always sent, so the source keeps every key whatever happens. Nothing else is written to the source.
  - Key names are bytes end to end; any name (newlines, quotes, non-UTF-8, the empty name) is migrated.
  - The source's main thread is blocked while one C(MIGRATE) runs. Calls are therefore bounded by O(batch_size)
    keys and about O(batch_bytes) bytes. Key sizes come from C(MEMORY USAGE); on sources whose average key is
    small (a whole batch of average keys fits into O(batch_bytes)) sizes are not asked key by key, which would
    cost about a quarter of the throughput, unless a call turns out slow because of many big keys. A single key
    bigger than O(batch_bytes) goes alone; nothing can split it.
  - C(MIGRATE) sends a key's TTL as a relative time that the target starts counting when the key arrives; after a
    call slower than 0.2 s (a big key) the expiry of its keys is set again on the target from the source's.
  - A target database that already holds keys is compared first (C(DUMP) and expiry on both sides). Keys that
    are identical are counted and not sent again, so a second run writes nothing and reports C(changed=false).
  - MIGRATE needs a network path from the source server to the target. Where there is none (TLS on one side
    only, a target only this machine can reach) or where the target refuses the source's payload version (a
    downgrade, Redis 7.4 to Valkey), use M(kvtools.migration.kv_dump_restore) instead; this module says so
    before anything is copied when it can tell, and on the first batch otherwise.
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint.SOURCE_TARGET
  - kvtools.migration.job.SELECTION
  - kvtools.migration.job.DB_MAP
  - kvtools.migration.job.RUN
  - kvtools.migration.attributes.PAIR
options:
  batch_size:
    description:
      - Keys per C(SCAN) batch and the most keys in one C(MIGRATE) call.
    type: int
    default: 5000
  batch_bytes:
    description:
      - About the most bytes (as C(MEMORY USAGE) estimates them) in one C(MIGRATE) call, so that the source is not
        blocked for long. 16 MiB take about 0.1 to 0.2 seconds to send on a LAN.
    type: int
    default: 16777216
  timeout:
    description:
      - C(MIGRATE)'s own timeout in milliseconds - the longest the source waits for any one read or write on its
        connection to the target, not the total time of a call.
      - Keep the source's O(source.socket_timeout) (seconds) well above it.
    type: int
    default: 5000
attributes:
  check_mode:
    support: full
    description: Reads both sides and returns the plan (per database - keys to migrate, identical keys, conflicts,
      estimated bytes, and the number of MIGRATE calls in RV(batches)) without writing anything.
  diff_mode:
    support: full
    description: Returns the key counts of each target database before and after; never key names or values.
notes:
  - One copy into a target at a time - a second copy into the same target started on the same host fails with
    C(error=locked), naming the first one's pid, host, start time and progress file. The lock is a file (in the
    environment variable C(KVTOOLS_LOCK_DIR), else the temp folder) held while the copy runs and released the moment
    its process ends; nothing is written to either server for it.
  - Started with C(async) and watched by M(kvtools.migration.kv_wait), the copy stops (C(error=interrupted), the
    checkpoint kept) when the playbook is interrupted - see M(kvtools.migration.kv_wait).
  - The target's credentials travel inside the C(MIGRATE) command to the source server, which logs in to the target
    with them (C(AUTH2) for an ACL user, C(AUTH) for a password-only server). Redis and Valkey hide them in
    C(SLOWLOG) and C(MONITOR).
  - ACL permissions - the source user needs C(+scan +migrate +memory|usage +dump +info) (C(MIGRATE) is in
    C(@dangerous)); the target user C(+restore) (in C(@dangerous) too) plus what M(kvtools.migration.kv_info) reads.
  - C(MIGRATE) is a write command for the source's bookkeeping; under C(CLIENT PAUSE WRITE) it waits until the
    pause ends. Use M(kvtools.migration.kv_dump_restore) to copy from a paused source.
  - O(source) and O(target) may each be a node of a cluster (any node) - the masters and their slots are found as
    M(kvtools.migration.kv_dump_restore) finds them, every slot must be served and no node failing, and a cluster
    holds db 0 only (other source dbs are refused unless O(db_map) sends them to 0).
  - Out of a cluster every master is scanned (at least one worker per master) and C(MIGRATE) is sent to the master
    that holds the keys, one call per slot - a cluster node refuses keys of several slots in one command. Redis 7.4+
    and Valkey 8+ scan slot by slot, so a call still carries many keys; Redis 7.0 and 7.2 scan across the slots, so
    there the SCAN batches are ten times O(batch_size) and sorted by slot before they are cut into calls, which
    still carry fewer keys (a warning says so; M(kvtools.migration.kv_dump_restore) is faster there).
  - Into a cluster one C(MIGRATE) call goes to each target master (its address as the cluster announces it) with
    the keys of the slots it serves. C(MIGRATE) does not follow redirections - during a reshard the keys a master
    refused with C(MOVED) are sent again to the new owner (the slots read again), and keys of a slot being moved
    (C(ASK)) are restored on the importing master from this machine (C(DUMP), then C(ASKING) + C(RESTORE)), since
    C(MIGRATE) from a standalone server cannot send C(ASKING). Both are counted in RV(cluster).
seealso:
  - module: kvtools.migration.kv_dump_restore
  - module: kvtools.migration.kv_info
'''

EXAMPLES = r'''
- name: Migrate every database of the old instance to the new one
  kvtools.migration.kv_migrate:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    report: /var/tmp/kv-migrate.json
  register: migrated

- name: The source reaches the target through its backend address, not the frontend this machine uses
  kvtools.migration.kv_migrate:
    source:
      host: redis-old.internal
      username: migrator
      password: "{{ vault_old_password }}"
    target:
      host: redis-new.public.example.com
      port: 6379
      username: migrator
      password: "{{ vault_new_password }}"
      migrate_host: 10.20.0.15
      migrate_port: 6379

- name: Nothing may have failed
  ansible.builtin.assert:
    that: migrated.totals.failed == 0
'''

RETURN = r'''
unsupported:
  description:
    - What the source holds that the target cannot, found before anything was written; null when nothing.
    - C(hash_field_ttls) counts C(keys) (hashes) and C(fields) with a field TTL; with O(on_unsupported=drop),
      C(hash_field_ttls_dropped) counts the keys and fields copied without their TTL.
  returned: always
  type: dict
  sample: {"hash_field_ttls": {"keys": 3, "fields": 12}, "on_unsupported": "drop",
           "hash_field_ttls_dropped": {"keys": 3, "fields": 12}}
leftovers_removed:
  description: Temporary keys (C(kvtools:tmp:*)) an interrupted earlier run left on the target, removed at the
    start of this run (in check mode nothing is removed; a warning counts them).
  returned: always
  type: int
dbs:
  description:
    - One entry per migrated database with the counters C(keys) (scanned), C(copied), C(identical), C(conflicts),
      C(replaced), C(skipped), C(expired) (gone before they could be sent, or C(NOKEY)), C(fallback) (always 0),
      C(failed), C(bytes) (estimated), the C(payload_path) (C(migrate)) and C(batches) (MIGRATE calls).
    - In check mode the counters say what a real run would do.
  returned: always
  type: list
  elements: dict
  sample: [{"db": 0, "target_db": 0, "keys": 1000, "copied": 990, "identical": 10, "conflicts": 0, "replaced": 0,
            "skipped": 0, "expired": 0, "fallback": 0, "failed": 0, "bytes": 123456, "payload_path": "migrate",
            "batches": 1}]
totals:
  description: The same counters summed over every database.
  returned: always
  type: dict
failures:
  description: Up to 100 keys that failed or conflicted, as C({db, key, reason}). Key names are shown escaped;
    values never.
  returned: always
  type: list
  elements: dict
batches:
  description: MIGRATE calls sent (in check mode - that a real run would send).
  returned: always
  type: int
migrate_address:
  description: The C(host:port) the source was told to migrate to (O(target.migrate_host), O(target.migrate_port));
    into a cluster the calls go to each master's address (RV(cluster)).
  returned: always
  type: str
cluster:
  description:
    - Null unless a side is a cluster. C(source_nodes) lists each source master (C(address), C(node_id), C(slots),
      C(keys) scanned there), C(target_nodes) each target master (C(written) - keys written there, also masters
      found only through a redirection), C(redirects) counts the C(moved) and C(ask) replies followed.
    - In check mode C(written) is 0, C(planned) (check mode only) counts the keys a real run would write on each
      target master, and RV(batches) the calls per slot or per master it would send.
  returned: always
  type: dict
  sample: {"source_nodes": null, "redirects": {"moved": 0, "ask": 0},
           "target_nodes": [{"address": "10.0.0.5:6379", "node_id": "4b25...", "slots": 5461, "written": 33410}]}
source:
  description: Engine, version, RDB version and address of the source.
  returned: success
  type: dict
target:
  description: Engine, version, RDB version and address of the target.
  returned: success
  type: dict
bytes:
  description: Estimated bytes of the keys migrated (C(MEMORY USAGE) where asked, else C(DUMP) sizes where compared).
  returned: always
  type: int
seconds:
  description: Duration of the run.
  returned: always
  type: float
keys_per_second:
  description: Keys scanned per second.
  returned: always
  type: float
'''

from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import target_keys_diff
from ansible_collections.kvtools.migration.plugins.module_utils._migrate import Migrate, MigrateOptions
from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule


def main():
    module = KVModule(options=MigrateOptions, endpoints=('source', 'target'))
    job = Migrate(module.endpoint('source'), module.endpoint('target'), module.options(), warn=module.warn)
    module.run(job.run, diff=target_keys_diff)


if __name__ == '__main__':
    main()
