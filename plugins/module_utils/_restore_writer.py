# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The RESTORE writer of kv_dump_restore: pipelined ``RESTORE key ttl payload [ABSTTL] [REPLACE]``.

A *writer* takes the :class:`~._live_source.Batch` objects of one db from a source's reader and writes
them to the target.  Its interface (:class:`~._migrate.MigrateWriter` has the same):

``payload_path(job)`` (class method)
    called once the pair is connected and checked: the per-db ``payload_path`` of the result, or a
    KVError when this writer cannot work between these servers.
``needs_values(state, planning, check_existing)`` (class method)
    whether the reader must read the payloads (else keys only).
``writer(job, state, reader, planning, check_existing)``
    one per worker thread, with target connections of its own; ``write(batch)`` adds its counts to
    ``state`` (a :class:`~._copy.DbCopy`), ``close()``.  With ``planning`` (check mode, or the plan before
    the first write) it counts what a real run would write and writes nothing.
``start_db(job, state, planning, recheck)`` / ``reconcile(job, state, before)`` / ``result(job, result)``
    (class methods) before and after a db is copied (``before`` is what ``start_db`` returned), and on the
    job's result.

When a RESTORE is refused for the payload's version and the source offers a typed reader, the key is
copied type-aware with ordinary commands (:class:`~._type_aware.TypedCopier`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from redis import exceptions as rexc
except ImportError:  # pragma: no cover
    rexc = None

from ansible_collections.kvtools.migration.plugins.module_utils._cluster_target import ClusterTargetSide
from ansible_collections.kvtools.migration.plugins.module_utils._conflict import add, same_entry, sort_existing
from ansible_collections.kvtools.migration.plugins.module_utils._dumpread import DumpReader
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import (
    CompareScope, TypedCopier, UncopyableKey)
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware_cluster import ClusterTypedCopier
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyError, Wire

FATAL_REPLIES = ('oom', 'noperm', 'auth', 'readonly', 'loading')


def is_connection_error(exc):
    return isinstance(exc, (OSError, rexc.ConnectionError, rexc.TimeoutError)) if rexc else isinstance(exc, OSError)


def job_counts_nodes(target_side):
    """Whether a target side counts keys per node and redirections (a cluster's)."""
    return getattr(target_side, 'redirects', None) is not None


class TargetSide:
    """A writer's connections to one target db: a redis-py client and a Wire it owns, and the reads of
    the target's state of keys (for :func:`~._conflict.sort_existing`)."""

    def __init__(self, job, s_db, t_db):
        self.endpoint = job.target_ep
        self.s_db = s_db
        self.t_db = t_db
        self.client = job.target_ep.client(db=t_db)
        self.wire = Wire(self.client)
        self.dump = DumpReader(self.wire, job.target.capabilities['pexpiretime'], self.fail_read)

    def fail(self, exc, action):
        return self.endpoint.error(exc, action, db=self.t_db)

    def fail_read(self, exc, action):
        if action == 'reading':
            return self.fail(exc, 'reading db %d' % self.t_db)
        return self.fail(exc, '%s in db %d' % (action, self.t_db))

    def entries(self, items):
        """The target's entry for each item (payload None where the target does not hold the key)."""
        return self.dump.read([item[0] for item in items])

    def client_for(self, key):
        """The client on the server that holds ``key`` (here always the one; a cluster has one per master)."""
        return self.client

    def close(self):
        self.wire.close()
        self.client.close()


class RestoreWriter:
    """Writes batches of one db with RESTORE (ABSTTL when the items carry absolute expiry times); into a cluster
    through a :class:`~._cluster_target.ClusterTargetSide`."""

    clusters = True  # copies from and into clusters

    @classmethod
    def payload_path(cls, job):
        """``restore``, ``commands`` (type-aware) or ``restore+fallback`` (RESTORE, type-aware where refused)."""
        want = job.opts.payload
        offers_typed = job.source.typed_reader
        if want == 'commands' and offers_typed:
            return 'commands'
        if want == 'commands' and not offers_typed:
            raise KVError('payload=commands copies with the values read from a live server, and %s has none: use '
                          'payload=auto or payload=restore' % job.source.label, kind='config')
        if job.accepts is False or want == 'commands':
            if not offers_typed:
                raise KVError(
                    'the target %s (%s %s, RDB %s) cannot take the DUMP payloads of this backup (RDB %s, %s %s), and '
                    'a backup file has no live values to copy type-aware. Restore the backup on a server of the '
                    'source\'s version, then copy from that server with kv_dump_restore'
                    % (job.target_ep.address, job.target.engine, job.target.version_string, job.target_rdb,
                       job.source.rdb_version, job.source.engine, job.source.version_string), kind='payload')
            if want == 'restore':
                raise KVError(
                    'the target %s (%s %s, RDB %s, rdb-version-check %s) refuses DUMP payloads of RDB version %s '
                    'from the source %s (%s %s): RESTORE cannot work. Use payload=auto or payload=commands'
                    % (job.target_ep.address, job.target.engine, job.target.version_string, job.target_rdb,
                       job.target.rdb_version_check.get('value'), job.source.rdb_version, job.source_ep.address,
                       job.source.server.engine, job.source.server.version_string), kind='payload')
            return 'commands'
        if want == 'restore' or job.accepts or not offers_typed:
            return 'restore'
        return 'restore+fallback'

    @classmethod
    def needs_values(cls, state, planning, check_existing):
        return True

    @classmethod
    def start_db(cls, job, state, planning, recheck):
        return None

    @classmethod
    def reconcile(cls, job, state, before):
        pass

    @classmethod
    def result(cls, job, result):
        pass

    def __init__(self, job, state, reader, planning, check_existing):
        self.job = job
        self.state = state
        self.s_db, self.t_db = state.result['db'], state.result['target_db']
        self.path = state.result['payload_path']
        self.planning = planning
        self.check_existing = check_existing
        self.on_conflict = job.opts.on_conflict
        self.fallback_allowed = job.opts.payload == 'auto'
        self.absolute = job.source.absolute_expiry
        self.target = (TargetSide if job.target_topology is None else ClusterTargetSide)(job, self.s_db, self.t_db)
        self.source_client = reader.client
        self.typed = None
        self.scope = None
        if job.source.typed_reader:
            self.scope = CompareScope(job.source.server, job.target, chunk=job.opts.chunk_size)
        if job.source.typed_reader:
            options = dict(chunk=job.opts.chunk_size, on_unsupported=job.opts.on_unsupported,
                           dropped=job.field_ttl_drops, lock=job.drop_lock)
            if job.target_topology is None:
                self.typed = TypedCopier(reader.client, self.target.client, job.source.server, job.target, **options)
            else:  # into a cluster: on the master of each key's slot, temporary keys in that slot
                self.typed = ClusterTypedCopier(reader.client, self.target, job.source.server, job.target, **options)

    def close(self):
        if job_counts_nodes(self.target):
            self.job.count_target_nodes(self.target.written, self.target.redirects, self.target.planned)
        self.target.close()

    def _same(self, item, entry):
        try:
            return same_entry(item, entry, self.source_client, self.target.client_for(item[0]), self.scope)
        except Exception as exc:
            raise self.target.fail(exc, 'comparing a key in db %d' % self.t_db)

    def write(self, batch):
        counts = dict(keys=len(batch.keys), expired=batch.expired, bytes=batch.size)
        failures = []
        items = batch.items
        replace_keys = set()
        if self.check_existing and items:
            items, replace_keys = sort_existing(items, self.target.entries(items), self.on_conflict, self._same,
                                                self.s_db, counts, failures,
                                                skipped=self.job.choices.skip_sink(self.s_db, self.planning),
                                                defer=self.job.choices.defer(self.s_db))
        if self.planning:
            counts['copied'] = len(items)
            counts['replaced'] = len(replace_keys)
            if job_counts_nodes(self.target):
                self.target.plan([item[0] for item in items])
            if self.path == 'commands':
                counts['fallback'] = len(items)
            self.state.add(counts, failures)
            return
        try:
            if self.path == 'commands':
                self._copy_typed(items, replace_keys, counts, failures)
            else:
                self._restore(items, replace_keys, counts, failures)
        finally:
            self.state.add(counts, failures)

    def _restore(self, items, replace_keys, counts, failures):
        if not items:
            return
        try:
            replies = self.target.wire.call_restores(items, self.absolute, replace_keys)
        except Exception as exc:
            raise self.target.fail(exc, 'RESTORE into db %d' % self.t_db)
        if replies.count(b'OK') == len(replies):  # the usual case: every key written
            add(counts, 'copied', len(replies))
            if replace_keys:
                add(counts, 'replaced', sum(1 for it in items if it[0] in replace_keys))
            return
        fallback = []
        busy = []
        fatal = None
        for item, reply in zip(items, replies):
            if not isinstance(reply, ReplyError):
                add(counts, 'copied')
                if item[0] in replace_keys:
                    add(counts, 'replaced')
                continue
            kind = reply_kind(reply)
            if kind == 'busykey':
                busy.append(item)
            elif kind == 'payload' and self.fallback_allowed:
                fallback.append(item)
            elif kind in FATAL_REPLIES:
                add(counts, 'failed')
                fatal = fatal or reply
            else:
                add(counts, 'failed')
                failures.append(dict(db=self.s_db, key=sample_key(item[0]), reason=str(reply)[:200]))
        if fatal is not None:
            raise self.target.fail(fatal, 'RESTORE into db %d' % self.t_db)
        if busy:
            self._resolve_busy(busy, counts, failures)
        if fallback:
            self._copy_typed(fallback, replace_keys, counts, failures)

    def _resolve_busy(self, items, counts, failures):
        """Keys that appeared on the target after planning (SCAN duplicates, concurrent writers)."""
        retry, dummy = sort_existing(items, self.target.entries(items), self.on_conflict, self._same, self.s_db,
                                     counts, failures, after_plan=True,
                                     skipped=self.job.choices.skip_sink(self.s_db, self.planning),
                                     defer=self.job.choices.defer(self.s_db))
        if retry:
            self._restore(retry, set(item[0] for item in retry), counts, failures)

    def _copy_typed(self, items, replace_keys, counts, failures):
        if self.typed is None:  # a RESTORE refused a payload the version check let through
            for item in items:
                add(counts, 'failed')
                failures.append(dict(db=self.s_db, key=sample_key(item[0]),
                                     reason='the target refuses this payload; restore the backup on a server of the '
                                            'source\'s version and copy from there'))
            return
        for item in items:
            key, expire_at = item[0], item[2]
            replace = key in replace_keys
            try:
                status, note = self.typed.copy(key, expire_at, replace)
            except UncopyableKey as exc:
                add(counts, 'failed')
                failures.append(dict(db=self.s_db, key=sample_key(key), reason=str(exc)))
                continue
            except Exception as exc:
                if reply_kind(exc) in FATAL_REPLIES or is_connection_error(exc):
                    raise self.target.fail(exc, 'copying a key with commands into db %d' % self.t_db)
                add(counts, 'failed')
                failures.append(dict(db=self.s_db, key=sample_key(key), reason=str(exc)[:200]))
                continue
            if status == 'copied':
                add(counts, 'copied')
                add(counts, 'fallback')
                if replace:
                    add(counts, 'replaced')
                if note:
                    failures.append(dict(db=self.s_db, key=sample_key(key), reason=note, copied=True))
            elif status == 'expired':
                add(counts, 'expired')
            else:  # busykey
                self._resolve_busy([item], counts, failures)
