# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The engine of ``kv_sync``: start, drain and remove a follower (see ``_sync_follow``), and the plan.

* ``started``: checks that live copy is possible (:func:`live_possibility`), that the target's
  mapped dbs are empty (or ``on_conflict=replace``), picks how expiries are kept in transit (``import``
  mode on a Valkey >= 8.1 target, else ``hold``), writes the record, starts the follower and returns
  once the snapshot is applied and the lag is at most ``max_lag``.  A record whose follower died
  resumes from its replication id and offset.  A live follower: ``changed=false`` and its status.
* ``stopped``: waits until the source's ``master_repl_offset`` stops moving and the follower has
  applied (and the target answered) everything up to it, stops the follower, sets the exact expiries
  held back, switches import mode off.  A source that keeps moving fails after ``drain_timeout`` and
  leaves the follower running.
* ``absent``: stops the follower without draining and removes the record and its files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time
import uuid

from ansible_collections.kvtools.migration.plugins.module_utils._backup_files import (
    check_free_space, expected_backup_bytes, rotation_plan)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._isolate import renewer_alive, stop_renewer
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import iter_keys_log
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    db_mapping, merge_groups, merge_text, total_dbsize, totals)
from ansible_collections.kvtools.migration.plugins.module_utils._preflight import live_possibility
from ansible_collections.kvtools.migration.plugins.module_utils._process import start_detached
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._sync_backup import backup_spec
from ansible_collections.kvtools.migration.plugins.module_utils._sync_cluster import discover_cluster
from ansible_collections.kvtools.migration.plugins.module_utils._sync_follow import (
    RECORD_FORMAT, Follower, read_record, write_record)
from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import (
    drop_marker, read_marker, settle_expiries)
from ansible_collections.kvtools.migration.plugins.module_utils._sync_sentinel import (
    drain_refusal, moved_masters, node_fields, resume_note)
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso


def count_written(keys_log):
    """Distinct keys in a touched-keys log (whole-db markers not counted); 0 without a log."""
    written = set()
    if keys_log and os.path.exists(keys_log):
        for db, key in iter_keys_log(keys_log):
            if key is not None:
                written.add((db, key))
    return len(written)


def record_written_count(record_path):
    """After a drain with ``count_written=False``: count the keys written since the snapshot, keep it in the record."""
    rec = read_record(record_path)
    if not rec or rec.get('state') != 'stopped':
        return None
    if rec.get('keys_written_since_snapshot') is None:
        rec['keys_written_since_snapshot'] = count_written(rec.get('keys_log'))
        write_record(record_path, rec)
    return rec['keys_written_since_snapshot']


