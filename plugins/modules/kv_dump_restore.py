#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_dump_restore
short_description: Copy the keys of a Redis or Valkey server to another one, client-side
version_added: 0.1.0
description:
  - Reads the source with C(SCAN), C(DUMP) and C(PEXPIRETIME) (C(PTTL) before Redis 7.0) and writes the
    target with C(RESTORE), pipelined in batches. Works wherever the machine running the module reaches
    both servers - TLS on one side only, different CAs, a source paused with C(CLIENT PAUSE WRITE).
  - Nothing is ever written to the source.
  - Keys and values are bytes end to end; any key name (newlines, quotes, non-UTF-8, the empty name) is copied.
  - Expiry is kept as an absolute time (C(RESTORE ... ABSTTL)) when the source has C(PEXPIRETIME), as a
    relative TTL otherwise. Keys that expire during the copy are counted as expired, not failed.
  - When the target refuses the source's DUMP payloads (a newer RDB version, Redis 7.4+ to Valkey, Valkey 9 to
    Redis), keys are copied type-aware with ordinary commands instead (strings, hashes, lists, sets, sorted
    sets, streams), see O(payload). A stream is copied exactly - its entries, last generated id, entries-added and
    max-deleted-entry-id (where the target has them), an empty stream that holds only consumer groups, every
    consumer group with its last-delivered id and entries-read, its consumers (also those without pending
    entries) and its pending entries (id, consumer, delivery count; the idle time is kept relative to now).
    Hash field TTLs are copied exactly where the target holds them (Redis 7.4+, Valkey 9+), see
    O(on_unsupported) where it does not.
  - Temporary keys (C(kvtools:tmp:*)) hold a key while it is built type-aware; they expire unless renewed, and
    leftovers of an interrupted run are removed at the start of the next one (C(leftovers_removed)).
  - A key already on the target with the same value and expiry is counted as identical and not written, so a
    second run writes nothing and reports C(changed=false).
  - The source can also be a logical backup written by M(kvtools.migration.kv_rdb_backup) - O(source.url) set to
    C(file:///path/to/backup) (and O(backup_passphrase) when it is encrypted). The whole file is checked first;
    its records are restored like a live copy's keys, with the same conflict handling, counts and check mode.
    Keys already on the target are compared by payload only (there is no live value to compare type-aware) - big
    hashes, sets and sorted sets restored on another engine before may serialize in another order and then count
    as conflicts; use O(on_conflict=skip) or V(replace) when restoring the same backup again.
  - The file may also be the backup of a cluster - the manifest M(kvtools.migration.kv_rdb_backup) writes at its
    C(dest) for a cluster, which names one part (an RDB or logical file next to it) per master. Every part is
    checked first - present, the sha256 the manifest recorded, then its whole content - and the parts are restored
    one after the other, into a standalone server or a cluster (each key on the master that serves its slot).
  - The file may also be an RDB file - one written by M(kvtools.migration.kv_rdb_backup) with O(backup_passphrase)
    when it is encrypted, or a C(dump.rdb) downloaded from a platform - restored directly, without a scratch server.
    What the file holds is told by its content (C(REDIS)/C(VALKEY) magic or the logical backup's), not its name.
    The whole file is checked first (its structure, its CRC-64 trailer, and every encrypted chunk); a damaged,
    truncated or unknown file writes nothing and the error names the problem. Each key becomes a C(RESTORE) of
    the payload the server that wrote the file would have dumped, stamped with the RDB version of the file's
    header; a target that does not accept that version (a Redis 7.4+ RDB into Valkey 8, a newer RDB into an
    older server) is refused before anything is written - a file has no live values to copy type-aware. O(dbs),
    O(db_map), O(match), O(on_conflict) and check mode work as for a live source; keys whose expiry time in the
    file has passed are counted as C(expired) and not written. Function libraries in the file are not loaded -
    C(source.functions) and a warning name them.
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint.SOURCE_TARGET
  - kvtools.migration.job.SELECTION
  - kvtools.migration.job.DB_MAP
  - kvtools.migration.job.RUN
  - kvtools.migration.attributes.PAIR
options:
  payload:
    description:
      - V(restore) copies with C(DUMP)/C(RESTORE) only and fails before writing when the target cannot accept the
        source's payload version.
      - V(commands) copies every key type-aware with ordinary commands (slower; for downgrades).
      - V(auto) uses C(RESTORE) where the target accepts the payloads and falls back to commands per key where it
        refuses them.
      - With a backup file as the source (O(source.url=file:///...)) there are no live values to copy with commands -
        V(commands) is refused, and V(auto) works as V(restore).
    type: str
    choices: [auto, restore, commands]
    default: auto
  batch_size:
    description:
      - Keys per C(SCAN) batch, and the most keys pipelined at once. Large values are sent in smaller steps
        so a worker holds about 16 MiB of payloads at a time.
    type: int
    default: 1000
  chunk_size:
    description:
      - Elements per command when big collections are copied with commands.
    type: int
    default: 1000
  checkpoint:
    description:
      - Path of a file recording, per database, where the copy has got to. A rerun with the same file resumes
        there instead of starting over. It is removed when the copy completes.
      - When the target restarted in between, every database is checked again from the start, but keys already
        there and identical are not copied again.
    type: path
  backup_passphrase:
    description:
      - The passphrase of an encrypted backup (logical or RDB, written by M(kvtools.migration.kv_rdb_backup)) given
        as O(source.url=file:///...).
    type: str
attributes:
  check_mode:
    support: full
    description: Reads both sides and returns the plan (per database - keys to copy, identical keys, conflicts,
      estimated bytes, payload path) without writing anything.
  diff_mode:
    support: full
    description: Returns the key counts of each target database before and after; never key names or values.
notes:
  - O(source) and O(target) may each be a node of a cluster (any node, a replica too) - detected from C(INFO). The
    masters and their slots are found with C(CLUSTER SHARDS) (C(CLUSTER SLOTS) before 7.0) and reached with the same
    user, password and TLS settings. Every slot must be served and no node failing, else nothing is written. Each
    source master is scanned (the workers read from all of them at once); each key is restored on the target master
    that serves its slot (hash tags respected), pipelined per master. C(MOVED) and C(ASK) replies of a reshard during
    the copy are followed and counted (RV(cluster)).
  - A cluster holds db 0 only - source dbs other than 0 into a cluster are refused before anything is written unless
    O(db_map) sends them to 0 (several may go to 0; O(on_conflict) decides between keys of the same name).
  - Into a cluster the type-aware copy (O(payload=commands), or the fallback for payloads the target refuses) builds
    each key on the master that serves its slot; the temporary key (C(kvtools:tmp:{tag}...)) carries a hash tag of
    the key's slot, so it lives on the same master and the final C(RENAME) stays in the slot. A C(MOVED) during a
    reshard sends the key to the new owner; while its slot is being moved (C(ASK), C(TRYAGAIN)) the key waits (at
    most 30 seconds per slot) for the move to end.
  - The idle times of pending stream entries and consumers are recreated relative to the time of the copy.
  - One copy into a target at a time - a second copy into the same target started on the same host fails with
    C(error=locked), naming the first one's pid, host, start time and progress file. The lock is a file (in the
    environment variable C(KVTOOLS_LOCK_DIR), else the temp folder) held while the copy runs and released the moment
    its process ends; nothing is written to either server for it.
  - Started with C(async) and watched by M(kvtools.migration.kv_wait), the copy stops (C(error=interrupted), the
    checkpoint kept) when the playbook is interrupted - see M(kvtools.migration.kv_wait).
seealso:
  - module: kvtools.migration.kv_info
'''

EXAMPLES = r'''
- name: Copy every database of the old instance to the new one
  kvtools.migration.kv_dump_restore:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    checkpoint: /var/tmp/kv-migration.ckpt
    report: /var/tmp/kv-migration.json
  register: copy

- name: Copy db 1 into db 4, overwriting what differs
  kvtools.migration.kv_dump_restore:
    source:
      url: "redis://old.internal:6379"
      username: migrator
      password: "{{ vault_old_password }}"
    target:
      url: "rediss://new.internal:6380"
      username: migrator
      password: "{{ vault_new_password }}"
      ca_cert: /etc/ssl/certs/platform-ca.pem
    dbs: [1]
    db_map: {1: 4}
    on_conflict: replace

- name: Restore a logical backup (kv_rdb_backup method=logical) into a new server
  kvtools.migration.kv_dump_restore:
    source:
      url: file:///var/backups/redis-old.kvtlog
    target: "{{ kv_target }}"
    backup_passphrase: "{{ vault_backup_passphrase }}"

- name: Restore dbs 0 and 3 of an RDB file into dbs 0 and 5, without a scratch server
  kvtools.migration.kv_dump_restore:
    source:
      url: file:///var/backups/redis-old.rdb
    target: "{{ kv_target }}"
    dbs: [0, 3]
    db_map: {3: 5}

- name: Nothing may have failed
  ansible.builtin.assert:
    that: copy.totals.failed == 0
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
    - One entry per copied database with the counters C(keys) (scanned), C(copied), C(identical), C(conflicts),
      C(replaced), C(skipped), C(expired), C(fallback), C(failed), C(bytes) and the C(payload_path) used.
    - In check mode the counters say what a real run would do.
  returned: always
  type: list
  elements: dict
  sample: [{"db": 0, "target_db": 0, "keys": 1000, "copied": 990, "identical": 10, "conflicts": 0, "replaced": 0,
            "skipped": 0, "expired": 0, "fallback": 0, "failed": 0, "bytes": 123456, "payload_path": "restore"}]
totals:
  description: The same counters summed over every database.
  returned: always
  type: dict
failures:
  description: Up to 100 keys that failed, conflicted or lost a detail, as C({db, key, reason}). Key names are
    shown escaped; values never.
  returned: always
  type: list
  elements: dict
payload_path:
  description: C(restore), C(restore+fallback) or C(commands).
  returned: success
  type: str
source:
  description:
    - Engine, version, RDB version and address of the source; for a cluster also C(cluster) (its masters, slot
      ranges, state and the command that found them).
    - For an RDB file also C(content=rdb), C(checksum) and C(functions) - the function libraries the file holds and
      that were not loaded, as C({count, names, loaded}).
  returned: success
  type: dict
target:
  description: Engine, version, RDB version and address of the target; C(cluster) as for RV(source).
  returned: success
  type: dict
bytes:
  description: DUMP payload bytes read from the source.
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
resumed:
  description: Whether the run continued from a checkpoint.
  returned: always
  type: bool
cluster:
  description:
    - Null unless a side is a cluster. C(source_nodes) lists each source master (C(address), C(node_id), C(slots),
      C(keys) scanned there), C(target_nodes) each target master (C(written) - keys restored there, also masters
      found only through a redirection; in check mode also C(planned) - the keys a real run would write there),
      C(redirects) counts the C(moved) and C(ask) replies followed.
    - The C(cluster) entries of RV(source) and RV(target) describe the masters and slot ranges found.
  returned: always
  type: dict
  sample: {"source_nodes": null, "redirects": {"moved": 0, "ask": 0},
           "target_nodes": [{"address": "10.0.0.5:6379", "node_id": "4b25...", "slots": 5461, "written": 33410}]}
'''

from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import target_keys_diff
from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_file_source import FileRestore


def main():
    module = KVModule(options=CopyOptions, argument_spec=dict(backup_passphrase=dict(type='str', no_log=True)),
                      endpoints=('source', 'target'))
    source = module.endpoint('source')
    target = module.endpoint('target')
    options = module.options()
    if source.backup_file:
        def run():  # what the file holds (RDB or logical backup) is read inside run: its errors fail the task
            return FileRestore(source, target, options, passphrase=module.params['backup_passphrase'],
                               warn=module.warn).run()
    else:
        run = DumpRestore(source, target, options, warn=module.warn).run
    module.run(run, diff=target_keys_diff)


if __name__ == '__main__':
    main()
