# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Differences a run chose: keys ``on_conflict: skip`` left as the target held them, and db merges.

* :class:`SkippedLog` - the copy's record of the keys it skipped (``skipped_keys_file``): the keys log format of
  :mod:`._keys_log` (binary, any key name), one record per skipped key, its db the *source* db the key was read
  from (a source db goes to exactly one target db, so the record says which comparison it belongs to).
* :func:`read_skipped` - kv_verify reads that record back: a key named there that differs is counted as skipped
  ("target value kept"), not as an inconsistency.  Any other difference still fails.
* :func:`source_merge_conflicts` - with ``on_conflict: fail`` a merge is checked before anything is written: keys
  that two source dbs of one merge both hold with different values stop the copy.
* :class:`MergeChoices` - what kv_verify needs to know about a merge: which source dbs share a target db, and
  which of them ``on_conflict`` lets win (``skip``: the first db written, the lowest number; ``replace``: the last).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter, iter_keys_log
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    merge_groups, merge_text, sample_key, scan_batches)
from ansible_collections.kvtools.migration.plugins.module_utils._payload import payload_body
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import values_equal

TTL_TOLERANCE_MS = 2000   # two source dbs read a moment apart: expiries this close are the same
MAX_SAMPLES = 20
SKIPPED_DETAIL = 'skipped by on_conflict=skip, target value kept'


class SkippedLog:
    """Appends ``(source db, key)`` records of skipped keys, thread-safe.  ``fresh``: start a new record (a run
    that resumes from a checkpoint adds to the one of the interrupted run).  The file is opened for each append
    (no descriptor is held: skipped keys are few, and a run killed later still leaves those skipped so far)."""

    def __init__(self, path, fresh=True):
        self.path = path
        self.lock = threading.Lock()
        self.count = 0
        try:
            if fresh and os.path.exists(path):
                os.unlink(path)
            KeysLogWriter(path).close()
        except (IOError, OSError) as exc:
            raise KVError('cannot write skipped_keys_file %s: %s' % (path, exc.strerror or exc), kind='config')

    def add(self, s_db, keys):
        if not keys:
            return
        with self.lock:
            writer = KeysLogWriter(self.path)
            try:
                for key in keys:
                    writer.add(int(s_db), bytes(key))
            finally:
                writer.close()
            self.count += len(keys)


class CopyChoices:
    """What a copy job chose to do beyond copying: its db merges (``merges``: target db -> source dbs) and its record
    of skipped keys.  Built once the db pairs are known; with on_conflict=fail it checks the merged dbs first."""

    def __init__(self, job, pairs):
        self.merges = merge_groups(pairs)
        check_merge_conflicts(job, self.merges)
        self.source_ep = job.source_ep
        self.replace = job.opts.on_conflict == 'replace'
        self.log = None
        if job.opts.skipped_keys_file and not job.opts.check_mode:
            self.log = SkippedLog(job.opts.skipped_keys_file, fresh=not job.resumed)

    def skip_sink(self, s_db, planning):
        """Where a writer appends the keys on_conflict=skip leaves alone (None: not recorded)."""
        return None if planning or self.log is None else SkipSink(self.log, s_db)

    def defer(self, s_db):
        """See :func:`later_holders`: None unless on_conflict=replace and a later db merges into s_db's."""
        return later_holders(self.source_ep, self.merges, s_db) if self.replace else None

    def later_in_merge(self, s_db, t_db):
        """Whether ``s_db`` is merged into ``t_db`` after another source db (so ``t_db`` holds keys already)."""
        return self.merges.get(t_db, [s_db])[0] != s_db

    @staticmethod
    def result(choices):
        """The result fields of ``choices`` (None: the run stopped before the db pairs were known)."""
        return dict(db_merges=dict((str(t_db), dbs) for t_db, dbs in sorted(choices.merges.items())) if choices else {},
                    skipped_keys_file=choices.log.path if choices is not None and choices.log is not None else None)


class SkipSink:
    """The keys a copy writer skips in one source db go straight to the job's :class:`SkippedLog`."""

    def __init__(self, log, s_db):
        self.log = log
        self.s_db = s_db

    def append(self, key):
        self.log.add(self.s_db, [key])


