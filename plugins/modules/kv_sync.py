#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_sync
short_description: Copy a Redis or Valkey server live, following it as a replica until the cutover
version_added: 0.2.0
description:
  - Connects to the source B(as a replica) (C(PSYNC ? -1), C(REPLCONF capa eof psync2)), turns the snapshot
    into C(RESTORE ... ABSTTL) on the target (strings without an expiry into one C(MSET) per run of keys, one
    target only), then applies the source's command stream, so that writers pause only for the cutover, not for
    the whole copy.
  - O(state=started) starts a detached follower process owned by O(record) and returns once the snapshot is on
    the target and the follower has caught up (lag at most O(max_lag) bytes). Run again while the follower
    lives - C(changed=false) and its status. If the follower or its link died, it resumes with
    C(PSYNC <replid> <offset+1>) when the source's backlog still holds the offset, else it empties the mapped
    target dbs and takes a new snapshot (RV(full_resyncs) says so).
  - O(state=stopped) is the drain at cutover - pause the writers first (M(kvtools.migration.kv_isolate)). It
    waits until the source's C(master_repl_offset) stops moving and the follower has applied everything up to
    it (applied means answered by the target), stops the follower, sets the exact expiries held back, and
    returns the final offset. If the source keeps moving past O(drain_timeout), it fails and leaves the
    follower running.
  - O(state=absent) stops a follower without draining and removes the record and its files.
  - The stream is applied in order - C(SELECT) through O(db_map), commands on dbs not copied skipped,
    C(MULTI)/C(EXEC) kept atomic, C(PING) and C(REPLCONF) consumed (C(GETACK) answered), C(PUBLISH) not
    re-published, C(FLUSHALL) applied as C(FLUSHDB) on the mapped dbs, db numbers in C(MOVE), C(COPY ... DB) and
    C(SWAPDB) translated. A command that needs a db that is not copied (for example C(MOVE) from such a db into
    a copied one) stops the follower with an error naming it. An error of the target stops the follower with
    the command name and the server's words (never values) in the record and in the next result.
  - Expiries never kill a key in transit. Relative expiries (C(EXPIRE), C(SETEX) of a Redis 6.2 source) are
    made absolute when received - later than the source ran them by the time the stream waited, which during
    the snapshot transfer can be its whole length (Redis 7.0+ and Valkey stream absolute times, kept exactly).
    On a Valkey 8.1+ target the follower uses the import mode (C(import-mode yes),
    C(CLIENT IMPORT-SOURCE ON)), switched off at the drain when the module switched it on. Elsewhere every
    expiry is written 100 years later than the source's while following, so the target cannot expire a key
    whose renewal is still in the stream. Once caught up, the follower sets the exact expiry of every held key
    whose expiry is more than 2 minutes ahead (RV(expiries_settled_early)), so the drain, inside the write pause,
    sets only the rest (RV(expiries_settled)).
  - The follower reads the source without pause and keeps what is not yet applied in spool files (mode 0600,
    AES-256-GCM with O(spool_passphrase)), so the source's replica output buffer never grows because of it. A
    source that drops the follower for its C(client-output-buffer-limit replica) anyway (the writes taken while
    it writes its snapshot wait in that buffer) stops the follower with the setting named (error C(buffer_limit),
    with the value, where the source counts such drops, as Redis 7.4+ and Valkey do). It
    announces C(listening-port 0), so Sentinel can never reach or promote it.
  - Each batch of stream commands is one C(MULTI)/C(EXEC) on the target that also sets an offset marker key,
    C(kvtools:sync:offset:<id>) in the first target db (its name is in the record). So what the target holds and
    the offset it is at always agree, and a follower killed at any moment resumes exactly where the target is.
    The marker is removed by O(state=stopped) and O(state=absent); compare the target with the source only after
    the drain.
  - Every (target db, key) written by the stream is appended to a touched-keys log (RV(keys_log)) before it is
    sent; flushes and swaps are logged as whole-db markers.
  - Nothing is ever written to the source.
  - B(Cluster source) - O(source) may be any node of a cluster. The module finds the masters (C(CLUSTER SHARDS))
    and starts one follower per master, each a replica of its master (own C(PSYNC), replication id, offset,
    spool and touched-keys log, and a record of its own, C(<record>.part<N>)); O(record) lists them and the
    topology they follow. O(state) acts on all of them. O(state=started) returns once every follower has applied
    its snapshot and is under O(max_lag); a rerun is C(changed=false) while all live and resumes the ones that
    died. O(state=stopped) waits until every master's C(master_repl_offset) stops moving and its follower has
    applied (and the target answered) everything up to it, then stops them all; RV(parts) gives the offsets
    and counts per master, RV(dbs) and RV(totals) their sum. A follower removes only the keys of its master's
    slots when it takes a new snapshot or follows a C(FLUSHALL). A topology change while following (a failover,
    a slot moving away from a followed master, keys arriving by C(MIGRATE)) stops the follower concerned with
    C(error=topology) naming it (it is checked about once a second and on every C(RESTORE) in a stream); the
    drain refuses while the topology differs from the one followed, and a rerun of O(state=started) removes
    the followers and follows the masters the cluster has then, each from a new snapshot
    (RV(topology_changed)). O(backup) is not supported with a cluster source yet.
  - B(Cluster target) - every C(RESTORE) and every command goes to the master that serves its key's slot (one
    pipelined connection per master; the applied offset is the smallest over the masters). A transaction is
    sent as one C(MULTI)/C(EXEC) per slot - from a cluster source that is the whole transaction. From a
    standalone source, C(DEL), C(UNLINK), C(MSET) and C(MSETNX) on keys of several slots are split per slot;
    any other command across slots (C(RENAME), C(SUNIONSTORE), ...) stops the follower with C(error=crossslot)
    naming it, after everything before it was applied - never dropped. A cluster holds db 0 only (one source
    db, mapped to 0 with O(db_map)). Only a Valkey 8.1+ cluster is supported (its import mode keeps keys in
    transit from expiring on every master; the target user needs C(+config|set) unless C(import-mode) is already
    C(yes)). There is no offset marker on a cluster target, so a follower that died restarts with a new snapshot.
  - B(Reshard of a cluster target) - the follower follows a reshard of the target while it restores the snapshot
    and while it applies the stream. A command answered C(MOVED) goes to the slot's new master (a master not
    known yet is connected with the same user, password and TLS; it must be in import mode like the others), one
    answered C(ASK) goes to the importing master after C(ASKING), a transaction whole; C(TRYAGAIN) (a multi-key
    command on keys split between the two masters for a moment) is tried again until the move ends. Writes
    stay in the source's order per key - once a redirection is seen nothing new is sent until every reply is
    in and the redirected commands are applied one at a time in stream order - and the acknowledged offset
    never passes a redirected command not yet applied. A command still redirected after 30 seconds (a slot
    left half-way in a move) stops the follower with C(error=topology) naming it; an aborted migration
    (C(SETSLOT STABLE)) while commands are in flight is not supported. RV(redirects) counts them. A reshard
    of a cluster B(source) still stops its follower (above).
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint.SOURCE_TARGET
options:
  state:
    description:
      - V(started), V(stopped) or V(absent), see the description.
    type: str
    choices: [started, stopped, absent]
    default: started
  record:
    description:
      - Path of the follower's record file (JSON, mode 0600, no secret). It owns the follower - removing it or
        replacing it stops the follower.
    type: path
    required: true
  spool_dir:
    description:
      - Folder of the spool files and the touched-keys log. Default - the folder of O(record).
    type: path
  dbs:
    description:
      - Source databases to copy. Default - every database of the source (also those empty now, since writes may
        reach them later).
    type: list
    elements: int
  db_map:
    description:
      - "Map of source database to target database, for example C({0: 0, 1: 4}). Unmapped databases keep their
        number."
      - Two source databases into one target database (a merge) are refused - a followed C(FLUSHDB), C(SWAPDB) or
        C(MOVE) in one would act on the keys of the other. Merge offline with M(kvtools.migration.kv_dump_restore) or
        M(kvtools.migration.kv_migrate) and their C(allow_db_merge).
    type: dict
  on_conflict:
    description:
      - V(fail) refuses to start when a target database to copy into holds keys (and stops when one appears while
        the snapshot is copied, by C(RESTORE) without C(REPLACE) and C(MSETNX)); V(replace) overwrites keys of the same
        name (C(RESTORE ... REPLACE), C(MSET)).
    type: str
    choices: [fail, replace]
    default: fail
  max_lag:
    description:
      - O(state=started) returns once the snapshot is applied and the follower is at most this many bytes of
        stream behind what it received.
    type: int
    default: 1048576
  started_timeout:
    description:
      - Seconds O(state=started) waits for the snapshot and the catch-up. On timeout the task fails and the
        follower keeps running.
    type: int
    default: 3600
  drain_timeout:
    description:
      - Seconds O(state=stopped) waits for the source to stop moving and the follower to apply everything.
    type: int
    default: 30
  max_seconds:
    description:
      - Lifetime of the follower; it stops by itself after this many seconds.
    type: int
    default: 86400
  spool_passphrase:
    description:
      - Encrypt the spool files (what is received and not yet applied) with AES-256-GCM under a key derived from
        this passphrase. Needs the Python library C(cryptography).
    type: str
  backup:
    description:
      - Also write the snapshot the follower receives to this file, as a backup - the source forks once for
        backup and copy, and the backup is the very data the copy started from.
      - The file is what M(kvtools.migration.kv_rdb_backup) with C(method=sync) writes - the source's RDB file,
        validated before it is called a backup (C(REDIS)/C(VALKEY) magic and RDB version, end opcode, CRC64
        trailer), streamed to a temporary file next to it and moved into place only when complete, with the
        same sidecar C(<backup>.json) (size, sha256, RDB version, checksum; plus C(taken_by=kv_sync) and the
        replication id and offset of the snapshot). M(kvtools.migration.kv_backup_decrypt) and a server started
        on the file read it like any other backup.
      - Only the first complete snapshot of a follower is written. A follower that continues its link
        (C(PSYNC) continue) does not write it again; a later full resync (a new snapshot) keeps the backup
        already written (RV(backup_note) says so). A snapshot cut off, refused by the checks or stopped midway
        leaves nothing at this path.
      - The backup is in place as soon as the transfer is complete and valid, before the snapshot is restored. It
        depends on the source only - when the restore fails (the target, say) while the source still sends the
        snapshot, the follower lets the transfer end (at most 10 minutes) before it reports the failure, with the
        backup in RV(backup). O(state=started) returns only once it is in place
        (RV(backup), also in the result of a failure after that), and fails if it could not be written.
      - Its directory must exist. O(state=stopped) and O(state=absent) leave the backup alone.
    type: path
  backup_passphrase:
    description:
      - Encrypt the backup (AES-256-GCM in authenticated chunks, key derived with scrypt), the format of
        M(kvtools.migration.kv_rdb_backup) with C(passphrase). Needs the Python library C(cryptography).
      - The encrypted file is C(<backup>.enc) (unless O(backup) already ends in C(.enc)), as kv_rdb_backup names it.
      - Only with O(backup).
    type: str
  backup_keep:
    description:
      - How many older backups to keep next to O(backup) (each renamed once to C(<backup>.<UTC time it was
        written>)), as C(keep) of M(kvtools.migration.kv_rdb_backup) does. Rotation happens only once the new backup
        is complete and valid.
    type: int
    default: 0
  backup_keep_first:
    description:
      - Never delete the oldest backup next to O(backup) (the one before the first migration attempt), whatever
        O(backup_keep) says - C(keep_first) of M(kvtools.migration.kv_rdb_backup).
    type: bool
    default: false
  backup_check_free_space:
    description:
      - Before the follower starts, compare the free space of the directory of O(backup) with the expected size of
        the backup (C(INFO used_memory_dataset) + 10% + 1 MiB, as C(check_free_space) of
        M(kvtools.migration.kv_rdb_backup)) and fail with C(error=space) naming the directory, the free bytes and
        the needed bytes when it is smaller. Nothing is written then.
    type: bool
    default: true
  backup_mode:
    description:
      - The permissions of the backup and its sidecar, an octal string such as C('0640').
    type: raw
    default: '0600'
