# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kv_dump_restore with a logical backup (``source.url: file:///...``) instead of a live source.

The records of the file (``iter_logical`` of :mod:`._logical`: db, key, DUMP payload, absolute
expiry) take the place of SCAN + DUMP + PEXPIRETIME; everything on the target side is the same
worker code as a live copy: identical keys skipped, conflicts by ``on_conflict`` (checked for every
db before the first write), pipelined ``RESTORE ... ABSTTL``, check mode, report, progress.

A file has no live values to fall back on: where the target refuses the payload version of the
backup, the run stops before writing (restore the backup on a server of the source's version,
then copy from that server).  The whole file is read once and verified (sha256 trailer, and the
authentication of every chunk when encrypted) before anything is written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import time

from ansible_collections.kvtools.migration.plugins.module_utils._copy import (
    TTL_TOLERANCE_MS, DumpRestore, Progress, _DbState, _Worker)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import db_result, sample_key, select_dbs
from ansible_collections.kvtools.migration.plugins.module_utils._pair import pair_problems, raise_first
from ansible_collections.kvtools.migration.plugins.module_utils._payload import payload_body
from ansible_collections.kvtools.migration.plugins.module_utils._payload import target_accepts
from ansible_collections.kvtools.migration.plugins.module_utils._logical import iter_logical, logical_header
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_ms
from ansible_collections.kvtools.migration.plugins.module_utils._wire import Wire


class _BackupFacts:
    """Stands in for the source Server in results: what the backup's header says."""

    def __init__(self, endpoint, header):
        self.endpoint = endpoint
        self.engine = header.get('engine')
        self.version_string = header.get('version')


