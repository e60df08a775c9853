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
   :func:`~._type_aware.key_differences`: the value, and what both servers hold beyond it (a DUMP payload
   carries it): hash field TTLs (where the payload type can carry them), a stream's metadata, groups,
   consumers and pending entries.  With ``values: none`` (and keys left out by ``sample``) ``TYPE`` replaces ``DUMP``;
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

import random
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    db_mapping, process_batches, sample_key, scan_batches, select_dbs, totals)
from ansible_collections.kvtools.migration.plugins.module_utils._merge import MergeChoices, MergeLookup, read_skipped
from ansible_collections.kvtools.migration.plugins.module_utils._pair import pair_problems, raise_first
from ansible_collections.kvtools.migration.plugins.module_utils._payload import first_byte, payload_body, same_body, same_bytes
from ansible_collections.kvtools.migration.plugins.module_utils._progress import ProgressFile
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._text import as_text
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import CompareScope, key_differences
from ansible_collections.kvtools.migration.plugins.module_utils._verify_extra import extra_pass
from ansible_collections.kvtools.migration.plugins.module_utils._verify_report import change_text, summary, write_report
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import (
    DIFF_KINDS, FIRST_PART, PART_BYTES, VERIFY_FIELDS, counter_delta, expire_at, read_counters,
    reply_bytes, ttl_difference, used_memory)
from ansible_collections.kvtools.migration.plugins.module_utils._verify_scope import (
    DbState, Touched, recheck_rounds, round_done, scope_text, verify_listed_db)
