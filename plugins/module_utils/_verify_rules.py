# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The options of kv_verify and the pure rules its comparison uses (expiry replies, TTL differences,
write counters); unit-tested without servers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, unavailable
from ansible_collections.kvtools.migration.plugins.module_utils._payload import payload_body
from ansible_collections.kvtools.migration.plugins.module_utils._text import seconds_text
from ansible_collections.kvtools.migration.plugins.module_utils._verify_scope import LiveOptions

VALUES_MODES = ('none', 'sample', 'full')
DEFAULT_WORKERS = 2          # fastest on the 2-core benchmark machine (source, target and verifier)
DEFAULT_BATCH = 1000         # SCAN COUNT
DEFAULT_MAX_REPORTED = 100
PART_BYTES = 8 * 1024 * 1024  # payload bytes read per side and step, per worker
FIRST_PART = 64               # keys read before the average payload size is known
EXTRA_DEDUP_LIMIT = 100000    # extra keys remembered to count SCAN duplicates once

# The verify counters of each db entry (next to the collection's common COUNTERS).
#   source_keys / source_expires / target_keys / target_expires   INFO keyspace at the start
#   missing        source keys absent on the target
#   extra          target keys absent on the source
#   type_differs   keys on both sides with different types
#   value_differs  keys on both sides, same type, different value
#   ttl_differs    keys whose expiry differs by more than ttl_tolerance (or exists on one side only)
#   field_ttl_differs    hashes whose field TTLs differ (beyond ttl_tolerance, or on one side only), where both
#                        servers hold field TTLs
#   stream_meta_differs  streams whose last generated id (and entries-added, max-deleted-entry-id where both
#                        servers report them) differ
#   group_differs        streams whose consumer groups differ: names, last-delivered id, entries-read (where both
#                        report it), consumer names
#   pending_differs      streams whose pending entries differ: ids, consumer, delivery count
#   field_ttls_dropped   hashes with field TTLs on the source that the target cannot hold at all (a loss the copy
#                        makes only with on_unsupported: drop): reported, not an inconsistency
#   skipped        keys that differ because the copy skipped them (on_conflict=skip, named in skipped_keys_file):
#                  the target value was kept on purpose - reported, not an inconsistency
#   merged         keys of a merge (allow_db_merge) in several source dbs whose value on the target is the one
#                  on_conflict keeps (another merged db's): reported, not an inconsistency
#   merge_conflicts  such keys when on_conflict was not given: the target holds one merged db's value, which one is
#                  right cannot be known - reported by name, not an inconsistency
#   listed         keys compared by name (from the keys log, or rechecked after a round), not found by SCAN
#   absent         listed keys that were on neither side (deleted on both: nothing to compare)
VERIFY_FIELDS = ('source_keys', 'source_expires', 'target_keys', 'target_expires', 'missing', 'extra',
                 'type_differs', 'value_differs', 'ttl_differs', 'field_ttl_differs', 'stream_meta_differs',
                 'group_differs', 'pending_differs', 'field_ttls_dropped', 'merged', 'merge_conflicts', 'listed',
                 'absent')
DIFF_KINDS = ('missing', 'extra', 'type_differs', 'value_differs', 'ttl_differs', 'field_ttl_differs',
              'stream_meta_differs', 'group_differs', 'pending_differs')
EXAMPLE_WORDS = dict(missing='missing', extra='extra', type_differs='type of', value_differs='value of',
                     ttl_differs='TTL of', field_ttl_differs='field TTLs of', stream_meta_differs='stream metadata of',
                     group_differs='consumer groups of', pending_differs='pending entries of',
                     field_ttl_dropped='field TTLs dropped of', skipped='skipped', merged='merged',
                     merge_conflict='merge conflict of')


