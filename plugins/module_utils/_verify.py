# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The verification engine of kv_verify: does the target hold exactly what the source holds?

The flow of :meth:`Verifier.run`:

1. connect both sides, read their facts and their write counters (INFO persistence and stats);
2. choose the db pairs (every db non-empty on either side unless ``dbs`` is given, ``db_map`` applied);
3. per db, walk the source in SCAN batches (never KEYS).  Worker threads, each with its own
   connections, pipeline ``DUMP`` + ``PEXPIRETIME`` (``PTTL`` before 7.0) for the batch's keys on the
   source and on the target at the same time and compare ``payload_body()`` (the serialized value
   without the RDB version and CRC footer).  Only keys whose payloads differ (other encodings or RDB
   formats, e.g. Redis 7.0 against Valkey 9) are compared type-aware with
   :func:`~._typed.values_equal`.  With ``values: none`` (and for the keys left out by ``sample``)
   ``TYPE`` replaces ``DUMP``;
4. keys extra on the target: when every source key was found on the target, nothing was written on
   either side and both DBSIZEs equal the number of keys found, the key sets are equal; otherwise the
   target is walked with SCAN and ``EXISTS`` is pipelined on the source;
5. read the write counters again: a source (or target) that changed meanwhile is reported, because a
   diff taken while data moves is not the truth about the copy.

Memory stays bounded: one SCAN batch per worker, read in parts of about :data:`PART_BYTES` of
payloads per side.  Nothing is written to either server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import random
import re
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._files import atomic_write
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    db_mapping, db_result, process_batches, sample_key, scan_batches, select_dbs, totals)
from ansible_collections.kvtools.migration.plugins.module_utils._pair import pair_problems, raise_first
from ansible_collections.kvtools.migration.plugins.module_utils._payload import payload_body
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._text import as_text, now_ms, plural, seconds_text
from ansible_collections.kvtools.migration.plugins.module_utils._typed import key_type, values_equal
from ansible_collections.kvtools.migration.plugins.module_utils._verify_scope import (
    MAX_RECHECK_DELAY, MAX_ROUNDS, DiffingKeys, Touched, differing, ignored_keys, recheck_reset)
from ansible_collections.kvtools.migration.plugins.module_utils._wire import (
    ReplyError, Wire, pack_expiry_mget, pack_key_commands, pack_mget, parse_lines, read_lines)

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
#   listed         keys compared by name (from the keys log, or rechecked after a round), not found by SCAN
#   absent         listed keys that were on neither side (deleted on both: nothing to compare)
VERIFY_FIELDS = ('source_keys', 'source_expires', 'target_keys', 'target_expires', 'missing', 'extra',
                 'type_differs', 'value_differs', 'ttl_differs', 'listed', 'absent')
DIFF_KINDS = ('missing', 'extra', 'type_differs', 'value_differs', 'ttl_differs')
EXAMPLE_WORDS = dict(missing='missing', extra='extra', type_differs='type of', value_differs='value of',
                     ttl_differs='TTL of')


class VerifyOptions:
    """The options of kv_verify, with their defaults (``workers`` and ``batch_size`` are internal)."""

    def __init__(self, dbs=None, db_map=None, match=None, values='full', sample_rate=0.1, ttl_tolerance=2,
                 memory_tolerance=None, fail_on_mismatch=True, max_reported=DEFAULT_MAX_REPORTED, report=None,
                 check_mode=False, workers=DEFAULT_WORKERS, batch_size=DEFAULT_BATCH, keys_file=None,
                 keys_file_offset=0, rounds=1, recheck_delay=1.0, ignore_target_keys=None, target_expiry_offset=0):
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
        _check_live_options(keys_file, keys_file_offset, match, rounds, recheck_delay)
        self.keys_file = keys_file
        self.keys_file_offset = int(keys_file_offset or 0)
        self.rounds = int(rounds)
        self.recheck_delay = float(recheck_delay)
        self.ignore = ignored_keys(ignore_target_keys)
        try:
            self.target_expiry_offset = int(target_expiry_offset or 0)
        except (TypeError, ValueError):
            raise KVError('target_expiry_offset must be a whole number of milliseconds, got %r'
                          % (target_expiry_offset,), kind='config')
        if self.target_expiry_offset < 0:
            raise KVError('target_expiry_offset must be 0 or more, got %d' % self.target_expiry_offset, kind='config')
        self.dbs = dbs
        self.db_map = db_map
        self.match = match
        self.values = values
        self.sample_rate = sample_rate
        self.ttl_tolerance = ttl_tolerance
        self.ttl_tolerance_ms = int(round(ttl_tolerance * 1000))
        self.memory_tolerance = memory_tolerance
        self.fail_on_mismatch = bool(fail_on_mismatch)
        self.max_reported = max(0, int(max_reported))
        self.report = report
        self.check_mode = check_mode
        self.workers = max(1, int(workers))
        self.batch_size = max(1, int(batch_size))


