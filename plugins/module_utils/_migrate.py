# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The server-side copy: SCAN on the source, then ``MIGRATE ... COPY ... KEYS`` batch by batch.

It shares everything but the write step with :mod:`._copy` (connection, plan, conflicts, check
mode, per-db results, checkpoints, reports): :class:`Migrate` is a :class:`DumpRestore` whose
workers send MIGRATE instead of RESTORE.

* An empty target db takes the fast path: each SCAN batch is cut into MIGRATE calls of at most
  ``batch_size`` keys and about ``batch_bytes`` bytes, so the source's main thread, which is
  blocked while MIGRATE runs, is never held for long.  Key sizes come from ``MEMORY USAGE``
  (keys that are gone are counted as expired).  Asking that key by key costs about a quarter of
  the throughput on small keys, so it is skipped while a whole batch of average-sized keys
  (``used_memory`` over the number of keys) fits into ``batch_bytes``; a MIGRATE call that takes
  longer than ``SLOW_MIGRATE_S`` because of many big keys (not one, which nothing can split)
  switches the sizing on for the rest of the db.  No value passes through this machine.
* A target db that holds keys is compared first, exactly as kv_dump_restore does (DUMP and
  expiry on both sides): identical keys are skipped, conflicts follow ``on_conflict``, and only
  the keys to write are migrated (``REPLACE`` only for the ones being replaced).
* ``COPY`` is always sent: the source keeps every key whatever the target answers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore, _Worker
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from ansible_collections.kvtools.migration.plugins.module_utils._pair import migrate_blockers, raise_first
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyError, Wire, pack

TARGET_ERROR_PREFIX = 'Target instance replied with error:'
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024
SLOW_MIGRATE_S = 0.5


class MigrateOptions(CopyOptions):
    """The options of kv_migrate: those of kv_dump_restore it shares, plus ``timeout`` and ``batch_bytes``."""

    def __init__(self, timeout=5000, batch_bytes=DEFAULT_BATCH_BYTES, **kwargs):
        kwargs.setdefault('workers', 3)
        kwargs.setdefault('batch_size', 5000)
        kwargs['payload'] = 'restore'
        super(MigrateOptions, self).__init__(**kwargs)
        self.timeout = max(1, int(timeout))
        self.batch_bytes = max(1, int(batch_bytes))


class Migrate(DumpRestore):
    """One kv_migrate run.  ``run()`` returns the result dict or raises KVError (with ``.partial``)."""

    name = 'kv_migrate'

    def _connect(self):
        super(Migrate, self)._connect()
        raise_first(migrate_blockers(self.source_ep, self.target_ep, self.src, self.accepts, self.src_rdb, self.tgt_rdb),
                    warn=self._warn)
        keys = sum(entry.get('keys', 0) for entry in self.src.keyspace().values())
        data = self.src.memory['used_memory'] - int(self.src.info.get('used_memory_startup', 0) or 0)
        self.avg_key_bytes = max(0, data) // max(1, keys)

    def _payload_path(self):
        return 'migrate'

    def _copy_db(self, state, plan, cursor=0, recheck=False):
        super(Migrate, self)._copy_db(state, plan, cursor=cursor, recheck=recheck)
        if plan or recheck or not getattr(state, 'target_empty', False):
            return
        # MIGRATE answers OK when at least one key of the call existed and skips the others silently.
        # The db was empty before: what it holds now is what arrived; the rest expired on the way.
        arrived = self._dbsize(state.result['target_db'])
        with state.lock:
            missing = state.result['copied'] - arrived
            if missing > 0:
                state.result['copied'] -= missing
                state.result['expired'] += missing

    def _result(self, started, resumed, partial=False):
        result = super(Migrate, self)._result(started, resumed, partial)
        for entry in result['dbs']:
            entry.setdefault('batches', 0)
        result['batches'] = sum(entry['batches'] for entry in result['dbs'])
        result['migrate_address'] = '%s:%d' % (self.target_ep.migrate_host, self.target_ep.migrate_port)
        return result


