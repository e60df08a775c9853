# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``kv_sync`` from a cluster: one follower per source master, owned by one parent record.

:func:`live_sync` is the engine the module and kv_cutover call: a :class:`~._sync.Sync` for a standalone
source, a :class:`ClusterSync` for a cluster.  The cluster's masters are found from the node given
(``CLUSTER SHARDS``); each master is a *part*: a :class:`~._sync.Sync` of its own, with the master as its
source and a record of its own (``<record>.part<N>``: replication id, offset, files), so it is started,
resumed, drained and removed exactly as a standalone follow is.  A part owns the slots of its master: a
full resync or a followed ``FLUSHALL`` removes only the keys of those slots from the target.

The parent record lists the parts and the topology they follow.  ``started`` returns once every part has
applied its snapshot and is under ``max_lag``; a rerun with every follower alive is ``changed: false``; a
rerun after a part died resumes that part.  A topology that changed (failover, slots moved) is detected by
each follower (it stops, naming it) and by this parent: a rerun then removes the parts and follows the
masters the cluster has now, each from a new snapshot that replaces its slots' keys on the target.
``stopped`` drains every part: each master's ``master_repl_offset`` stops moving and its follower has
applied (and the target answered) everything up to it; then all are stopped.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import add_counts, totals
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._sync import Sync, record_written_count
from ansible_collections.kvtools.migration.plugins.module_utils._sync_cluster import (
    discover_cluster, topology_signature)
from ansible_collections.kvtools.migration.plugins.module_utils._sync_follow import (
    RECORD_FORMAT, read_record, write_record)
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso

PART_FIELDS = ('phase', 'replid', 'offset', 'lag_bytes', 'commands_applied', 'snapshot_seconds', 'catchup_seconds',
               'last_error', 'final_offset', 'drain_seconds', 'keys_written_since_snapshot', 'full_resyncs',
               'continued', 'source_offset', 'pid', 'keys_log', 'keys_log_size', 'redirects')


def live_sync(source_ep, target_ep, params, check_mode=False):
    """The engine of kv_sync: :class:`ClusterSync` when the source is a cluster (or the record is a parent's)."""
    rec = read_record(os.path.abspath(params['record']))
    if rec is not None:
        parted = rec.get('parts') is not None
    else:
        server = connect_server(source_ep)
        try:
            parted = server.cluster_enabled
        finally:
            server.client.close()
    engine = ClusterSync if parted else Sync
    return engine(source_ep, target_ep, params, check_mode=check_mode).run()


def written_count(record_path):
    """After a drain with ``count_written=False``: the keys written since the snapshots (every part)."""
    rec = read_record(record_path)
    if not rec or rec.get('parts') is None:
        return record_written_count(record_path)
    if rec.get('state') != 'stopped':
        return None
    counts = [record_written_count(part['record']) for part in rec['parts']]
    return None if any(c is None for c in counts) else sum(counts)


def merge_dbs(results):
    """The per-db counts of every part, summed per source db (the shared per-db shape)."""
    merged = {}
    for result in results:
        for entry in result.get('dbs') or []:
            if entry['db'] in merged:
                add_counts(merged[entry['db']], entry)
            else:
                merged[entry['db']] = dict(entry)
    return [merged[db] for db in sorted(merged)]