attributes:
  check_mode:
    support: full
    description: Returns the plan (can we replicate with this user, does the target accept the payload version,
      dbs and key counts); starts nothing, writes nothing.
  diff_mode:
    support: none
    description: Nothing is reported as a diff; the result counts what was copied.
notes:
  - The source user needs C(+psync +replconf) (and C(+info)); the target user needs what the stream writes
    (typically C(+@write +select +restore +function|load) and C(+pexpiretime) for the drain).
  - Key pattern filters are not supported, nor a cluster target older than Valkey 8.1, see
    M(kvtools.migration.kv_preflight) (its C(live_possible) result).
  - Pub/sub messages, keyspace notifications and client state (blocking pops) are not migrated.
  - Sentinel (O(source.sentinel), O(target.sentinel)) - the record keeps the masters the follower was started on.
    The follower stops with C(error=failover) when it sees a master move (while streaming and before every
    reconnection). O(state=stopped) after a failover it did not see drains nothing and fails with
    C(error=failover) naming the old and the new master; O(state=started) stops a follower left on the old master
    and resumes on the new one (RV(failover), RV(resumed_by)).
seealso:
  - module: kvtools.migration.kv_preflight
  - module: kvtools.migration.kv_isolate
  - module: kvtools.migration.kv_verify
'''

EXAMPLES = r'''
- name: Start following the old instance
  kvtools.migration.kv_sync:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    record: /var/tmp/kv-sync.json
    spool_passphrase: "{{ vault_spool_passphrase }}"
  register: sync