from ansible_collections.kvtools.migration.plugins.module_utils._verify_wire import PairWires
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyCut, ReplyError, Wire, parse_lines


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
        self.fields = VERIFY_FIELDS
        self.source_server = self.target_server = None
        self.source_absolute = self.target_absolute = None
        self.source_start = self.target_start = self.source_end = self.target_end = None
        self.choices = None
        self.progress = ProgressFile(options.progress) if options.progress and not options.check_mode else None
        self.progress_total = 0
        self.bytes_compared = 0

    def tick(self, size=0, phase='comparing', force=False):
        """The progress file (with ``progress``): keys compared of the source's keys, and value bytes read."""
        if self.progress is None:
            return
        with self.diff_lock:
            self.bytes_compared += size
        if self.progress.due(force):
            self.progress.update(phase, done=sum(st.result['keys'] for st in self.states), total=self.progress_total,
                                 bytes_done=self.bytes_compared, force=force, busy=phase == 'comparing')

    # -- set-up --------------------------------------------------------------------------------
    def _connect(self):
        self.source_server = connect_server(self.source_ep)
        self.target_server = connect_server(self.target_ep)
        raise_first([p for p in pair_problems(self.source_ep, self.target_ep, self.source_server, self.target_server,
                                              tool='kv_verify')
                     if p.rule == 'cluster'])  # a replica, or two dbs of one server, can be compared
        self.source_absolute = self.source_server.capabilities['pexpiretime']
        self.target_absolute = self.target_server.capabilities['pexpiretime']

    def _pairs(self):
        """The (source db, target db) pairs to compare; default every db non-empty on either side."""
        src_space = self.source_server.keyspace()
        tgt_space = self.target_server.keyspace()
        mapping = db_mapping(self.opts.db_map)
        merge = self.opts.allow_db_merge
        if self.opts.dbs:
            pairs = select_dbs(src_space, self.opts.dbs, self.opts.db_map, allow_merge=merge)
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
            pairs = select_dbs(src_space, sorted(wanted), self.opts.db_map, allow_merge=merge) if wanted else []
        raise_first([p for p in pair_problems(self.source_ep, self.target_ep, self.source_server, self.target_server, pairs,
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
            self.source_start = read_counters(self.source_server)
            self.target_start = read_counters(self.target_server)
            pairs, src_space, tgt_space = self._pairs()
            skipped = read_skipped(self.opts.skipped_keys_file) if self.opts.skipped_keys_file else None
            self.choices = MergeChoices(pairs, self.opts.on_conflict, skipped)
            self.progress_total = sum(src_space.get(s_db, {}).get('keys', 0) for s_db, dummy in pairs)
            self.touched = Touched(self.opts.keys_file, self.opts.keys_file_offset) if self.opts.keys_file else None
            round_started = time.time()
            for s_db, t_db in pairs:
                state = DbState(s_db, t_db, self)
                for name, space, db in (('source', src_space, s_db), ('target', tgt_space, t_db)):
                    info = space.get(db, {})
                    state.result[name + '_keys'] = info.get('keys', 0)
                    state.result[name + '_expires'] = info.get('expires', 0)
                self.states.append(state)
                listed = self.touched.for_target_db(t_db) if self.touched is not None else None
                if listed is None:
                    self.verify_db(state)
                else:
                    verify_listed_db(self, state, listed)
            round_done(self, 1, 'keys' if self.touched is not None else 'full', round_started,
                       sum(st.result['keys'] + st.result['extra'] + st.result['absent'] + st.result['expired']
                           for st in self.states))
            recheck_rounds(self)
            self.tick(phase='done', force=True)
            self.source_end = read_counters(self.source_server)
            self.target_end = read_counters(self.target_server)
            result = self._result(started)
        finally:
            for server in (self.source_server, self.target_server):
                if server is not None:
                    server.client.close()
        write_report(self.opts, result, self.warnings)
        return result

    def dbsize(self, endpoint, db):
        client = endpoint.client(db=db)
        try:
            return int(client.dbsize())
        except Exception as exc:
            raise endpoint.error(exc, 'DBSIZE', db=db)
        finally:
            client.close()

    def compare_listed(self, state, keys):
        """Compare the named keys of one db pair (absent on both sides is fine, on the target only is extra)."""
        size = self.opts.batch_size
        batches = ((None, keys[i:i + size]) for i in range(0, len(keys), size))

        def handle(checker, job):
            checker.process(job[1])

        process_batches(batches, self.opts.workers, lambda: _Checker(self, state, listed=True), handle)
        with state.lock:
            state.result['listed'] += len(keys)

    def verify_db(self, state):
        s_db, t_db = state.result['db'], state.result['target_db']
        group = self.choices.groups.get(t_db)
        if group:  # a merge: the target db holds the keys of every db of the group
            self._source_pass(state)
            if group[0] == s_db:
                state.result['extra_check'] = 'scan'
                self._extra_pass(state, group)
            else:
                state.result['extra_check'] = 'with source db %d' % group[0]
            return
        src_size = self.dbsize(self.source_ep, s_db)
        tgt_size = self.dbsize(self.target_ep, t_db)
        src_counters = read_counters(self.source_server)
        tgt_counters = read_counters(self.target_server)
        self._source_pass(state)
        unchanged = counter_delta(src_counters, read_counters(self.source_server))['changed'] is False \
            and counter_delta(tgt_counters, read_counters(self.target_server))['changed'] is False
        if not self.opts.match and unchanged and state.result['missing'] == 0 \
                and src_size == tgt_size == state.found \
                and self.dbsize(self.source_ep, s_db) == src_size and self.dbsize(self.target_ep, t_db) == tgt_size:
            # Every source key is on the target, nothing changed, and the target holds exactly as many keys as
            # were found (SCAN duplicates would make found exceed the source's DBSIZE): no key can be extra.
            state.result['extra_check'] = 'dbsize'
            return
        state.result['extra_check'] = 'scan'
        self._extra_pass(state)

    def _source_pass(self, state):
        s_db = state.result['db']
        source_client = self.source_ep.client(db=s_db)
        batches = scan_batches(source_client, match=self.opts.match, count=self.opts.batch_size)

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
            source_client.close()

    def _extra_pass(self, state, group=None):
        """See :func:`._verify_extra.extra_pass`."""
        extra_pass(self, state, group)

    # -- the result ----------------------------------------------------------------------------
    def _result(self, started):
        dbs = [st.result for st in self.states]
        total = totals(dbs)
        for name in VERIFY_FIELDS:
            counts = [d.get(name, 0) for d in dbs]
            total[name] = None if None in counts else sum(counts)  # None: unknown (INFO not available)
        differing = sum(total[k] for k in DIFF_KINDS)
        memory = used_memory(self.source_server, self.target_server, self.opts.memory_tolerance)
        src_change = counter_delta(self.source_start, self.source_end)
        tgt_change = counter_delta(self.target_start, self.target_end)
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
            source=self._describe(self.source_server),
            target=self._describe(self.target_server),
            scope='keys' if self.touched is not None else 'full',
            keys_file=self.touched.describe() if self.touched is not None else None,
            rounds=self.rounds,
        )
        if src_change['changed']:
            self._warn(change_text('source', src_change) + ': differences found while data moves may come '
                       'from those changes rather than from the copy. Stop the writers (CLIENT PAUSE WRITE, or unbind '
                       'the applications) and verify again')
        if tgt_change['changed']:
            self._warn(change_text('target', tgt_change) + ': is something else writing to it?')
        for label, server, change in (('source', self.source_server, src_change),
                                      ('target', self.target_server, tgt_change)):
            if change['changed'] is None:
                self._warn('whether the %s changed during the verification is unknown (%s): extra keys were looked '
                           'for with SCAN; stop the writers before verifying' % (label, server.unknown.get('info')))
        if memory.get('unknown') and self.opts.memory_tolerance is not None:
            self._warn('memory_tolerance not checked: %s' % '; '.join(memory['unknown']))
        result['summary'] = summary(result, differing, memory, src_change, self.opts) + scope_text(result, self.opts)
        return result

    @staticmethod
    def _describe(server):
        return dict(address=server.endpoint.address, engine=server.engine, version=server.version_string,
                    tls=server.endpoint.tls)


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
        self.source_client = None
        self.target_client = None
        self.source_wire = self.target_wire = None
        try:
            self.source_client = run.source_ep.client(db=self.s_db)
            self.target_client = run.target_ep.client(db=self.t_db)
            self.source_wire = Wire(self.source_client)
            self.target_wire = Wire(self.target_client)
        except Exception:
            self.close()
            raise
        self.source_absolute = run.source_absolute
        self.target_absolute = run.target_absolute
        self.pair = PairWires(self.source_wire, self.target_wire, b'PEXPIRETIME' if self.source_absolute else b'PTTL',
                              b'PEXPIRETIME' if self.target_absolute else b'PTTL', self._fail)
        self.tolerance = self.opts.ttl_tolerance_ms
        self.scope = CompareScope(run.source_server, run.target_server, self.tolerance)
        self.chunk = min(FIRST_PART, self.opts.batch_size)
        self.max_chunk = self.opts.batch_size
        self.random = random.Random()
        self.mget_allowed = True
        self.mget = True
        # PEXPIRETIME on both sides and the hiredis parser: expiry replies are compared as raw lines
        self.raw_lines = self.source_absolute and self.target_absolute and self.source_wire.reader is not None \
            and self.target_wire.reader is not None
        self.lookup = MergeLookup(run.choices, run.source_ep, self.s_db, self.t_db, self.target_client, self.scope,
                                  self.tolerance)

    def close(self):
        if getattr(self, 'lookup', None) is not None:
            self.lookup.close()
        for wire in (self.source_wire, self.target_wire):
            if wire is not None:
                wire.close()
        for client in (self.source_client, self.target_client):
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
            self.run.tick()
        start = 0
        while start < len(valued):
            part = valued[start:start + self.chunk]
            start += len(part)
            size = self._read(part, [], mget=self.mget)
            self.run.tick(size)
            avg = max(1, size // max(1, 2 * len(part)))
            self.chunk = max(1, min(self.max_chunk, PART_BYTES // avg))

    def _read(self, valued, others, mget, adapt=True):
        """Read and compare ``valued`` keys (their values and expiries) and ``others`` (type and expiry).

        With ``mget`` the values come from one MGET per side (strings: cheaper on both servers than a DUMP
        per key, and compared byte for byte); keys that are no string on either side are read again with
        DUMP.  Otherwise DUMP + expiry per valued key, TYPE + expiry per other key.  Returns the value bytes
        read on both sides.  With ``adapt`` a part read with DUMP that holds mostly strings switches the
        next parts to MGET.
        """
        n_v = len(valued)
        try:
            if mget and self.raw_lines:
                reading = self.pair.read_expiry_lines_mget(valued)
            elif mget:
                reading = self.pair.read_mget_expiry(valued)
            else:
                reading = self.pair.read_dump_expiry(valued, others)
        except ReplyCut:
            reading = self.pair.read_spooled(valued, others)
            mget = False
        (s_lines, s_replies, s_now), (t_lines, t_replies, t_now) = reading
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
                    return reply_bytes(s_vals) + reply_bytes(t_vals)
                s_exps, t_exps = parse_lines(s_lines), parse_lines(t_lines)
            else:
                s_exps, t_exps = s_replies[1:], t_replies[1:]
        else:
            s_vals, s_exps, t_vals, t_exps = s_replies[0::2], s_replies[1::2], t_replies[0::2], t_replies[1::2]
        size = reply_bytes(s_vals[:n_v]) + reply_bytes(t_vals[:n_v])
        # The usual case: every key on both sides, same expiry, same value.
        if not others and self.source_absolute and self.target_absolute and s_exps == t_exps:
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
                                             'absent', 'skipped', 'merged', 'merge_conflicts') + DIFF_KINDS[2:]
                      + ('field_ttls_dropped',))
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
            s_present, s_at = expire_at(s_exp, self.source_absolute, s_now)
            t_present, t_at = expire_at(t_exp, self.target_absolute, t_now)
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
                if s_val != t_val and not same_bytes(s_val, t_val):
                    kinds.append(('value_differs', 'string values differ'))
            elif valued:
                if not same_body(s_val, t_val):
                    slow.append((key, ttl, first_byte(s_val), first_byte(t_val),
                                 s_val.__class__ is not bytes or t_val.__class__ is not bytes))
                    continue
            elif as_text(s_val) != as_text(t_val):
                kinds.append(('type_differs', '%s on the source, %s on the target' % (as_text(s_val), as_text(t_val))))
            if ttl:
                kinds.append(('ttl_differs', ttl))
            self._count(counts, differences, key, kinds)
        for key, ttl, s_byte, t_byte, big in slow:
            self._compare_typed(counts, differences, key, ttl, s_byte, t_byte, big)
        self.state.add(counts, differences, found)

    def _count(self, counts, differences, key, kinds):
        for kind, detail in kinds:
            if kind == 'field_ttl_dropped':  # the target cannot hold them: reported, not a difference
                counts['field_ttls_dropped'] += 1
                differences.append(dict(db=self.s_db, target_db=self.t_db, key=sample_key(key), kind=kind,
                                        detail=detail))
        kinds = [k for k in kinds if k[0] != 'field_ttl_dropped']
        if not kinds:
            counts['identical'] += 1
            return
        chosen = self.lookup.classify(key)  # skipped by on_conflict=skip, or a merge's kept value
        if chosen is not None and chosen[0] == 'wrong_db':
            kinds = [chosen[1:]]
        elif chosen is not None:
            counts[chosen[0]] = counts.get(chosen[0], 0) + 1
            differences.append(dict(db=self.s_db, target_db=self.t_db, key=sample_key(key), kind=chosen[1],
                                    detail=chosen[2]))
            return
        counts['conflicts'] += 1
        self.state.note(key)
        for kind, detail in kinds:
            counts[kind] += 1
            differences.append(dict(db=self.s_db, target_db=self.t_db, key=sample_key(key), kind=kind,
                                    detail=detail))

    def _compare_typed(self, counts, differences, key, ttl, s_byte=b'', t_byte=b'', big=False):
        """Payloads differ: other encodings or RDB formats can still hold the same value.  Compared type-aware,
        with what both servers can hold beyond the value: field TTLs of hashes whose payload type can carry
        them, and for streams their metadata, groups, consumers and pending entries."""
        try:
            kinds = key_differences(self.source_client, self.target_client, key, self.scope,
                                    bytearray(s_byte)[0] if s_byte else None, bytearray(t_byte)[0] if t_byte else None,
                                    big)
        except Exception as exc:
            raise self._fail(exc, 'target', 'comparing a key')
        if ttl:
            kinds.append(('ttl_differs', ttl))
        self._count(counts, differences, key, kinds)
