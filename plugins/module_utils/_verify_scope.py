# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What kv_verify compares when the source is followed live (the ``live`` strategy of migrate.yml).

* :class:`Touched` - the keys kv_sync's follower wrote or deleted since an offset of its keys log (or its
  followers, one per master of a cluster source, each since an offset of its own log), grouped by target db (a
  whole-db record makes that db whole).  kv_verify compares exactly those
  keys, plus the key counts of every db pair, inside the write pause.
* :class:`DiffingKeys` - the raw names of the keys that differed in a round, bounded, so the next
  round rechecks only them.
* :func:`recheck_reset` - takes the differences of a round out of a db's counters before its keys are
  compared again (so the counters describe the last look at every key).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import db_result
from ansible_collections.kvtools.migration.plugins.module_utils._text import plural
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogReader

RECHECK_LIMIT = 100000   # differing keys remembered per db for a recheck; beyond it the db is compared whole
MAX_ROUNDS = 100
MAX_RECHECK_DELAY = 3600
# counters of a db entry that describe differences (all of them are redone by a recheck)
DIFF_COUNTERS = ('conflicts', 'missing', 'extra', 'type_differs', 'value_differs', 'ttl_differs')


class LiveOptions:
    """keys_file, keys_file_offset, rounds, recheck_delay, ignore_target_keys, target_expiry_offset: validated
    (ranges, not clamps).  ``keys_file`` becomes a list of paths (one keys log, or one per follower of a cluster
    source) and ``keys_file_offset`` a list of offsets, one per path."""

    def __init__(self, keys_file=None, keys_file_offset=0, match=None, rounds=1, recheck_delay=1.0,
                 ignore_target_keys=None, target_expiry_offset=0):
        for name, value, kind in (('rounds', rounds, int), ('recheck_delay', recheck_delay, float),
                                  ('target_expiry_offset', target_expiry_offset, int)):
            if not is_number(value, kind):
                raise KVError('%s must be a number, got %r' % (name, value), kind='config')
        files = keys_files(keys_file)
        offsets = keys_offsets(keys_file_offset, files)
        if match and files:
            raise KVError('keys_file cannot be combined with match (the keys log lists every key the follower '
                          'wrote; kv_sync does not filter by pattern)', kind='config')
        if not 1 <= int(rounds) <= MAX_ROUNDS:
            raise KVError('rounds must be between 1 and %d, got %s' % (MAX_ROUNDS, rounds), kind='config')
        if not 0 <= float(recheck_delay) <= MAX_RECHECK_DELAY:
            raise KVError('recheck_delay must be between 0 and %d seconds, got %s'
                          % (MAX_RECHECK_DELAY, recheck_delay), kind='config')
        if int(target_expiry_offset or 0) < 0:
            raise KVError('target_expiry_offset must be 0 or more, got %s' % target_expiry_offset, kind='config')
        self.keys_file = files or None
        self.keys_file_offset = offsets
        self.rounds = int(rounds)
        self.recheck_delay = float(recheck_delay)
        self.ignore = ignored_keys(ignore_target_keys)
        self.target_expiry_offset = int(target_expiry_offset or 0)