class Sync:
    """``Sync(source_ep, target_ep, params, check_mode).run()`` -> the module result."""

    def __init__(self, source_ep, target_ep, params, check_mode=False):
        self.source = source_ep
        self.target = target_ep
        self.p = params
        self.check_mode = check_mode
        self.record_path = os.path.abspath(params['record'])
        self.spool_dir = os.path.abspath(params.get('spool_dir') or os.path.dirname(self.record_path))

    # -- validation -------------------------------------------------------------------------------
    def validate(self):
        p = self.p
        for name, low in (('max_lag', 0), ('started_timeout', 1), ('drain_timeout', 1), ('max_seconds', 1)):
            if p.get(name) is not None and p[name] < low:
                raise KVError('%s must be at least %d, got %s' % (name, low, p[name]), kind='config')
        if p.get('on_conflict') not in ('fail', 'replace'):
            raise KVError('on_conflict must be fail or replace, got %r' % p.get('on_conflict'), kind='config')
        if not os.path.isdir(os.path.dirname(self.record_path)):
            raise KVError('the directory of record does not exist: %s' % os.path.dirname(self.record_path),
                          kind='config')
        if not os.path.isdir(self.spool_dir):
            raise KVError('spool_dir does not exist: %s' % self.spool_dir, kind='config')
        if self.source.backup_file:
            raise KVError('kv_sync needs a live source server, not a backup file', kind='config')
        self.backup = backup_spec(p, self.source.address)
        if self.backup:
            taken = [self.record_path, os.path.join(self.spool_dir, '.%s' % os.path.basename(self.record_path))]
            if self.backup['dest'] in taken or self.backup['dest'] + '.json' == self.record_path:
                raise KVError('backup %s is the record (or one of its files): choose another path'
                              % self.backup['dest'], kind='config')

    def run(self):
        self.validate()
        state = self.p.get('state') or 'started'
        return getattr(self, '_' + state)()

    # -- helpers ----------------------------------------------------------------------------------
    def _pairs(self, src, cluster=False):
        mapping = db_mapping(self.p.get('db_map'))
        if self.p.get('dbs'):
            dbs = sorted(set(int(d) for d in self.p['dbs']))
        elif cluster:  # a cluster holds db 0 only; a standalone source's other dbs are checked in _plan
            dbs = [0]
        else:
            dbs = list(range(src.databases or 16))
        pairs = [(db, mapping.get(db, db)) for db in dbs]
        targets = [t for _s, t in pairs]
        if len(set(targets)) != len(targets):
            raise KVError('%s: kv_sync cannot merge dbs (a followed FLUSHDB, SWAPDB or MOVE in one of them would act on '
                          'the keys of the others, and the drain and the keys log work per target db); merge them '
                          'offline with kv_dump_restore or kv_migrate and allow_db_merge: true (playbook: kv_strategy: '
                          'offline, kv_allow_db_merge: true), or list the dbs to follow in dbs'
                          % merge_text(merge_groups(pairs)), kind='config')
        for s_db in mapping:
            if s_db not in dbs:
                raise KVError('db_map maps db %d, which is not in dbs %s' % (s_db, dbs), kind='config')
        return pairs

    def alive(self, rec):
        return bool(rec) and renewer_alive(rec)

    def source_offset(self):
        client = self.source.client(db=0)
        try:
            info = client.info('replication')
        except Exception as exc:
            raise self.source.error(exc, 'reading INFO replication')
        finally:
            client.close()
        return int(info.get('master_repl_offset', 0))

    def result(self, rec, changed, **extra):
        offset = rec.get('offset')
        result = dict(changed=changed, state=self.p.get('state') or 'started', phase=rec.get('phase'),
                      replid=rec.get('replid'), offset=offset, source_offset=None, lag_bytes=rec.get('lag_bytes'),
                      commands_applied=rec.get('commands_applied', 0), keys_log=rec.get('keys_log'),
                      keys_log_size=rec.get('keys_log_size', 0), pid=rec.get('pid'), last_error=rec.get('last_error'),
                      dbs=rec.get('dbs', []), totals=rec.get('totals') or totals(rec.get('dbs', [])),
                      snapshot_seconds=rec.get('snapshot_seconds'), catchup_seconds=rec.get('catchup_seconds'),
                      ttl_mode=rec.get('ttl_mode'), full_resyncs=rec.get('full_resyncs', 0),
                      continued=rec.get('continued', 0), record=self.record_path, transfer=rec.get('transfer'),
                      target_cluster=bool(rec.get('target_cluster')), source_cluster=bool(rec.get('part')),
                      commands_split=rec.get('commands_split', 0), redirects=rec.get('redirects'),
                      # the offset marker on the target while the follower runs (the drain removes it): not data
                      markers=[dict(db=db, key=key) for db, key in rec.get('markers') or []
                               if rec.get('state') != 'stopped'])
        if rec.get('backup_wanted') or rec.get('backup'):
            result.update(backup=rec.get('backup'), backup_note=rec.get('backup_note'))
        if rec.get('phase') not in ('stopped', 'absent', None):
            try:
                result['source_offset'] = self.source_offset()
                if offset is not None:
                    result['lag_bytes'] = max(0, result['source_offset'] - offset)
            except KVError:
                pass
        result.update(extra)
        return result

    # -- started ----------------------------------------------------------------------------------
    def make_plan(self):
        src = connect_server(self.source)
        try:
            tgt = connect_server(self.target)
        except KVError:
            src.client.close()
            raise
        try:
            possible, reason = live_possibility(src, tgt, dbs=self.p.get('dbs'), db_map=self.p.get('db_map'))
            if possible is False:  # None: the user's right to PSYNC is unknown; the link says if it is refused
                raise KVError('live copy is not possible: %s' % reason, kind='config')
            topology = discover_cluster(self.target, 'target') if tgt.cluster_enabled else None
            pairs = self._pairs(src, cluster=topology is not None or src.cluster_enabled)
            keyspace = src.keyspace()
            if topology is not None:
                self._check_cluster_dbs(pairs, keyspace)
                target_keys = {0: dict(keys=total_dbsize([m.endpoint for m in topology.masters], 0))}
            else:
                target_keys = tgt.keyspace()
            if tgt.databases is not None and topology is None:
                for _s, t in pairs:
                    if t >= tgt.databases:
                        raise KVError('target db %d does not exist (databases = %d): change db_map or dbs'
                                      % (t, tgt.databases), kind='config')
            busy = [(t, target_keys[t]['keys']) for _s, t in pairs if target_keys.get(t, {}).get('keys')]
            import_mode = None
            if tgt.engine == 'valkey' and tgt.version >= (8, 1, 0):
                import_mode = tgt.config_get('import-mode')
            version = None
            if src.engine == 'valkey' and src.version >= (8, 0, 0):
                version = tgt.version_string if tgt.engine == 'valkey' else '7.2.4'
            plan = dict(source=dict(address=self.source.address, engine=src.engine, version=src.version_string),
                        target=dict(address=self.target.address, engine=tgt.engine, version=tgt.version_string),
                        dbs=[dict(db=s, target_db=t, keys=keyspace.get(s, {}).get('keys', 0),
                                  expires=keyspace.get(s, {}).get('expires', 0),
                                  target_keys=target_keys.get(t, {}).get('keys', 0)) for s, t in pairs],
                        pairs=pairs, busy=busy, import_mode=import_mode, version=version, tgt=tgt, topology=topology,
                        backup_bytes=expected_backup_bytes(src.memory, src.info))
            return plan
        finally:
            src.client.close()

    def _check_cluster_dbs(self, pairs, keyspace):
        """Into a cluster: db 0 only, and no source keys left behind in dbs that are not followed."""
        other = [(s, t) for s, t in pairs if t != 0]
        if other:
            raise KVError('the target %s is a cluster, which holds db 0 only, and source db(s) %s would go to db(s) %s: '
                          'map one db to 0 with db_map (e.g. db_map: {%d: 0}) and list it in dbs'
                          % (self.target.address, ', '.join(str(s) for s, _t in other),
                             ', '.join(str(t) for _s, t in other), other[0][0]), kind='config')
        left = sorted(db for db, facts in keyspace.items() if facts.get('keys') and db not in dict(pairs))
        if left and not self.p.get('dbs'):
            raise KVError('the target %s is a cluster (db 0 only) and the source holds keys in db(s) %s, which a live '
                          'copy of db 0 would leave behind: choose the db to follow with dbs (and db_map: {N: 0}), '
                          'or copy offline (kv_dump_restore merges dbs into a cluster\'s db 0)'
                          % (self.target.address, ', '.join(str(d) for d in left)), kind='config')

    def _target_endpoints(self, topology=None):
        """The target, or every master of a target cluster."""
        if topology is None and self.target_cluster():
            topology = discover_cluster(self.target, 'target')
        return [self.target] if topology is None else [m.endpoint for m in topology.masters]

    def target_cluster(self):
        rec = read_record(self.record_path) or {}
        return bool(rec.get('target_cluster'))

    def ttl_mode_for(self, plan):
        """``('import', set_by_us)`` when the target can keep expired keys for us, else ``('hold', False)``."""
        if plan['import_mode'] is None:
            if plan['topology'] is not None:
                raise KVError('a live copy into a cluster needs Valkey 8.1 or later on the target (its import mode '
                              'keeps keys in transit from expiring on every master); the target is %s %s: copy offline '
                              '(kv_dump_restore)' % (plan['target']['engine'], plan['target']['version']), kind='config')
            return 'hold', False
        if plan['import_mode'] == 'yes':
            return 'import', False
        try:
            self._import_mode('yes', plan['topology'])
            return 'import', True
        except KVError as exc:
            if plan['topology'] is not None:
                raise KVError('a live copy into a cluster needs the import mode of every target master (it keeps keys '
                              'in transit from expiring), and it could not be switched on: %s. Set import-mode yes on '
                              'every master (CONFIG SET import-mode yes), or give the target user +config|set'
                              % exc.message, kind='config')
            return 'hold', False

    def _started(self):
        launched = self.launch()
        if 'token' not in launched:  # check mode: the plan
            return launched
        result = self.wait_caught_up(launched['token'], changed=launched['changed'], resumed=launched['resumed'])
        if launched.get('moved'):  # say where it follows now, and whether the old replication stream went on
            how, note = resume_note(launched['moved'], launched['before'], read_record(self.record_path) or {})
            result.update(failover=launched['moved'], resumed_by=how, msg=note)
        return result

    def launch(self):
        """Start (or find) the follower: ``{token, changed, resumed}``; in check mode the plan (a result)."""
        rec = read_record(self.record_path)
        deadline = time.time() + 15
        while rec and rec.get('phase') == 'failed' and self.alive(rec) and time.time() < deadline:
            time.sleep(0.05)  # a failed follower cleaning up (closing its link, removing temp files): let it end
        moved = moved_masters(self.source, self.target, rec) if rec and rec.get('state') != 'stopped' else []
        if rec and self.alive(rec):
            self.check_same(rec)
            if not moved:
                return dict(token=rec['token'], changed=False, resumed=False)
            if not self.check_mode:  # a Sentinel failover it has not seen yet: it follows the old master
                stop_renewer(rec, wait=15.0)
                if self.alive(rec):  # two followers must never write to the target at once
                    raise KVError('the follower (pid %s) follows the old master %s and did not stop within 15 s: '
                                  'stop that process, then run state=started again (it resumes from the record)'
                                  % (rec.get('pid'), moved[0]['old_master']), kind='error')
                rec = read_record(self.record_path) or rec
        resume = None
        fresh = True
        if rec and rec.get('state') == 'stopped':
            raise KVError('the live copy of record %s was drained and stopped at %s (offset %s); the target may be in '
                          'use now. Remove the record (state=absent) to start a new live copy'
                          % (self.record_path, rec.get('stopped_at'), rec.get('final_offset')), kind='config')
        if rec:
            self.check_same(rec)
            fresh = False
            if rec.get('snapshot_done') and rec.get('marker') and not rec.get('target_cluster'):
                # (into a cluster every master has a marker of its own: a dead follower restarts with a new snapshot)
                # the target's own marker, written with the data it describes, is where to continue exactly
                found = read_marker(self.target, (rec['marker'][0], rec['marker'][1].encode()))
                if found:
                    resume = dict(replid=found[0], offset=found[1], db=found[2])
        plan = self.make_plan()
        tgt = plan['tgt']
        try:
            part = self.p.get('part')  # one master of a cluster source (``_sync_parts``): the parent checked the target
            if fresh and plan['busy'] and self.p.get('on_conflict') != 'replace' and not part:
                raise KVError('the target already holds keys in the dbs to copy into (%s): empty them, or set '
                              'on_conflict=replace' % ', '.join('db %d: %d keys' % b for b in plan['busy']),
                              kind='conflict')
            self._check_backup_space(plan, rec)
            if self.check_mode:
                lines = self.plan_lines(plan, rec, resume)
                if moved:
                    lines.insert(0, 'would stop the follower (if it runs) and resume it on the new master: %s'
                                 % '; '.join('%s %s -> %s' % (m['side'], m['old_master'], m['new_master'])
                                             for m in moved))
                return dict(changed=True, state='started', phase=None, plan=lines,
                            dbs=[dict(d) for d in plan['dbs']], resumed=bool(resume), record=self.record_path,
                            backup=self._backup_plan(rec), failover=moved or None)
            if rec and rec.get('ttl_mode'):
                ttl_mode, set_by_us = rec['ttl_mode'], rec.get('import_mode_set_by_us', False)
            elif part:
                ttl_mode, set_by_us = part['ttl_mode'], False
            else:
                ttl_mode, set_by_us = self.ttl_mode_for(plan)
        finally:
            tgt.client.close()
        token = uuid.uuid4().hex
        base = os.path.join(self.spool_dir, '.%s' % os.path.basename(self.record_path))
        keys_log = (rec or {}).get('keys_log') or base + '.keys'
        held_log = (rec or {}).get('held_log') or base + '.held'
        settle_log = (rec or {}).get('settle_log') or base + '.settle'
        settle_from = dict(held=(rec or {}).get('settled_held_offset', 0), keys=(rec or {}).get('settled_keys_offset', 0))
        if fresh:
            settle_from = dict(held=0, keys=0)
            for path in (keys_log, held_log, settle_log):
                if os.path.exists(path):
                    os.unlink(path)
        deadline = time.time() + self.p['max_seconds']
        marker = (rec or {}).get('marker') or [min(t for _s, t in plan['pairs']), 'kvtools:sync:offset:%s' % token[:12]]
        markers = [marker] if plan['topology'] is None else []  # no marker on a cluster (see _sync_cluster_apply)
        new = dict(marker=marker, markers=markers, target_cluster=plan['topology'] is not None, part=bool(part),
                   format=RECORD_FORMAT, token=token, state='started', phase='starting',
                   source=self.source.identity, target=self.target.identity, pairs=plan['pairs'], ttl_mode=ttl_mode,
                   import_mode_set_by_us=set_by_us, keys_log=keys_log, held_log=held_log, settle_log=settle_log,
                   settled_held_offset=settle_from['held'], settled_keys_offset=settle_from['keys'],
                   spool_dir=self.spool_dir,
                   created_at=(rec or {}).get('created_at') or now_iso(), deadline=deadline,
                   replid=(rec or {}).get('replid'), offset=(rec or {}).get('offset'),
                   snapshot_done=bool(resume), full_resyncs=(rec or {}).get('full_resyncs', 0),
                   continued=(rec or {}).get('continued', 0), snapshot_seconds=(rec or {}).get('snapshot_seconds'),
                   dbs=(rec or {}).get('dbs', []), commands_before=(rec or {}).get('commands_applied', 0),
                   resumed=bool(resume), last_error=None, pid=None,
                   backup_wanted=(dict(dest=self.backup['dest'], keep=self.backup['keep'], encrypted=self.backup['encrypted'])
                                  if self.backup else None),
                   backup=(rec or {}).get('backup'), backup_note=(rec or {}).get('backup_note'), backup_error=None)
        if self.backup:
            self.backup.update(engine=plan['source']['engine'], version=plan['source']['version'])
        new.update(node_fields(self.source, self.target))  # the masters followed: a later step compares them
        write_record(self.record_path, new)
        cfg = dict(record=self.record_path, token=token, spool_dir=self.spool_dir, pairs=plan['pairs'],
                   ttl_mode=ttl_mode, import_source=(ttl_mode == 'import'), replace=self.p.get('on_conflict') == 'replace',
                   deadline=deadline, version=plan['version'], keys_log=keys_log, held_log=held_log,
                   settle_log=settle_log, settle_from=settle_from, resume=resume,
                   fresh_target=fresh and not (part and part.get('resync')), max_lag=self.p['max_lag'], marker=marker,
                   backup=self.backup, part=part and dict(ranges=part['ranges']),
                   target_cluster=plan['topology'] is not None)
        follower = Follower(cfg, self.source, self.target, self.p.get('spool_passphrase'),
                            self.p.get('backup_passphrase'))
        start_detached('kv_sync follower', follower.run)
        return dict(token=token, changed=True, resumed=bool(resume), moved=moved, before=rec)

    def check_same(self, rec):
        if rec.get('source') != self.source.identity or rec.get('target') != self.target.identity:
            raise KVError('the record %s belongs to a sync from %s to %s, not from %s to %s: use another record path '
                          '(or state=absent first)' % (self.record_path, rec.get('source'), rec.get('target'),
                                                       self.source.identity, self.target.identity), kind='config')

    def plan_lines(self, plan, rec, resume):
        lines = ['%s %s %s -> %s %s %s: live copy possible' % (
            self.source.address, plan['source']['engine'], plan['source']['version'], self.target.address,
            plan['target']['engine'], plan['target']['version'])]
        if resume:
            lines.append('would resume the stopped follower at offset %s of %s (PSYNC continue, or a new snapshot '
                         'if the source\'s backlog no longer has it)' % (resume['offset'], resume['replid']))
        for d in plan['dbs']:
            lines.append('db %d -> db %d: %d keys (%d with TTL), target holds %d'
                         % (d['db'], d['target_db'], d['keys'], d['expires'], d['target_keys']))
        how = 'target import mode' if plan['import_mode'] is not None else 'held back and set at the drain'
        lines.append('expiries in transit: %s' % how)
        backup = self._backup_plan(rec)
        if backup:
            lines.append(backup['msg'])
        return lines

    def _check_backup_space(self, plan, rec):
        """Before the follower starts: room for the backup in its directory (as kv_rdb_backup checks it)."""
        if not self.backup or (rec or {}).get('backup'):
            return
        need, basis = plan['backup_bytes']
        if not self.backup['check_space']:
            need, basis = None, 'backup_check_free_space is false'
        free = check_free_space(self.backup['dest'], need, basis, option='backup')
        self.backup['space'] = dict(directory=os.path.dirname(self.backup['dest']), free_bytes=free,
                                    needed_bytes=need, estimate=basis)

    def _backup_plan(self, rec):
        """Check mode: what would happen to the backup (``None`` without the option)."""
        if not self.backup:
            return None
        done = (rec or {}).get('backup')
        if done:
            return dict(dest=done.get('dest'), would='keep', sidecar=done.get('sidecar'), encrypted=done.get('encrypted'),
                        msg='backup: would keep %s, written from the first snapshot (offset %s)'
                            % (done.get('dest'), done.get('snapshot_offset')))
        moves, removals = rotation_plan(self.backup['dest'], self.backup['keep'], self.backup['keep_first'])
        return dict(dest=self.backup['dest'], sidecar=self.backup['dest'] + '.json', would='write',
                    space=self.backup.get('space'), keep_first=self.backup['keep_first'],
                    encrypted=self.backup['encrypted'], rotated=[dict(src=a, dest=b) for a, b in moves],
                    removed=removals,
                    msg='backup: would write the snapshot the follower receives to %s (%s, validated: RDB magic, end '
                        'opcode, CRC-64) and its sidecar %s.json, keeping %d older backup(s); the source forks once '
                        'for backup and copy' % (self.backup['dest'], 'encrypted with backup_passphrase'
                                                 if self.backup['encrypted'] else 'not encrypted',
                                                 self.backup['dest'], self.backup['keep']))

    def wait_caught_up(self, token, changed, resumed=False):
        deadline = time.time() + self.p['started_timeout']
        while True:
            rec = read_record(self.record_path) or {}
            if rec.get('token') != token:
                raise KVError('the record %s was replaced or removed while starting' % self.record_path, kind='error')
            phase = rec.get('phase')
            if phase == 'failed':
                err = KVError('the follower failed: %s' % rec.get('last_error'), kind=rec.get('last_error_kind') or 'error')
                err.partial = self.result(rec, changed)
                raise err
            if phase == 'streaming':
                if rec.get('backup_wanted') and not rec.get('backup'):
                    err = KVError('the backup was not written: %s. The follower keeps running; stop it (state=absent) '
                                  'and start again for a backup from a new snapshot, or take it with kv_rdb_backup'
                                  % (rec.get('backup_error') or 'no complete snapshot'), kind='error')
                    err.partial = self.result(rec, changed)
                    raise err
                return self.result(rec, changed, resumed=resumed)
            if rec.get('pid') and not self.alive(rec) and phase != 'streaming':
                raise KVError('the follower (pid %s) ended in phase %s: %s'
                              % (rec.get('pid'), phase, rec.get('last_error')), kind='error')
            if time.time() > deadline:
                err = KVError('the follower has not caught up within started_timeout (%s s): phase %s, lag %s bytes. It '
                              'keeps running; run the task again to wait more, or state=absent to stop it'
                              % (self.p['started_timeout'], phase, rec.get('lag_bytes')), kind='timeout')
                err.partial = self.result(rec, changed)
                raise err
            time.sleep(0.02)

    # -- stopped ----------------------------------------------------------------------------------
    def _stopped(self):
        rec = read_record(self.record_path)
        if not rec:
            return dict(changed=False, state='stopped', phase='absent', record=self.record_path,
                        msg='no follower record at %s: nothing to drain' % self.record_path)
        self.check_same(rec)
        alive = self.alive(rec)
        if not alive and rec.get('state') == 'stopped':
            return self.result(rec, False, final_offset=rec.get('final_offset'), drain_seconds=rec.get('drain_seconds'),
                               keys_written_since_snapshot=rec.get('keys_written_since_snapshot'))
        refusal = drain_refusal(self.source, self.target, rec, self.record_path)
        if refusal is not None:
            raise refusal
        if not alive:
            raise KVError('the follower is not running (phase %s, last error: %s): the target may be behind the '
                          'source. Run state=started to resume it, then state=stopped again'
                          % (rec.get('phase'), rec.get('last_error')), kind='error')
        if self.check_mode:
            return self.result(rec, True, msg='would wait until the source stops moving and the follower has '
                                              'applied everything, then stop it')
        started = time.time()
        deadline = started + self.p['drain_timeout']
        target_offset = None
        while time.time() < deadline:
            first = self.source_offset()
            rec = self.wait_offset(first, deadline)
            if rec is None:
                break
            if self.source_offset() == first:
                target_offset = first
                break
        if target_offset is None:
            rec = read_record(self.record_path) or rec or {}
            raise KVError('the source kept moving for drain_timeout (%s s): applied offset %s, source offset %s. Pause '
                          'the writers (kv_isolate) and run state=stopped again; the follower keeps running'
                          % (self.p['drain_timeout'], rec.get('offset'), self.source_offset()), kind='timeout')
        return self.finish_drain(rec, target_offset, started)

    def finish_drain(self, rec, target_offset, started):
        """The follower applied everything up to ``target_offset``: stop it, settle, write the stopped record."""
        steps = dict(wait=time.time() - started)
        stop_renewer(rec, wait=15.0)
        steps['stop'] = time.time() - started - steps['wait']
        rec = read_record(self.record_path) or rec
        if rec.get('offset') is None or rec['offset'] < target_offset:
            raise KVError('the follower stopped at offset %s, before the drained offset %s'
                          % (rec.get('offset'), target_offset))
        if rec.get('marker'):
            self._drop_marker(rec)
        settled = 0
        if rec.get('ttl_mode') == 'hold':
            settled = settle_expiries(self.target, rec.get('keys_log'), rec.get('held_log'),
                                      start=rec.get('settled_keys_offset') or 0,
                                      held_start=rec.get('settled_held_offset') or 0,
                                      settle_log_path=rec.get('settle_log'))
        elif rec.get('import_mode_set_by_us'):
            self.import_mode_off()
        steps['settle'] = time.time() - started - steps['wait'] - steps['stop']
        # kv_cutover counts after the release (count_written=False): reading the whole log grows with the follow
        written = count_written(rec.get('keys_log')) if self.p.get('count_written', True) else None
        rec.update(state='stopped', phase='stopped', final_offset=rec['offset'], drain_seconds=round(
            time.time() - started, 3), keys_written_since_snapshot=written,
            expiries_settled=settled, expiries_settled_early=rec.get('expiries_settled_early', 0), stopped_at=now_iso(),
            pid=None,
            drain_steps=dict((k, round(v, 3)) for k, v in steps.items()))
        write_record(self.record_path, rec)
        return self.result(rec, True, final_offset=rec['offset'], drain_seconds=rec['drain_seconds'],
                           keys_written_since_snapshot=rec['keys_written_since_snapshot'], expiries_settled=settled,
                           expiries_settled_early=rec['expiries_settled_early'], drain_steps=rec['drain_steps'])

    def wait_offset(self, offset, deadline):
        while time.time() < deadline:
            rec = read_record(self.record_path) or {}
            if rec.get('phase') == 'failed':
                raise KVError('the follower failed: %s' % rec.get('last_error'), kind=rec.get('last_error_kind') or 'error')
            if not self.alive(rec):
                raise KVError('the follower ended while draining (phase %s: %s)'
                              % (rec.get('phase'), rec.get('last_error')))
            if rec.get('phase') == 'streaming' and rec.get('offset') is not None and rec['offset'] >= offset:
                return rec
            time.sleep(0.01)
        return None

    def _drop_marker(self, rec):
        if not rec.get('target_cluster'):
            drop_marker(self.target, (rec['marker'][0], rec['marker'][1].encode()))

    def import_mode_off(self):
        self._import_mode('no')

    def _import_mode(self, value, topology=None):
        for endpoint in self._target_endpoints(topology):
            client = endpoint.client(db=0)
            try:
                client.config_set('import-mode', value)
            except Exception as exc:
                raise endpoint.error(exc, 'switching import mode %s (CONFIG SET import-mode %s)'
                                     % ('on' if value == 'yes' else 'off', value))
            finally:
                client.close()

    # -- absent -----------------------------------------------------------------------------------
    def remove(self):
        return self._absent()

    def _absent(self):
        rec = read_record(self.record_path)
        if not rec:
            return dict(changed=False, state='absent', phase='absent', record=self.record_path)
        if self.check_mode:
            return dict(changed=True, state='absent', phase=rec.get('phase'), record=self.record_path)
        previous_phase = rec.get('phase')  # before the follower, stopping, writes its last phase
        stop_renewer(rec, wait=15.0)
        rec = read_record(self.record_path) or rec
        if rec.get('import_mode_set_by_us') and rec.get('state') != 'stopped':
            try:
                self.import_mode_off()
            except KVError:
                pass
        if rec.get('marker'):
            try:
                self._drop_marker(rec)
            except KVError:
                pass
        for path in (rec.get('keys_log'), rec.get('held_log'), rec.get('settle_log')):
            if path and os.path.exists(path):
                os.unlink(path)
        os.unlink(self.record_path)
        return dict(changed=True, state='absent', phase='absent', record=self.record_path,
                    offset=rec.get('offset'), replid=rec.get('replid'), previous_phase=previous_phase,
                    drained=rec.get('state') == 'stopped')
