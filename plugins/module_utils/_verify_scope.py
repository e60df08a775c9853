# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What kv_verify compares when the source is followed live (the ``live`` strategy of migrate.yml).

* :class:`Touched` - the keys kv_sync's follower wrote or deleted since an offset of its keys log,
  grouped by target db (a whole-db record makes that db whole).  kv_verify compares exactly those
  keys, plus the key counts of every db pair, inside the write pause.
* :class:`DiffingKeys` - the raw names of the keys that differed in a round, bounded, so the next
  round rechecks only them.
* :func:`recheck_reset` - takes the differences of a round out of a db's counters before its keys are
  compared again (so the counters describe the last look at every key).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils.keys_log import KeysLogReader

RECHECK_LIMIT = 100000   # differing keys remembered per db for a recheck; beyond it the db is compared whole
MAX_ROUNDS = 100
MAX_RECHECK_DELAY = 3600
# counters of a db entry that describe differences (all of them are redone by a recheck)
DIFF_COUNTERS = ('conflicts', 'missing', 'extra', 'type_differs', 'value_differs', 'ttl_differs')


class Touched:
    """The keys of a keys log from an offset: ``keys[target_db]`` a set of names, ``whole`` the target dbs
    that changed as a whole, ``end`` the offset reached, ``records`` how many records were read."""

    def __init__(self, path, offset=0):
        reader = KeysLogReader(path, offset)
        self.keys = {}
        self.whole = set()
        for db, key in reader.records():
            if key is None:
                self.whole.add(db)
                self.keys.pop(db, None)
            elif db not in self.whole:
                self.keys.setdefault(db, set()).add(key)
        self.start = offset
        self.end = reader.offset
        self.records = reader.records_read

    def for_target_db(self, t_db):
        """None when the whole db is to be compared, else the (possibly empty) list of keys."""
        if t_db in self.whole:
            return None
        return sorted(self.keys.get(t_db, ()))

    def describe(self):
        return dict(start=self.start, end=self.end, records=self.records,
                    keys=sum(len(v) for v in self.keys.values()), whole_dbs=sorted(self.whole))


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