def read_skipped(path):
    """``{source db: set(key)}`` from a ``skipped_keys_file`` written by kv_dump_restore or kv_migrate."""
    if not os.path.exists(path):
        raise KVError('skipped_keys_file %s does not exist: give the file the copy wrote with on_conflict: skip '
                      '(its skipped_keys_file option), or leave the option out' % path, kind='config')
    out = {}
    for s_db, key in iter_keys_log(path):
        if key is not None:
            out.setdefault(s_db, set()).add(key)
    return out


def _dump_ttl(client, keys):
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
    replies = pipe.execute()
    return replies[0::2], replies[1::2]


def same_pttl(a, b, tolerance=TTL_TOLERANCE_MS):
    """Two PTTL replies name the same expiry (none on both sides, or within ``tolerance`` ms)."""
    if a < 0 or b < 0:
        return a == b
    return abs(a - b) <= tolerance


def source_merge_conflicts(source_ep, groups, match=None, count=1000):
    """``(count, samples)``: keys that a later source db of a merge holds with another value or expiry than an
    earlier one (read-only: SCAN, DUMP, PTTL).  ``samples``: up to :data:`MAX_SAMPLES` dicts naming them."""
    total = 0
    samples = []
    for t_db in sorted(groups):
        dbs = groups[t_db]
        for index, later in enumerate(dbs[1:], 1):
            clients = []
            try:
                later_client = source_ep.client(db=later)
                clients.append(later_client)
                earlier = []
                for s_db in dbs[:index]:
                    earlier.append((s_db, source_ep.client(db=s_db)))
                    clients.append(earlier[-1][1])
                for dummy, keys in scan_batches(later_client, match=match, count=count):
                    if not keys:
                        continue
                    values, ttls = _dump_ttl(later_client, keys)
                    for s_db, client in earlier:
                        other_values, other_ttls = _dump_ttl(client, keys)
                        for n, key in enumerate(keys):
                            if values[n] is None or other_values[n] is None:
                                continue
                            if payload_body(values[n]) == payload_body(other_values[n]) \
                                    and same_pttl(ttls[n], other_ttls[n]):
                                continue
                            total += 1
                            if len(samples) < MAX_SAMPLES:
                                samples.append(dict(db=later, other_db=s_db, target_db=t_db, key=sample_key(key),
                                                    reason='merge conflict'))
            except KVError:
                raise
            except Exception as exc:
                raise source_ep.error(exc, 'comparing the merged source dbs %s' % ', '.join(str(d) for d in dbs))
            finally:
                for client in clients:
                    client.close()
    return total, samples


def later_holders(source_ep, groups, s_db):
    """None, or for a source db of a merge that a later db follows: ``find(keys)`` -> the set of ``keys`` a later
    source db of the merge holds (EXISTS on the source).  Under on_conflict=replace the later db wins, so the earlier
    one leaves those keys to it instead of writing them twice on every run."""
    later = []
    for dbs in groups.values():
        if s_db in dbs:
            later = dbs[dbs.index(s_db) + 1:]
    if not later:
        return None

    def find(keys):
        found = set()
        for db in later:
            client = source_ep.client(db=db)
            try:
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.exists(key)
                found.update(key for key, there in zip(keys, pipe.execute()) if there)
            except Exception as exc:
                raise source_ep.error(exc, 'EXISTS in source db %d (merged)' % db, db=db)
            finally:
                client.close()
        return found
    return find


def check_merge_conflicts(job, groups):
    """A copy job with merged dbs and on_conflict=fail: keys two merged source dbs hold with different values stop
    it before anything is written (check mode: a warning)."""
    if not groups or job.opts.on_conflict != 'fail':
        return
    if getattr(job.source, 'server', None) is None:
        raise KVError('%s (allow_db_merge) with on_conflict: fail needs a live source to compare the merged dbs '
                      'before writing: use on_conflict: skip (the first db written wins) or replace (the later db '
                      'wins)' % merge_text(groups), kind='config')
    count, samples = source_merge_conflicts(job.source_ep, groups, job.opts.match, job.opts.batch_size)
    if not count:
        return
    text = ('%s, and %d key(s) are in more than one of them with different values (for example "%s" in source db %d '
            'and %d). Nothing was written. Use on_conflict: skip (the first db written - the lowest number - wins) or '
            'replace (the later db wins)' % (merge_text(groups), count, samples[0]['key'], samples[0]['other_db'],
                                             samples[0]['db']))
    if job.opts.check_mode:
        job.warn(text)
        return
    err = KVError(text, kind='conflict', endpoint=job.source_ep.address, details=dict(samples=samples))
    err.partial = job.result(partial=True)
    raise err


