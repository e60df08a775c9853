# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Write the key events of a snapshot (:class:`SnapshotParser`) to a target with pipelined RESTORE.

:class:`SnapshotRestorer` takes the parser's events one by one (``feed``) or all at once (``run``):
every key of a selected db becomes ``RESTORE key <expire-ms> payload ABSTTL [REPLACE]`` (``0`` and no
ABSTTL for a key without expiry) in the mapped target db, on one connection with a bounded number of
commands and payload bytes in flight.  A key whose expiry has passed when its event arrives is counted
as ``expired`` and not written (the source expires it too and streams the DEL).  A spooled payload is
sent from its file with its length, never held in memory.  Function libraries are loaded with
``FUNCTION LOAD [REPLACE]`` and counted in ``functions`` (``found``, ``loaded``, ``conflicts``: a library of
that name exists and ``replace`` is off).

Per-key outcomes are counted per db in the collection's shared shape (``_keyspace.db_result``):
``keys`` (keys of the db in the snapshot), ``copied`` (RESTORE answered OK), ``expired``, ``conflicts``
(BUSYKEY: the key exists and ``replace`` is off), ``failed`` (any other per-key refusal) and ``bytes``
(payload bytes); ``replaced`` stays 0 (RESTORE ... REPLACE answers OK whether or not the key existed).
A caller that must not overwrite checks the target first; conflicts are only counted here, with the
first 20 in ``failures`` (db, key name, the server's words; never values).
Errors that would refuse every key (payload version or format, OOM, NOPERM, READONLY,
LOADING, a missing db, an unknown command) stop the restore with a KVError naming the reason.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    db_mapping, db_result, sample_key, totals)
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_ms as wall_ms
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyError, Wire

WINDOW = 2000                    # commands in flight at most
WINDOW_BYTES = 16 << 20          # payload bytes in flight at most
SEND_BYTES = 256 << 10           # packed commands are sent in buffers of about this size
FAILURES_KEPT = 20
FATAL_KINDS = ('payload', 'oom', 'noperm', 'readonly', 'loading', 'db', 'unknown_command', 'auth', 'moved')


_RESTORE = b'*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s'


def _bulk(arg):
    return b'$%d\r\n%s\r\n' % (len(arg), arg)