class VerifyOptions:
    """The options of kv_verify, with their defaults (``workers`` and ``batch_size`` are internal)."""

    SPEC = dict(
        dbs=dict(type='list', elements='int'),
        db_map=dict(type='dict'),
        allow_db_merge=dict(type='bool', default=False),
        on_conflict=dict(type='str', choices=['fail', 'skip', 'replace']),
        skipped_keys_file=dict(type='path'),
        match=dict(type='str'),
        values=dict(type='str', choices=list(VALUES_MODES), default='full'),
        sample_rate=dict(type='float', default=0.1),
        ttl_tolerance=dict(type='float', default=2.0),
        memory_tolerance=dict(type='float'),
        fail_on_mismatch=dict(type='bool', default=True),
        max_reported=dict(type='int', default=DEFAULT_MAX_REPORTED),
        report=dict(type='path'),
        keys_file=dict(type='raw'),  # a path, or a list of paths (a cluster source: one keys log per master)
        keys_file_offset=dict(type='list', elements='int', no_log=False),
        rounds=dict(type='int', default=1),
        recheck_delay=dict(type='float', default=1.0),
        ignore_target_keys=dict(type='list', elements='dict', no_log=False),
        target_expiry_offset=dict(type='int', default=0),
        progress=dict(type='path'),
    )

    @classmethod
    def from_params(cls, params, check_mode=False):
        """The options from a module's ``params`` (the names of :attr:`SPEC`)."""
        return cls(check_mode=check_mode, **dict((name, params[name]) for name in cls.SPEC if name in params))

    def __init__(self, dbs=None, db_map=None, match=None, values='full', sample_rate=0.1, ttl_tolerance=2.0,
                 memory_tolerance=None, fail_on_mismatch=True, max_reported=DEFAULT_MAX_REPORTED, report=None,
                 check_mode=False, workers=DEFAULT_WORKERS, batch_size=DEFAULT_BATCH, keys_file=None,
                 keys_file_offset=None, rounds=1, recheck_delay=1.0, ignore_target_keys=None, target_expiry_offset=0,
                 allow_db_merge=False, on_conflict=None, skipped_keys_file=None, progress=None):
        if values not in VALUES_MODES:
            raise KVError('values must be none, sample or full, got %r' % (values,), kind='config')
        try:
            sample_rate = float(sample_rate)
            ttl_tolerance = float(ttl_tolerance)
            memory_tolerance = None if memory_tolerance is None else float(memory_tolerance)
        except (TypeError, ValueError):
            raise KVError('sample_rate, ttl_tolerance and memory_tolerance must be numbers', kind='config')
        if not 0 < sample_rate <= 1:
            raise KVError('sample_rate must be greater than 0 and at most 1, got %s' % sample_rate, kind='config')
        if ttl_tolerance < 0:
            raise KVError('ttl_tolerance must not be negative, got %s' % ttl_tolerance, kind='config')
        if memory_tolerance is not None and memory_tolerance < 0:
            raise KVError('memory_tolerance must not be negative, got %s' % memory_tolerance, kind='config')
        live = LiveOptions(keys_file, keys_file_offset, match, rounds, recheck_delay, ignore_target_keys,
                           target_expiry_offset)
        self.keys_file = live.keys_file
        self.keys_file_offset = live.keys_file_offset
        self.rounds = live.rounds
        self.recheck_delay = live.recheck_delay
        self.ignore = live.ignore
        self.target_expiry_offset = live.target_expiry_offset
        if on_conflict not in (None, 'fail', 'skip', 'replace'):
            raise KVError('on_conflict must be fail, skip or replace, got %r' % (on_conflict,), kind='config')
        self.dbs = dbs
        self.db_map = db_map
        self.allow_db_merge = bool(allow_db_merge)
        self.on_conflict = on_conflict
        self.skipped_keys_file = skipped_keys_file
        self.match = match
        self.values = values
        self.sample_rate = sample_rate
        self.ttl_tolerance = ttl_tolerance
        self.ttl_tolerance_ms = int(round(ttl_tolerance * 1000))
        self.memory_tolerance = memory_tolerance
        self.fail_on_mismatch = bool(fail_on_mismatch)
        self.max_reported = max(0, int(max_reported))
        self.report = report
        self.progress = progress
        self.check_mode = check_mode
        self.workers = max(1, int(workers))
        self.batch_size = max(1, int(batch_size))


# -- write counters ---------------------------------------------------------------------------------