- name: Hold the writers for the cutover
  kvtools.migration.kv_isolate:
    server: "{{ kv_source }}"
    record: /var/tmp/kv-isolate.json

- name: Drain - everything the source took is on the target
  kvtools.migration.kv_sync:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    record: /var/tmp/kv-sync.json
    state: stopped
  register: drained

- name: Copy db 1 into db 4 only
  kvtools.migration.kv_sync:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    record: /var/tmp/kv-sync-db1.json
    dbs: [1]
    db_map: {1: 4}

- name: Give up a live copy (no drain)
  kvtools.migration.kv_sync:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    record: /var/tmp/kv-sync.json
    state: absent
'''

RETURN = r'''
state:
  description: The requested state.
  returned: always
  type: str
phase:
  description: C(snapshot), C(catchup), C(streaming), C(reconnecting), C(stopped), C(failed) or C(absent).
  returned: always
  type: str
replid:
  description: The source's replication id the follower follows.
  returned: when a follower ran
  type: str
offset:
  description: The replication offset applied on the target and answered by it (what the follower acknowledges).
  returned: when a follower ran
  type: int
source_offset:
  description: The source's C(master_repl_offset) when the result was made (null once stopped).
  returned: when a follower ran
  type: int
lag_bytes:
  description: Stream bytes the target is behind the source.
  returned: when a follower ran
  type: int
