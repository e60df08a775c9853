# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The touched-keys log of kv_sync's follower: every (target db, key) a command it applied wrote or deleted.

kv_verify reads it to check, inside the write pause, exactly the keys that changed since its last full
round.  The format (also in the kv_sync contract):

- the 9-byte header ``KVTKEYS1\\n``;
- records, big-endian: db (4 bytes, signed) + key length (4 bytes, unsigned) + the key; the length
  0xFFFFFFFF (and no key) says that the whole db changed (FLUSHDB, FLUSHALL, SWAPDB: anything that is
  not per key).

:class:`KeysLogWriter` is the only writer (kv_sync's follower: its touched-keys log and its log of held
expiries), :class:`KeysLogReader` / :func:`iter_keys_log` the only reader (kv_verify, kv_sync's drain).

Keys are raw bytes.  The writer appends whole records only, with one ``os.write`` per flush on an
O_APPEND descriptor, so a reader sees at most one partial record at the end (a write in flight); it
stops before that one.  Offsets handed around (``keys_log_size``, a reader's ``offset``) are record
boundaries.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
from itertools import repeat

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

HEADER = b'KVTKEYS1\n'
WHOLE_DB = 0xFFFFFFFF
_HEAD = struct.Struct('>iI')
READ_SIZE = 1024 * 1024
MAX_DB = 2 ** 31 - 1


def encode_key(db, key):
    """One key record."""
    if len(key) >= WHOLE_DB:
        raise ValueError('key too long for the keys log')
    return _HEAD.pack(db, len(key)) + key


def encode_whole_db(db):
    """One whole-db record."""
    return _HEAD.pack(db, WHOLE_DB)


class KeysLogWriter:
    """Appends records to a keys log (created with mode 0600 and its header when new).

    Records are kept in memory until :meth:`flush` (or ``flush_bytes`` of them): the follower flushes
    before it sends the commands whose keys they are (write-ahead), so a killed follower never leaves a
    written key out.  :meth:`size` flushes and returns the size of the log (a record boundary).
    """

    def __init__(self, path, flush_bytes=64 * 1024):
        self.path = path
        self.flush_bytes = flush_bytes
        self.pending = []
        self.pending_size = 0
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            if os.fstat(fd).st_size == 0:
                os.write(fd, HEADER)
            self._size = os.fstat(fd).st_size
        except Exception:
            os.close(fd)
            raise
        self.fd = fd

    def _add(self, record):
        self.pending.append(record)
        self.pending_size += len(record)
        if self.pending_size >= self.flush_bytes:
            self.flush()

    def add(self, db, key):
        """Log one key of target db ``db`` (bytes); ``key`` None: the whole db (see :meth:`whole_db`)."""
        if not 0 <= db <= MAX_DB:
            raise ValueError('db out of range: %r' % (db,))
        self._add(encode_whole_db(db) if key is None else encode_key(db, key))

    def add_keys(self, db, keys):
        """Log the keys (a list of bytes) of target db ``db``: :meth:`add` for each, in one piece."""
        if not keys:
            return
        if not 0 <= db <= MAX_DB:
            raise ValueError('db out of range: %r' % (db,))
        lengths = list(map(len, keys))
        if max(lengths) >= WHOLE_DB:
            raise ValueError('key too long for the keys log')
        parts = [None] * (2 * len(keys))
        parts[0::2] = map(_HEAD.pack, repeat(db), lengths)
        parts[1::2] = keys
        self._add(b''.join(parts))

    def whole_db(self, db):
        """Log that every key of target db ``db`` may have changed."""
        if not 0 <= db <= MAX_DB:
            raise ValueError('db out of range: %r' % (db,))
        self._add(encode_whole_db(db))

    def flush(self):
        """Write the pending records with one write call; returns the size of the log."""
        if self.pending:
            data = b''.join(self.pending)
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            self._size += len(data)
            self.pending = []
            self.pending_size = 0
        return self._size

    def size(self):
        """Flush, and return the size of the log in bytes."""
        return self.flush()

    def close(self):
        if self.fd is not None:
            try:
                self.flush()
            finally:
                os.close(self.fd)
                self.fd = None


class KeysLogReader:
    """Reads records from ``start`` (a record boundary, 0 for the beginning) up to the last whole one.

    ``records()`` yields ``(db, key)`` (``key`` None for a whole-db record); afterwards ``offset`` is the
    record boundary reached, the ``start`` of a later read.
    """

    def __init__(self, path, start=0):
        if start < 0:
            raise KVError('keys_file_offset must be 0 or more, got %d' % start, kind='config')
        self.path = path
        self.start = start
        self.offset = start
        self.records_read = 0

    def _error(self, what):
        return KVError('the keys log %s %s' % (self.path, what), kind='keys_log')

    def records(self):
        try:
            fh = open(self.path, 'rb')
        except (IOError, OSError) as exc:
            raise self._error('cannot be read: %s' % (exc.strerror or exc))
        with fh:
            head = fh.read(len(HEADER))
            if head != HEADER:
                raise self._error('does not start with the keys log header (%r)' % HEADER)
            size = os.fstat(fh.fileno()).st_size
            if self.start > size:
                raise self._error('holds %d bytes: offset %d lies beyond its end' % (size, self.start))
            if 0 < self.start < len(HEADER):
                raise self._error('has no record at offset %d (records start at %d)' % (self.start, len(HEADER)))
            pos = max(self.start, len(HEADER))
            fh.seek(pos)
            buf = b''
            while True:
                chunk = fh.read(READ_SIZE)
                if not chunk:
                    break
                buf += chunk
                used = 0
                end = len(buf)
                size = _HEAD.size
                while used + size <= end:
                    db, length = _HEAD.unpack_from(buf, used)
                    if db < 0:
                        raise self._error('holds a negative db number at offset %d (is the offset a record '
                                          'boundary?)' % (pos + used))
                    if length == WHOLE_DB:
                        key = None
                        step = size
                    elif used + size + length > end:
                        break
                    else:
                        key = buf[used + size:used + size + length]
                        step = size + length
                    used += step
                    self.records_read += 1
                    self.offset = pos + used
                    yield db, key
                buf = buf[used:]
                pos += used
            self.offset = pos  # the boundary before a partial record (a write in flight), if any


def iter_keys_log(path, start=0):
    """Yield ``(target db, key)`` from the keys log at ``path``, from ``start``; key None = the whole db."""
    return KeysLogReader(path, start).records()