def read_counters(server):
    """The counters that move when a server's data changes: writes (``rdb_changes_since_last_save``,
    reset by a save, so the save time comes along), and keys expired or evicted."""
    client = server.client
    if 'info' in server.unknown:
        return None  # unknown: every comparison counts as "may have changed"
    try:
        info = dict(client.info('persistence'))
        info.update(client.info('stats'))
    except Exception as exc:
        if unavailable(exc) is not None:
            server.unknown['info'] = 'INFO persistence and stats are %s' % unavailable(exc)
            return None
        raise server.endpoint.error(exc, 'reading INFO persistence and stats')
    return dict(changes=int(info.get('rdb_changes_since_last_save', 0) or 0),
                last_save=int(info.get('rdb_last_save_time', 0) or 0),
                expired=int(info.get('expired_keys', 0) or 0),
                evicted=int(info.get('evicted_keys', 0) or 0))


def counter_delta(before, after):
    """``{'writes': n, 'expiries': m, 'changed': bool}`` between two :func:`read_counters` readings.

    A save in between resets the write counter: then the writes since the save are a lower bound.
    Without counters (INFO not available) nothing is known: ``writes``, ``expiries`` and ``changed`` are None.
    """
    if before is None or after is None:
        return dict(writes=None, expiries=None, changed=None)
    if after['last_save'] == before['last_save'] and after['changes'] >= before['changes']:
        writes = after['changes'] - before['changes']
    else:
        writes = after['changes']
    expiries = max(0, after['expired'] - before['expired']) + max(0, after['evicted'] - before['evicted'])
    return dict(writes=writes, expiries=expiries, changed=bool(writes or expiries))


# -- per-key comparison (pure logic, unit-tested) --------------------------------------------------------

def expire_at(reply, absolute, now_ms):
    """An expiry reply -> ``(present, expire_at_ms or None)``; ``absolute`` for PEXPIRETIME, else PTTL."""
    reply = int(reply)
    if reply == -2:
        return False, None
    if reply < 0:
        return True, None
    return True, (reply if absolute else now_ms + reply)


def ttl_difference(src_at, tgt_at, tolerance_ms, now_ms):
    """None when the expiries agree, else a short description (never a value)."""
    if src_at is None and tgt_at is None:
        return None
    if tgt_at is None:
        return 'expires in %s on the source, no TTL on the target' % seconds_text(max(0, src_at - now_ms))
    if src_at is None:
        return 'no TTL on the source, expires in %s on the target' % seconds_text(max(0, tgt_at - now_ms))
    delta = tgt_at - src_at
    if abs(delta) > tolerance_ms:
        return 'expires %s %s on the target than on the source (tolerance %s)' % (
            seconds_text(abs(delta)), 'later' if delta > 0 else 'earlier', seconds_text(tolerance_ms))
    return None


def reply_bytes(values):
    """Bytes held by a list of replies (nil and error replies count nothing)."""
    try:
        return sum(map(len, values))
    except TypeError:
        return sum(len(v) for v in values if v.__class__ is bytes)


def strip_footer(payload):
    """A DUMP payload without its 2-byte RDB version and 8-byte CRC64."""
    return payload_body(payload)


def used_memory(src, tgt, tolerance):
    """``used_memory`` of both sides (a server, or a list: the masters of a cluster), their ratio and whether it lies
    within ``tolerance`` (None: not checked)."""
    out = {}
    for label, servers in (('source', src), ('target', tgt)):
        out[label + '_used_memory'] = 0
        for server in servers if isinstance(servers, list) else [servers]:  # a cluster: summed over its masters
            try:
                info = server.client.info('memory')
            except Exception as exc:
                if unavailable(exc) is None:
                    raise server.endpoint.error(exc, 'reading INFO memory')
                out[label + '_used_memory'] = None
                out.setdefault('unknown', []).append('%s: INFO memory is %s' % (label, unavailable(exc)))
                break
            out[label + '_used_memory'] += int(info.get('used_memory', 0) or 0)
    ratio = out['target_used_memory'] / float(out['source_used_memory']) \
        if out['source_used_memory'] and out['target_used_memory'] is not None else None
    out['ratio'] = None if ratio is None else round(ratio, 3)
    out['tolerance'] = tolerance
    out['within_tolerance'] = None if tolerance is None or ratio is None else abs(ratio - 1) <= tolerance
    return out
