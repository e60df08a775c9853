# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The copy job: one source, one writer, and everything around them.

:class:`CopyJob` is the same for every copy the collection makes; what varies is composed in:

* the *source* (:class:`~._live_source.LiveSource`: SCAN + DUMP + PEXPIRETIME of a running server;
  :class:`~._backup_source.BackupFileSource`: the records of a logical backup;
  :class:`~._rdb_file_source.RdbFileSource`: the keys of an RDB file; see
  :mod:`._live_source` for the interface) yields batches;
* the *writer* (:class:`~._restore_writer.RestoreWriter`: pipelined RESTORE with the type-aware fallback;
  :class:`~._migrate.MigrateWriter`: ``MIGRATE ... COPY``; see :mod:`._restore_writer` for the
  interface) takes them.

The flow of :meth:`CopyJob.run`:

1. open the source and connect the target; check the pair (:mod:`._pair`); a cluster on either side is
   discovered (a source of one part per master, a routing table for the writers); let the writer choose the
   payload path (or refuse the pair);
2. plan: with ``on_conflict: fail`` every target db that is not empty is compared first and the run
   stops before its first write if any key differs; check mode plans every db and stops;
3. copy each db in batches (several workers, each with its own connections and its own reader and
   writer), checkpointing the SCAN cursor after each batch when the source can resume, so an
   interrupted run resumes where it stopped;
4. the per-db result, the report file and the progress file.

The source only ever sees SCAN, DUMP, PEXPIRETIME/PTTL, TYPE, read commands and ``MIGRATE ... COPY``.
:func:`DumpRestore` and :func:`~._migrate.Migrate` / :func:`~._backup_source.BackupRestore` build the
jobs of the modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import discover
from ansible_collections.kvtools.migration.plugins.module_utils._cluster_plan import node_plan, target_cluster_facts
from ansible_collections.kvtools.migration.plugins.module_utils._cluster_source import ClusterSource
from ansible_collections.kvtools.migration.plugins.module_utils._copy_progress import Progress
from ansible_collections.kvtools.migration.plugins.module_utils._copy_worker import DbWorker
from ansible_collections.kvtools.migration.plugins.module_utils._errors import RERUNNABLE, KVError, reply_kind, rerun_hint
from ansible_collections.kvtools.migration.plugins.module_utils._files import atomic_write
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    add_counts, db_result, process_batches, select_dbs, total_dbsize, totals)
from ansible_collections.kvtools.migration.plugins.module_utils._live_source import LiveSource
from ansible_collections.kvtools.migration.plugins.module_utils._copy_options import CopyOptions
from ansible_collections.kvtools.migration.plugins.module_utils._lock import TargetLock
from ansible_collections.kvtools.migration.plugins.module_utils._merge import CopyChoices
from ansible_collections.kvtools.migration.plugins.module_utils._pair import pair_problems, raise_first
from ansible_collections.kvtools.migration.plugins.module_utils._payload import target_accepts
from ansible_collections.kvtools.migration.plugins.module_utils._restore_writer import RestoreWriter
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import (
    TMP_TTL_MS, find_field_ttls, remove_leftovers)

# CopyOptions lives in _copy_options.py; the modules and tests import it from here, with the job
__all__ = ['CopyJob', 'CopyOptions', 'DbCopy', 'DumpRestore']

MAX_FAILURES_LISTED = 100
CHECKPOINT_FORMAT = 1


class DbCopy:
    """The copy of one db: its per-db result and failures, shared by its workers.

    ``target_keys_before``: DBSIZE of the target db before the first write; ``planned``: the plan went
    through this db.
    """

    def __init__(self, source_db, target_db, payload_path, on_change=None):
        self.result = db_result(source_db, target_db, payload_path=payload_path)
        self.failures = []
        self.lock = threading.Lock()
        self.on_change = on_change
        self.target_keys_before = 0
        self.planned = False

    @property
    def target_empty(self):
        return self.target_keys_before == 0

    def reset(self):
        """Forget the plan's counts before the real pass."""
        self.result = db_result(self.result['db'], self.result['target_db'],
                                payload_path=self.result['payload_path'])
        self.failures = []

    def add(self, counts, failures=()):
        with self.lock:
            add_counts(self.result, counts)
            room = MAX_FAILURES_LISTED - len(self.failures)
            if room > 0:
                self.failures.extend(list(failures)[:room])
        if self.on_change:
            self.on_change()