def _check_live_options(keys_file, keys_file_offset, match, rounds, recheck_delay):
    """keys_file / keys_file_offset / rounds / recheck_delay: ranges, not clamps."""
    for name, value, kind in (('keys_file_offset', keys_file_offset, int), ('rounds', rounds, int),
                              ('recheck_delay', recheck_delay, float)):
        try:
            if value is not None and not isinstance(value, bool):
                kind(value)
                if kind is int and int(value) != float(value):
                    raise ValueError(value)
                continue
        except (TypeError, ValueError):
            pass
        raise KVError('%s must be a number, got %r' % (name, value), kind='config')
    if int(keys_file_offset or 0) < 0:
        raise KVError('keys_file_offset must be 0 or more, got %s' % keys_file_offset, kind='config')
    if keys_file_offset and not keys_file:
        raise KVError('keys_file_offset %s was given without keys_file' % keys_file_offset, kind='config')
    if keys_file and match:
        raise KVError('keys_file cannot be combined with match (the keys log lists every key the follower '
                      'wrote; kv_sync does not filter by pattern)', kind='config')
    if not 1 <= int(rounds) <= MAX_ROUNDS:
        raise KVError('rounds must be between 1 and %d, got %s' % (MAX_ROUNDS, rounds), kind='config')
    if not 0 <= float(recheck_delay) <= MAX_RECHECK_DELAY:
        raise KVError('recheck_delay must be between 0 and %d seconds, got %s' % (MAX_RECHECK_DELAY, recheck_delay),
                      kind='config')


# -- write counters ---------------------------------------------------------------------------------

def read_counters(server):
    """The counters that move when a server's data changes: writes (``rdb_changes_since_last_save``,
    reset by a save, so the save time comes along), and keys expired or evicted."""
    client = server.client
    try:
        info = dict(client.info('persistence'))
        info.update(client.info('stats'))
    except Exception as exc:
        raise server.endpoint.error(exc, 'reading INFO persistence and stats')
    return dict(changes=int(info.get('rdb_changes_since_last_save', 0) or 0),
                last_save=int(info.get('rdb_last_save_time', 0) or 0),
                expired=int(info.get('expired_keys', 0) or 0),
                evicted=int(info.get('evicted_keys', 0) or 0))


def counter_delta(before, after):
    """``{'writes': n, 'expiries': m, 'changed': bool}`` between two :func:`read_counters` readings.

    A save in between resets the write counter: then the writes since the save are a lower bound.
    """
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


def _size(values):
    """Bytes held by a list of replies (nil and error replies count nothing)."""
    try:
        return sum(map(len, values))
    except TypeError:
        return sum(len(v) for v in values if v.__class__ is bytes)


def strip_footer(payload):
    """A DUMP payload without its 2-byte RDB version and 8-byte CRC64."""
    return payload_body(payload)


class _DbState:
    """Counters and differences of one db pair, shared by its workers."""

    def __init__(self, src_db, tgt_db, run):
        self.run = run
        extra = dict((name, 0) for name in VERIFY_FIELDS)
        self.result = db_result(src_db, tgt_db, **extra)
        self.result['scope'] = 'full'
        self.found = 0
        self.lock = threading.Lock()
        self.differing = DiffingKeys() if run.opts.rounds > 1 else None

    def note(self, key):
        """A key that differs: remembered for the next round's recheck."""
        if self.differing is not None:
            self.differing.add(key)

    def add(self, counts, differences, found):
        with self.lock:
            for name, value in counts.items():
                self.result[name] = self.result.get(name, 0) + value
            self.found += found
        self.run.add_differences(differences)