class BackupRestore(DumpRestore):
    """Restore a logical backup into a target; ``run()`` returns the same result shape as a copy."""

    def __init__(self, source, target, options, passphrase=None, warn=None):
        super(BackupRestore, self).__init__(source, target, options, warn=warn)
        self.passphrase = passphrase

    def _connect(self):
        path = self.source_ep.backup_file
        self.header = logical_header(path, self.passphrase)
        self.tgt = connect_server(self.target_ep)
        raise_first(pair_problems(self.source_ep, self.target_ep, None, self.tgt, tool=self.name))
        self.src = _BackupFacts(self.source_ep, self.header)
        self.src_pexpiretime = True  # the file holds absolute expiry times
        self.src_rdb, self.src_rdb_source = self.header.get('rdb_version'), 'backup header'
        self.tgt_rdb, self.tgt_rdb_source = self.tgt.rdb_version()
        self.accepts = target_accepts(self.tgt.engine, self.tgt_rdb, self.src_rdb,
                                      self.tgt.rdb_version_check.get('value'))

    def _payload_path(self):
        if self.accepts is False or self.opts.payload == 'commands':
            raise KVError(
                'the target %s (%s %s, RDB %s) cannot take the DUMP payloads of this backup (RDB %s, %s %s), and a '
                'backup file has no live values to copy type-aware. Restore the backup on a server of the source\'s '
                'version, then copy from that server with kv_dump_restore'
                % (self.target_ep.address, self.tgt.engine, self.tgt.version_string, self.tgt_rdb, self.src_rdb,
                   self.src.engine, self.src.version_string), kind='payload')
        return 'restore'

    def _describe(self, server, rdb, rdb_source):
        if isinstance(server, _BackupFacts):
            return dict(address=server.endpoint.address, engine=server.engine, version=server.version_string,
                        rdb_version=rdb, rdb_version_source=rdb_source, tls=False, backup=True)
        return super(BackupRestore, self)._describe(server, rdb, rdb_source)

    def _check_room(self):
        maxmemory, used = self.tgt.memory['maxmemory'], self.tgt.memory['used_memory']
        need, room = self.header_bytes, maxmemory - used
        if maxmemory and need > room:
            self._warn('the target %s may be too small: the backup holds about %d MiB of payloads, the target has about '
                       '%d MiB left under maxmemory' % (self.target_ep.address, need // 2 ** 20, max(room, 0) // 2 ** 20))

    def run(self):
        started = time.time()
        self._connect()
        path = self._payload_path()
        # the whole file first: a damaged or truncated backup (or a wrong passphrase) writes nothing
        stats = {}
        for dummy in iter_logical(self.source_ep.backup_file, self.passphrase, stats):
            pass  # one pass: the sha256 trailer (and every chunk's authentication) is checked at the end
        counts = dict((int(k), int(v)) for k, v in (stats.get('dbs') or {}).items())
        self.header_bytes = int(stats.get('payload_bytes') or 0)
        pairs = select_dbs(dict((db, {}) for db in counts if counts[db]), self.opts.dbs, self.opts.db_map)
        raise_first(pair_problems(self.source_ep, self.target_ep, None, self.tgt, pairs, tool=self.name))
        self.progress = None
        if self.opts.progress and not self.opts.check_mode:
            self.progress = Progress(self.opts.progress, dict((s, counts.get(s, 0)) for s, dummy in pairs))
        self.phase = 'planning'
        self.states = [_DbState(s, t, path, on_change=self._tick) for s, t in pairs]
        self._check_room()
        self.before = dict((t, self._dbsize(t)) for dummy, t in pairs)
        resumed = False
        try:
            plan = self.opts.check_mode or (self.opts.on_conflict == 'fail' and any(self.before.values()))
            if plan:
                self._pass(plan=True)
                self._stop_on_conflicts(started, resumed, 'the backup')
            if not self.opts.check_mode:
                self.phase = 'copying'
                for state in self.states:
                    state.result = db_result(state.result['db'], state.result['target_db'], payload_path=path)
                    state.failures = []
                self._pass(plan=False)
        except Exception as exc:  # every failure leaves a report and the counts reached
            raise self._failed(exc, started, resumed, 'restoring the backup')
        self._tick('done')
        result = self._result(started, resumed)
        self._write_report(result)
        return result

    def _pass(self, plan):
        """One pass over the file: batches of records per db, handled by a target-only worker."""
        by_db = dict((st.result['db'], st) for st in self.states)
        workers = {}
        batch, batch_db = [], None
        try:
            for db, key, payload, expire_at in iter_logical(self.source_ep.backup_file, self.passphrase):
                if db != batch_db or len(batch) >= self.opts.batch_size:
                    if batch:
                        self._handle(workers, by_db, batch_db, batch, plan)
                    batch, batch_db = [], db
                if db in by_db and (not self.opts.match or _glob(self.opts.match, key)):
                    batch.append((key, payload, expire_at))
            if batch:
                self._handle(workers, by_db, batch_db, batch, plan)
        finally:
            for worker in workers.values():
                worker.close()

    def _handle(self, workers, by_db, db, records, plan):
        state = by_db[db]
        worker = workers.get(db)
        if worker is None:
            ctx = dict(plan=plan, check_existing=plan or self.before.get(state.result['target_db'], 0) > 0,
                       state=state)
            worker = workers[db] = _TargetWorker(self, db, state.result['target_db'], ctx)
        now = now_ms()
        items = [(key, payload, exp, exp) for key, payload, exp in records if exp is None or exp > now]
        size = sum(len(it[1]) for it in items)
        worker._handle_part([r[0] for r in records], items, len(records) - len(items), size)


def _glob(pattern, key):
    """``match`` for file records, as SCAN MATCH would: ``*``, ``?``, ``[abc]``, ``[^abc]`` (bytes)."""
    pattern = pattern if isinstance(pattern, bytes) else pattern.encode('utf-8')
    return fnmatch.fnmatchcase(key, pattern.replace(b'[^', b'[!'))


class _TargetWorker(_Worker):
    """The target half of a copy worker: compare, RESTORE, count.  There is no source to read."""

    def __init__(self, run, s_db, t_db, ctx):  # pylint: disable=super-init-not-called
        self.run = run
        self.s_db = s_db
        self.t_db = t_db
        self.plan = ctx['plan']
        self.check_existing = ctx['check_existing']
        self.state = ctx['state']
        self.path = self.state.result['payload_path']
        self.on_conflict = run.opts.on_conflict
        self.src_client = self.src = self.typed = None
        self.tgt_client = run.target_ep.client(db=t_db)
        self.tgt = Wire(self.tgt_client)
        self.expiry_cmd = b'PEXPIRETIME'
        self.tgt_expiry_cmd = b'PEXPIRETIME' if run.tgt.capabilities['pexpiretime'] else b'PTTL'

    def close(self):
        self.tgt.close()
        self.tgt_client.close()

    def _same(self, item, existing):
        key, payload, expire_at, dummy = item
        t_payload, t_exp = existing
        if (expire_at is None) != (t_exp is None):
            return False
        if expire_at is not None and abs(expire_at - t_exp) > TTL_TOLERANCE_MS:
            return False
        return payload_body(payload) == payload_body(t_payload)

    def _copy_typed(self, items, replace_keys, counts, failures):
        # only reached when RESTORE refused a payload the version check let through
        for item in items:
            counts['failed'] = counts.get('failed', 0) + 1
            failures.append(dict(db=self.s_db, key=sample_key(item[0]),
                                 reason='the target refuses this payload; restore the backup on a server of the '
                                        'source\'s version and copy from there'))