class MergeChoices:
    """kv_verify's view of the choices of the copy: merged dbs and skipped keys.

    ``on_conflict`` (None: not given) says which source db of a merge holds the expected value of a key present in
    several of them: under ``skip`` the first db written (the lowest number), under ``replace`` the last.
    """

    def __init__(self, pairs, on_conflict=None, skipped=None):
        self.groups = merge_groups(pairs)
        self.on_conflict = on_conflict
        self.skipped = skipped or {}

    def is_skipped(self, s_db, key):
        return key in self.skipped.get(s_db, ())

    def others(self, t_db, s_db):
        """The other source dbs merged into ``t_db`` (empty when ``t_db`` is no merge)."""
        return [d for d in self.groups.get(t_db, ()) if d != s_db]

    def first_of_group(self, s_db, t_db):
        group = self.groups.get(t_db)
        return not group or group[0] == s_db

    def resolve(self, s_db, t_db, holders, kept):
        """A key differs between source db ``s_db`` and the target; ``holders``: every source db of the merge that
        holds it (sorted); ``kept``: the one whose value the target holds (None: none of them).

        Returns ``(counter, kind, detail)``: ``('merged', ...)`` when the target holds the value on_conflict keeps,
        ``('merge_conflicts', ...)`` when on_conflict was not given (which value is right cannot be known), or None
        when the difference is real (the caller counts it as such)."""
        if kept is None or self.on_conflict == 'fail':
            return None  # the target holds none of the values, or the copy refused conflicting merges
        dbs = ' and '.join(str(d) for d in holders)
        if self.on_conflict in ('skip', 'replace'):
            expected = holders[0] if self.on_conflict == 'skip' else holders[-1]
            rule = 'the first db written wins' if self.on_conflict == 'skip' else 'the later db wins'
            if kept != expected:
                return ('wrong_db', 'value_differs', 'source dbs %s merged into db %d hold different values; the '
                        'target holds source db %d\'s, but on_conflict=%s keeps source db %d\'s (%s)'
                        % (dbs, t_db, kept, self.on_conflict, expected, rule))
            return ('merged', 'merged', 'source dbs %s merged into db %d hold different values; the target holds '
                    'source db %d\'s (on_conflict=%s: %s)' % (dbs, t_db, kept, self.on_conflict, rule))
        return ('merge_conflicts', 'merge_conflict', 'source dbs %s merged into db %d hold different values; the '
                'target holds source db %d\'s (give on_conflict to check it is the one the copy keeps)'
                % (dbs, t_db, kept))


class MergeLookup:
    """One kv_verify worker's look at the choices of the copy for the keys of one db pair that differ.

    :meth:`classify` returns ``(counter, kind, detail)`` for a difference the run chose (``skipped``, ``merged``,
    ``merge_conflicts``), ``('wrong_db', 'value_differs', detail)`` when a merge kept the wrong db's value, or None.
    The other source dbs of a merge are read with connections of its own (read-only: EXISTS, PTTL, value reads).
    """

    def __init__(self, choices, source_ep, s_db, t_db, target_client, scope, tolerance_ms):
        self.choices = choices
        self.source_ep = source_ep
        self.s_db = s_db
        self.t_db = t_db
        self.target_client = target_client
        self.scope = scope
        self.tolerance = tolerance_ms
        self.others = choices.others(t_db, s_db) if choices is not None else []
        self.clients = {}

    def _client(self, db):
        if db not in self.clients:
            self.clients[db] = self.source_ep.client(db=db)
        return self.clients[db]

    def classify(self, key):
        if self.choices is None:
            return None
        if self.choices.is_skipped(self.s_db, key):
            return ('skipped', 'skipped', SKIPPED_DETAIL)
        if not self.others:
            return None
        holders = [self.s_db]
        kept = None
        try:
            target_ttl = self.target_client.pttl(key)
            for db in self.others:
                client = self._client(db)
                if not client.exists(key):
                    continue
                holders.append(db)
                if kept is None and same_pttl(client.pttl(key), target_ttl, self.tolerance) \
                        and values_equal(client, self.target_client, key, self.scope):
                    kept = db
        except KVError:
            raise
        except Exception as exc:
            raise self.source_ep.error(exc, 'reading a key of the merged source dbs')
        if len(holders) < 2:
            return None
        return self.choices.resolve(self.s_db, self.t_db, sorted(holders), kept)

    def close(self):
        for client in self.clients.values():
            client.close()
        self.clients = {}