class SnapshotRestorer:
    """RESTOREs the key events of a snapshot into ``target`` (an Endpoint).

    ``dbs``: the source dbs to copy (None: every db); ``db_map``: ``{source_db: target_db}``;
    ``replace``: RESTORE with REPLACE (else an existing key is a conflict); ``window`` /
    ``window_bytes``: commands / payload bytes in flight at most; ``now_ms``: a clock (tests).
    """

    def __init__(self, target, dbs=None, db_map=None, replace=False, window=WINDOW, window_bytes=WINDOW_BYTES,
                 now_ms=None):
        if int(window) < 1:
            raise KVError('window must be at least 1, got %r' % (window,), kind='config')
        if int(window_bytes) < 1:
            raise KVError('window_bytes must be at least 1, got %r' % (window_bytes,), kind='config')
        self.target = target
        self.dbs = None if dbs is None else set(int(d) for d in dbs)
        self.mapping = db_mapping(db_map)
        if self.dbs is not None:
            targets = [self.mapping.get(d, d) for d in self.dbs]
            if len(set(targets)) != len(targets):
                raise KVError('db_map sends two source dbs into the same target db: %r' % self.mapping,
                              kind='config')
        self.replace = bool(replace)
        replace_arg = b'$7\r\nREPLACE\r\n' if self.replace else b''
        self._plain = (4 + self.replace, b'0', replace_arg)                      # RESTORE key 0 payload
        self._abs = (5 + self.replace, None, b'$6\r\nABSTTL\r\n' + replace_arg)  # RESTORE key ms payload ABSTTL
        self.window = int(window)
        self.window_bytes = int(window_bytes)
        self.now_ms = now_ms or wall_ms
        self.results = {}
        for db in sorted(self.dbs or ()):
            self._db(db)
        self.failures = []
        self.functions = dict(found=0, loaded=0, conflicts=0)
        self.not_selected = 0
        self.finished = False
        self.started = time.time()
        self.wire = None
        self._client = None
        self._out = []
        self._out_size = 0
        self._inflight = []          # (kind, source db, key or None, payload size) per command sent
        self._inflight_bytes = 0
        self._selected = None

    # -- connection --------------------------------------------------------------------------------
    def _connect(self):
        try:
            self._client = self.target.client(db=0)
            self.wire = Wire(self._client)
        except KVError:
            raise
        except Exception as exc:
            raise self.target.error(exc, 'connecting to the target for RESTORE')

    def close(self):
        if self.wire is not None:
            self.wire.close()
            self.wire = None
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # pragma: no cover - closing only
                pass
            self._client = None

    def _db(self, db):
        entry = self.results.get(db)
        if entry is None:
            target_db = self.mapping.get(db, db)
            for other in self.results.values():
                if other['target_db'] == target_db:
                    raise KVError('source dbs %d and %d would both be written into target db %d: give db_map a '
                                  'target for each, or dbs to choose' % (other['db'], db, target_db), kind='config')
            entry = self.results[db] = db_result(db, target_db)
        return entry

    # -- events ------------------------------------------------------------------------------------
    def run(self, events):
        """Feed every event, then finish; returns the result (see :meth:`finish`)."""
        try:
            for event in events:
                self.feed(event)
            return self.finish()
        finally:
            self.close()

    def feed(self, event):
        kind = event[0]
        if kind == 'key':
            self.key(event[1], event[2], event[3], event[4])
        elif kind == 'function':
            self.function(event[1])
        elif kind == 'end' and not event[1]:
            # every payload carries a CRC the parser computed, so only the snapshot's own trailer can tell
            raise KVError('the snapshot\'s CRC-64 trailer does not match what was received: the transfer was corrupted '
                          'and the keys written from it cannot be trusted. Take a new snapshot (the target keys are '
                          'replaced)', kind='corrupt', endpoint=self.target.address)
        # 'aux' and 'db' need nothing from the restorer

    def key(self, db, key, payload, expire_ms):
        if self.dbs is not None and db not in self.dbs:
            self.not_selected += 1
            _close(payload)
            return
        entry = self.results.get(db) or self._db(db)
        entry['keys'] += 1
        size = len(payload)
        entry['bytes'] += size
        if expire_ms is None:
            argc, ttl, tail = self._plain
        elif expire_ms <= self.now_ms():
            entry['expired'] += 1
            _close(payload)
            return
        else:
            argc, ttl, tail = self._abs
            ttl = b'%d' % expire_ms
        if self.wire is None:
            self._connect()
        target_db = entry['target_db']
        if target_db != self._selected:
            self._queue(b'*2\r\n$6\r\nSELECT\r\n' + _bulk(b'%d' % target_db), ('select', db, None, 0))
            self._selected = target_db
        what = ('restore', db, key, size)
        if isinstance(payload, bytes):
            # the hot path: one format per key, no method call unless a buffer or the window is full
            data = _RESTORE % (argc, len(key), key, len(ttl), ttl, size, payload, tail)
            self._out.append(data)
            self._out_size += len(data)
            self._inflight.append(what)
            self._inflight_bytes += size
            if self._out_size >= SEND_BYTES:
                self._send_out()
            if len(self._inflight) >= self.window or self._inflight_bytes >= self.window_bytes:
                self._drain(len(self._inflight) // 2 or 1)
            return
        # a spooled payload: send what is queued, then the command with the payload streamed from its file
        self._send_out()
        try:
            self._send(b'*%d\r\n$7\r\nRESTORE\r\n%s%s$%d\r\n' % (argc, _bulk(key), _bulk(ttl), size))
            for chunk in payload.chunks():
                self._send(chunk)
            self._send(b'\r\n' + tail)
        finally:
            payload.close()
        self._sent(what)

    def function(self, code):
        self.functions['found'] += 1
        if self.wire is None:
            self._connect()
        args = [b'FUNCTION', b'LOAD'] + ([b'REPLACE'] if self.replace else []) + [code]
        self._queue(b'*%d\r\n' % len(args) + b''.join(_bulk(a) for a in args), ('function', None, None, 0))

    # -- pipelining --------------------------------------------------------------------------------
    def _queue(self, data, what):
        self._out.append(data)
        self._out_size += len(data)
        self._sent(what)
        if self._out_size >= SEND_BYTES:
            self._send_out()

    def _sent(self, what):
        self._inflight.append(what)
        self._inflight_bytes += what[3]
        if len(self._inflight) >= self.window or self._inflight_bytes >= self.window_bytes:
            self._drain(len(self._inflight) // 2 or 1)

    def _send_out(self):
        if self._out:
            data = b''.join(self._out)
            self._out = []
            self._out_size = 0
            self._send(data)

    def _send(self, data):
        try:
            self.wire.send(data, packed=True)
        except Exception as exc:
            raise self.target.error(exc, 'sending RESTORE to the target')

    def _drain(self, count):
        """Read the replies of the ``count`` oldest commands in flight."""
        self._send_out()
        try:
            replies = self.wire.recv(count)
        except Exception as exc:
            raise self.target.error(exc, 'reading RESTORE replies from the target')
        done = self._inflight[:count]
        del self._inflight[:count]
        for what, reply in zip(done, replies):
            self._inflight_bytes -= what[3]
            self._outcome(what, reply)

    def _outcome(self, what, reply):
        kind, db, key, dummy_size = what
        if not isinstance(reply, ReplyError):
            if kind == 'restore':
                self.results[db]['copied'] += 1
            elif kind == 'function':
                self.functions['loaded'] += 1
            return
        text = scrub(str(reply), self.target.secrets)
        error_kind = reply_kind(text)
        if kind == 'select' or error_kind in FATAL_KINDS:
            raise self._fatal(what, text, error_kind)
        if kind == 'function':
            if 'already exists' not in text:
                raise KVError('FUNCTION LOAD on the target failed: %s (%s): the target cannot load a function library '
                              'of the source' % (text, self.target.address), kind='function',
                              endpoint=self.target.address, details={'server_reply': text[:300]})
            self.functions['conflicts'] += 1
            if len(self.failures) < FAILURES_KEPT:
                self.failures.append(dict(db=None, target_db=None, key=None, error=text[:200]))
            return
        entry = self.results[db]
        if error_kind == 'busykey':
            entry['conflicts'] += 1
        else:
            entry['failed'] += 1
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append(dict(db=db, target_db=entry['target_db'], key=sample_key(key), error=text[:200]))

    def _fatal(self, what, text, error_kind):
        kind, db, key, dummy_size = what
        where = self.target.address
        target_db = self.mapping.get(db, db) if db is not None else None
        if kind == 'select':
            message = 'SELECT %s on the target failed: %s' % (target_db, text)
        else:
            message = 'RESTORE into db %s of the target failed: %s' % (target_db, text)
        if error_kind == 'payload':
            message += ('. The target refuses the payloads of this source (RDB version or encoding newer than the '
                        'target understands); choose a target at least as new as the source, or the offline '
                        'copy with its type-aware fallback (kv_dump_restore payload=auto)')
        return KVError('%s (%s)' % (message, where), kind=error_kind, endpoint=where,
                       details={'server_reply': text[:300]})

    def finish(self):
        """Wait for every reply; return ``dict(dbs=[...], totals=..., functions=..., failures=[...], ...)``."""
        if self.wire is not None:
            while self._inflight:
                self._drain(min(len(self._inflight), self.window))
        self.finished = True
        entries = [self.results[db] for db in sorted(self.results)]
        return dict(dbs=entries, totals=totals(entries), functions=dict(self.functions), failures=list(self.failures),
                    keys_not_selected=self.not_selected, seconds=round(time.time() - self.started, 3))


def _close(payload):
    if not isinstance(payload, bytes):
        payload.close()
