# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Keyspace walking and the per-db result shape every module returns.

* :func:`scan_batches` is the one SCAN loop of the collection (never KEYS): it yields
  ``(cursor_after, keys)`` so a caller can checkpoint exactly where a batch ends.
* :func:`process_batches` hands batches to workers in threads (each worker with its own
  connections), bounded in memory, stopping at the first error.
* :func:`select_dbs` and :func:`db_mapping` turn the ``dbs`` / ``db_map`` options into pairs;
  :func:`merge_groups` names the target dbs that several source dbs are merged into.
* :func:`db_result` / :func:`totals` build the per-db counts that roles and reports read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

try:
    import queue
except ImportError:  # pragma: no cover
    import Queue as queue

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

# The counters of the per-db result, in display order.
#   keys       keys the SCAN of the source returned (after ``match``)
#   copied     keys written to the target (including replaced and fallback keys)
#   identical  keys already on the target with the same value and expiry (not written)
#   conflicts  keys already on the target with a different value or expiry
#   replaced   conflicts overwritten (on_conflict=replace)
#   skipped    conflicts left as they were (on_conflict=skip)
#   expired    keys that expired between SCAN and read (not a failure)
#   fallback   keys copied type-aware with commands instead of RESTORE
#   failed     keys that could not be copied (see the result's failures list)
#   bytes      DUMP payload bytes read from the source
COUNTERS = ('keys', 'copied', 'identical', 'conflicts', 'replaced', 'skipped', 'expired', 'fallback',
            'failed', 'bytes')


def db_result(db, target_db=None, **extra):
    """A fresh per-db result: ``{'db': 0, 'target_db': 0, 'keys': 0, 'copied': 0, ...}``."""
    result = dict(db=int(db), target_db=int(db if target_db is None else target_db))
    for name in COUNTERS:
        result[name] = 0
    result.update(extra)
    return result


def add_counts(into, other):
    for name in COUNTERS:
        into[name] = into.get(name, 0) + other.get(name, 0)
    return into


def totals(db_results):
    """The sum of the counters over every db."""
    out = dict((name, 0) for name in COUNTERS)
    for entry in db_results:
        add_counts(out, entry)
    return out


def target_keys_diff(result):
    """Diff mode of the copying modules: keys per target db before and after (never names or values)."""
    before = dict((str(k), v) for k, v in sorted(result.get('target_keys_before', {}).items()))
    after = dict(before)
    for entry in result.get('dbs', []):
        t = str(entry['target_db'])
        after[t] = after.get(t, 0) + entry['copied'] - entry['replaced']
    return dict(before={'keys_per_db': before}, after={'keys_per_db': after})


def db_mapping(db_map):
    """Normalise ``db_map`` (keys may be strings from YAML) to ``{int: int}``."""
    out = {}
    for key, value in (db_map or {}).items():
        try:
            out[int(key)] = int(value)
        except (TypeError, ValueError):
            raise KVError('db_map must map db numbers to db numbers, got %r: %r' % (key, value), kind='config')
    return out


def select_dbs(keyspace, dbs=None, db_map=None, allow_merge=False, merge=False):
    """``[(source_db, target_db), ...]``: the requested dbs, or every non-empty source db, in source db order
    (the order the copy writes them: under ``on_conflict: skip`` the first db of a merge wins, under ``replace``
    the last).  Two source dbs into one target db are refused unless ``allow_merge`` (the user's allow_db_merge),
    or ``merge`` (into a cluster, whose only db is 0)."""
    mapping = db_mapping(db_map)
    chosen = sorted(set(int(d) for d in dbs)) if dbs else sorted(keyspace)
    pairs = [(db, mapping.get(db, db)) for db in chosen]
    groups = merge_groups(pairs)
    if groups and not (allow_merge or merge):
        raise KVError('%s: set allow_db_merge: true (playbook: kv_allow_db_merge) to merge them; keys present in '
                      'both are then handled by on_conflict' % merge_text(groups), kind='config')
    return pairs


def merge_groups(pairs):
    """``{target db: [source db, ...]}`` for the target dbs that more than one source db is sent into."""
    sources = {}
    for s_db, t_db in pairs:
        sources.setdefault(t_db, []).append(s_db)
    return dict((t_db, sorted(s)) for t_db, s in sources.items() if len(s) > 1)


def merge_text(groups):
    """``db_map sends source dbs 1 and 7 into target db 3`` (several merges: joined with ``and``)."""
    parts = []
    for t_db in sorted(groups):
        dbs = [str(d) for d in groups[t_db]]
        parts.append('source dbs %s and %s into target db %d' % (', '.join(dbs[:-1]), dbs[-1], t_db))
    return 'db_map sends ' + '; and '.join(parts)


def total_dbsize(endpoints, db):
    """DBSIZE of ``db`` summed over ``endpoints`` (one server, or every master of a cluster)."""
    total = 0
    for endpoint in endpoints:
        client = endpoint.client(db=db)
        try:
            total += int(client.dbsize())
        except Exception as exc:
            raise endpoint.error(exc, 'DBSIZE', db=db)
        finally:
            client.close()
    return total


def scan_batches(client, match=None, count=1000, cursor=0, scan_type=None):
    """Yield ``(cursor_after, [key, ...])`` for one db, resuming from ``cursor``.

    Keys are bytes.  A batch may be empty (SCAN can return no keys with a non-zero cursor);
    it is still yielded, so the caller's checkpoint advances.  Ends after cursor 0.
    """
    kwargs = dict(count=count)
    if match:
        kwargs['match'] = match if isinstance(match, bytes) else match.encode('utf-8')
    if scan_type:
        kwargs['_type'] = scan_type
    cursor = int(cursor)
    while True:
        cursor, keys = client.scan(cursor=cursor, **kwargs)
        cursor = int(cursor)
        yield cursor, keys
        if cursor == 0:
            return


def process_batches(batches, workers, make_worker, handle):
    """Call ``handle(worker, batch)`` for every item of ``batches``, in ``workers`` threads.

    ``batches`` is read in the calling thread (a SCAN loop, for example); each thread builds its own
    worker with ``make_worker()`` (closed with ``.close()`` at the end) and takes batches from a queue of
    ``2 * workers``, so at most that many batches wait in memory.  The first exception stops the
    feeding, lets the threads finish and is raised here.  With one worker everything runs in this thread.
    """
    if workers <= 1:
        worker = make_worker()
        try:
            for batch in batches:
                handle(worker, batch)
        finally:
            worker.close()
        return
    jobs = queue.Queue(maxsize=workers * 2)
    errors = []

    def loop():
        try:
            worker = make_worker()
        except Exception as exc:  # reported once the feeding stops
            errors.append(exc)
            worker = None
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                if errors or worker is None:
                    continue
                try:
                    handle(worker, job)
                except Exception as exc:  # reported once the feeding stops
                    errors.append(exc)
        finally:
            if worker is not None:
                worker.close()

    threads = [threading.Thread(target=loop, name='kv-batch-%d' % n) for n in range(workers)]
    for thread in threads:
        thread.daemon = True
        thread.start()
    try:
        for batch in batches:
            if errors:
                break
            jobs.put(batch)
    finally:
        for dummy in threads:
            jobs.put(None)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


def sample_key(key, limit=80):
    """A printable, unambiguous form of a key name for reports (never a value)."""
    text = repr(bytes(key))[2:-1]
    return text if len(text) <= limit else text[:limit] + '...'
