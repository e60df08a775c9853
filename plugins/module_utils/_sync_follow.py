# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The detached follower of ``kv_sync`` and its record file.

The follower is a process of its own (forked twice from the module, new session, stdio on
/dev/null, every inherited descriptor closed), so the task can return while it follows the source.
It gets the parsed endpoints from memory: no password or passphrase in its argv or environment, and
none in the record.  It is owned by the record, with the lease discipline of kv_isolate's renewer:
a random token in the record; it stops when the record is removed or names another token, after
``max_seconds``, or on SIGTERM.  About five times a second it rewrites the record (atomically, 0600)
with its phase, the replication id, the applied offset, the lag and the counts.

A lost link is followed by ``PSYNC <replid> <applied+1>``: ``+CONTINUE`` goes on, ``+FULLRESYNC``
empties the mapped target dbs and applies the new snapshot (``full_resyncs`` counts them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import time
import traceback

from ansible_collections.kvtools.migration.plugins.module_utils._files import read_record_file, write_record_file
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter
from ansible_collections.kvtools.migration.plugins.module_utils._process import process_start_time
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import totals
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import SnapshotParser
from ansible_collections.kvtools.migration.plugins.module_utils._sync_backup import SnapshotBackup
from ansible_collections.kvtools.migration.plugins.module_utils._sync_cluster import (
    MasterWatch, discover_cluster, slot_flags)
from ansible_collections.kvtools.migration.plugins.module_utils._sync_cluster_apply import ClusterApplier
from ansible_collections.kvtools.migration.plugins.module_utils._sync_limits import buffer_drops, explain_close
from ansible_collections.kvtools.migration.plugins.module_utils._sync_link import ReplicaLink
from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import HOLD_OFFSET
from ansible_collections.kvtools.migration.plugins.module_utils._sync_settle import BackgroundSettler
from ansible_collections.kvtools.migration.plugins.module_utils._sync_stream import Applier
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso

RECORD_FORMAT = 'kvtools.migration/sync/1'
RECORD_EVERY = 0.2
RECONNECT_SECONDS = 60.0
BACKUP_FINISH_SECONDS = 600.0   # after a failure, the longest wait for the rest of the snapshot's transfer
RETRY_KINDS = ('connection', 'timeout', 'refused', 'unreachable', 'truncated', 'loading')


class StopFollower(Exception):
    """Raised in the follower by SIGTERM."""


def read_record(path):
    """The record at ``path`` as a dict, or None when there is none."""
    return read_record_file(path, RECORD_FORMAT, 'kv_sync')


def write_record(path, record):
    write_record_file(path, record, 'kv_sync')


def _token_of(path):
    try:
        with open(path, 'r') as fh:
            return json.load(fh).get('token')
    except (IOError, OSError, ValueError, AttributeError):
        return None


class Follower:
    """The follower's main loop (runs in the detached process).

    ``cfg``: record, token, spool_dir, pairs, ttl_mode, import_source, replace, deadline, version,
    keys_log, held_log, resume (``{replid, offset, db}`` or None), fresh_target (bool).
    """

    def __init__(self, cfg, source_ep, target_ep, spool_passphrase=None, backup_passphrase=None):
        self.cfg = cfg
        self.source = source_ep
        self.target = target_ep
        self.passphrase = spool_passphrase
        self.backup_passphrase = backup_passphrase
        self.secrets = list(source_ep.secrets) + list(target_ep.secrets) + [
            secret for secret in (spool_passphrase, backup_passphrase) if secret]
        self.backup = None          # the SnapshotBackup of the snapshot being received, until installed
        self.record = read_record(cfg['record']) or {}
        self.link = None
        self.applier = None
        self.last_write = 0.0
        self.stopping = False
        self.settler = None
        self.held_bound = 0
        self.watch = None           # a followed master of a cluster: its role and slots (``_sync_cluster``)

    # -- record -----------------------------------------------------------------------------------
    def _owned(self):
        return _token_of(self.cfg['record']) == self.cfg['token']

    def update(self, force=False, **fields):
        self.record.update(fields)
        now = time.time()
        if not force and now - self.last_write < RECORD_EVERY:
            return
        self.last_write = now
        if not self._owned():
            raise StopFollower('the record no longer names this follower')
        if time.time() > self.cfg['deadline']:
            raise StopFollower('max_seconds reached')
        a = self.applier
        link = self.link
        if a is not None:
            received = None
            if link is not None and link.offset is not None and link.rdb_done.is_set():
                received = link.offset + link.received
            applied = a.applied
            self.record.update(offset=applied, stream_db=a.applied_db, commands_applied=self.record.get(
                'commands_before', 0) + a.commands, commands_skipped=a.skipped, commands_dropped=a.dropped,
                commands_split=getattr(a, 'split', 0), redirects=dict(getattr(a, 'redirects', None) or {}) or None,
                received_offset=received,
                lag_bytes=(max(0, received - applied) if received is not None and applied is not None else None),
                dbs=[a.counts[s] for s in sorted(a.counts)], functions=a.functions)
            self.record['totals'] = totals(self.record['dbs'])
            self.record['keys_log_size'] = a.keys_log.size()
        if self.settler is not None:
            self.record.update(settled_held_offset=self.settler.published.get('held', 0),
                               settled_keys_offset=self.settler.published.get('keys', 0),
                               expiries_settled_early=self.settler.settled, settle_note=self.settler.disabled or
                               self.settler.last_error)
        self.record['updated_at'] = now_iso()
        if self.record.get('pid') != os.getpid():
            self.record['pid'] = os.getpid()
            self.record['pid_start_time'] = process_start_time(os.getpid())
        write_record(self.cfg['record'], self.record)

    # -- main -------------------------------------------------------------------------------------
    def run(self):
        def on_term(signum, frame):
            if not self.stopping:
                self.stopping = True
                raise StopFollower('stopped')
        signal.signal(signal.SIGTERM, on_term)
        for endpoint in (self.source, self.target):  # the module's connection to the master is not ours to use
            if endpoint.master_watch is not None:
                endpoint.master_watch.close()
        keys_log = held_log = None
        try:
            keys_log = KeysLogWriter(self.cfg['keys_log'])
            held_log = KeysLogWriter(self.cfg['held_log']) if self.cfg['ttl_mode'] == 'hold' else None
            if held_log is not None and self.cfg.get('resume'):  # its snapshot was applied whole before
                self.held_bound = held_log.size()
            marker = (self.cfg['marker'][0], self.cfg['marker'][1].encode())
            part = self.cfg.get('part')  # the follower of one master of a cluster source: its slots
            slots = slot_flags(part['ranges']) if part else None
            if part:
                self.watch = MasterWatch(self.source, part['ranges'])
            if self.cfg.get('target_cluster'):
                self.applier = ClusterApplier(self.target, discover_cluster(self.target, 'target'), self.cfg['pairs'],
                                              keys_log, ttl_mode=self.cfg['ttl_mode'], replace=self.cfg['replace'],
                                              slots=slots)
            else:
                self.applier = Applier(self.target, self.cfg['pairs'], keys_log, ttl_mode=self.cfg['ttl_mode'],
                                       replace=self.cfg['replace'], held_log=held_log, marker=marker, slots=slots)
            self.applier.connect(import_source=self.cfg['import_source'])
            self.follow()
        except StopFollower as exc:
            self._final('stopped' if str(exc) == 'stopped' else 'stopped', None)
        except KVError as exc:
            self._final('failed', scrub(str(exc), self.secrets), exc.kind)
        except Exception as exc:  # a bug: keep its trace in the record, without secrets
            self._final('failed', scrub('unexpected error in the follower: %s: %s | %s' % (
                type(exc).__name__, exc, traceback.format_exc()[-1500:]), self.secrets))
        finally:
            if self.settler is not None:
                self.settler.stop()
            if self.link is not None:
                self.link.close()
                self.link.cleanup()
            if self.backup is not None:  # a snapshot cut off or refused: no half backup stays behind
                self.backup.abort()
                self.backup = None
            for log in (keys_log, held_log):
                if log is not None:
                    try:
                        log.close()
                    except Exception:
                        pass
            if self.applier is not None:
                self.applier.close()
            if self.watch is not None:
                self.watch.close()

    def _start_settler(self):
        """In hold mode, once caught up: set the exact expiries that are far enough ahead (``_sync_settle``)."""
        if self.settler is not None or self.cfg['ttl_mode'] != 'hold' or not self.cfg.get('settle_log'):
            return
        max_lag = max(self.cfg.get('max_lag', 0), 1 << 20)

        def ready():
            lag = self.record.get('lag_bytes')
            return self.record.get('phase') == 'streaming' and lag is not None and lag <= max_lag

        start = self.cfg.get('settle_from') or {}

        def bounds():  # how far each log holds only keys whose writes the target has answered
            return dict(held=self.held_bound, keys=self.applier.log_applied)

        self.settler = BackgroundSettler(self.target, HOLD_OFFSET,
                                         dict(held=(self.cfg['held_log'], start.get('held', 0)),
                                              keys=(self.cfg['keys_log'], start.get('keys', 0))),
                                         self.cfg['settle_log'], ready, bounds)
        self.settler.start()

    def _final(self, phase, error, kind='error'):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.settler is not None:  # its last offsets go into the last record (the drain starts from them)
            self.settler.stop()
        try:
            if self.applier is not None and self.applier.conn is not None and phase == 'stopped':
                try:
                    self.applier.wait_all()
                except Exception:
                    pass
            if not self._owned():
                return
            fields = dict(phase=phase, stopped_at=now_iso())
            backup = self.backup
            link = self.link
            if phase == 'failed' and backup is not None and backup.installing is None and link is not None \
                    and link.tee is backup:
                # the copy failed (the target, say) while the source still sent its snapshot: let the transfer end,
                # so the backup asked for is complete - it does not depend on the target
                link.rdb_done.wait(BACKUP_FINISH_SECONDS)
            if backup is not None and backup.installing is not None and backup.done.wait(120) and backup.facts:
                fields['backup'] = backup.facts  # complete before the failure: it is a valid backup, say so
            if error:
                fields['last_error'] = error
                fields['last_error_kind'] = kind
            try:
                self.update(force=True, **fields)
            except (KVError, OSError, ValueError) as exc:
                # the counters could not be read for the last record: it must still say how the follower ended
                # (a follower that vanishes with its record at 'streaming' is the worst way to fail)
                self.record.update(fields, updated_at=now_iso(), last_error=scrub(
                    '%s; the last record could not be completed: %s' % (error or 'stopped', exc), self.secrets),
                    last_error_kind=kind if error else 'error')
                write_record(self.cfg['record'], self.record)
        except (StopFollower, KVError, OSError):
            pass

    def follow(self):
        resume = self.cfg.get('resume')
        had_data = bool(resume) or not self.cfg.get('fresh_target', True)
        replid = resume['replid'] if resume else None
        offset = resume['offset'] if resume else None
        if resume:
            self.applier.src_db = resume.get('db')
            self.applier.applied = offset
            self.applier.applied_db = resume.get('db')
        failing_since = None
        while True:
            drops = buffer_drops(self.source)
            try:
                self.link = ReplicaLink(self.source, self.cfg['spool_dir'], self.passphrase, self.cfg.get('version'),
                                        name='kvsync-%s' % self.cfg['token'][:8])
                self.link.open(replid, offset)
            except KVError as exc:
                if self.link is not None:
                    self.link.close()
                    self.link.cleanup()
                    self.link = None
                exc = explain_close(self.source, exc, drops, 'snapshot')
                if exc.kind not in RETRY_KINDS or replid is None:
                    raise exc
                self._check_masters()  # a master that died in a failover: stop, naming the new one
                failing_since = failing_since or time.time()
                if time.time() - failing_since > RECONNECT_SECONDS:
                    raise exc
                self.update(force=True, phase='reconnecting', last_error=scrub(str(exc), self.secrets))
                time.sleep(1.0)
                continue
            failing_since = None
            self.applier.replid = self.link.replid.encode()
            self.applier.atomic = False
            self._backup_for(self.link)
            self.link.start()
            if self.link.mode == 'full':
                if had_data:
                    self.record['full_resyncs'] = self.record.get('full_resyncs', 0) + 1
                    self.applier.prepare_full_resync()
                try:
                    self._snapshot()
                except KVError as exc:
                    raise explain_close(self.source, exc, drops, 'snapshot')
            else:
                self.record['continued'] = self.record.get('continued', 0) + 1
                self.update(force=True, phase='streaming', replid=self.link.replid, last_error=None)
            had_data = True
            error = explain_close(self.source, self._stream(), drops, 'streaming')
            self.link.close()
            self.link.cleanup()
            self.link = None
            if error is not None and error.kind not in RETRY_KINDS:
                raise error
            self._check_masters()
            replid, offset = self.record.get('replid'), self.applier.applied
            # continue exactly after the last applied command: drop what was parsed past it
            self.applier.buf = b''
            self.applier.block = None
            self.applier.src_db = self.applier.applied_db
            self.update(force=True, phase='reconnecting',
                        last_error=scrub(str(error) if error else 'the link ended', self.secrets))

    def _check_masters(self):
        """Before a new link: a Sentinel master that moved ends the follow (kind ``failover``, both named).

        A master that turned replica in a failover drops its replicas' links and would then serve our PSYNC as a
        replica of the new master: the follow would go on, on a node the sentinels no longer name."""
        self.source.check_master(force=True)
        self.target.check_master(force=True)

    def _backup_for(self, link):
        """With ``backup``: the first complete snapshot is also written to the backup file (the link's tee).

        A later full resync keeps that backup (it is complete and valid, only older) and says so in the record;
        a link that continues (PSYNC) has no snapshot to back up.
        """
        if self.backup is not None:  # the previous link's snapshot was cut off: its temp file goes
            self.backup.abort()
            self.backup = None
        spec = self.cfg.get('backup')
        if not spec:
            return
        done = self.record.get('backup')
        if link.mode == 'full' and not done:
            self.backup = SnapshotBackup(spec, self.backup_passphrase).begin(link.replid, link.offset, link.transfer)
            link.tee = self.backup
        elif link.mode == 'full':
            self.record['backup_note'] = (
                'kept the backup of the first snapshot (%s offset %s); the new snapshot (%s offset %s) was not backed up'
                % (done.get('replid'), done.get('snapshot_offset'), link.replid, link.offset))
        elif not done:
            self.record['backup_error'] = ('the follower continued its link (PSYNC continue) without a complete backup: '
                                           'there is no snapshot to back up')

    def _install_backup(self, link):
        """The snapshot is parsed: its backup, installed by its own thread once the transfer ended, into the record."""
        backup = self.backup
        link.rdb_done.wait(60)
        if not link.rdb_complete:
            raise KVError('the backup of the snapshot was not written: the RDB transfer did not complete (%s)'
                          % (link.closed_error or 'no end of transfer'), kind='truncated')
        facts = backup.result(timeout=3600)
        self.backup = None
        self.update(force=True, backup=facts, backup_error=None)

    def _snapshot(self):
        link, a = self.link, self.applier
        started = time.time()
        self.update(force=True, phase='snapshot', replid=link.replid, snapshot_offset=link.offset, last_error=None,
                    transfer=link.transfer, snapshot_started_at=now_iso())
        a.applied = None
        parser = SnapshotParser(link.rdb_spool.read, spool_dir=self.cfg['spool_dir'])
        a.restore_snapshot(parser.batches(strings=a.plain_strings),   # runs of keys come as one event
                           lambda: self.update(snapshot_keys=sum(c['keys'] for c in a.counts.values())))
        if self.backup is not None and link.tee is self.backup:
            self._install_backup(link)
        if a.held_log is not None:
            self.held_bound = a.held_log.flush()  # every RESTORE logged so far is answered (wait_all above)
        a.applied = link.offset
        a.applied_db = a.src_db
        link.applied = link.offset
        self.update(force=True, phase='catchup', snapshot_seconds=round(time.time() - started, 3),
                    snapshot_done=True, snapshot_bytes=link.rdb_bytes)

    def _stream(self):
        """Apply the spooled stream until the link ends; returns the link's error (None on a clean end)."""
        link, a = self.link, self.applier
        spool = link.stream_spool
        base = link.offset
        a.buf = b''
        a.atomic = True
        caught_up_at = None
        start = time.time()
        while True:
            # Progress not yet in the record (the drain waits for it), or not caught up yet (the task that started
            # us waits for that moment): look again soon, and write it when idle.
            unrecorded = a.applied is not None and a.applied != self.record.get('offset')
            chunk = spool.next_chunk(timeout=0.01 if unrecorded or caught_up_at is None else 0.2)
            if chunk is None:
                a.wait_all()
                link.applied = a.applied
                if a.applied is not None and a.applied != self.record.get('offset'):
                    self.update(force=True)
            else:
                ts, data = chunk
                if ts is None and not data:
                    a.wait_all()
                    link.applied = a.applied
                    return link.closed_error
                base = a.feed(data, ts, base)
            link.applied = a.applied
            # A Sentinel master that moved ends the follow with kind failover (asked at most once a second);
            # state=started resumes from the record on the new master (it keeps the old replication id as replid2).
            self.source.check_master()
            self.target.check_master()
            if self.watch is not None:
                self.watch.check(time.time())
            if a.getack:
                a.getack = False
                link.ack_now = True
            received = link.offset + link.received
            if caught_up_at is None and a.applied is not None and received - a.applied <= self.cfg.get('max_lag', 0):
                caught_up_at = time.time()
                self.record['phase'] = 'streaming'
                self.record['catchup_seconds'] = round(caught_up_at - start, 3)
                self.update(force=True)
                self._start_settler()
            self.update()
