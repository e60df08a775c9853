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

import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    db_mapping, process_batches, sample_key, scan_batches, select_dbs, totals)
from ansible_collections.kvtools.migration.plugins.module_utils._merge import MergeChoices, read_skipped
from ansible_collections.kvtools.migration.plugins.module_utils._pair import pair_problems, raise_first
from ansible_collections.kvtools.migration.plugins.module_utils._progress import ProgressFile
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._verify_report import change_text, summary, write_report
from ansible_collections.kvtools.migration.plugins.module_utils._verify_checker import KeyChecker
from ansible_collections.kvtools.migration.plugins.module_utils._verify_cluster import NodeCounts, RoutedChecker, VerifySide
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import (
    DIFF_KINDS, EXTRA_DEDUP_LIMIT, VERIFY_FIELDS, counter_delta, used_memory)
from ansible_collections.kvtools.migration.plugins.module_utils._verify_scope import (
    DbState, Touched, recheck_rounds, round_done, scope_text, verify_listed_db)
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyError, Wire, pack_key_commands


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
        self.source_side = self.target_side = None
        self.clustered = False  # either side is a cluster: keys are routed to the master that serves them
        self.node_counts = NodeCounts()
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
        self.source_side = VerifySide('source', self.source_ep, self.source_server).open()
        self.target_side = VerifySide('target', self.target_ep, self.target_server).open()
        self.clustered = self.source_side.cluster or self.target_side.cluster
        self.source_absolute = self.source_server.capabilities['pexpiretime']
        self.target_absolute = self.target_server.capabilities['pexpiretime']

    def _pairs(self):
        """The (source db, target db) pairs to compare; default every db non-empty on either side."""
        src_space = self.source_side.keyspace()
        tgt_space = self.target_side.keyspace()
        mapping = db_mapping(self.opts.db_map)
        merge = self.target_side.cluster
        allow = self.opts.allow_db_merge
        if self.opts.dbs:
            pairs = select_dbs(src_space, self.opts.dbs, self.opts.db_map, merge=merge, allow_merge=allow)
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
            pairs = select_dbs(src_space, sorted(wanted), self.opts.db_map, merge=merge, allow_merge=allow) if wanted \
                else []
        raise_first([p for p in pair_problems(self.source_ep, self.target_ep, self.source_server, self.target_server, pairs,
                                              check_source_dbs=True, clusters=True)
                     if p.rule in ('databases', 'cluster_db')])  # a replica, or two dbs of one server, can be compared
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
            self.source_start = self.source_side.counters()
            self.target_start = self.target_side.counters()
            pairs, src_space, tgt_space = self._pairs()
            self.progress_total = sum(src_space.get(s_db, {}).get('keys', 0) for s_db, dummy in pairs)
            skipped = read_skipped(self.opts.skipped_keys_file) if self.opts.skipped_keys_file else None
            # merges of standalone dbs (a cluster target's db 0 takes every db: that merge is the cluster code's)
            self.choices = MergeChoices([] if self.clustered else pairs, self.opts.on_conflict, skipped)
            if self.opts.keys_file:
                targets = [t_db for _s_db, t_db in pairs]
                merged = sorted(set(t_db for t_db in targets if targets.count(t_db) > 1))
                if merged:  # one log record per target key: it cannot tell which source db the key came from
                    raise KVError('keys_file cannot be used when several source dbs go into one target db (%s): '
                                  'kv_sync does not merge dbs; verify a merge with the full scope'
                                  % ', '.join('db %d' % t for t in merged), kind='config')
                self.touched = Touched(self.opts.keys_file, self.opts.keys_file_offset)
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
            self.source_end = self.source_side.counters()
            self.target_end = self.target_side.counters()
            result = self._result(started)
        finally:
            for side in (self.source_side, self.target_side):
                if side is not None:
                    side.close()
            for server in (self.source_server, self.target_server):
                if server is not None:
                    server.client.close()
        write_report(self.opts, result, self.warnings)
        return result

    def dbsize(self, endpoint, db):
        """Keys in ``db`` of ``endpoint`` (of every master when it is a side of the run that is a cluster)."""
        for side in (self.source_side, self.target_side):
            if side is not None and endpoint is side.endpoint and side.cluster:
                return side.dbsize(db)
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

        make = RoutedChecker if self.clustered else KeyChecker
        process_batches(batches, self.opts.workers, lambda: make(self, state, listed=True), handle)
        with state.lock:
            state.result['listed'] += len(keys)

    def verify_db(self, state):
        s_db, t_db = state.result['db'], state.result['target_db']
        group = self.choices.groups.get(t_db)
        if group:  # a merge: the target db holds the keys of every db of the group
            self._source_pass(state)
            state.result['extra_check'] = 'scan' if group[0] == s_db else 'with source db %d' % group[0]
            if group[0] == s_db:
                self._extra_pass(state, group)
            return
        src_size = self.dbsize(self.source_ep, s_db)
        tgt_size = self.dbsize(self.target_ep, t_db)
        src_counters = self.source_side.counters()
        tgt_counters = self.target_side.counters()
        self._source_pass(state)
        unchanged = counter_delta(src_counters, self.source_side.counters())['changed'] is False \
            and counter_delta(tgt_counters, self.target_side.counters())['changed'] is False
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
        if self.clustered:
            return self._routed_source_pass(state)
        source_client = self.source_ep.client(db=s_db)
        batches = scan_batches(source_client, match=self.opts.match, count=self.opts.batch_size)

        def handle(checker, job):
            keys = job[1]
            if keys:
                checker.process(keys)

        try:
            process_batches(batches, self.opts.workers, lambda: KeyChecker(self, state), handle)
        except KVError:
            raise
        except Exception as exc:
            raise self.source_ep.error(exc, 'scanning db %d' % s_db, db=s_db)
        finally:
            source_client.close()

    def _routed_source_pass(self, state):
        """The source pass when a side is a cluster: every source master walked, keys routed to their masters."""
        batches = self.source_side.batches(state.result['db'], match=self.opts.match, count=self.opts.batch_size)

        def handle(checker, job):
            s_index, keys = job[1]
            if keys:
                checker.process(keys, s_index)

        process_batches(batches, self.opts.workers, lambda: RoutedChecker(self, state), handle)

    def _extra_pass(self, state, group=None):
        """Walk the target (every master of a cluster) and ask the source (the master that serves each key)
        whether each key exists there (in any source db of a merge's ``group``)."""
        s_db, t_db = state.result['db'], state.result['target_db']
        others = [self.source_ep.client(db=db) for db in group or () if db != s_db]
        wires = {}
        seen = set()
        extra = 0
        ignore = self.opts.ignore.get(t_db, ())

        def source_wire(index):
            if index not in wires:
                endpoint = self.source_side.endpoints[index]
                client = endpoint.client(db=s_db)
                try:
                    wires[index] = (endpoint, client, Wire(client))
                except Exception:
                    client.close()
                    raise
            return wires[index]

        try:
            for t_index, target_ep in enumerate(self.target_side.endpoints):
                target_client = target_ep.client(db=t_db)
                try:
                    for dummy, keys in scan_batches(target_client, match=self.opts.match, count=self.opts.batch_size):
                        for s_index, part in (self.source_side.route(keys).items() if keys else ()):
                            found = self._extra_keys(state, source_wire(s_index), part, seen, ignore, others)
                            extra += found
                            self.node_counts.add('target', t_index, dict(extra=found))
                except KVError:
                    raise
                except Exception as exc:
                    raise target_ep.error(exc, 'scanning db %d' % t_db, db=t_db)
                finally:
                    target_client.close()
        finally:
            for dummy, client, wire in wires.values():
                wire.close()
                client.close()
            for client in others:
                client.close()
        with state.lock:
            state.result['extra'] += extra

    def _extra_keys(self, state, source, keys, seen, ignore, others=()):
        """How many of ``keys`` (found on the target) the source does not hold (nor ``others``, clients of the other
        source dbs of a merge); each is a difference."""
        s_db, t_db = state.result['db'], state.result['target_db']
        source_ep, dummy, wire = source
        try:
            replies = wire.call_packed(pack_key_commands((b'EXISTS',), keys), len(keys))
        except Exception as exc:
            raise source_ep.error(exc, 'EXISTS in db %d' % s_db, db=s_db)
        for client in others:  # a key of another merged db is not extra
            found = client.pipeline(transaction=False)
            for key in keys:
                found.exists(key)
            replies = [a or b for a, b in zip(replies, found.execute())]
        differences = []
        for key, reply in zip(keys, replies):
            if isinstance(reply, ReplyError):
                raise source_ep.error(reply, 'EXISTS in db %d' % s_db, db=s_db)
            if reply or key in ignore:
                continue
            if key in seen:
                continue  # a SCAN duplicate
            if len(seen) < EXTRA_DEDUP_LIMIT:
                seen.add(key)
            state.note(key)
            differences.append(dict(db=s_db, target_db=t_db, key=sample_key(key), kind='extra',
                                    detail='on the target only'))
        self.add_differences(differences)
        return len(differences)

    # -- the result ----------------------------------------------------------------------------
    def _result(self, started):
        dbs = [st.result for st in self.states]
        total = totals(dbs)
        for name in VERIFY_FIELDS:
            counts = [d.get(name, 0) for d in dbs]
            total[name] = None if None in counts else sum(counts)  # None: unknown (INFO not available)
        differing = sum(total[k] for k in DIFF_KINDS)
        memory = used_memory(self.source_side.servers(), self.target_side.servers(), self.opts.memory_tolerance)
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
            source=self._describe(self.source_server, self.source_side),
            target=self._describe(self.target_server, self.target_side),
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

    def _describe(self, server, side):
        out = dict(address=server.endpoint.address, engine=server.engine, version=server.version_string,
                   tls=server.endpoint.tls)
        if side.cluster:  # the masters, each with its counts
            out['cluster'] = dict(side.topology.describe(),
                                  masters=side.describe_nodes(self.node_counts.counts[side.label]))
        return out