class Verifier:
    """One kv_verify run.  ``run()`` returns the result dict or raises KVError."""

    def __init__(self, source, target, options, warn=None):
        self.source_ep = source
        self.target_ep = target
        self.opts = options
        self.warn = warn or (lambda msg: None)
        self.warnings = []
        self.differences = []
        self.diff_lock = threading.Lock()
        self.states = []
        self.rounds = []
        self.touched = None

    # -- set-up --------------------------------------------------------------------------------
    def _connect(self):
        self.src = connect_server(self.source_ep)
        self.tgt = connect_server(self.target_ep)
        raise_first([p for p in pair_problems(self.source_ep, self.target_ep, self.src, self.tgt, tool='kv_verify')
                     if p.rule == 'cluster'])  # a replica, or two dbs of one server, can be compared
        self.src_absolute = self.src.capabilities['pexpiretime']
        self.tgt_absolute = self.tgt.capabilities['pexpiretime']

    def _pairs(self):
        """The (source db, target db) pairs to compare; default every db non-empty on either side."""
        src_space = self.src.keyspace()
        tgt_space = self.tgt.keyspace()
        mapping = db_mapping(self.opts.db_map)
        if self.opts.dbs:
            pairs = select_dbs(src_space, self.opts.dbs, self.opts.db_map)
        else:
            inverse = dict((t, s) for s, t in mapping.items())
            wanted = set(src_space)
            for t_db in tgt_space:
                if t_db in inverse:
                    wanted.add(inverse[t_db])
                elif t_db not in mapping:
                    wanted.add(t_db)
                else:
                    self._warn('target db %d holds %d keys but no source db maps to it (db_map sends source db %d '
                               'to db %d): it was not compared' % (t_db, tgt_space[t_db]['keys'], t_db, mapping[t_db]))
            pairs = select_dbs(src_space, sorted(wanted), self.opts.db_map) if wanted else []
        raise_first([p for p in pair_problems(self.source_ep, self.target_ep, self.src, self.tgt, pairs,
                                              check_source_dbs=True) if p.rule == 'databases'])
        return pairs, src_space, tgt_space

    def _warn(self, msg):
        self.warnings.append(msg)
        self.warn(msg)

    def add_differences(self, differences):
        if not differences:
            return
        with self.diff_lock:
            room = self.opts.max_reported - len(self.differences)
            if room > 0:
                self.differences.extend(differences[:room])

    # -- the run -------------------------------------------------------------------------------
    def run(self):
        started = time.time()
        try:
            self._connect()
            self.src_start = read_counters(self.src)
            self.tgt_start = read_counters(self.tgt)
            pairs, src_space, tgt_space = self._pairs()
            self.touched = Touched(self.opts.keys_file, self.opts.keys_file_offset) if self.opts.keys_file else None
            round_started = time.time()
            for s_db, t_db in pairs:
                state = _DbState(s_db, t_db, self)
                for name, space, db in (('source', src_space, s_db), ('target', tgt_space, t_db)):
                    info = space.get(db, {})
                    state.result[name + '_keys'] = info.get('keys', 0)
                    state.result[name + '_expires'] = info.get('expires', 0)
                self.states.append(state)
                listed = self.touched.for_target_db(t_db) if self.touched is not None else None
                if listed is None:
                    self._verify_db(state)
                else:
                    self._verify_listed_db(state, listed)
            self._round_done(1, 'keys' if self.touched is not None else 'full', round_started,
                             sum(st.result['keys'] + st.result['extra'] + st.result['absent'] + st.result['expired']
                                 for st in self.states))
            self._recheck_rounds()
            self.src_end = read_counters(self.src)
            self.tgt_end = read_counters(self.tgt)
            result = self._result(started)
        finally:
            for server in (getattr(self, 'src', None), getattr(self, 'tgt', None)):
                if server is not None:
                    server.client.close()
        self._write_report(result)
        return result

    def _dbsize(self, endpoint, db):
        client = endpoint.client(db=db)
        try:
            return int(client.dbsize())
        except Exception as exc:
            raise endpoint.error(exc, 'DBSIZE', db=db)
        finally:
            client.close()

    # -- live scope: listed keys, key counts, rounds ----------------------------------------------------
    def _round_done(self, number, scope, started, compared):
        self.rounds.append(dict(round=number, scope=scope, compared=compared,
                                differing=sum(differing(st.result) for st in self.states),
                                seconds=round(time.time() - started, 3)))

    def _recheck_rounds(self):
        """Rounds 2..n: after ``recheck_delay``, compare again only the keys that differed in the round
        before (the follower may simply not have applied them yet), until none differs or the limit."""
        for number in range(2, self.opts.rounds + 1):
            pending = [st for st in self.states if differing(st.result)]
            if not pending:
                return
            time.sleep(self.opts.recheck_delay)
            started = time.time()
            self.differences = []  # the differences of the last look at every key
            compared = 0
            for state in pending:
                keys, overflow = state.differing.take()
                if overflow:  # too many to remember: compare the db whole again
                    self._reset(state)
                    self._verify_db(state)
                    compared += state.result['keys'] + state.result['extra'] + state.result['expired']
                else:
                    recheck_reset(state.result)
                    self._compare_listed(state, keys)
                    compared += len(keys)
            self._round_done(number, 'recheck', started, compared)

    def _reset(self, state):
        """Forget what a db pair's comparison counted (its keyspace figures stay)."""
        for name, value in list(state.result.items()):
            if isinstance(value, int) and name not in ('db', 'target_db', 'source_keys', 'target_keys',
                                                       'source_expires', 'target_expires'):
                state.result[name] = 0
        state.found = 0
        s_db = state.result['db']
        with self.diff_lock:
            self.differences = [d for d in self.differences if d['db'] != s_db]

    def _compare_listed(self, state, keys):
        """Compare the named keys of one db pair (absent on both sides is fine, on the target only is extra)."""
        size = self.opts.batch_size
        batches = ((None, keys[i:i + size]) for i in range(0, len(keys), size))

        def handle(checker, job):
            checker.process(job[1])

        process_batches(batches, self.opts.workers, lambda: _Checker(self, state, listed=True), handle)
        with state.lock:
            state.result['listed'] += len(keys)

    def _verify_listed_db(self, state, keys):
        """The keys the follower changed since the last full round, then the key counts of both sides:
        a key no log names was compared in that round and has not changed since; equal counts show that
        no key appeared elsewhere.  Counts that differ: the db is compared whole."""
        s_db, t_db = state.result['db'], state.result['target_db']
        state.result['scope'] = 'keys'
        self._compare_listed(state, keys)
        src_size = self._dbsize(self.source_ep, s_db)
        tgt_size = self._dbsize(self.target_ep, t_db)
        state.result['source_count'] = src_size
        state.result['target_count'] = tgt_size
        if src_size == tgt_size:
            return
        self._warn('db %d holds %d keys on the source and db %d %d on the target after the listed keys were '
                   'compared: the db was compared whole' % (s_db, src_size, t_db, tgt_size))
        self._reset(state)
        state.result['scope'] = 'full (key counts differed)'
        self._verify_db(state)

    def _verify_db(self, state):
        s_db, t_db = state.result['db'], state.result['target_db']
        src_size = self._dbsize(self.source_ep, s_db)
        tgt_size = self._dbsize(self.target_ep, t_db)
        src_counters = read_counters(self.src)
        tgt_counters = read_counters(self.tgt)
        self._source_pass(state)
        unchanged = not counter_delta(src_counters, read_counters(self.src))['changed'] \
            and not counter_delta(tgt_counters, read_counters(self.tgt))['changed']
        if not self.opts.match and unchanged and state.result['missing'] == 0 \
                and src_size == tgt_size == state.found \
                and self._dbsize(self.source_ep, s_db) == src_size and self._dbsize(self.target_ep, t_db) == tgt_size:
            # Every source key is on the target, nothing changed, and the target holds exactly as many keys as
            # were found (SCAN duplicates would make found exceed the source's DBSIZE): no key can be extra.
            state.result['extra_check'] = 'dbsize'
            return
        state.result['extra_check'] = 'scan'
        self._extra_pass(state)

    def _source_pass(self, state):
        s_db = state.result['db']
        src_client = self.source_ep.client(db=s_db)
        batches = scan_batches(src_client, match=self.opts.match, count=self.opts.batch_size)

        def handle(checker, job):
            keys = job[1]
            if keys:
                checker.process(keys)

        try:
            process_batches(batches, self.opts.workers, lambda: _Checker(self, state), handle)
        except KVError:
            raise
        except Exception as exc:
            raise self.source_ep.error(exc, 'scanning db %d' % s_db, db=s_db)
        finally:
            src_client.close()

    def _extra_pass(self, state):
        """Walk the target and ask the source whether each key exists there."""
        s_db, t_db = state.result['db'], state.result['target_db']
        tgt_client = self.target_ep.client(db=t_db)
        src_client = self.source_ep.client(db=s_db)
        wire = None
        seen = set()
        extra = 0
        ignore = self.opts.ignore.get(t_db, ())
        try:
            wire = Wire(src_client)
            for dummy, keys in scan_batches(tgt_client, match=self.opts.match, count=self.opts.batch_size):
                if not keys:
                    continue
                try:
                    replies = wire.call_packed(pack_key_commands((b'EXISTS',), keys), len(keys))
                except Exception as exc:
                    raise self.source_ep.error(exc, 'EXISTS in db %d' % s_db, db=s_db)
                differences = []
                for key, reply in zip(keys, replies):
                    if isinstance(reply, ReplyError):
                        raise self.source_ep.error(reply, 'EXISTS in db %d' % s_db, db=s_db)
                    if reply or key in ignore:
                        continue
                    if key in seen:
                        continue  # a SCAN duplicate
                    if len(seen) < EXTRA_DEDUP_LIMIT:
                        seen.add(key)
                    extra += 1
                    state.note(key)
                    differences.append(dict(db=s_db, target_db=t_db, key=sample_key(key), kind='extra',
                                            detail='on the target only'))
                self.add_differences(differences)
        except KVError:
            raise
        except Exception as exc:
            raise self.target_ep.error(exc, 'scanning db %d' % t_db, db=t_db)
        finally:
            if wire is not None:
                wire.close()
            src_client.close()
            tgt_client.close()
        with state.lock:
            state.result['extra'] += extra

    # -- the result ----------------------------------------------------------------------------
    def _memory(self):
        out = {}
        for label, server in (('source', self.src), ('target', self.tgt)):
            try:
                info = server.client.info('memory')
            except Exception as exc:
                raise server.endpoint.error(exc, 'reading INFO memory')
            out[label + '_used_memory'] = int(info.get('used_memory', 0) or 0)
        ratio = out['target_used_memory'] / float(out['source_used_memory']) if out['source_used_memory'] else None
        out['ratio'] = None if ratio is None else round(ratio, 3)
        out['tolerance'] = self.opts.memory_tolerance
        if self.opts.memory_tolerance is None or ratio is None:
            out['within_tolerance'] = None
        else:
            out['within_tolerance'] = abs(ratio - 1) <= self.opts.memory_tolerance
        return out

    def _result(self, started):
        dbs = [st.result for st in self.states]
        total = totals(dbs)
        for name in VERIFY_FIELDS:
            total[name] = sum(d.get(name, 0) for d in dbs)
        differing = sum(total[k] for k in DIFF_KINDS)
        memory = self._memory()
        src_change = counter_delta(self.src_start, self.src_end)
        tgt_change = counter_delta(self.tgt_start, self.tgt_end)
        memory_ok = memory['within_tolerance'] is not False
        consistent = differing == 0 and memory_ok
        seconds = max(time.time() - started, 1e-6)
        order = dict((kind, n) for n, kind in enumerate(DIFF_KINDS))
        differences = sorted(self.differences, key=lambda d: (d['db'], order.get(d['kind'], 9), d['key']))
        result = dict(
            changed=False,
            consistent=consistent,
            dbs=dbs,
            totals=total,
            differences=differences,
            memory=memory,
            source_changed=src_change['changed'],
            source_changes=dict(writes=src_change['writes'], expiries=src_change['expiries']),
            target_changed=tgt_change['changed'],
            target_changes=dict(writes=tgt_change['writes'], expiries=tgt_change['expiries']),
            values=self.opts.values,
            sample_rate=self.opts.sample_rate if self.opts.values == 'sample' else None,
            ttl_tolerance=self.opts.ttl_tolerance,
            seconds=round(seconds, 3),
            keys_per_second=round(total['keys'] / seconds, 1),
            source=self._describe(self.src),
            target=self._describe(self.tgt),
            scope='keys' if self.touched is not None else 'full',
            keys_file=self.touched.describe() if self.touched is not None else None,
            rounds=self.rounds,
        )
        if src_change['changed']:
            self._warn(self._change_text('source', src_change) + ': differences found while data moves may come '
                       'from those changes rather than from the copy. Stop the writers (CLIENT PAUSE WRITE, or unbind '
                       'the applications) and verify again')
        if tgt_change['changed']:
            self._warn(self._change_text('target', tgt_change) + ': is something else writing to it?')
        result['summary'] = self._summary(result, differing, memory, src_change)
        result['warnings_list'] = list(self.warnings)
        return result

    @staticmethod
    def _change_text(label, change):
        parts = []
        if change['writes']:
            parts.append(plural(change['writes'], 'write'))
        if change['expiries']:
            parts.append(plural(change['expiries'], 'key expiry', 'key expiries') + ' or evictions')
        return 'the %s changed during the verification (%s counted in INFO persistence and stats)' % (
            label, ' and '.join(parts))

    @staticmethod
    def _describe(server):
        return dict(address=server.endpoint.address, engine=server.engine, version=server.version_string,
                    tls=server.endpoint.tls)

    def _summary(self, result, differing, memory, src_change):
        src, tgt = result['source'], result['target']
        total = result['totals']
        pairs = ', '.join('%d' % d['db'] if d['db'] == d['target_db'] else '%d -> %d' % (d['db'], d['target_db'])
                          for d in result['dbs'])
        what = {'full': 'values', 'sample': 'values (a %g%% sample)' % (self.opts.sample_rate * 100),
                'none': 'no values'}[self.opts.values]
        head = 'Target %s (%s %s) against source %s (%s %s), %s (%s)' % (
            tgt['address'], tgt['engine'], tgt['version'], src['address'], src['engine'], src['version'],
            plural(len(result['dbs']), 'db') if result['dbs'] else 'no non-empty db on either side',
            ('db ' if len(result['dbs']) == 1 else 'dbs ') + pairs if result['dbs'] else 'nothing to compare')
        if result['consistent']:
            text = ('%s: consistent. The target holds exactly the %s of the source: key sets in both directions, '
                    'types, %s and TTLs (within %g s) match.' % (
                        head, plural(total['keys'], 'key'), what, self.opts.ttl_tolerance))
            text += self._scope_text(result)
            if src_change['changed']:
                text += ' Note: %s; run kv_verify again once the source is quiet to be sure.' % (
                    self._change_text('source', src_change))
            return text
        parts = []
        labels = (('missing', 'key missing on the target', 'keys missing on the target'),
                  ('extra', 'extra key on the target', 'extra keys on the target'),
                  ('type_differs', 'key of another type', 'keys of another type'),
                  ('value_differs', 'value differs', 'values differ'),
                  ('ttl_differs', 'TTL differs', 'TTLs differ'))
        for name, one, many in labels:
            if total[name]:
                parts.append(plural(total[name], one, many))
        text = '%s: NOT consistent' % head
        if parts:
            examples = ', '.join('%s "%s" in db %d' % (EXAMPLE_WORDS[d['kind']], d['key'], d['db'])
                                 for d in result['differences'][:3])
            example = ' (for example: %s)' % examples if examples else ''
            text += ' - %s out of %s checked%s.' % (', '.join(parts), plural(total['keys'], 'source key'), example)
        else:
            text += '.'
        text += self._scope_text(result)
        if memory['within_tolerance'] is False:
            text += ' used_memory of the target is %.1f MiB, %.2f times the source\'s %.1f MiB, outside ' \
                    'memory_tolerance %g.' % (memory['target_used_memory'] / 2.0 ** 20, memory['ratio'],
                                              memory['source_used_memory'] / 2.0 ** 20, memory['tolerance'])
        if src_change['changed']:
            text += ' Careful: %s, so these differences may come from those changes rather than from the copy: ' \
                    'stop the writers (CLIENT PAUSE WRITE, or unbind the applications) and verify again.' % (
                        self._change_text('source', src_change))
        elif parts:
            differing = total['type_differs'] + total['value_differs'] + total['ttl_differs']
            which = ' and '.join(w for w, n in (('missing', total['missing']), ('differing', differing)) if n)
            steps = []
            if which:
                steps.append('copy the %s keys again (kvtools.migration.kv_dump_restore%s)' % (
                    which, ' with on_conflict: replace' if differing else ''))
            if total['extra']:
                steps.append('remove the extra keys from the target or find out who wrote them')
            text += ' Next: %s, then run kv_verify again; the differences list names up to %d keys.' % (
                ', '.join(steps), self.opts.max_reported)
        return text

    def _scope_text(self, result):
        """What was compared when it was not simply every key once: the keys log, the rounds."""
        text = ''
        touched = result.get('keys_file')
        if touched is not None:
            listed = [d for d in result['dbs'] if d['scope'] == 'keys']
            text += ' Scope: the %s the keys log names from offset %d to %d (%s) and the key counts of %s, ' \
                    'equal on both sides%s.' % (
                        plural(touched['keys'], 'key'), touched['start'], touched['end'],
                        plural(touched['records'], 'record'), plural(len(listed), 'db'),
                        '; %s compared whole' % plural(len(result['dbs']) - len(listed), 'db')
                        if len(listed) < len(result['dbs']) else '')
        rounds = result.get('rounds') or []
        if len(rounds) > 1:
            text += ' %s differed in round 1 (%s); %s rechecked after %g s each, %s differing after the last.' % (
                plural(rounds[0]['differing'], 'key'), 'while the source changed' if result['source_changed']
                else 'the source was quiet', plural(len(rounds) - 1, 'recheck round'), self.opts.recheck_delay,
                rounds[-1]['differing'])
        return text

    def _write_report(self, result):
        path = self.opts.report
        if not path or self.opts.check_mode:
            return
        data = dict(result)
        data.pop('warnings_list', None)
        data['warnings'] = list(self.warnings)
        if path.endswith('.md'):
            atomic_write(path, render_markdown(data))
        else:
            atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + '\n')