class ClusterSync:
    """``ClusterSync(source_ep, target_ep, params, check_mode).run()`` -> the module result."""

    def __init__(self, source_ep, target_ep, params, check_mode=False):
        self.source = source_ep
        self.target = target_ep
        self.p = params
        self.check_mode = check_mode
        self.base = Sync(source_ep, target_ep, params, check_mode)
        self.record_path = self.base.record_path

    def run(self):
        self.base.validate()
        if self.base.backup:
            raise KVError('backup is not supported with a cluster source yet (it would need one RDB per master): take '
                          'the backup with kv_dump_restore into a logical backup, or without backup', kind='config')
        state = self.p.get('state') or 'started'
        return getattr(self, '_' + state)()

    # -- parts ----------------------------------------------------------------------------------------
    def _part(self, index, endpoint=None, **part):
        params = dict(self.p, record='%s.part%d' % (self.record_path, index), part=dict(part, index=index))
        engine = Sync(endpoint or self.source, self.target, params, self.check_mode)
        engine.validate()
        return engine

    def _parts(self, rec):
        """The part engines of a parent record (the master endpoints rebuilt from its topology)."""
        topology = discover_cluster(self.source, 'source')
        by_id = dict((m.node_id, m) for m in topology.masters)
        out = []
        for index, part in enumerate(rec['parts']):
            master = by_id.get(part['node_id'])
            endpoint = master.endpoint if master is not None and master.address == part['address'] else None
            out.append(self._part(index, endpoint, ranges=part['ranges'], ttl_mode=rec.get('ttl_mode')))
        return out, topology

    def _check_same(self, rec):
        if rec.get('source') != self.source.identity or rec.get('target') != self.target.identity:
            raise KVError('the record %s belongs to a sync from %s to %s, not from %s to %s: use another record path '
                          '(or state=absent first)' % (self.record_path, rec.get('source'), rec.get('target'),
                                                       self.source.identity, self.target.identity), kind='config')

    def _result(self, rec, results, changed, **extra):
        parts = []
        for part, result in zip(rec['parts'], results):
            entry = dict(address=part['address'], node_id=part['node_id'],
                         slots=sum(b - a + 1 for a, b in part['ranges']), record=part['record'])
            for name in PART_FIELDS:
                entry[name] = result.get(name)
            entry['dbs'] = result.get('dbs') or []
            entry['totals'] = result.get('totals') or totals(entry['dbs'])
            parts.append(entry)
        dbs = merge_dbs(results)
        phases = set(p['phase'] for p in parts)
        lags = [p['lag_bytes'] for p in parts if p['lag_bytes'] is not None]
        logged = [p for p in parts if p['keys_log']]  # keys_logs and keys_log_sizes: one entry per log, same order
        out = dict(changed=changed, state=self.p.get('state') or 'started',
                   phase=phases.pop() if len(phases) == 1 else 'mixed', parts=parts, dbs=dbs, totals=totals(dbs),
                   commands_applied=sum(p['commands_applied'] or 0 for p in parts),
                   lag_bytes=max(lags) if lags else None, record=self.record_path, ttl_mode=rec.get('ttl_mode'),
                   full_resyncs=rec.get('full_resyncs', 0) + sum(p['full_resyncs'] or 0 for p in parts),
                   snapshot_seconds=max([p['snapshot_seconds'] or 0 for p in parts] or [0]),
                   offsets=dict((p['address'], p['offset']) for p in parts),
                   keys_logs=[p['keys_log'] for p in logged],
                   keys_log_sizes=[p['keys_log_size'] or 0 for p in logged],
                   markers=[m for result in results for m in result.get('markers') or []],
                   source_cluster=True,
                   target_cluster=bool(rec.get('target_cluster')))
        if any(p['redirects'] for p in parts):
            out['redirects'] = dict((kind, sum((p['redirects'] or {}).get(kind, 0) for p in parts))
                                    for kind in ('moved', 'ask', 'tryagain'))
        out.update(extra)
        return out

    # -- started --------------------------------------------------------------------------------------
    def _started(self):
        rec = read_record(self.record_path)
        if rec:
            self._check_same(rec)
            if rec.get('state') == 'stopped':
                raise KVError('the live copy of record %s was drained and stopped at %s; the target may be in use now. '
                              'Remove the record (state=absent) to start a new live copy'
                              % (self.record_path, rec.get('stopped_at')), kind='config')
        topology = discover_cluster(self.source, 'source')
        signature = topology_signature(topology)
        moved = rec is not None and rec.get('topology') != signature
        if rec is not None and not moved:
            engines = self._engines(topology, rec.get('ttl_mode'), rec.get('resync', False))
            if all(engine.alive(read_record(engine.record_path)) for engine in engines):
                return self._follow(rec, engines, topology, False)  # every follower runs: their status (check mode too)
        first = self._part(0, topology.masters[0].endpoint, ranges=topology.masters[0].ranges)
        plan = first.make_plan()
        try:
            if rec is None and plan['busy'] and self.p.get('on_conflict') != 'replace':
                raise KVError('the target already holds keys in the dbs to copy into (%s): empty them, or set '
                              'on_conflict=replace' % ', '.join('db %d: %d keys' % b for b in plan['busy']),
                              kind='conflict')
            if self.check_mode:
                lines = ['source cluster %s: %d masters, one follower each (PSYNC to each master)'
                         % (self.source.address, len(topology.masters))]
                if moved:
                    lines.append('the source cluster changed since the followers started (%s): would stop them and '
                                 'take new snapshots of every master' % self._changes(rec.get('topology'), signature))
                lines.extend(first.plan_lines(plan, None, None)[1:])
                return dict(changed=True, state='started', phase=None, plan=lines, dbs=[dict(d) for d in plan['dbs']],
                            record=self.record_path, parts=[m.describe() for m in topology.masters])
            if rec is not None and rec.get('ttl_mode'):
                ttl_mode, set_by_us = rec['ttl_mode'], rec.get('import_mode_set_by_us', False)
            else:
                ttl_mode, set_by_us = first.ttl_mode_for(plan)
        finally:
            plan['tgt'].client.close()
        resync = False
        full_resyncs = (rec or {}).get('full_resyncs', 0)
        if moved:  # the old followers follow masters that no longer serve those slots: new snapshots of all
            self._remove_parts(rec)
            resync = True
            full_resyncs += 1
        elif rec is not None:
            resync = rec.get('resync', False)
        new = dict(format=RECORD_FORMAT, state='started', phase='starting', source=self.source.identity,
                   target=self.target.identity, topology=signature, ttl_mode=ttl_mode, import_mode_set_by_us=set_by_us,
                   created_at=(rec or {}).get('created_at') or now_iso(), full_resyncs=full_resyncs, resync=resync,
                   target_cluster=plan['topology'] is not None,
                   parts=[dict(address=m.address, node_id=m.node_id, ranges=[list(r) for r in m.ranges],
                               record='%s.part%d' % (self.record_path, i)) for i, m in enumerate(topology.masters)])
        write_record(self.record_path, new)
        return self._follow(new, self._engines(topology, ttl_mode, resync), topology, moved)

    def _engines(self, topology, ttl_mode, resync):
        return [self._part(i, m.endpoint, ranges=[list(r) for r in m.ranges], ttl_mode=ttl_mode, resync=resync)
                for i, m in enumerate(topology.masters)]

    def _follow(self, rec, engines, topology, moved):
        """Start (or find) every part's follower and wait until each has caught up."""
        launched = [engine.launch() for engine in engines]
        results = []
        failure = None
        for engine, master, started in zip(engines, topology.masters, launched):
            try:
                results.append(engine.wait_caught_up(started['token'], changed=started['changed'],
                                                     resumed=started['resumed']))
            except KVError as exc:
                results.append(getattr(exc, 'partial', None) or engine.result(read_record(engine.record_path) or {},
                                                                              started['changed']))
                if failure is None:
                    failure = KVError('the follower of source master %s: %s' % (master.address, exc.message),
                                      kind=exc.kind, endpoint=master.address)
        changed = moved or any(started['changed'] for started in launched)
        result = self._result(rec, results, changed, resumed=any(r.get('resumed') for r in results),
                              topology_changed=moved)
        if failure is not None:
            failure.partial = result
            raise failure
        return result

    @staticmethod
    def _changes(old, new):
        old_text = ', '.join('%s %s' % (n[1], n[2]) for n in old or [])
        new_text = ', '.join('%s %s' % (n[1], n[2]) for n in new or [])
        return 'followed: %s; now: %s' % (old_text, new_text)

    def _remove_parts(self, rec):
        for index, part in enumerate(rec['parts']):
            engine = self._part(index, ranges=part['ranges'], ttl_mode=rec.get('ttl_mode'))
            engine.remove()

    # -- stopped --------------------------------------------------------------------------------------
    def _stopped(self):
        rec = read_record(self.record_path)
        if not rec:
            return dict(changed=False, state='stopped', phase='absent', record=self.record_path,
                        msg='no follower record at %s: nothing to drain' % self.record_path)
        self._check_same(rec)
        engines, topology = self._parts(rec)
        recs = [read_record(engine.record_path) or {} for engine in engines]
        if rec.get('state') == 'stopped':
            return self._result(rec, [engine.result(r, False) for engine, r in zip(engines, recs)], False)
        for part, engine, part_rec in zip(rec['parts'], engines, recs):
            if part_rec.get('state') != 'stopped' and not engine.alive(part_rec):
                raise KVError('the follower of source master %s is not running (phase %s, last error: %s): the target '
                              'may be behind the source. Run state=started to resume it, then state=stopped again'
                              % (part['address'], part_rec.get('phase'), part_rec.get('last_error')), kind='error')
        signature = topology_signature(topology)
        if signature != rec.get('topology'):
            raise KVError('the source cluster changed while it was followed (%s): writes may have moved to masters the '
                          'followers do not read. Run state=started (new snapshots of every master), then drain'
                          % self._changes(rec.get('topology'), signature), kind='topology')
        if self.check_mode:
            return self._result(rec, [engine.result(r, True) for engine, r in zip(engines, recs)], True,
                                msg='would wait until every source master stops moving and its follower has applied '
                                    'everything, then stop them')
        live = [i for i, r in enumerate(recs) if r.get('state') != 'stopped']
        started = time.time()
        deadline = started + self.p['drain_timeout']
        offsets = None
        while time.time() < deadline:
            first = dict((i, engines[i].source_offset()) for i in live)
            reached = True
            for i in live:
                part_rec = engines[i].wait_offset(first[i], deadline)
                if part_rec is None:
                    reached = False
                    break
                recs[i] = part_rec
            if not reached:
                break
            if all(engines[i].source_offset() == first[i] for i in live):
                offsets = first
                break
        if offsets is None:
            raise KVError('the source masters kept moving for drain_timeout (%s s): pause the writers (kv_isolate) and '
                          'run state=stopped again; the followers keep running' % self.p['drain_timeout'],
                          kind='timeout')
        if topology_signature(discover_cluster(self.source, 'source')) != rec.get('topology'):
            raise KVError('the source cluster changed during the drain: run state=started (new snapshots), then drain '
                          'again', kind='topology')
        results = [None] * len(engines)
        for i in live:
            results[i] = engines[i].finish_drain(recs[i], offsets[i], started)
        for i, engine in enumerate(engines):
            if results[i] is None:
                results[i] = engine.result(read_record(engine.record_path) or {}, False)
        if rec.get('import_mode_set_by_us'):
            self.base.import_mode_off()
        rec.update(state='stopped', phase='stopped', stopped_at=now_iso(), drain_seconds=round(time.time() - started, 3))
        write_record(self.record_path, rec)
        written = [r.get('keys_written_since_snapshot') for r in results]
        return self._result(rec, results, True, drain_seconds=rec['drain_seconds'],
                            final_offsets=dict((p['address'], r.get('final_offset'))
                                               for p, r in zip(rec['parts'], results)),
                            keys_written_since_snapshot=None if any(w is None for w in written) else sum(written))

    # -- absent ---------------------------------------------------------------------------------------
    def _absent(self):
        rec = read_record(self.record_path)
        if not rec:
            return dict(changed=False, state='absent', phase='absent', record=self.record_path)
        if self.check_mode:
            return dict(changed=True, state='absent', phase=rec.get('phase'), record=self.record_path,
                        parts=len(rec.get('parts') or []))
        removed = []
        for index, part in enumerate(rec.get('parts') or []):
            engine = self._part(index, ranges=part['ranges'], ttl_mode=rec.get('ttl_mode'))
            removed.append(dict(address=part['address'], **engine.remove()))
        if rec.get('import_mode_set_by_us') and rec.get('state') != 'stopped':
            try:
                self.base.import_mode_off()
            except KVError:
                pass
        os.unlink(self.record_path)
        return dict(changed=True, state='absent', phase='absent', record=self.record_path, parts=removed,
                    drained=rec.get('state') == 'stopped')
