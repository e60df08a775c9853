#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_verify
short_description: Prove that a Redis or Valkey target holds exactly what the source holds
version_added: 0.1.0
description:
  - Compares a source and a target server database by database - the key and expiring-key counts, the key sets in
    both directions (keys missing on the target, keys extra on the target), the types, the values and the TTLs - and
    says precisely which keys differ.
  - Walks the source with C(SCAN), never C(KEYS), and pipelines C(DUMP) and C(PEXPIRETIME) (C(PTTL) before 7.0) on
    both sides for each batch. Serialized values that are byte for byte the same (the RDB version footer aside) are
    equal; where they differ, because the two servers encode or serialize the value differently (for example Redis
    7.0 against Valkey 9), the values are read and compared type-aware, sorted-set scores as numbers.
  - "Exact scope of a value comparison (O(values=full), and the sampled keys of V(sample)): strings byte for byte;
    hashes field by field and, where both servers hold hash field TTLs (Redis 7.4+, Valkey 9+), each field's TTL
    within O(ttl_tolerance); lists in order; sets by members; sorted sets by members and scores; streams entry by
    entry (ids and fields), their last generated id, entries-added and max-deleted-entry-id (where both servers
    report them - Redis 7.0+, Valkey), every consumer group (name, last-delivered id, entries-read where both report
    it, consumer names) and every pending entry (id, consumer, delivery count). Not compared - consumers' seen/active
    times, pending entries' delivery times (a copy recreates them relative to its own time) and object encodings."
  - Each kind is counted and listed separately in RV(differences) - C(missing), C(extra), C(type_differs),
    C(value_differs), C(ttl_differs), C(field_ttl_differs), C(stream_meta_differs), C(group_differs),
    C(pending_differs).
  - Hash field TTLs on the source that the target cannot hold at all (Redis before 7.4, Valkey before 9) are
    listed as C(field_ttl_dropped) and counted in C(field_ttls_dropped) - the loss a copy makes only with
    C(on_unsupported=drop) - and do not make the target inconsistent.
  - These checks cost only where serialized values differ (hashes whose payload type can carry field TTLs, and
    streams); keys whose serialized values are equal are equal in all of it.
  - Keys extra on the target are found without a second walk when every source key was found on the target and both
    sides hold exactly that many keys with nothing written meanwhile; otherwise the target is walked with C(SCAN)
    and each key is looked up on the source with C(EXISTS).
  - Memory stays bounded whatever the size of the keyspace - one batch of keys per worker at a time.
  - Keys and values are bytes end to end; any key name is handled. Differing keys are listed with non-printable bytes
    escaped; values are never returned.
  - Notices a source that changes during the verification (its write, expiry and eviction counters in C(INFO)
    move) and says so in the result and the summary rather than presenting the differences as the truth about the copy.
  - Nothing is written to either server. The task never reports a change.
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint.SOURCE_TARGET
  - kvtools.migration.attributes.PAIR
  - kvtools.migration.job.DB_MAP