commands_applied:
  description: Stream commands (a transaction counts once) applied to the target.
  returned: when a follower ran
  type: int
keys_log:
  description: Path of the touched-keys log (read it with C(iter_keys_log) of C(module_utils/_keys_log.py)).
  returned: when a follower ran
  type: str
keys_log_size:
  description: Bytes of the touched-keys log at the time of the result (a later reader can start there).
  returned: when a follower ran
  type: int
pid:
  description: Process id of the follower (null once stopped).
  returned: when a follower ran
  type: int
last_error:
  description: The follower's last error (command name and the server's words, never values or passwords).
  returned: when a follower ran
  type: str
dbs:
  description: Per copied database the snapshot counters in the collection's shared shape (C(keys), C(copied),
    C(bytes), ...; C(expired) is always 0 - keys expire only when the source says so).
  returned: when a follower ran
  type: list
  elements: dict
totals:
  description: The same counters summed.
  returned: when a follower ran
  type: dict
snapshot_seconds:
  description: Seconds the snapshot took to apply.
  returned: when a follower ran
  type: float
catchup_seconds:
  description: Seconds from the end of the snapshot until the follower had caught up.
  returned: when a follower ran
  type: float
ttl_mode:
  description: C(import) (target import mode) or C(hold) (expiries held back, set at the drain).
  returned: when a follower ran
  type: str
