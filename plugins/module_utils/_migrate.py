# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The server-side copy: SCAN on the source, then ``MIGRATE ... COPY ... KEYS`` batch by batch.

:class:`MigrateWriter` is the writer of kv_migrate in a :class:`~._copy.CopyJob` (the interface is
described in :mod:`._restore_writer`); the job, the live source, the plan, conflicts, check mode,
checkpoints and reports are those of kv_dump_restore.

* An empty target db takes the fast path: the reader hands out keys only, and each batch is cut into
  MIGRATE calls of at most ``batch_size`` keys and about ``batch_bytes`` bytes, so the source's main
  thread, which is blocked while MIGRATE runs, is never held for long.  Key sizes come from
  ``MEMORY USAGE`` (keys that are gone are counted as expired).  Asking that key by key costs about a
  quarter of the throughput on small keys, so it is skipped while a whole batch of average-sized keys
  (``used_memory`` over the number of keys) fits into ``batch_bytes``; a MIGRATE call that takes longer
  than ``SLOW_MIGRATE_S`` because of many big keys (not one, which nothing can split) switches the
  sizing on for the rest of the db.  No value passes through this machine.
* A target db that holds keys is compared first, exactly as kv_dump_restore does (DUMP and expiry on
  both sides): identical keys are skipped, conflicts follow ``on_conflict``, and only the keys to
  write are migrated (``REPLACE`` only for the ones being replaced).
* The writer owns a source connection of its own for MIGRATE, MEMORY USAGE and the reads of a busy
  part: the reader's connection has DUMP replies in flight, which no other request may cross.
* Counts are exact: ``MIGRATE`` answers OK when at least one key of the call existed and skips the
  others silently, and stops at the target's first error after writing part of a call.  After an
  error the target is asked which keys of the call arrived; after a db that was empty, keys that did
  not arrive count as expired only when the source's (or the target's) expiry counters account for
  them, otherwise the run fails with the missing count.
* ``COPY`` is always sent: the source keeps every key whatever the target answers.
* Clusters (:mod:`._migrate_route`): out of a cluster, the job's workers read every master (one reader and
  writer per master) and each MIGRATE call holds the keys of one slot; into a cluster, one call per target
  master, sent to its address, and a reshard's MOVED / ASK are followed and counted.  The calls of a part
  are pipelined on the source connection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import SETTLE_SECONDS, Settle
from ansible_collections.kvtools.migration.plugins.module_utils._cluster_target import ClusterTargetSide
from ansible_collections.kvtools.migration.plugins.module_utils._conflict import add, same_entry, sort_existing
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyJob, CopyOptions
from ansible_collections.kvtools.migration.plugins.module_utils._dumpread import DumpReader, live_entries
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._expiry_counters import (
    expiry_totals, source_servers, target_expiry_totals)
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from ansible_collections.kvtools.migration.plugins.module_utils._live_source import Batch, LiveSource
from ansible_collections.kvtools.migration.plugins.module_utils._migrate_route import (
    MigrateRoutes, redirection, scans_across_slots)
from ansible_collections.kvtools.migration.plugins.module_utils._pair import migrate_blockers, raise_first
from ansible_collections.kvtools.migration.plugins.module_utils._payload import same_body
from ansible_collections.kvtools.migration.plugins.module_utils._restore_writer import TargetSide
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import CompareScope
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_ms
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyError, Wire, pack, pack_key_commands

TARGET_ERROR_PREFIX = 'Target instance replied with error:'
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024
SLOW_MIGRATE_S = 0.5
EXPIRY_DRIFT_S = 0.2  # a MIGRATE call slower than this has its keys' expiry set again (see _fix_expiries)
SLOT_SCAN_FACTOR = 10  # out of a cluster that scans across the slots: SCAN COUNT is this many times batch_size