def is_number(value, kind):
    """Whether ``value`` (None allowed: the default) reads as a ``kind`` (int: no fraction; never a bool)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    try:
        kind(value)
        return kind is not int or int(value) == float(value)
    except (TypeError, ValueError):
        return False


def keys_files(value):
    """``keys_file`` - a path, or a list of paths (a cluster source's followers write one keys log each) - as a
    list of paths (empty without it)."""
    if value is None or value == '' or value == []:
        return []
    items = [value] if isinstance(value, (str, bytes)) else value
    if not isinstance(items, (list, tuple)) or not items \
            or any(not isinstance(item, (str, bytes)) or not item for item in items):
        raise KVError('keys_file must be a path or a list of paths (kv_sync\'s keys_log, or its keys_logs with a '
                      'cluster source), got %r' % (value,), kind='config')
    paths = [os.path.expanduser(item if isinstance(item, str) else item.decode('utf-8')) for item in items]
    if len(set(paths)) < len(paths):
        raise KVError('keys_file names a keys log twice: %s' % ', '.join(paths), kind='config')
    return paths


def keys_offsets(value, files):
    """``keys_file_offset`` - one offset, or a list with one per keys log in the order of ``files`` - as that list.
    One offset other than 0 for several logs is refused (each log has a size of its own)."""
    items = list(value) if isinstance(value, (list, tuple)) else [0 if value is None else value]
    for item in items:
        if item is None or not is_number(item, int):  # (None is the default of the option, not an element)
            raise KVError('keys_file_offset must be a number or a list of numbers, got %r' % (value,), kind='config')
        if int(item) < 0:
            raise KVError('keys_file_offset must be 0 or more, got %s' % item, kind='config')
    items = [int(item) for item in items]
    if not files:
        if any(items):
            raise KVError('keys_file_offset %s was given without keys_file' % value, kind='config')
        return []
    if len(items) == len(files):
        return items
    if len(items) <= 1 and not any(items):
        return [0] * len(files)
    raise KVError('keys_file_offset gives %s (%s) for %s: give one per keys log, in the same order (kv_sync returns '
                  'keys_log_sizes beside keys_logs)' % (plural(len(items), 'offset'), value,
                                                        plural(len(files), 'keys log')), kind='config')


def scope_text(result, opts):
    """What was compared when it was not simply every key once (the keys log, the rounds), for the summary."""
    text = ''
    touched = result.get('keys_file')
    if touched is not None:
        listed = [d for d in result['dbs'] if d['scope'] == 'keys']
        if isinstance(touched['start'], list):
            where = '%d keys logs name from offsets %s to %s' % (
                len(touched['start']), ', '.join(map(str, touched['start'])), ', '.join(map(str, touched['end'])))
        else:
            where = 'keys log names from offset %d to %d' % (touched['start'], touched['end'])
        text += ' Scope: the %s the %s (%s) and the key counts of %s, equal on both sides%s.' % (
            plural(touched['keys'], 'key'), where, plural(touched['records'], 'record'), plural(len(listed), 'db'),
            '; %s compared whole' % plural(len(result['dbs']) - len(listed), 'db')
            if len(listed) < len(result['dbs']) else '')
    rounds = result.get('rounds') or []
    if len(rounds) > 1:
        text += ' %s differed in round 1 (%s); %s rechecked after %g s each, %s differing after the last.' % (
            plural(rounds[0]['differing'], 'key'), 'while the source changed' if result['source_changed']
            else 'the source was quiet', plural(len(rounds) - 1, 'recheck round'), opts.recheck_delay,
            rounds[-1]['differing'])
    return text


class Touched:
    """The keys of one or more keys logs, each from an offset: ``keys[target_db]`` a set of names, ``whole`` the
    target dbs that changed as a whole, ``ends`` the offsets reached, ``records`` how many records were read.

    Several logs: a cluster source has one follower per master, each with a log of its own; the keys they name are
    one set per target db (a whole-db record in any of them makes that db whole)."""

    def __init__(self, paths, offsets=None):
        paths = [paths] if isinstance(paths, str) else list(paths)
        offsets = list(offsets or [0] * len(paths))
        self.keys = {}
        self.whole = set()
        self.starts = offsets
        self.ends = []
        self.records = 0
        for path, offset in zip(paths, offsets):
            reader = KeysLogReader(path, offset)
            for db, key in reader.records():
                if key is None:
                    self.whole.add(db)
                    self.keys.pop(db, None)
                elif db not in self.whole:
                    self.keys.setdefault(db, set()).add(key)
            self.ends.append(reader.offset)
            self.records += reader.records_read

    def for_target_db(self, t_db):
        """None when the whole db is to be compared, else the (possibly empty) list of keys."""
        if t_db in self.whole:
            return None
        return sorted(self.keys.get(t_db, ()))

    def describe(self):
        """``start`` and ``end``: offsets for one log, lists (one per log) for several."""
        one = len(self.starts) == 1
        return dict(start=self.starts[0] if one else list(self.starts), end=self.ends[0] if one else list(self.ends),
                    records=self.records, keys=sum(len(v) for v in self.keys.values()), whole_dbs=sorted(self.whole))


class DiffingKeys:
    """The raw names of the keys of one db pair that differed; at most ``limit`` (then ``overflow``)."""

    def __init__(self, limit=RECHECK_LIMIT):
        self.limit = limit
        self.keys = set()
        self.overflow = False
        self.lock = threading.Lock()

    def add(self, key):
        with self.lock:
            if len(self.keys) < self.limit:
                self.keys.add(key)
            elif key not in self.keys:
                self.overflow = True

    def take(self):
        """``(sorted keys, overflow)`` and start afresh."""
        with self.lock:
            keys, overflow = sorted(self.keys), self.overflow
            self.keys, self.overflow = set(), False
        return keys, overflow


def ignored_keys(entries):
    """``ignore_target_keys`` (``[{db: n, key: name}]``, names as text or bytes) -> ``{target db: set(bytes)}``."""
    out = {}
    for entry in entries or []:
        if not isinstance(entry, dict) or set(entry) - set(('db', 'key')) or 'key' not in entry:
            raise KVError('ignore_target_keys holds %r: each entry must be {db: <target db>, key: <name>}' % (entry,),
                          kind='config')
        try:
            db = int(entry.get('db', 0))
        except (TypeError, ValueError):
            raise KVError('ignore_target_keys: db must be a number, got %r' % (entry.get('db'),), kind='config')
        key = entry['key']
        if not isinstance(key, bytes):
            key = str(key).encode('utf-8')
        out.setdefault(db, set()).add(key)
    return out


def recheck_reset(result):
    """Take the differing keys out of a db entry before they are compared again: they will be counted
    anew, as identical, differing, absent or expired.  ``keys`` (source keys checked) counts only keys that
    were on the source; those that were missing or differing are recounted by the recheck."""
    result['keys'] -= result['missing'] + result['conflicts']
    for name in DIFF_COUNTERS:
        result[name] = 0


def differing(result):
    """Keys of a db entry that differ (a key with two kinds of difference counts once)."""
    return result['missing'] + result['extra'] + result['conflicts']


class DbState:
    """Counters and differences of one db pair of a verification, shared by its workers; with rounds, the raw names
    of the keys that differed."""

    def __init__(self, src_db, tgt_db, run, fields=None):
        self.run = run
        extra = dict((name, 0) for name in (fields or run.fields))
        self.result = db_result(src_db, tgt_db, **extra)
        self.result['scope'] = 'full'
        self.found = 0
        self.lock = threading.Lock()
        self.differing = DiffingKeys() if run.opts.rounds > 1 else None

    def add(self, counts, differences, found):
        with self.lock:
            for name, value in counts.items():
                self.result[name] = self.result.get(name, 0) + value
            self.found += found
        self.run.add_differences(differences)

    def note(self, key):
        """A key that differs: remembered for the next round's recheck."""
        if self.differing is not None:
            self.differing.add(key)


def round_done(verifier, number, scope, started, compared):
    verifier.rounds.append(dict(round=number, scope=scope, compared=compared,
                                differing=sum(differing(st.result) for st in verifier.states),
                                seconds=round(time.time() - started, 3)))


def recheck_rounds(verifier):
    """Rounds 2..n: after ``recheck_delay``, compare again only the keys that differed in the round before (the
    follower may simply not have applied them yet), until none differs or the limit."""
    opts = verifier.opts
    for number in range(2, opts.rounds + 1):
        pending = [st for st in verifier.states if differing(st.result)]
        if not pending:
            return
        time.sleep(opts.recheck_delay)
        started = time.time()
        verifier.differences = []  # the differences of the last look at every key
        compared = 0
        for state in pending:
            keys, overflow = state.differing.take()
            if overflow:  # too many to remember: compare the db whole again
                reset_state(verifier, state)
                verifier.verify_db(state)
                compared += state.result['keys'] + state.result['extra'] + state.result['expired']
            else:
                recheck_reset(state.result)
                verifier.compare_listed(state, keys)
                compared += len(keys)
        round_done(verifier, number, 'recheck', started, compared)


def reset_state(verifier, state):
    """Forget what a db pair's comparison counted (its keyspace figures stay)."""
    for name, value in list(state.result.items()):
        if isinstance(value, int) and name not in ('db', 'target_db', 'source_keys', 'target_keys',
                                                   'source_expires', 'target_expires'):
            state.result[name] = 0
    state.found = 0
    s_db = state.result['db']
    with verifier.diff_lock:
        verifier.differences = [d for d in verifier.differences if d['db'] != s_db]


def verify_listed_db(verifier, state, keys):
    """The keys the follower changed since the last full round, then the key counts of both sides: a key no log
    names was compared in that round and has not changed since; equal counts show that no key appeared
    elsewhere.  Counts that differ: the db is compared whole."""
    s_db, t_db = state.result['db'], state.result['target_db']
    state.result['scope'] = 'keys'
    verifier.compare_listed(state, keys)
    src_size = verifier.dbsize(verifier.source_ep, s_db)
    tgt_size = verifier.dbsize(verifier.target_ep, t_db)
    state.result['source_count'] = src_size
    state.result['target_count'] = tgt_size
    if src_size == tgt_size:
        return
    message = ('db %d holds %d keys on the source and db %d %d on the target after the listed keys were compared: '
               'the db was compared whole' % (s_db, src_size, t_db, tgt_size))
    verifier.warnings.append(message)
    verifier.warn(message)
    reset_state(verifier, state)
    state.result['scope'] = 'full (key counts differed)'
    verifier.verify_db(state)