full_resyncs:
  description: New snapshots taken because a link could not continue (the mapped target dbs were emptied first).
  returned: when a follower ran
  type: int
continued:
  description: Links resumed with C(PSYNC) continue.
  returned: when a follower ran
  type: int
resumed:
  description: Whether O(state=started) restarted a follower from its record.
  returned: when O(state=started)
  type: bool
failover:
  description:
    - Each Sentinel side whose master is not the node the record was started on - C(side) (C(source),
      C(target)), C(old_master), C(new_master). O(state=started) resumed the follower on the new master.
  returned: when O(state=started) found a moved master
  type: list
  elements: dict
  sample: [{"side": "source", "old_master": "10.0.4.11:6379", "new_master": "10.0.4.12:6379"}]
resumed_by:
  description:
    - After a failover, how the follower went on - C(continue) (C(PSYNC) with the recorded replication id continued
      on the new master, which keeps the old id as its second one) or C(snapshot) (a new snapshot).
  returned: when O(state=started) resumed after a failover
  type: str
final_offset:
  description: The offset applied when the follower stopped.
  returned: when O(state=stopped)
  type: int
drain_seconds:
  description: Seconds the drain took.
  returned: when O(state=stopped)
  type: float
keys_written_since_snapshot:
  description: Distinct keys the stream wrote after the snapshot.
  returned: when O(state=stopped)
  type: int
expiries_settled:
  description: Keys whose held-back expiry was set at the drain (C(ttl_mode=hold)).
  returned: when O(state=stopped)
  type: int
expiries_settled_early:
  description:
    - Keys whose held-back expiry the follower set while it streamed, before the drain (C(ttl_mode=hold)), those
      whose exact expiry was more than 2 minutes ahead when it was caught up.
  returned: when O(state=stopped)
  type: int
drain_steps:
  description: >-
    Seconds of the drain's steps: C(wait) (until the source stood still and the follower had applied everything),
    C(stop) (the follower ended), C(settle) (held expiries set).
  returned: when O(state=stopped)
  type: dict
backup:
  description:
    - The backup written from the snapshot (with O(backup)) - the facts of M(kvtools.migration.kv_rdb_backup)'s result
      (C(dest), C(sidecar), C(format), C(encrypted), C(size), C(sha256), C(content_size), C(content_sha256),
      C(rdb_version), C(checksum), C(crc64), C(transfer), C(rotated), C(removed), C(method_used=sync)) plus
      C(taken_by=kv_sync), C(replid) and C(snapshot_offset). In check mode C(dest), C(would) (C(write) or C(keep)),
      C(rotated), C(removed) and C(msg).
  returned: with O(backup)
  type: dict
backup_note:
  description: Set when a later full resync was not backed up because the first snapshot's backup is kept.
  returned: with O(backup)
  type: str
previous_phase:
  description: The phase the follower was in when O(state=absent) removed it (C(streaming), C(stopped), C(failed), ...).
  returned: when O(state=absent) removed a record
  type: str
drained:
  description: Whether that follower had been drained by O(state=stopped) - the target then holds the complete copy up
    to RV(offset); otherwise an incomplete one.
  returned: when O(state=absent) removed a record
  type: bool
plan:
  description: What a run would do (check mode).
  returned: in check mode with O(state=started)
  type: list
  elements: str
source_cluster:
  description: Whether the source is a cluster, followed by one follower per master (RV(parts)).
  returned: when a follower ran
  type: bool
target_cluster:
  description: Whether the target is a cluster (every command routed to the master of its slot).
  returned: when a follower ran
  type: bool
commands_split:
  description: Into a cluster from a standalone source, the commands (C(DEL), C(UNLINK), C(MSET), C(MSETNX)) and
    transactions on keys of several slots that were applied per slot (each part atomic on its master).
  returned: when a follower ran
  type: int