class MigrateOptions(CopyOptions):
    """The options of kv_migrate: those of kv_dump_restore it shares, plus ``timeout`` and ``batch_bytes``."""

    SPEC = dict(
        dbs=CopyOptions.SPEC['dbs'],
        db_map=CopyOptions.SPEC['db_map'],
        allow_db_merge=CopyOptions.SPEC['allow_db_merge'],
        match=CopyOptions.SPEC['match'],
        on_conflict=CopyOptions.SPEC['on_conflict'],
        on_unsupported=CopyOptions.SPEC['on_unsupported'],
        batch_size=dict(type='int', default=5000),
        batch_bytes=dict(type='int', default=DEFAULT_BATCH_BYTES),
        timeout=dict(type='int', default=5000),
        workers=CopyOptions.SPEC['workers'],
        report=CopyOptions.SPEC['report'],
        progress=CopyOptions.SPEC['progress'],
        skipped_keys_file=CopyOptions.SPEC['skipped_keys_file'],
    )

    def __init__(self, timeout=5000, batch_bytes=DEFAULT_BATCH_BYTES, **kwargs):
        kwargs.setdefault('workers', 3)
        kwargs.setdefault('batch_size', 5000)
        kwargs['payload'] = 'restore'
        super(MigrateOptions, self).__init__(**kwargs)
        self.timeout = max(1, int(timeout))
        self.batch_bytes = max(1, int(batch_bytes))


def Migrate(source, target, options, warn=None):  # pylint: disable=invalid-name
    """The job of kv_migrate: a live source, the MIGRATE writer."""
    return CopyJob('kv_migrate', LiveSource(source), target, options, MigrateWriter, warn=warn)