class _Checker:
    """Compares SCAN batches of one db pair with its own source and target connections."""

    def __init__(self, run, state, listed=False):
        self.run = run
        self.state = state
        self.listed = listed  # keys named by a list, not found by SCAN: absent on both sides is fine
        self.ignore = run.opts.ignore.get(state.result['target_db'], ())
        self.held = run.opts.target_expiry_offset
        self.opts = run.opts
        self.s_db = state.result['db']
        self.t_db = state.result['target_db']
        self.src_client = None
        self.tgt_client = None
        self.src = self.tgt = None
        try:
            self.src_client = run.source_ep.client(db=self.s_db)
            self.tgt_client = run.target_ep.client(db=self.t_db)
            self.src = Wire(self.src_client)
            self.tgt = Wire(self.tgt_client)
        except Exception:
            self.close()
            raise
        self.src_absolute = run.src_absolute
        self.tgt_absolute = run.tgt_absolute
        self.src_exp = b'PEXPIRETIME' if self.src_absolute else b'PTTL'
        self.tgt_exp = b'PEXPIRETIME' if self.tgt_absolute else b'PTTL'
        self.tolerance = self.opts.ttl_tolerance_ms
        self.chunk = min(FIRST_PART, self.opts.batch_size)
        self.max_chunk = self.opts.batch_size
        self.random = random.Random()
        self.mget_allowed = True
        self.mget = True
        # PEXPIRETIME on both sides and the hiredis parser: expiry replies are compared as raw lines
        self.raw_lines = self.src_absolute and self.tgt_absolute and self.src.reader is not None \
            and self.tgt.reader is not None

    def close(self):
        for wire in (self.src, self.tgt):
            if wire is not None:
                wire.close()
        for client in (self.src_client, self.tgt_client):
            if client is not None:
                client.close()

    def _fail(self, exc, side, action):
        if isinstance(exc, KVError):
            return exc
        if side == 'source':
            return self.run.source_ep.error(exc, '%s in db %d' % (action, self.s_db), db=self.s_db)
        return self.run.target_ep.error(exc, '%s in db %d' % (action, self.t_db), db=self.t_db)

    def process(self, keys):
        """Compare one SCAN batch, in parts that hold about PART_BYTES of values per side."""
        mode = self.opts.values
        if mode == 'full':
            valued, others = keys, []
        elif mode == 'none':
            valued, others = [], keys
        else:
            rate = self.opts.sample_rate
            rnd = self.random.random
            valued, others = [], []
            for key in keys:
                (valued if rnd() < rate else others).append(key)
        if others:  # TYPE replies are small: one step
            self._read([], others, mget=False)
        start = 0
        while start < len(valued):
            part = valued[start:start + self.chunk]
            start += len(part)
            size = self._read(part, [], mget=self.mget)
            avg = max(1, size // max(1, 2 * len(part)))
            self.chunk = max(1, min(self.max_chunk, PART_BYTES // avg))

    def _exchange(self, src_buf, tgt_buf, count, lines=0):
        """Send both buffers, then read both sides' replies: the two servers work at the same time.

        With ``lines`` the first replies are that many one-line replies (the expiry integers) read as raw
        lines (see :func:`read_lines`), then ``count`` replies parsed as usual.  Returns per side
        ``(lines or None, replies, time in ms)``.
        """
        for wire, buf, side in ((self.src, src_buf, 'source'), (self.tgt, tgt_buf, 'target')):
            try:
                wire.send(buf, packed=True)
            except Exception as exc:
                raise self._fail(exc, side, 'reading')
        out = []
        for wire, side in ((self.src, 'source'), (self.tgt, 'target')):
            try:
                raw = None
                if lines:
                    raw, rest = read_lines(wire.sock, lines)
                    if rest:
                        wire.reader.feed(rest)
                out.append((raw, wire.recv(count), now_ms()))
            except Exception as exc:
                raise self._fail(exc, side, 'reading')
        return out

    def _read(self, valued, others, mget, adapt=True):
        """Read and compare ``valued`` keys (their values and expiries) and ``others`` (type and expiry).

        With ``mget`` the values come from one MGET per side (strings: cheaper on both servers than a DUMP
        per key, and compared byte for byte); keys that are no string on either side are read again with
        DUMP.  Otherwise DUMP + expiry per valued key, TYPE + expiry per other key.  Returns the value bytes
        read on both sides.  With ``adapt`` a part read with DUMP that holds mostly strings switches the
        next parts to MGET.
        """
        n_v = len(valued)
        s_lines = t_lines = None
        if mget and self.raw_lines:
            # expiry integers first, read as raw lines: equal lines on both sides need no parsing at all
            src_buf = tgt_buf = pack_expiry_mget(self.src_exp, valued)
            (s_lines, s_replies, s_now), (t_lines, t_replies, t_now) = self._exchange(src_buf, tgt_buf, 1, n_v)
        elif mget:
            head = pack_mget(valued)
            src_buf = head + pack_key_commands((self.src_exp,), valued)
            tgt_buf = src_buf if self.src_exp == self.tgt_exp else head + pack_key_commands((self.tgt_exp,), valued)
            (dummy, s_replies, s_now), (dummy, t_replies, t_now) = self._exchange(src_buf, tgt_buf, 1 + n_v)
        else:
            src_buf = pack_key_commands((b'DUMP', self.src_exp), valued) + \
                pack_key_commands((b'TYPE', self.src_exp), others)
            tgt_buf = src_buf if self.src_exp == self.tgt_exp else \
                pack_key_commands((b'DUMP', self.tgt_exp), valued) + pack_key_commands((b'TYPE', self.tgt_exp), others)
            count = 2 * (n_v + len(others))
            (dummy, s_replies, s_now), (dummy, t_replies, t_now) = self._exchange(src_buf, tgt_buf, count)
        if mget:
            s_vals, t_vals = s_replies[0], t_replies[0]
            for vals, side in ((s_vals, 'source'), (t_vals, 'target')):
                if isinstance(vals, ReplyError):
                    if reply_kind(vals) not in ('noperm', 'unknown_command'):
                        raise self._fail(vals, side, 'MGET')
                    self.mget = self.mget_allowed = False  # a user without MGET: DUMP does it all
                    return self._read(valued, others, mget=False)
            if s_lines is not None:
                if s_lines == t_lines and None not in s_vals and s_vals == t_vals:
                    self.state.add(dict(keys=n_v, identical=n_v), (), n_v)
                    return _size(s_vals) + _size(t_vals)
                s_exps, t_exps = parse_lines(s_lines), parse_lines(t_lines)
            else:
                s_exps, t_exps = s_replies[1:], t_replies[1:]
        else:
            s_vals, s_exps, t_vals, t_exps = s_replies[0::2], s_replies[1::2], t_replies[0::2], t_replies[1::2]
        size = _size(s_vals[:n_v]) + _size(t_vals[:n_v])
        # The usual case: every key on both sides, same expiry, same value.
        if not others and self.src_absolute and self.tgt_absolute and s_exps == t_exps:
            if mget:
                same = None not in s_vals and s_vals == t_vals
            else:
                try:
                    same = list(map(payload_body, s_vals)) == list(map(payload_body, t_vals))
                except TypeError:  # a nil (key gone) or an error reply
                    same = False
            if same:
                self.state.add(dict(keys=n_v, identical=n_v), (), n_v)
                return size
        if not mget:
            self._compare_each(valued + others, n_v, s_vals, s_exps, t_vals, t_exps, s_now, t_now, raw=False)
            if adapt and n_v >= 16:  # mostly strings after all: MGET them from the next part on
                strings = sum(1 for p in s_vals[:n_v] if p.__class__ is bytes and p[:1] == b'\x00')
                self.mget = self.mget_allowed and strings * 2 > n_v
            return size
        both = [i for i in range(n_v) if s_vals[i] is not None and t_vals[i] is not None]
        if len(both) < n_v:
            rest = [valued[i] for i in range(n_v) if s_vals[i] is None or t_vals[i] is None]
            if len(rest) * 2 > n_v:
                self.mget = False  # mostly other types: DUMP them from the next part on
            size += self._read(rest, [], mget=False, adapt=False)
        if both:
            pick = both if len(both) < n_v else range(n_v)
            self._compare_each([valued[i] for i in pick], len(both), [s_vals[i] for i in pick],
                               [s_exps[i] for i in pick], [t_vals[i] for i in pick], [t_exps[i] for i in pick],
                               s_now, t_now, raw=True)
        return size

    def _compare_each(self, keys, n_valued, s_vals, s_exps, t_vals, t_exps, s_now, t_now, raw):
        """Key by key.  The first ``n_valued`` keys come with values: whole string values (``raw``, from
        MGET) or DUMP payloads; the others with their TYPE."""
        counts = dict((name, 0) for name in ('keys', 'identical', 'conflicts', 'expired', 'missing', 'extra',
                                             'absent', 'type_differs', 'value_differs', 'ttl_differs'))
        differences = []
        found = 0
        slow = []  # (key, ttl detail) of keys whose payloads differ: compared type-aware below
        s_db, t_db = self.s_db, self.t_db
        for i, key in enumerate(keys):
            s_val, s_exp, t_val, t_exp = s_vals[i], s_exps[i], t_vals[i], t_exps[i]
            for reply in (s_val, s_exp):
                if isinstance(reply, ReplyError):
                    raise self._fail(reply, 'source', 'reading')
            for reply in (t_val, t_exp):
                if isinstance(reply, ReplyError):
                    raise self._fail(reply, 'target', 'reading')
            valued = i < n_valued
            s_present, s_at = expire_at(s_exp, self.src_absolute, s_now)
            t_present, t_at = expire_at(t_exp, self.tgt_absolute, t_now)
            if valued:
                s_present = s_present and s_val is not None
                t_present = t_present and t_val is not None
            else:
                s_present = s_present and as_text(s_val) != 'none'
                t_present = t_present and as_text(t_val) != 'none'
            if not s_present:
                if not self.listed:
                    counts['expired'] += 1  # gone from the source since SCAN
                elif not t_present or key in self.ignore:
                    counts['absent'] += 1  # deleted on both sides (or a key of the follower's own)
                else:
                    counts['extra'] += 1
                    self.state.note(key)
                    differences.append(dict(db=s_db, target_db=t_db, key=sample_key(key), kind='extra',
                                            detail='on the target only'))
                continue
            if not t_present and s_at is not None and s_at - s_now <= self.tolerance:
                counts['expired'] += 1  # expiring now: the target dropped it a moment earlier
                continue
            counts['keys'] += 1
            if not t_present:
                counts['missing'] += 1
                self.state.note(key)
                differences.append(dict(db=s_db, target_db=t_db, key=sample_key(key), kind='missing',
                                        detail='on the source, not on the target'))
                continue
            found += 1
            if self.held and t_at is not None and s_at is not None \
                    and abs(t_at - self.held - s_at) <= self.tolerance:
                t_at -= self.held  # an expiry the follower holds back until the drain
            ttl = ttl_difference(s_at, t_at, self.tolerance, s_now)
            kinds = []
            if valued and raw:
                if s_val != t_val:
                    kinds.append(('value_differs', 'string values differ'))
            elif valued:
                if payload_body(s_val) != payload_body(t_val):
                    slow.append((key, ttl))
                    continue
            elif as_text(s_val) != as_text(t_val):
                kinds.append(('type_differs', '%s on the source, %s on the target' % (as_text(s_val), as_text(t_val))))
            if ttl:
                kinds.append(('ttl_differs', ttl))
            self._count(counts, differences, key, kinds)
        for key, ttl in slow:
            self._compare_typed(counts, differences, key, ttl)
        self.state.add(counts, differences, found)

    def _count(self, counts, differences, key, kinds):
        if not kinds:
            counts['identical'] += 1
            return
        counts['conflicts'] += 1
        self.state.note(key)
        for kind, detail in kinds:
            counts[kind] += 1
            differences.append(dict(db=self.s_db, target_db=self.t_db, key=sample_key(key), kind=kind,
                                    detail=detail))

    def _compare_typed(self, counts, differences, key, ttl):
        """Payloads differ: other encodings or RDB formats can still hold the same value."""
        try:
            s_type = key_type(self.src_client, key)
        except Exception as exc:
            raise self._fail(exc, 'source', 'TYPE')
        try:
            t_type = key_type(self.tgt_client, key)
        except Exception as exc:
            raise self._fail(exc, 'target', 'TYPE')
        kinds = []
        if s_type != t_type:
            kinds.append(('type_differs', '%s on the source, %s on the target' % (s_type, t_type)))
        else:
            try:
                equal = values_equal(self.src_client, self.tgt_client, key)
            except Exception as exc:
                raise self._fail(exc, 'target', 'comparing a %s' % s_type)
            if not equal:
                kinds.append(('value_differs', '%s values differ' % s_type))
        if ttl:
            kinds.append(('ttl_differs', ttl))
        self._count(counts, differences, key, kinds)


# -- the Markdown report ----------------------------------------------------------------------------

def _md_cell(value):
    """Plain text for a Markdown table cell: one line, Markdown's special characters escaped."""
    text = '' if value is None else str(value)
    return re.sub(r'([\\`*_\[\]<>|#])', r'\\\1', text.replace('\n', ' '))


def _md_row(*cells):
    return '| ' + ' | '.join(_md_cell(c) for c in cells) + ' |'


def _md_code(text):
    """A key name as a Markdown code span (shown literally), safe inside a table cell."""
    text = str(text)
    if not text:
        return '*(the empty name)*'
    ticks = max([len(run) for run in re.findall('`+', text)] or [0])
    fence = '`' * (ticks + 1)
    pad = ' ' if text.startswith('`') or text.endswith('`') else ''
    return fence + pad + text.replace('|', '\\|') + pad + fence


def render_markdown(result):
    """The report as Markdown: summary, per-db table, differences, memory, warnings (never values)."""
    src, tgt = result.get('source', {}), result.get('target', {})
    lines = ['# kv_verify report', '',
             '**%s**' % ('Consistent' if result.get('consistent') else 'NOT consistent'), '',
             _md_cell(result.get('summary')), '',
             '| | address | engine | version |', '|---|---|---|---|',
             _md_row('source', src.get('address'), src.get('engine'), src.get('version')),
             _md_row('target', tgt.get('address'), tgt.get('engine'), tgt.get('version')),
             '',
             'Values compared: %s. TTL tolerance: %g s. Duration: %.1f s.' % (
                 result.get('values'), result.get('ttl_tolerance') or 0, result.get('seconds') or 0),
             '', '## Databases', '']
    cols = ('db', 'target_db', 'source_keys', 'target_keys', 'keys', 'identical', 'conflicts', 'missing', 'extra',
            'type_differs', 'value_differs', 'ttl_differs', 'expired', 'source_expires', 'target_expires')
    lines.append('| ' + ' | '.join(cols) + ' |')
    lines.append('|' + '---|' * len(cols))
    for entry in result.get('dbs', []):
        lines.append('| ' + ' | '.join(_md_cell(entry.get(c, '')) for c in cols) + ' |')
    total = result.get('totals', {})
    lines.append('| **total** | | ' + ' | '.join(_md_cell(total.get(c, '')) for c in cols[2:]) + ' |')
    lines += ['', '## Differences', '']
    diffs = result.get('differences') or []
    if diffs:
        lines += ['Key names are escaped (Python byte-string notation); values are never shown.', '',
                  '| db | target db | kind | key | detail |', '|---|---|---|---|---|']
        for d in diffs:
            lines.append('| %s | %s | %s | %s | %s |' % (
                d.get('db'), d.get('target_db'), d.get('kind'), _md_code(d.get('key')), _md_cell(d.get('detail'))))
    else:
        lines.append('None.')
    mem = result.get('memory', {})
    lines += ['', '## Memory', '',
              '| source used_memory | target used_memory | ratio | tolerance | within |', '|---|---|---|---|---|',
              _md_row(mem.get('source_used_memory'), mem.get('target_used_memory'), mem.get('ratio'),
                      mem.get('tolerance'), mem.get('within_tolerance'))]
    warnings = result.get('warnings') or []
    if warnings:
        lines += ['', '## Warnings', ''] + ['- %s' % _md_cell(w) for w in warnings]
    return '\n'.join(lines) + '\n'