redirects:
  description:
    - Into a cluster, the redirections the target's masters answered during a reshard and that the follower
      followed - C(moved), C(ask) and C(tryagain) (counts of replies; a command redirected twice counts twice).
      With a cluster source, the sum over its followers (and per follower in RV(parts)).
  returned: when a follower into a cluster ran
  type: dict
  sample: {"moved": 12, "ask": 340, "tryagain": 0}
parts:
  description:
    - With a cluster source, one entry per source master - C(address), C(node_id), C(slots), C(record) (its part
      record), C(phase), C(replid), C(offset), C(source_offset), C(lag_bytes), C(commands_applied),
      C(snapshot_seconds), C(catchup_seconds), C(full_resyncs), C(continued), C(last_error), C(keys_log),
      C(keys_log_size), C(pid), C(redirects) (into a cluster),
      C(dbs) and C(totals) (the shared per-db shape), and after the drain C(final_offset), C(drain_seconds) and
      C(keys_written_since_snapshot). RV(dbs), RV(totals), RV(commands_applied) and
      RV(keys_written_since_snapshot) are their sums, RV(lag_bytes) their largest. In check mode the masters found
      (C(address), C(node_id), C(slots), C(ranges)); with O(state=absent) what was removed per master.
  returned: with a cluster source
  type: list
  elements: dict
offsets:
  description: With a cluster source, the applied offset per master address (each master has its own replication
    id and offset; there is no single RV(offset)).
  returned: with a cluster source
  type: dict
final_offsets:
  description: With a cluster source, the offset per master address at which its follower stopped.
  returned: with a cluster source and O(state=stopped)
  type: dict
keys_logs:
  description: With a cluster source, the touched-keys log of every follower (pass it to
    O(kvtools.migration.kv_verify#module:keys_file)).
  returned: with a cluster source
  type: list
  elements: str
keys_log_sizes:
  description: With a cluster source, the size of each log of RV(keys_logs) (same order) at the time of the result -
    the O(kvtools.migration.kv_verify#module:keys_file_offset) of a later verification of the keys written since.
  returned: with a cluster source
  type: list
  elements: int
markers:
  description: The offset markers (C({db, key}), target db and key name) the followers keep on a standalone target
    while they run - not data; the drain removes them (empty once stopped, and into a cluster, which has none). Pass
    them to O(kvtools.migration.kv_verify#module:ignore_target_keys) while the follow runs.
  returned: when a follower ran
  type: list
  elements: dict
topology_changed:
  description: With a cluster source, whether O(state=started) found other masters or slots than the followers
    followed, and restarted every follower from a new snapshot.
  returned: with a cluster source and O(state=started)
  type: bool
'''

from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule
from ansible_collections.kvtools.migration.plugins.module_utils._sync_parts import live_sync


def main():
    module = KVModule(
        argument_spec=dict(
            state=dict(type='str', default='started', choices=['started', 'stopped', 'absent']),
            record=dict(type='path', required=True),
            spool_dir=dict(type='path'),
            dbs=dict(type='list', elements='int'),
            db_map=dict(type='dict'),
            on_conflict=dict(type='str', default='fail', choices=['fail', 'replace']),
            max_lag=dict(type='int', default=1048576),
            started_timeout=dict(type='int', default=3600),
            drain_timeout=dict(type='int', default=30),
            max_seconds=dict(type='int', default=86400),
            spool_passphrase=dict(type='str', no_log=True),
            backup=dict(type='path'),
            backup_passphrase=dict(type='str', no_log=True),
            backup_keep=dict(type='int', default=0),
            backup_keep_first=dict(type='bool', default=False),
            backup_check_free_space=dict(type='bool', default=True),
            backup_mode=dict(type='raw', default='0600'),
        ),
        endpoints=('source', 'target'),
    )
    source, target = module.endpoint('source'), module.endpoint('target')
    module.run(lambda: live_sync(source, target, module.params, check_mode=module.check_mode))


if __name__ == '__main__':
    main()
