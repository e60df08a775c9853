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
    sets, streams with their consumer groups), see O(payload).
  - A key already on the target with the same value and expiry is counted as identical and not written, so a
    second run writes nothing and reports C(changed=false).
  - The source can also be a logical backup written by M(kvtools.migration.kv_rdb_backup) - O(source.url) set to
    C(file:///path/to/backup) (and O(backup_passphrase) when it is encrypted). The whole file is checked first;
    its records are restored like a live copy's keys, with the same conflict handling, counts and check mode.
    Keys already on the target are compared by payload only (there is no live value to compare type-aware) - big
    hashes, sets and sorted sets restored on another engine before may serialize in another order and then count
    as conflicts; use O(on_conflict=skip) or V(replace) when restoring the same backup again.
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
      - The passphrase of an encrypted logical backup given as O(source.url=file:///...).
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
  - Cluster mode is not supported yet.
  - Consumer groups of streams are copied with their last-delivered ids; their pending entries lists are not.
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

- name: Nothing may have failed
  ansible.builtin.assert:
    that: copy.totals.failed == 0
'''

RETURN = r'''
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
  description: Engine, version, RDB version and address of the source.
  returned: success
  type: dict
target:
  description: Engine, version, RDB version and address of the target.
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
'''

from ansible_collections.kvtools.migration.plugins.module_utils._backup_source import BackupRestore
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import target_keys_diff
from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule


def main():
    module = KVModule(options=CopyOptions, argument_spec=dict(backup_passphrase=dict(type='str', no_log=True)),
                      endpoints=('source', 'target'))
    source = module.endpoint('source')
    target = module.endpoint('target')
    options = module.options()
    if source.backup_file:
        job = BackupRestore(source, target, options, passphrase=module.params['backup_passphrase'], warn=module.warn)
    else:
        job = DumpRestore(source, target, options, warn=module.warn)
    module.run(job.run, diff=target_keys_diff)


if __name__ == '__main__':
    main()