class _MigrateWorker(_Worker):
    """Processes SCAN batches of one db: sizes (or compares) the keys, then MIGRATEs them."""

    def __init__(self, run, s_db, t_db, ctx):
        super(_MigrateWorker, self).__init__(run, s_db, t_db, ctx)
        # MIGRATE goes over its own source connection: the inherited one may have reads in flight.
        self.mig_client = run.source_ep.client(db=s_db)
        self.mig = Wire(self.mig_client)
        ep = run.target_ep
        self.head = [b'MIGRATE', ep.migrate_host.encode('utf-8'), str(ep.migrate_port).encode(), b'',
                     str(t_db).encode(), str(run.opts.timeout).encode(), b'COPY']
        if ep.username and ep.password:
            self.auth = [b'AUTH2', ep.username.encode('utf-8'), ep.password.encode('utf-8')]
        elif ep.password:
            self.auth = [b'AUTH', ep.password.encode('utf-8')]
        else:
            self.auth = []
        self.batch_bytes = run.opts.batch_bytes
        self.sizes_known = True  # False once the source refused MEMORY USAGE
        self.sizing = run.avg_key_bytes * run.opts.batch_size > self.batch_bytes

    def close(self):
        super(_MigrateWorker, self).close()
        self.mig.close()
        self.mig_client.close()

    # -- the fast path: an empty target db ------------------------------------------------------
    def process(self, keys):
        fast = getattr(self.state, 'target_empty', False) and (self.plan or not self.check_existing)
        if not fast:
            return super(_MigrateWorker, self).process(keys)
        counts = dict(keys=len(keys))
        failures = []
        try:
            live = self._sizes(keys)
            counts['expired'] = len(keys) - len(live)
            counts['bytes'] = sum(size for _key, size in live)
            for part in self._parts(live):
                part_keys = [key for key, _size in part]
                if self.plan:  # check mode: the same cut into MIGRATE calls, nothing sent
                    counts['copied'] = counts.get('copied', 0) + len(part)
                    self._count_batch()
                    continue
                if self._migrate(part_keys, False, counts, failures) == 'busy':
                    # A key appeared on the target (a SCAN duplicate or another writer): compare this part.
                    counts['keys'] -= len(part)
                    counts['bytes'] -= sum(size for _key, size in part)
                    self._compare_and_migrate(part_keys)
        finally:
            self.state.add(counts, failures)
        return None

    def _sizes(self, keys):
        """``[(key, estimated bytes)]`` for the keys that still exist."""
        if not keys:
            return []
        if not self.sizes_known or not self.sizing:
            return [(key, 0) for key in keys]
        try:
            replies = self.src.call([(b'MEMORY', b'USAGE', key) for key in keys])
        except Exception as exc:
            raise self._fail(exc, 'source', 'MEMORY USAGE in db %d' % self.s_db)
        errors = [r for r in replies if isinstance(r, ReplyError)]
        if errors:
            if reply_kind(errors[0]) in ('noperm', 'unknown_command'):
                self.sizes_known = False
                self.run._warn('the source user may not run MEMORY USAGE: MIGRATE batches are bounded by batch_size '
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
            if part and (total + size > self.batch_bytes or len(part) >= self.max_chunk):
                yield part
                part, total = [], 0
            part.append((key, size))
            total += size
        if part:
            yield part

    def _compare_and_migrate(self, keys):
        self._send_read(keys)
        items, expired, size = self._recv_read(keys)
        saved = self.check_existing
        self.check_existing = True
        try:
            self._handle_part(keys, items, expired, size)
        finally:
            self.check_existing = saved

    # -- the write step (also used by the comparing path of the base class) ---------------------
    def _plan_writes(self, items, replace_keys):
        """Check mode, comparing path: count the MIGRATE calls a real run would send."""
        for replace in (False, True):
            group = [(it[0], len(it[1])) for it in items if (it[0] in replace_keys) == replace]
            for dummy in self._parts(group):
                self._count_batch()

    def _restore(self, items, replace_keys, counts, failures):
        if not items:
            return
        for replace in (False, True):
            group = [(it[0], len(it[1])) for it in items if (it[0] in replace_keys) == replace]
            for part in self._parts(group):
                keys = [key for key, _size in part]
                if self._migrate(keys, replace, counts, failures) == 'busy':
                    by_key = dict((it[0], it) for it in items)
                    self._resolve_busy([by_key[key] for key in keys], counts, failures)

    def _count_batch(self):
        with self.state.lock:
            self.state.result['batches'] = self.state.result.get('batches', 0) + 1

    def _migrate(self, keys, replace, counts, failures):
        """One MIGRATE call; updates ``counts``.  Returns ``'ok'``, ``'nokey'`` or ``'busy'``."""
        command = list(self.head)
        if replace:
            command.append(b'REPLACE')
        command += self.auth
        command.append(b'KEYS')
        command += keys
        started = time.time()
        try:
            reply = self.mig.call_packed(pack([command]), 1)[0]
        except Exception as exc:
            raise self._fail(exc, 'source', 'MIGRATE from db %d' % self.s_db)
        if time.time() - started > SLOW_MIGRATE_S and len(keys) > 1 and not self.sizing and self.sizes_known:
            self._slow_call(keys)
        self._count_batch()
        if reply == b'OK':
            counts['copied'] = counts.get('copied', 0) + len(keys)
            if replace:
                counts['replaced'] = counts.get('replaced', 0) + len(keys)
            return 'ok'
        if reply == b'NOKEY' or (isinstance(reply, ReplyError) and reply_kind(reply) == 'nokey'):
            counts['expired'] = counts.get('expired', 0) + len(keys)
            return 'nokey'
        if not isinstance(reply, ReplyError):
            raise KVError('MIGRATE from db %d answered %r, which kv_migrate does not know' % (self.s_db, reply[:100]),
                          kind='error', endpoint=self.run.source_ep.address)
        return self._migrate_error(reply, keys, counts, failures)

    def _migrate_error(self, reply, keys, counts, failures):
        run = self.run
        text = scrub(str(reply), run.target_ep.secrets)
        src, tgt = run.source_ep.address, run.target_ep.address
        mig = '%s:%d' % (run.target_ep.migrate_host, run.target_ep.migrate_port)
        if text.startswith('IOERR'):
            hint = (' The target uses TLS: the source must run with tls-cluster yes and trust the target\'s CA.'
                    if run.target_ep.tls else '')
            raise KVError('the source server %s could not reach the target at %s (MIGRATE answered: %s). The keys '
                          'of this batch were not copied; the source is unchanged. MIGRATE connects from the source '
                          'server itself: give target.migrate_host/migrate_port that the source\'s network can reach '
                          '(a backend address rather than an exposed frontend), or use kv_dump_restore, which copies '
                          'through this machine.%s' % (src, mig, text[:200], hint), kind='unreachable', endpoint=mig)
        inner = text.split(TARGET_ERROR_PREFIX, 1)[1].strip() if TARGET_ERROR_PREFIX in text else None
        if inner is None:  # an error of the source itself (NOPERM for MIGRATE, a pause, ...)
            raise self._fail(reply, 'source', 'MIGRATE from db %d' % self.s_db)
        kind = reply_kind(inner)
        if kind == 'busykey':
            return 'busy'
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
        counts['failed'] = counts.get('failed', 0) + len(keys)
        for key in keys[:10]:
            failures.append(dict(db=self.s_db, key=sample_key(key), reason=inner[:200]))
        return 'failed'


Migrate.worker_class = _MigrateWorker