class MigrateWriter:
    """Writes batches of one db with ``MIGRATE ... COPY`` sent to the source server (out of and into clusters
    too)."""

    clusters = True  # copies from and into clusters

    # -- the writer interface (see _restore_writer) ----------------------------------------------
    @classmethod
    def payload_path(cls, job):
        raise_first(migrate_blockers(job.source_ep, job.target_ep, job.source.server, job.accepts,
                                     job.source.rdb_version, job.target_rdb, target=job.target), warn=job.warn)
        if scans_across_slots(job):
            server = job.source.server
            job.warn('the source cluster (%s %s) scans across the slots, and a MIGRATE call may carry the keys of one '
                     'slot only: the calls carry few keys each, so this copy is slower than kv_dump_restore from the '
                     'same cluster (Redis 7.4+ and Valkey 8+ scan slot by slot)' % (server.engine, server.version_string))
        return 'migrate'

    @classmethod
    def scan_count(cls, job):
        """SCAN COUNT of a db: ``batch_size``; out of a cluster that scans across the slots :data:`SLOT_SCAN_FACTOR`
        times that, so that a batch, sorted by slot, still gives calls of several keys (measured on 100,000 keys
        out of a 3-master Redis 7.0 cluster: 65,000 calls and 8 times kv_dump_restore's time with batches of
        ``batch_size``)."""
        if scans_across_slots(job):
            return job.opts.batch_size * SLOT_SCAN_FACTOR
        return job.opts.batch_size

    @classmethod
    def fast(cls, state, planning, check_existing):
        return state.target_empty and (planning or not check_existing)

    @classmethod
    def needs_values(cls, state, planning, check_existing):
        return not cls.fast(state, planning, check_existing)

    @classmethod
    def start_db(cls, job, state, planning, recheck):
        if planning or recheck or not state.target_empty:
            return None
        return expiry_totals(source_servers(job)), target_expiry_totals(job)

    @classmethod
    def reconcile(cls, job, state, before):
        """After a db that was empty: what did not arrive is expired only when expiry accounts for it."""
        if before is None:
            return
        arrived = job.dbsize(state.result['target_db'])
        missing = state.result['copied'] - arrived
        if missing <= 0:
            return
        src_expired = before[0][1]
        tgt_run, tgt_expired, tgt_evicted = before[1]
        src_now = expiry_totals(source_servers(job))[1]
        tgt_run_now, tgt_now, tgt_evicted_now = target_expiry_totals(job)
        explained = 0 if tgt_run_now != tgt_run else (src_now - src_expired) + (tgt_now - tgt_expired)
        with state.lock:
            if missing <= explained:
                state.result['copied'] -= missing
                state.result['expired'] += missing
                return
            lost = missing - explained
            state.result['copied'] -= missing
            state.result['expired'] += explained
            state.result['failed'] += lost
        why = []
        if tgt_run_now != tgt_run:
            why.append('the target restarted during the copy')
        if tgt_evicted_now > tgt_evicted:
            why.append('the target evicted %d keys (maxmemory-policy)' % (tgt_evicted_now - tgt_evicted))
        raise KVError('the target %s holds %d keys fewer in db %d than were copied into it, and at most %d of them '
                      'can have expired: at least %d keys were lost on the target (%s). Nothing on the source changed; '
                      'rerun the copy, which copies what is missing'
                      % (job.target_ep.address, missing, state.result['target_db'], explained, lost,
                         '; '.join(why) or 'a FLUSHDB, a failover or a restart of the target?'),
                      kind='lost', endpoint=job.target_ep.address)

    @classmethod
    def result(cls, job, result):
        for entry in result['dbs']:
            entry.setdefault('batches', 0)
        result['batches'] = sum(entry['batches'] for entry in result['dbs'])
        result['migrate_address'] = '%s:%d' % (job.target_ep.migrate_host, job.target_ep.migrate_port)

    # -- one worker ------------------------------------------------------------------------------
    def __init__(self, job, state, reader, planning, check_existing):
        self.job = job
        self.state = state
        self.s_db, self.t_db = state.result['db'], state.result['target_db']
        self.planning = planning
        self.check_existing = check_existing
        self.is_fast = self.fast(state, planning, check_existing)
        self.on_conflict = job.opts.on_conflict
        self.max_part = job.opts.batch_size
        self.batch_bytes = job.opts.batch_bytes
        # MIGRATE, MEMORY USAGE and the reads of a busy part go over a source connection of this writer (on the
        # reader's server: a cluster's master): the reader's connection may have DUMP replies in flight.
        self.source_ep = reader.endpoint
        self.source_client = self.source_ep.client(db=self.s_db)
        self.source_wire = Wire(self.source_client)
        self.source_dump = DumpReader(self.source_wire, job.source.absolute_expiry, self._fail_source_read,
                                      self.max_part)
        self._target = None
        self.typed_client = reader.client
        self.scope = CompareScope(job.source.server, job.target)
        ep = job.target_ep
        self.heads = {None: self._head(ep.migrate_host, ep.migrate_port)}
        self.routes = MigrateRoutes(job, getattr(job.source, 'parted', False),
                                    self.target if job.target_topology is not None else None)
        if ep.username and ep.password:
            self.auth = [b'AUTH2', ep.username.encode('utf-8'), ep.password.encode('utf-8')]
        elif ep.password:
            self.auth = [b'AUTH', ep.password.encode('utf-8')]
        else:
            self.auth = []
        self.sizes_known = True  # False once the source refused MEMORY USAGE
        keys = sum(job.source.keys_per_db().values())
        avg_key_bytes = max(0, job.source.data_bytes() or 0) // max(1, keys)
        self.sizing = avg_key_bytes * self.max_part > self.batch_bytes

    def _head(self, host, port):
        return [b'MIGRATE', host.encode('utf-8'), str(port).encode(), b'', str(self.t_db).encode(),
                str(self.job.opts.timeout).encode(), b'COPY']

    def head(self, address):
        """The start of a MIGRATE call to ``address`` (a target master, ``host:port``; None: the target given)."""
        head = self.heads.get(address)
        if head is None:
            host, port = address.rsplit(':', 1)
            head = self.heads[address] = self._head(host, int(port))
        return head

    @property
    def target(self):
        if self._target is None:
            side = TargetSide if self.job.target_topology is None else ClusterTargetSide
            self._target = side(self.job, self.s_db, self.t_db)
        return self._target

    def close(self):
        if self.job.target_topology is not None:
            redirects = dict(self.routes.redirects)
            written = dict(self.routes.written)
            if self._target is not None:  # its own reads and the RESTOREs of keys of slots being moved
                for name, count in self._target.redirects.items():
                    redirects[name] = redirects.get(name, 0) + count
                for address, count in self._target.written.items():
                    written[address] = written.get(address, 0) + count
            self.job.count_target_nodes(written, redirects, self.routes.planned)
        if self._target is not None:
            self._target.close()
        self.source_wire.close()
        self.source_client.close()

    def _fail(self, exc, side, action):
        ep = self.source_ep if side == 'source' else self.job.target_ep
        return ep.error(exc, action, db=self.s_db if side == 'source' else self.t_db)

    def _fail_source_read(self, exc, action):
        return self._fail(exc, 'source', 'reading db %d' % self.s_db if action == 'reading'
                          else '%s in db %d' % (action, self.s_db))

    def _same(self, item, entry):
        try:
            return same_entry(item, entry, self.typed_client, self.target.client_for(item[0]), self.scope)
        except Exception as exc:
            raise self._fail(exc, 'target', 'comparing a key in db %d' % self.t_db)

    def write(self, batch):
        if self.is_fast:
            self._write_fast(batch.keys)
        else:
            self._write_compared(batch)

    # -- the fast path: an empty target db --------------------------------------------------------
    def _write_fast(self, keys):
        counts = dict(keys=len(keys))
        failures = []
        try:
            live = self._sizes(keys)
            counts['expired'] = len(keys) - len(live)
            counts['bytes'] = sum(size for _key, size in live)
            slots = self.routes.slots_of([key for key, _size in live])
            if self.routes.by_slot:  # a call carries the keys of one slot: the keys of a slot together
                live.sort(key=lambda item: slots[item[0]])
            for part in self._parts(live):
                part_keys = [key for key, _size in part]
                if self.planning:  # check mode: the same cut into MIGRATE calls, nothing sent
                    add(counts, 'copied', len(part))
                    self._count_batch(self.routes.plan(part_keys, slots))
                    continue
                busy = self._migrate(part_keys, False, counts, failures, slots=slots)
                if busy:
                    # A key appeared on the target (a SCAN duplicate or another writer): compare those calls' keys.
                    sizes = dict(part)
                    counts['keys'] -= len(busy)
                    counts['bytes'] -= sum(sizes[key] for key in busy)
                    items, expired, size = live_entries(self.source_dump.read(busy))
                    self._write_compared(Batch(busy, items, expired, size), check_existing=True)
        finally:
            self.state.add(counts, failures)

    def _sizes(self, keys):
        """``[(key, estimated bytes)]`` for the keys that still exist (on this writer's own connection)."""
        if not keys:
            return []
        if not self.sizes_known or not self.sizing:
            return [(key, 0) for key in keys]
        try:
            replies = self.source_wire.call([(b'MEMORY', b'USAGE', key) for key in keys])
        except Exception as exc:
            raise self._fail(exc, 'source', 'MEMORY USAGE in db %d' % self.s_db)
        errors = [r for r in replies if isinstance(r, ReplyError)]
        if errors:
            if reply_kind(errors[0]) in ('noperm', 'unknown_command'):
                self.sizes_known = False
                self.job.warn('the source user may not run MEMORY USAGE: MIGRATE batches are bounded by batch_size '
                              'keys only, not by bytes')
                return [(key, 0) for key in keys]
            raise self._fail(errors[0], 'source', 'MEMORY USAGE in db %d' % self.s_db)
        return [(key, int(size)) for key, size in zip(keys, replies) if size is not None]

    def _slow_call(self, keys):
        """A MIGRATE call was slow: if many keys (not one big key, which no batching can split) made it
        slow, bound the next calls of this db by bytes."""
        self.sizing = True
        sizes = sorted(size for _key, size in self._sizes(keys))
        if sum(sizes[:-1]) <= self.batch_bytes:
            self.sizing = False

    def _parts(self, sized):
        """Cut ``[(key, size)]`` into MIGRATE calls of at most batch_size keys and about batch_bytes."""
        part, total = [], 0
        for key, size in sized:
            if part and (total + size > self.batch_bytes or len(part) >= self.max_part):
                yield part
                part, total = [], 0
            part.append((key, size))
            total += size
        if part:
            yield part

    # -- the comparing path: a target db that holds keys ------------------------------------------
    def _write_compared(self, batch, check_existing=None):
        counts = dict(keys=len(batch.keys), expired=batch.expired, bytes=batch.size)
        failures = []
        items = batch.items
        replace_keys = set()
        if (self.check_existing if check_existing is None else check_existing) and items:
            items, replace_keys = sort_existing(items, self.target.entries(items), self.on_conflict, self._same,
                                                self.s_db, counts, failures,
                                                skipped=self.job.choices.skip_sink(self.s_db, self.planning),
                                                defer=self.job.choices.defer(self.s_db))
        if self.planning:
            for replace in (False, True):
                group = [(it[0], len(it[1])) for it in items if (it[0] in replace_keys) == replace]
                for part in self._parts(group):
                    self._count_batch(self.routes.plan([key for key, _size in part]))
            counts['copied'] = len(items)
            counts['replaced'] = len(replace_keys)
            self.state.add(counts, failures)
            return
        try:
            self._migrate_items(items, replace_keys, counts, failures)
        finally:
            self.state.add(counts, failures)

    def _migrate_items(self, items, replace_keys, counts, failures):
        if not items:
            return
        by_key = dict((it[0], it) for it in items)
        for replace in (False, True):
            group = [(it[0], len(it[1])) for it in items if (it[0] in replace_keys) == replace]
            for part in self._parts(group):
                busy = self._migrate([key for key, _size in part], replace, counts, failures, by_key)
                if busy:
                    self._resolve_busy([by_key[key] for key in busy], counts, failures)

    def _resolve_busy(self, items, counts, failures):
        """Keys that appeared on the target after planning (SCAN duplicates, concurrent writers)."""
        retry, dummy = sort_existing(items, self.target.entries(items), self.on_conflict, self._same, self.s_db,
                                     counts, failures, after_plan=True,
                                     skipped=self.job.choices.skip_sink(self.s_db, self.planning),
                                     defer=self.job.choices.defer(self.s_db))
        if retry:
            self._migrate_items(retry, set(item[0] for item in retry), counts, failures)

    # -- the MIGRATE calls of a part ------------------------------------------------------------------
    def _count_batch(self, calls=1):
        with self.state.lock:
            self.state.result['batches'] = self.state.result.get('batches', 0) + calls

    def migrate(self, keys, replace, counts, failures, by_key=None):
        """The MIGRATE calls of ``keys``; updates ``counts``.  Returns ``'busy'`` when a call met a key of the same
        name on the target, else ``'ok'`` when a call wrote, else the status of the last call (``'nokey'``,
        ``'failed'``)."""
        statuses = []
        if self._migrate(keys, replace, counts, failures, by_key, statuses):
            return 'busy'
        return 'ok' if 'ok' in statuses or not statuses else statuses[-1]

    def _migrate(self, keys, replace, counts, failures, by_key=None, statuses=None, slots=None):
        """The MIGRATE calls of ``keys`` (each status added to ``statuses``); returns the keys of the calls that
        met a key of the same name on the target (BUSYKEY)."""
        statuses = [] if statuses is None else statuses
        busy = []
        todo = list(keys)
        settle = Settle()
        while True:
            moving, todo = self.routes.asked_keys(todo)
            if moving:  # keys of a slot being moved on the target: RESTORE after ASKING, from this machine
                busy.extend(self._restore_moving(moving, replace, counts, failures, by_key))
            calls = self.routes.calls(todo, slots)
            if not calls:
                return busy
            commands = []
            for address, part in calls:
                command = list(self.head(address))
                if replace:
                    command.append(b'REPLACE')
                commands.append(command + self.auth + [b'KEYS'] + part)
            started = time.time()
            try:
                replies = self.source_wire.call_packed(pack(commands), len(commands))
            except Exception as exc:
                raise self._fail(exc, 'source', 'MIGRATE from db %d' % self.s_db)
            elapsed = time.time() - started
            if elapsed > SLOW_MIGRATE_S and len(todo) > 1 and not self.sizing and self.sizes_known:
                self._slow_call(todo)
            self._count_batch(len(calls))
            todo = []
            stop = None
            for (address, part), reply in zip(calls, replies):
                try:
                    status, again = self._reply(reply, address, part, replace, counts, failures, by_key,
                                                elapsed > EXPIRY_DRIFT_S)
                except KVError as exc:  # the other calls of the pipeline ran: their keys are counted first
                    stop = stop or exc
                    continue
                statuses.append(status)
                if status == 'busy':
                    busy.extend(part)
                todo.extend(again)
            if stop is not None:
                raise stop
            if not todo or not settle.again():
                break
        if todo:  # still redirected after every round: the cluster does not settle
            add(counts, 'failed', len(todo))
            for key in todo[:10]:
                failures.append(dict(db=self.s_db, key=sample_key(key),
                                     reason='still redirected (MOVED/ASK) after %d s' % SETTLE_SECONDS))
        return busy

    def _restore_moving(self, keys, replace, counts, failures, by_key):
        """DUMP ``keys`` on the source and RESTORE them on the target cluster (which follows ASK with ASKING);
        returns the keys the target already holds (BUSYKEY)."""
        if by_key is not None:
            items = [by_key[key] for key in keys]
        else:
            items, expired, dummy = live_entries(self.source_dump.read(keys))
            add(counts, 'expired', expired)
        replace_keys = set(keys) if replace else ()
        replies = self.target.call_restores(items, self.job.source.absolute_expiry, replace_keys)
        busy = []
        for item, reply in zip(items, replies):
            if reply.__class__ is not ReplyError:
                add(counts, 'copied')
                if replace:
                    add(counts, 'replaced')
                continue
            kind = reply_kind(reply)
            if kind == 'busykey':
                busy.append(item[0])
            elif kind in ('oom', 'noperm', 'auth', 'readonly', 'loading', 'payload'):
                raise self._fail(reply, 'target', 'RESTORE into db %d' % self.t_db)
            else:
                add(counts, 'failed')
                failures.append(dict(db=self.s_db, key=sample_key(item[0]), reason=str(reply)[:200]))
        return busy

    def _reply(self, reply, address, keys, replace, counts, failures, by_key, slow):
        """One MIGRATE call's reply: ``(status, keys to send again)``; status ``ok``, ``nokey``, ``busy``,
        ``failed`` or ``redirected``."""
        if reply == b'OK':
            add(counts, 'copied', len(keys))
            if replace:
                add(counts, 'replaced', len(keys))
            self.routes.count_written(address, len(keys))
            if slow:
                self._fix_expiries(keys)
            return 'ok', []
        if reply == b'NOKEY' or (isinstance(reply, ReplyError) and reply_kind(reply) == 'nokey'):
            add(counts, 'expired', len(keys))  # the source says: none of these keys exists any more
            return 'nokey', []
        if not isinstance(reply, ReplyError):
            raise KVError('MIGRATE from db %d answered %r, which kv_migrate does not know' % (self.s_db, reply[:100]),
                          kind='error', endpoint=self.source_ep.address)
        return self._migrate_error(reply, address, keys, replace, counts, failures, by_key)

    def _fix_expiries(self, keys):
        """MIGRATE carries a key's TTL as a relative time that the target applies when the key arrives: after a
        slow call (a big key) the keys would expire that much later on the target.  Their expiry is set
        again from the source's (absolute) expiry."""
        absolute = self.job.source.absolute_expiry
        command = b'PEXPIRETIME' if absolute else b'PTTL'
        try:
            expiries = self.source_wire.call_packed(pack_key_commands((command,), keys), len(keys))
        except Exception as exc:
            raise self._fail(exc, 'source', '%s in db %d' % (command.decode(), self.s_db))
        now = now_ms()
        fixes = [(b'PEXPIREAT', key, at if absolute else now + at) for key, at in zip(keys, expiries)
                 if at.__class__ is int and at >= 0]
        if not fixes:
            return
        try:
            replies = self.target.wire.call(fixes)
        except Exception as exc:
            raise self._fail(exc, 'target', 'PEXPIREAT in db %d' % self.t_db)
        errors = [reply for reply in replies if isinstance(reply, ReplyError)]
        if errors:
            raise self._fail(errors[0], 'target', 'PEXPIREAT in db %d' % self.t_db)

    def _arrived(self, keys, replace, by_key):
        """After a MIGRATE call stopped at a target error: the keys of the call the target now holds as sent."""
        try:
            entries = self.target.entries([(key,) for key in keys])
        except KVError:
            return []  # the target cannot be read either: what arrived stays unknown (counted as not copied)
        if not replace or by_key is None:
            return [entry[0] for entry in entries if entry[1] is not None]
        return [entry[0] for entry in entries if entry[1] is not None and same_body(entry[1], by_key[entry[0]][1])]

    def _count_arrived(self, keys, replace, counts, by_key, address=None):
        arrived = self._arrived(keys, replace, by_key)
        add(counts, 'copied', len(arrived))
        if replace:
            add(counts, 'replaced', len(arrived))
        self.routes.count_written(address, len(arrived))
        return arrived

    def _migrate_error(self, reply, address, keys, replace, counts, failures, by_key):
        run = self.job
        text = scrub(str(reply), run.target_ep.secrets)
        src, tgt = self.source_ep.address, address or run.target_ep.address
        mig = address or '%s:%d' % (run.target_ep.migrate_host, run.target_ep.migrate_port)
        if text.startswith('IOERR'):
            hint = (' The target uses TLS: the source must run with tls-cluster yes and trust the target\'s CA.'
                    if run.target_ep.tls else '')
            raise KVError('the source server %s could not reach the target at %s (MIGRATE answered: %s). The keys '
                          'of this batch were not copied; the source is unchanged. MIGRATE connects from the source '
                          'server itself: give target.migrate_host/migrate_port that the source\'s network can reach '
                          '(a backend address rather than an exposed frontend), or use kv_dump_restore, which copies '
                          'through this machine.%s' % (src, mig, text[:200], hint), kind='unreachable', endpoint=mig)
        inner = text.split(TARGET_ERROR_PREFIX, 1)[1].strip() if TARGET_ERROR_PREFIX in text else None
        if inner is None and redirection(text) is not None:  # a reshard of the source cluster
            raise KVError('the source master %s no longer serves the slot of keys it held when they were scanned (%s): '
                          'the source cluster is being resharded. Nothing of this call was copied; rerun the copy '
                          'once the reshard is over (keys already copied and identical are skipped)'
                          % (src, text[:120]), kind='moved', endpoint=src)
        if inner is None:  # an error of the source itself (NOPERM for MIGRATE, a pause, ...)
            raise self._fail(reply, 'source', 'MIGRATE from db %d' % self.s_db)
        kind = reply_kind(inner)
        if kind == 'busykey':
            return 'busy', []
        # MIGRATE stops at the target's first error after writing part of the call: count what arrived.
        arrived = self._count_arrived(keys, replace, counts, by_key, address)
        if self.routes.redirected(inner):  # a reshard of the target cluster: send the others again, routed anew
            landed = set(arrived)
            return 'redirected', [key for key in keys if key not in landed]
        if kind == 'payload':
            raise KVError('the target %s refused the source\'s DUMP payloads (%s): the two servers use payload '
                          'versions MIGRATE cannot bridge. Use kv_dump_restore with payload=auto, which copies such '
                          'keys type-aware' % (tgt, inner[:200]), kind='payload', endpoint=tgt)
        if kind == 'auth':
            raise KVError('the target %s refused the credentials MIGRATE sent (%s). Check target.username and '
                          'target.password: MIGRATE logs in with them from the source server'
                          % (tgt, inner[:200]), kind='auth', endpoint=tgt)
        if kind == 'noperm':
            user = run.target_ep.username or 'default'
            raise KVError("the target user %r may not write what MIGRATE sends (%s). Grant it, e.g. "
                          "ACL SETUSER %s +restore" % (user, inner[:200], user),
                          kind='noperm', endpoint=tgt)
        if kind == 'oom':
            raise KVError('the target %s is out of memory (used_memory reached maxmemory): %s. Raise maxmemory or '
                          'choose a larger target; the counts say what was copied' % (tgt, inner[:200]),
                          kind='oom', endpoint=tgt)
        if kind in ('readonly', 'loading', 'db'):
            raise KVError('the target %s cannot take keys: %s' % (tgt, inner[:200]), kind=kind, endpoint=tgt)
        add(counts, 'failed', len(keys) - len(arrived))
        for key in keys[:10]:
            failures.append(dict(db=self.s_db, key=sample_key(key), reason=inner[:200]))
        return 'failed', []