class CopyJob:
    """One copy from ``source`` (a source object) into the target, written by ``writer`` (a writer class).

    ``run()`` returns the result dict or raises KVError (with ``.partial`` holding the counts reached).
    """

    def __init__(self, name, source, target_ep, options, writer=RestoreWriter, warn=None):
        self.name = name
        self.source = source
        self.source_ep = source.endpoint
        self.target_ep = target_ep
        self.opts = options
        self.writer = writer
        self.warn_callback = warn or (lambda msg: None)
        self.warnings = []
        self.target = None
        self.target_rdb = self.target_rdb_source = None
        self.accepts = None
        self.payload_path = None
        self.states = []
        self.progress = None
        self.phase = 'connecting'
        self.started = None
        self.resumed = False
        self.checkpoint = None
        self.checkpoint_lock = threading.Lock()
        self.target_keys_before = {}
        self.field_ttl_drops = dict(keys=0, fields=0)  # hash field TTLs dropped (on_unsupported: drop)
        self.drop_lock = threading.Lock()
        self.unsupported = None
        self.leftovers = 0
        self.choices = None  # merges and skipped keys (CopyChoices), once the db pairs are known
        self.clusters = getattr(writer, 'clusters', False)  # the writer copies from and into clusters
        self.target_topology = None  # a cluster target: its masters and slots (:mod:`._cluster`)
        self.target_nodes = {}  # a cluster target: keys written per master
        self.target_planned = {}  # ... and in check mode the keys a real run would write there
        self.redirects = dict(moved=0, ask=0)
        self.nodes_lock = threading.Lock()

    # -- set-up --------------------------------------------------------------------------------
    def connect(self):
        """Open the source, connect the target, check the pair, let the writer choose the payload path."""
        self.source.open()
        self.target = connect_server(self.target_ep)
        raise_first(pair_problems(self.source_ep, self.target_ep, self.source.server, self.target, tool=self.name,
                                  clusters=self.clusters))
        self._discover_clusters()
        self.target_rdb, self.target_rdb_source = self.target.rdb_version()
        self.accepts = target_accepts(self.target.engine, self.target_rdb, self.source.rdb_version,
                                      self.target.rdb_version_check.get('value'))
        self.payload_path = self.writer.payload_path(self)

    def _discover_clusters(self):
        """A cluster on either side: its masters (the source reads each, the writers route to each)."""
        server = self.source.server
        if server is not None and server.cluster_enabled and not getattr(self.source, 'parted', False):
            self.source = ClusterSource(self.source).open()
        if self.target.cluster_enabled:
            self.target_topology = discover(self.target_ep, self.target.client)
            problems = self.target_topology.problems('target')
            if problems:
                raise KVError('. '.join(problems), kind='config', endpoint=self.target_ep.address)

    def target_endpoints(self):
        """The endpoints that hold the target's keys: every master of a cluster, else the target."""
        if self.target_topology is None:
            return [self.target_ep]
        return [master.endpoint for master in self.target_topology.masters]

    def count_target_nodes(self, written, redirects, planned=None):
        """A writer into a cluster adds its keys per master (``planned``: those its plan would write) and its
        MOVED/ASK redirections (when it closes)."""
        with self.nodes_lock:
            for address, count in (planned or {}).items():
                self.target_planned[address] = self.target_planned.get(address, 0) + count
            for address, count in written.items():
                self.target_nodes[address] = self.target_nodes.get(address, 0) + count
            for name, count in redirects.items():
                self.redirects[name] += count

    def _cluster_result(self):
        """The ``cluster`` entry of the result (None when neither side is a cluster)."""
        source_nodes = self.source.nodes() if getattr(self.source, 'parted', False) else None
        if source_nodes is None and self.target_topology is None:
            return None
        target_nodes = None
        if self.target_topology is not None:
            target_nodes = [dict(address=m.address, node_id=m.node_id, slots=m.slots,
                                 written=self.target_nodes.get(m.address, 0))
                            for m in self.target_topology.masters]
            known = set(m.address for m in self.target_topology.masters)
            target_nodes += [dict(address=a, node_id=None, slots=None, written=n)  # found through MOVED/ASK
                             for a, n in sorted(self.target_nodes.items()) if a not in known]
            if self.opts.check_mode:  # the plan per node: what a real run would write on each master
                for entry in target_nodes:
                    entry['planned'] = self.target_planned.get(entry['address'], 0)
        return dict(source_nodes=source_nodes, target_nodes=target_nodes, redirects=dict(self.redirects))

    def _describe_target(self):
        out = dict(address=self.target_ep.address, engine=self.target.engine, version=self.target.version_string,
                   rdb_version=self.target_rdb, rdb_version_source=self.target_rdb_source, tls=self.target_ep.tls)
        if self.target_topology is not None:
            out['cluster'] = self.target_topology.describe()
        return out

    # -- checkpoint ----------------------------------------------------------------------------
    def _fingerprint(self, pairs):
        raw = json.dumps(dict(source=self.source_ep.identity, target=self.target_ep.identity, pairs=pairs,
                              match=self.opts.match), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def _load_checkpoint(self, pairs):
        path = self.opts.checkpoint
        if not path or not os.path.exists(path):
            return None
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (IOError, OSError, ValueError) as exc:
            raise KVError('cannot read checkpoint %s: %s. Remove it to start over' % (path, exc), kind='config')
        if data.get('format') != CHECKPOINT_FORMAT or data.get('fingerprint') != self._fingerprint(pairs):
            raise KVError('checkpoint %s belongs to another job (different source, target, dbs or match). '
                          'Remove it or give another checkpoint path' % path, kind='config')
        return data

    def _start_checkpoint(self, pairs):
        """The checkpoint of this run (None when the source has no cursor to resume from)."""
        if not self.source.resumable:
            return
        previous = self._load_checkpoint(pairs)
        run_id = self.target.info.get('run_id')
        run_id = run_id.decode() if isinstance(run_id, bytes) else run_id
        source_server = getattr(self.source, 'server', None)
        source_run_id = source_server.info.get('run_id') if source_server is not None else None
        source_run_id = source_run_id.decode() if isinstance(source_run_id, bytes) else source_run_id
        self.checkpoint = dict(format=CHECKPOINT_FORMAT, fingerprint=self._fingerprint(pairs), target_run_id=run_id,
                               dbs={})
        if self.source_ep.sentinel is not None:
            self.checkpoint['source_run_id'] = source_run_id
        if previous:
            self.resumed = True
            # A SCAN cursor means something only on the server that gave it: after a failover of a Sentinel
            # source (another master) the scan starts over; a target that restarted or failed over may have
            # lost writes acknowledged before: every key is checked again.
            moved = self.source_ep.sentinel is not None and previous.get('source_run_id') != source_run_id
            if previous.get('target_run_id') != run_id or moved:
                self.warn('the %s restarted or failed over since the checkpoint was written: every db is checked '
                          'again from the start (keys already there and identical are not copied again)'
                          % ('source' if moved else 'target'))
                self.checkpoint['dbs'] = dict((k, dict(cursor=0, done=False, recheck=True)) for k in previous['dbs'])
            else:
                self.checkpoint['dbs'] = previous['dbs']

    def _save_checkpoint(self, db, cursor, recheck):
        if self.checkpoint is None:
            return
        self.checkpoint['dbs'][str(db)] = dict(cursor=cursor, done=(cursor == 0), recheck=recheck)
        if not self.opts.checkpoint or self.opts.check_mode:
            return
        with self.checkpoint_lock:
            atomic_write(self.opts.checkpoint, json.dumps(self.checkpoint, sort_keys=True))

    def _resume_point(self, db):
        if self.checkpoint is None:
            return {}
        return self.checkpoint['dbs'].get(str(db), {})

    # -- the run -------------------------------------------------------------------------------
    def run(self):
        """The copy, alone into its target (see :class:`._lock.TargetLock`); check mode takes no lock."""
        if self.opts.check_mode:
            return self._run()
        with TargetLock(self.target_ep, self.name, progress=self.opts.progress):
            return self._run()

    def _run(self):
        self.started = time.time()
        self.connect()
        keys_per_db = self.source.keys_per_db()
        pairs = select_dbs(keys_per_db, self.opts.dbs, self.opts.db_map, allow_merge=self.opts.allow_db_merge,
                           merge=self.target_topology is not None)
        raise_first(pair_problems(self.source_ep, self.target_ep, None, self.target, pairs, tool=self.name,
                                  clusters=self.clusters))
        if self.opts.progress and not self.opts.check_mode:
            # a file knows its payload bytes exactly; a server's memory is no measure of its DUMP payloads
            exact = self.source.server is None and not self.opts.dbs and not self.opts.match
            self.progress = Progress(self.opts.progress, dict((s, keys_per_db.get(s, 0)) for s, _t in pairs),
                                     bytes_total=self.source.data_bytes() if exact else None)
        self.phase = 'planning'
        self.states = [DbCopy(s, t, self.payload_path, on_change=self._tick) for s, t in pairs]
        self._check_unsupported(pairs)
        self._remove_leftovers(pairs)
        self._check_room()
        self._start_checkpoint(pairs)
        # merged dbs with on_conflict=fail: none may differ (a cluster target's db 0 takes every db: its own rules)
        self.choices = CopyChoices(self, pairs if self.target_topology is None else [])
        try:
            # Plan first: conflicts stop the run before the first write (and check mode ends here).
            for state in self.states:
                state.target_keys_before = self.target_keys_before[state.result['target_db']] = \
                    self.dbsize(state.result['target_db'])
                if self.opts.check_mode or (self.opts.on_conflict == 'fail' and not state.target_empty):
                    self._copy_db(state, planning=True)
                    state.planned = True
            self._stop_on_conflicts()
            if not self.opts.check_mode:
                self.phase = 'copying'
                for state in self.states:
                    done = self._resume_point(state.result['db'])
                    if done.get('done'):
                        continue
                    if state.planned and not state.result['copied'] and not done:
                        continue  # the plan found nothing to write: its counts are the result
                    if state.result['keys'] or state.failures:  # drop the plan's counts
                        state.reset()
                    if self.choices.later_in_merge(state.result['db'], state.result['target_db']):
                        # its target db holds the earlier merged dbs' keys now: compare with them
                        state.target_keys_before = self.dbsize(state.result['target_db'])
                    self._copy_db(state, planning=False, cursor=done.get('cursor', 0), recheck=done.get('recheck', False))
        except Exception as exc:  # every failure leaves a report and the counts reached
            raise self._failed(exc, 'copying')
        result = self.result()
        try:
            self._tick('done')
            self._write_report(result)
        except KVError as err:  # everything was copied, but a file could not be written: fail, with the counts
            err.partial = result
            raise
        if self.checkpoint is not None and self.opts.checkpoint and not self.opts.check_mode \
                and os.path.exists(self.opts.checkpoint):
            os.unlink(self.opts.checkpoint)  # the job is complete: a rerun starts a fresh idempotent pass
        return result

    def _check_unsupported(self, pairs):
        """Before anything is written: hash field TTLs the target cannot hold are counted; with
        on_unsupported=fail the run stops here, with drop the result and a warning say what is lost."""
        server = self.source.server
        if server is None or not (server.capabilities['hash_field_ttl'] and
                                  not self.target.capabilities['hash_field_ttl']):
            return
        keys = fields = 0
        for s_db, _t_db in pairs:
            for endpoint in getattr(self.source, 'node_endpoints', None) or [self.source_ep]:
                client = endpoint.client(db=s_db)
                try:
                    found = find_field_ttls(client, None if endpoint is not self.source_ep
                                            else server.info.get('db%d' % s_db), self.opts.match, self.opts.chunk_size)
                except Exception as exc:
                    raise endpoint.error(exc, 'looking for hash field TTLs in db %d' % s_db, db=s_db)
                finally:
                    client.close()
                keys += found[0]
                fields += found[1]
        if not keys:
            return
        what = ('%d fields of %d hashes have a TTL of their own (hash field TTLs), which the target %s (%s %s) '
                'cannot hold' % (fields, keys, self.target_ep.address, self.target.engine, self.target.version_string))
        self.unsupported = dict(hash_field_ttls=dict(keys=keys, fields=fields), on_unsupported=self.opts.on_unsupported)
        if self.opts.on_unsupported == 'fail':
            raise KVError('%s. Nothing was written. Set on_unsupported: drop to copy these hashes without their '
                          'field TTLs (the result and the report count them), or choose a target that holds them '
                          '(Redis 7.4+, Valkey 9+)' % what, kind='unsupported', endpoint=self.target_ep.address,
                          details=dict(unsupported=self.unsupported))
        self.warn('%s: they are copied without those TTLs (on_unsupported: drop)' % what)

    def _remove_leftovers(self, pairs):
        """Temporary keys (kvtools:tmp:*) a crashed run left on the target are removed (counted in check mode)."""
        for t_db in sorted(set(t for _s, t in pairs)):
            if not self.dbsize(t_db):
                continue
            for endpoint in self.target_endpoints():
                self._remove_leftovers_on(endpoint, t_db)
        if self.leftovers:
            self.warn('%s %d temporary key(s) (kvtools:tmp:*) that an interrupted earlier run left on the target'
                      % ('would remove' if self.opts.check_mode else 'removed', self.leftovers))

    def _remove_leftovers_on(self, endpoint, t_db):
        client = endpoint.client(db=t_db)
        try:
            self.leftovers += remove_leftovers(client, dry_run=self.opts.check_mode)
        except Exception as exc:
            if reply_kind(exc) not in ('noperm', 'unknown_command'):
                raise endpoint.error(exc, 'removing temporary keys in db %d' % t_db, db=t_db)
            self.warn('the target user may not look for or remove temporary keys (kvtools:tmp:*) an interrupted '
                      'run may have left in db %d (%s); those of this release expire on their own within %d s'
                      % (t_db, str(exc)[:120], TMP_TTL_MS // 1000))
        finally:
            client.close()

    def _unsupported_result(self):
        """What the target could not hold: found before the copy, and (with drop) what was dropped."""
        if not self.unsupported:
            return None
        out = dict(self.unsupported)
        if self.opts.on_unsupported == 'drop':
            out['hash_field_ttls_dropped'] = dict(self.field_ttl_drops)
        return out

    def _stop_on_conflicts(self):
        """After planning: with on_conflict=fail, differing target keys stop the run before any write."""
        conflicted = [st.result for st in self.states if st.result['conflicts']]
        if conflicted and self.opts.on_conflict == 'fail' and not self.opts.check_mode:
            err = KVError('the target already holds keys that differ from %s: %s. Nothing was written. '
                          'Use on_conflict=replace to overwrite them, on_conflict=skip to keep them, or empty '
                          'the target' % (self.source.label, ', '.join('db %d: %d' % (r['target_db'], r['conflicts'])
                                                                       for r in conflicted)),
                          kind='conflict', endpoint=self.target_ep.address,
                          details=dict(samples=[f for st in self.states for f in st.failures][:20]))
            err.partial = self.result(partial=True)
            raise err

    def _failed(self, exc, action):
        """The KVError to raise for ``exc``, with the counts reached; the report and progress say so."""
        err = exc if isinstance(exc, KVError) else self.target_ep.error(exc, action)
        if not hasattr(err, 'partial'):
            err.partial = self.result(partial=True)
        if err.kind in RERUNNABLE and not getattr(err, 'hinted', False):
            err.message = '%s. %s' % (err.message.rstrip('.'), rerun_hint(self.opts.checkpoint))
            err.hinted = True
        try:
            self._write_report(err.partial)
            self._tick('failed')
        except KVError as write_err:  # a full disk: keep the first failure, say the report is missing too
            if write_err.message not in err.message:
                err.message = '%s (and: %s)' % (err.message, write_err.message)
        return err

    def _tick(self, final=None):
        if self.progress is not None:
            self.progress.update(self.states, final or self.phase, force=final is not None)

    def _check_room(self):
        """Warn early when the target's maxmemory looks too small for the source's data (into a cluster: each
        master for its share of the slots)."""
        if self.target_topology is not None:
            for text in node_plan(target_cluster_facts(self.target_ep, self.target), 0, self.source.data_bytes())[1]:
                self.warn('%s. The copy stops with an out-of-memory error when it is full' % text)
            return
        memory = self.target.memory
        if not memory['maxmemory']:
            return
        need = self.source.data_bytes()
        if memory['used_memory'] is None or need is None:  # INFO renamed, disabled or denied (a managed plan)
            unknown = set(self.target.unknown.values()) | set(getattr(getattr(self.source, 'server', None),
                                                                      'unknown', {}).values())
            self.warn('capacity not checked: the memory use of %s or of the target is unknown (%s)'
                      % (self.source.label, '; '.join(sorted(unknown))))
            return
        room = memory['maxmemory'] - memory['used_memory']
        if need > room:
            self.warn('the target %s may be too small: %s holds about %d MiB of data, the target has about %d MiB '
                      'left under maxmemory (%s). The copy stops with an out-of-memory error when it is full'
                      % (self.target_ep.address, self.source.label, need // 2 ** 20, max(room, 0) // 2 ** 20,
                          memory['maxmemory_policy']))

    def warn(self, msg):
        self.warnings.append(msg)
        self.warn_callback(msg)

    def dbsize(self, db):
        """Keys in target ``db`` (over every master of a cluster)."""
        return total_dbsize(self.target_endpoints(), db)

    def result(self, partial=False):
        """The result dict (``partial``: of a run that stopped)."""
        dbs = [st.result for st in self.states]
        total = totals(dbs)
        seconds = max(time.time() - self.started, 1e-6)
        failures = []
        for st in self.states:
            failures.extend(st.failures)
        result = dict(
            changed=total['copied'] > 0,
            dbs=dbs,
            totals=total,
            failures=failures[:MAX_FAILURES_LISTED],
            bytes=total['bytes'],
            seconds=round(seconds, 3),
            keys_per_second=round(total['keys'] / seconds, 1),
            resumed=self.resumed,
            check_mode=self.opts.check_mode,
            on_conflict=self.opts.on_conflict,
            leftovers_removed=0 if self.opts.check_mode else self.leftovers,
            unsupported=self._unsupported_result(),
            cluster=self._cluster_result(),
        )
        result.update(CopyChoices.result(self.choices))
        if self.payload_path is not None:
            result['source'] = self.source.describe()
            result['target'] = self._describe_target()
            result['payload_path'] = self.payload_path
        result['target_keys_before'] = dict((str(k), v) for k, v in self.target_keys_before.items())
        self.writer.result(self, result)
        return result

    def _write_report(self, result):
        if self.opts.report and not self.opts.check_mode:
            data = dict(result, warnings=list(self.warnings))
            atomic_write(self.opts.report, json.dumps(data, indent=2, sort_keys=True))

    # -- one db ----------------------------------------------------------------------------------
    def _copy_db(self, state, planning, cursor=0, recheck=False):
        s_db = state.result['db']
        check_existing = planning or recheck or not state.target_empty
        values = self.writer.needs_values(state, planning, check_existing)
        before = None if planning else self.writer.start_db(self, state, planning, recheck)
        workers = 1 if planning else self.opts.workers
        if not planning and getattr(self.source, 'parted', False):
            workers = max(workers, len(self.source.masters))  # a cluster source: every master read at once
        seq_lock = threading.Lock()
        order = dict(next_seq=0, done=set(), cursors={})

        def committed(seq, cursor_after):
            # Advance the checkpoint to the end of the longest run of finished batches.
            if planning or self.checkpoint is None:
                return
            with seq_lock:
                order['done'].add(seq)
                order['cursors'][seq] = cursor_after
                advanced = None
                while order['next_seq'] in order['done']:
                    order['done'].discard(order['next_seq'])
                    advanced = order['cursors'].pop(order['next_seq'])
                    order['next_seq'] += 1
                if advanced is not None:
                    self._save_checkpoint(s_db, advanced, recheck)
            # A Sentinel master that moved stops the step (asked at most once a second), after the checkpoint:
            # a rerun resumes from it (from the start when the node it was written against changed).
            self.source_ep.check_master()
            self.target_ep.check_master()

        def make_worker():
            return DbWorker(self, state, values, planning, check_existing)

        def handle(worker, job):
            seq, (cursor_after, work) = job
            worker.process(work)
            committed(seq, cursor_after)

        scan_count = getattr(self.writer, 'scan_count', None)  # a writer may want bigger SCAN batches
        count = self.opts.batch_size if scan_count is None else scan_count(self)
        batches = self.source.batches(s_db, match=self.opts.match, count=count, cursor=cursor)
        process_batches(enumerate(batches), workers, make_worker, handle)
        if not planning:
            self.writer.reconcile(self, state, before)


def DumpRestore(source, target, options, warn=None):  # pylint: disable=invalid-name
    """The job of kv_dump_restore: a live source, the RESTORE writer."""
    return CopyJob('kv_dump_restore', LiveSource(source), target, options, RestoreWriter, warn=warn)