options:
  dbs:
    description:
      - Source databases to compare.
      - Default - every database that holds keys on the source or on the target (through O(db_map)).
    type: list
    elements: int
  match:
    description:
      - Compare only keys whose name matches this glob (C(SCAN MATCH) syntax), in both directions.
    type: str
  values:
    description:
      - V(full) compares the value of every key.
      - V(sample) compares the values of a random share O(sample_rate) of the keys; key sets, types and TTLs are
        still compared for every key.
      - V(none) compares key sets, types and TTLs only.
    type: str
    choices: [none, sample, full]
    default: full
  sample_rate:
    description:
      - Share of the keys whose values are compared with O(values=sample), greater than 0 and at most 1.
    type: float
    default: 0.1
  ttl_tolerance:
    description:
      - Seconds two expiry times may differ by and still count as the same TTL.
      - A key with a TTL on one side and none on the other always differs.
    type: float
    default: 2
  memory_tolerance:
    description:
      - "When set, C(used_memory) of the target must lie within this share of the source's: the check fails when
        C(|target / source - 1|) is greater than this value (V(0.5) allows half as much up to one and a half times as
        much)."
      - C(used_memory) of both sides is reported always; it is not checked unless this is set, because the engines
        and versions account memory differently.
    type: float
  fail_on_mismatch:
    description:
      - Fail the task, with the summary as message, when the target is not consistent with the source. The report
        fields are returned either way.
    type: bool
    default: true
  max_reported:
    description:
      - How many differing keys to list in RV(differences) (the counts are always complete).
    type: int
    default: 100
  on_conflict:
    description:
      - The C(on_conflict) the copy used, for a merge (O(allow_db_merge)) - a key that several merged source
        databases hold with different values must then hold the value the copy keeps (V(skip) - the lowest-numbered
        database's, V(replace) - the highest's); the other databases' values are counted as C(merged) and listed,
        not as differences. A target value from the wrong database is a C(value_differs) naming both.
      - Not given - such a key holding the value of one of the merged databases is counted in C(merge_conflicts) and
        listed by name (which one is right cannot be known), not failed.
    type: str
    choices: [fail, skip, replace]
  skipped_keys_file:
    description:
      - The C(skipped_keys_file) a copy with C(on_conflict=skip) wrote (M(kvtools.migration.kv_dump_restore),
        M(kvtools.migration.kv_migrate)). A key it names that differs (value, type or TTL) is counted in C(skipped)
        and listed as C(skipped) with the detail C(skipped by on_conflict=skip, target value kept) - a difference the
        run chose, not an inconsistency. Any other difference, and a skipped key missing on the target, still fails.
      - The names are held in memory while the verification runs.
    type: path
  keys_file:
    description:
      - The touched-keys log of a C(kvtools.migration.kv_sync) follower (the C(keys_log) it returns), or a list of
        them - with a cluster source kv_sync runs one follower per source master, each with a log of its own (its
        C(keys_logs)).
        Instead of walking every key, compare exactly the keys the logs name from O(keys_file_offset) on, plus the
        key count (C(DBSIZE), summed over the masters of a cluster) of every db pair on both sides. A db a log marks
        as changed as a whole (C(FLUSHDB), C(SWAPDB)) and a db whose counts differ are compared whole.
      - This is the final verification of the live strategy, inside the write pause and after the drain - with
        O(keys_file_offset) the log size when the last full comparison started, every key not named has been
        compared since and has not changed.
      - Cannot be combined with O(match), nor with a O(db_map) that sends several source dbs into one target db.
    type: raw
  keys_file_offset:
    description:
      - Byte offset of O(keys_file) to read from - a C(keys_log_size) kv_sync returned, or C(end) of RV(keys_file) of an
        earlier kv_verify. Not given (or V(0)) reads the whole log.
      - With several logs in O(keys_file), a list with one offset per log in the same order (kv_sync's
        C(keys_log_sizes) with a cluster source).
    type: list
    elements: int
  rounds:
    description:
      - Verification while the data still moves (a follower applying the source's writes). Round 1 compares
        everything in scope; each further round waits O(recheck_delay) and compares again only the keys that
        differed in the round before, until none differs or O(rounds) rounds ran. The result counts describe the
        last look at every key; RV(rounds) lists each round.
      - Between 1 and 100. V(1) compares once.
    type: int
    default: 1
  recheck_delay:
    description:
      - Seconds to wait before a recheck round (long enough for the follower's lag to pass), between 0 and 3600.
    type: float
    default: 1
  ignore_target_keys:
    description:
      - Keys of the target that are not data and must not count as extra, as C({db, key}) with the target db - for
        example the offset marker a running C(kvtools.migration.kv_sync) follower keeps on the target until the drain.
    type: list
    elements: dict
  target_expiry_offset:
    description:
      - Milliseconds by which a running follower holds expiries back on the target (kv_sync's C(ttl_mode=hold) until the
        drain). A target expiry later than the source's by this much (within O(ttl_tolerance)) counts as the same TTL.
      - V(0) (default) compares expiries as they are.
    type: int
    default: 0
  report:
    description:
      - Path of a file to write the result to, mode 0600, through a temporary file and a rename.
      - Markdown when the name ends in C(.md), JSON otherwise.
      - Not written in check mode.
    type: path
  progress:
    description:
      - A file the verification rewrites about every second while it runs - the keys compared of the source's keys and
        the value bytes read - the progress file that M(kvtools.migration.kv_wait) shows when the task runs with
        C(async) (the format of the copy's progress file). Not written in check mode.
    type: path
attributes:
  check_mode:
    support: full
    description: The verification only reads; check mode returns the same result as a real run (without writing the
      O(report) file).
  diff_mode:
    support: none
    description: The result already lists what differs (RV(differences)); there is no before and after.
notes:
  - O(source) and O(target) may each be a node of a cluster (any node). Each source master is scanned; each key is
    compared with the target master that serves its slot, and keys extra on the target are looked for on every target
    master. The checks, counts and RV(differences) are those of two servers; the C(cluster) entries of
    RV(source) and RV(target) add each master's slots and counts. C(DBSIZE), the write counters and C(used_memory) are summed
    over the masters. Strings are read with C(DUMP) there (C(MGET) cannot span slots). O(rounds) and the keys scope
    (O(keys_file)) work there as between two servers - the keys each round rechecks, and the keys the logs name, are
    read on the master that serves them on each side.
  - The comparison of a server whose data changes meanwhile is not meaningful. Stop the writers first (C(CLIENT PAUSE
    WRITE) or unbind the applications); RV(source_changed) says when the source changed anyway. Keys expiring also move
    the counters.
  - The user on each side needs C(SCAN), C(DUMP), C(TYPE), C(EXISTS), C(PEXPIRETIME) or C(PTTL), C(DBSIZE) and C(INFO);
    a read-only user (C(+@read +scan +dump +info)) is enough.
  - Consumer groups of streams are compared by name and last-delivered id.
seealso:
  - module: kvtools.migration.kv_dump_restore
  - module: kvtools.migration.kv_info
'''

EXAMPLES = r'''
- name: Verify the copy, every value and TTL
  kvtools.migration.kv_verify:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    report: /var/tmp/kv-verify.md

- name: Quick check of a huge keyspace - key sets, types and TTLs, values of 1 key in 100
  kvtools.migration.kv_verify:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    values: sample
    sample_rate: 0.01
    fail_on_mismatch: false
  register: verify

- name: Show what differs
  ansible.builtin.debug:
    msg: "{{ verify.summary }}"
  when: not verify.consistent

- name: While kv_sync follows the source - compare everything, recheck what differed until nothing does
  kvtools.migration.kv_verify:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    rounds: 5
    recheck_delay: 2

- name: Inside the write pause, after kv_sync stopped - the keys it changed since the last full round, and counts
  kvtools.migration.kv_verify:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    keys_file: "{{ sync.keys_log }}"
    keys_file_offset: "{{ keys_log_size_before_last_full_round }}"

- name: The same with a cluster source - one keys log per source master, each from its own offset
  kvtools.migration.kv_verify:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    keys_file: "{{ sync_started.keys_logs }}"
    keys_file_offset: "{{ sync_started.keys_log_sizes }}"

- name: Source db 1 was copied into db 4; TTLs may differ by 5 seconds, memory by 30 %
  kvtools.migration.kv_verify:
    source: "{{ kv_source }}"
    target: "{{ kv_target }}"
    dbs: [1]
    db_map: {1: 4}
    ttl_tolerance: 5
    memory_tolerance: 0.3
'''

RETURN = r'''
consistent:
  description: Whether the target holds exactly the keys, types, compared values and TTLs of the source (and, with
    O(memory_tolerance), a C(used_memory) within the tolerance).
  returned: always
  type: bool
  sample: true
summary:
  description: One paragraph for a person - what was compared, what differs with examples, and what to do next. It is
    also the failure message.
  returned: always
  type: str
dbs:
  description:
    - One entry per compared database pair.
    - The collection's common counters - C(keys) (source keys checked), C(identical) (keys equal on both sides),
      C(conflicts) (keys on both sides that differ in type, value or TTL), C(expired) (keys that expired on the source
      between C(SCAN) and the read, or were expiring right then), and C(copied), C(replaced), C(fallback),
      C(failed), C(bytes) (always 0 here).
    - The verify counters - C(source_keys), C(source_expires), C(target_keys), C(target_expires) (C(INFO keyspace) at
      the start), C(missing), C(extra), C(type_differs), C(value_differs), C(ttl_differs), C(field_ttl_differs),
      C(stream_meta_differs), C(group_differs), C(pending_differs) and C(field_ttls_dropped) (not a difference).
    - Differences the copy chose (not inconsistencies) - C(skipped) (keys O(skipped_keys_file) names),
      C(merged) (keys of a merge holding the value O(on_conflict) keeps) and C(merge_conflicts) (the same without
      O(on_conflict)).
    - C(extra_check) says how extra keys were looked for - C(dbsize) (the counts prove there are none) or C(scan); for
      the later databases of a merge C(with source db N) (the first database's walk of the target looked up every key
      in all merged databases).
    - C(listed) (keys compared by name - from O(keys_file) or in a recheck round) and C(absent) (listed keys on
      neither side). C(scope) is C(full), C(keys) (the keys of O(keys_file) and the counts) or
      C(full (key counts differed)); with C(keys), C(source_count) and C(target_count) are the C(DBSIZE) of both
      sides read after the keys were compared.
  returned: always
  type: list
  elements: dict
  sample: [{"db": 0, "target_db": 0, "keys": 1000, "identical": 998, "conflicts": 1, "missing": 1, "extra": 0,
            "type_differs": 0, "value_differs": 1, "ttl_differs": 0, "source_keys": 1000, "target_keys": 999,
            "source_expires": 100, "target_expires": 100, "expired": 0, "extra_check": "scan", "copied": 0,
            "replaced": 0, "skipped": 0, "fallback": 0, "failed": 0, "bytes": 0}]
totals:
  description: The counters of RV(dbs) summed over every database.
  returned: always
  type: dict
differences:
  description: Up to O(max_reported) differing keys as C({db, target_db, key, kind, detail}). C(kind) is one of
    C(missing), C(extra), C(type_differs), C(value_differs), C(ttl_differs), C(field_ttl_differs),
    C(stream_meta_differs), C(group_differs), C(pending_differs), or - not inconsistencies - C(field_ttl_dropped)
    (field TTLs the target cannot hold), C(skipped) (left by C(on_conflict=skip)), C(merged) and C(merge_conflict)
    (keys in several merged source databases). Key names are shown escaped
    (Python byte-string notation); values never.
  returned: always
  type: list
  elements: dict
  sample: [{"db": 0, "target_db": 0, "key": "user:\\xff42", "kind": "ttl_differs",
            "detail": "expires in 3600.0 s on the source, no TTL on the target"}]
memory:
  description: C(source_used_memory) and C(target_used_memory) in bytes, their C(ratio) (target / source), the
    C(tolerance) and C(within_tolerance) (null when no tolerance is set).
  returned: always
  type: dict
source_changed:
  description: Whether the source's data changed during the verification (writes, key expiries or evictions counted
    by C(INFO persistence) and C(INFO stats)). Differences found while it changes may come from those changes.
  returned: always
  type: bool
source_changes:
  description: The C(writes) and C(expiries) (expired or evicted keys) the source counted during the verification.
  returned: always
  type: dict
target_changed:
  description: Whether the target's data changed during the verification.
  returned: always
  type: bool
target_changes:
  description: The C(writes) and C(expiries) the target counted during the verification.
  returned: always
  type: dict
source:
  description:
    - Address, engine, version and TLS use of the source.
    - For a cluster also C(cluster) - C(masters) (each with C(address), C(node_id), C(slots), C(ranges), C(health) and
      C(counts) - C(keys), C(identical), C(conflicts), C(missing), C(expired), C(extra) compared on that master),
      C(state), C(discovered_with) and C(seed).
  returned: success
  type: dict
target:
  description: Address, engine, version and TLS use of the target; C(cluster) as for RV(source).
  returned: success
  type: dict
values:
  description: The O(values) mode used.
  returned: always
  type: str
seconds:
  description: Duration of the verification.
  returned: always
  type: float
keys_per_second:
  description: Source keys checked per second.
  returned: always
  type: float
scope:
  description: C(keys) with O(keys_file), else C(full).
  returned: success
  type: str
keys_file:
  description: With O(keys_file) - C(start) and C(end) (the offsets read; C(end) is where a later read starts; lists
    with one offset per log, in the order of O(keys_file), when it names several), C(records), C(keys) (distinct keys
    named) and C(whole_dbs) (target dbs marked as changed as a whole). Null without it.
  returned: success
  type: dict
rounds:
  description: One entry per round - C(round), C(scope) (C(full), C(keys) or C(recheck)), C(compared) (keys
    looked at), C(differing) (keys that differed after the round) and C(seconds).
  returned: success
  type: list
  elements: dict
  sample: [{"round": 1, "scope": "full", "compared": 100000, "differing": 12, "seconds": 2.1},
           {"round": 2, "scope": "recheck", "compared": 12, "differing": 0, "seconds": 0.01}]
'''

from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule
from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions


def main():
    module = KVModule(options=VerifyOptions, endpoints=('source', 'target'))
    options = module.options()
    verifier = Verifier(module.endpoint('source'), module.endpoint('target'), options, warn=module.warn)

    def run():
        result = verifier.run()
        if not result['consistent'] and options.fail_on_mismatch:
            module.fail_json(msg=result['summary'], error='mismatch', **result)
        return result

    module.run(run)


if __name__ == '__main__':
    main()
