# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The logical backup format (KVTLOG1): per key its DUMP payload and absolute expiry.

:class:`LogicalWriter` writes it; :func:`iter_logical` and :func:`logical_header` read it, plain or
encrypted.  The format is described in ``docs/backup-format.md``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import struct

from ansible_collections.kvtools.migration.plugins.module_utils._encryption import HEADER_LIMIT, open_plain
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._spooled_payload import BIG_VALUE, SPOOL_CHUNK, ReplySpool

LOGICAL_MAGIC = b'KVTLOG1\n'
_REC_DB = b'D'
_REC_KEY = b'K'
_REC_END = b'E'
_KEY_HEAD = struct.Struct('>IQq')   # key length, payload length, absolute expiry in ms (-1: none)


class LogicalWriter:
    """Writes the KVTLOG1 format to a file-like ``out`` (see docs/backup-format.md)."""

    def __init__(self, out, header):
        self.out = out
        self.sha = hashlib.sha256()
        self.keys = 0
        self.payload_bytes = 0
        self.dbs = {}
        self.db = None
        raw = json.dumps(header, sort_keys=True).encode('utf-8')
        self._put(LOGICAL_MAGIC + struct.pack('>I', len(raw)) + raw)

    def _put(self, data):
        self.sha.update(data)
        self.out.write(data)

    def select(self, db):
        self.db = int(db)
        self.dbs.setdefault(self.db, 0)
        self._put(_REC_DB + struct.pack('>I', self.db))

    def add(self, items):
        """``items``: ``[(key, payload, expire_at_ms or None), ...]`` of the current db.  A payload may be a
        SpooledPayload (a big value in a temp file): it is copied into the backup chunk by chunk."""
        parts = []
        for key, payload, expire_at in items:
            parts.append(_REC_KEY + _KEY_HEAD.pack(len(key), len(payload), -1 if expire_at is None else expire_at))
            parts.append(key)
            self.payload_bytes += len(payload)
            if payload.__class__ is bytes:
                parts.append(payload)
                continue
            self._put(b''.join(parts))
            parts = []
            for chunk in payload.chunks():
                self._put(chunk)
        self.keys += len(items)
        self.dbs[self.db] += len(items)
        self._put(b''.join(parts))

    def finish(self, extra=None):
        trailer = dict(keys=self.keys, dbs=dict((str(k), v) for k, v in sorted(self.dbs.items())),
                       payload_bytes=self.payload_bytes)
        trailer.update(extra or {})
        raw = json.dumps(trailer, sort_keys=True).encode('utf-8')
        self._put(_REC_END + struct.pack('>I', len(raw)) + raw)
        self.out.write(self.sha.digest())
        return trailer


# The most a record may claim: Redis refuses longer keys; an expiry past the year 9999 is no timestamp.
MAX_KEY_BYTES = 512 * 1024 * 1024
MAX_EXPIRE_MS = 253402300799999


class _HashingReader:
    """Reads the plain content exactly, hashing it and counting the offset (for the messages)."""

    def __init__(self, src, path):
        self.src = src
        self.path = path
        self.sha = hashlib.sha256()
        self.offset = 0
        try:  # the plain content is never longer than the file (an encrypted one is longer than its content)
            self.file_size = os.path.getsize(path)
        except OSError:
            self.file_size = None

    def spooled(self, size, spool_dir=None):
        """The next ``size`` bytes into a temp file (a big payload): a SpooledPayload, never held whole."""
        spool = ReplySpool(spool_dir, size)
        try:
            while spool.missing:
                spool.write(self.exact(min(spool.missing, SPOOL_CHUNK)))
        except BaseException:
            spool.abort()
            raise
        return spool.finish()

    def skip(self, size):
        """Read past ``size`` bytes (hashed), a chunk at a time."""
        while size:
            size -= len(self.exact(min(size, SPOOL_CHUNK)))

    def exact(self, size):
        data = self.src.read(size)
        if len(data) != size:
            raise KVError('%s is truncated: it ends in the middle of a record (at offset %d)'
                          % (self.path, self.offset + len(data)), kind='corrupt')
        self.sha.update(data)
        self.offset += size
        return data

    def length(self, value, at, what, limit=None):
        """``value`` read at offset ``at`` as the length of ``what``: refused before anything is allocated
        when it exceeds ``limit`` or what is left of the file (a damaged byte, not a real record)."""
        left = None if self.file_size is None else self.file_size - self.offset
        if limit is not None and value > limit:
            raise KVError('%s is corrupt at offset %d: %s of %d bytes is more than the format allows (%d)'
                          % (self.path, at, what, value, limit), kind='corrupt', details={'offset': at})
        if left is not None and value > left:
            raise KVError('%s is corrupt at offset %d: %s of %d bytes runs past the end of the file (%d bytes left)'
                          % (self.path, at, what, value, max(left, 0)), kind='corrupt', details={'offset': at})
        return value


def _read_logical_header(reader, path):
    if reader.exact(len(LOGICAL_MAGIC)) != LOGICAL_MAGIC:
        raise KVError('%s is not a logical kvtools backup (no KVTLOG1 magic)' % path, kind='corrupt')
    at = reader.offset
    size = reader.length(struct.unpack('>I', reader.exact(4))[0], at, 'a header', HEADER_LIMIT)
    try:
        return json.loads(reader.exact(size).decode('utf-8'))
    except ValueError:
        raise KVError('%s has an unreadable header' % path, kind='corrupt')


def logical_header(path, passphrase=None):
    """The header of a logical backup: ``{'format': 1, 'engine', 'version', 'rdb_version', 'source',
    'created', 'dbs', ...}``.  Raises KVError when ``path`` is not one."""
    src, fh, dummy = open_plain(path, passphrase)
    try:
        return _read_logical_header(_HashingReader(src, path), path)
    finally:
        fh.close()


def iter_logical(path, passphrase=None, stats=None, payloads=True, spool_dir=None):
    """Yield ``(db, key, payload, expire_at_ms or None)`` for every key of a logical backup.

    Bounded memory: one record at a time; a payload above :data:`~._spooled_payload.BIG_VALUE` is a
    SpooledPayload (a 0600 temp file in ``spool_dir``, default the temp dir).  With ``payloads`` false (a
    check of the file) the payloads are read past and None is yielded instead; ``payloads`` may also be a
    function ``(db, key) -> bool`` that says which payloads are wanted.  The file's sha256 trailer is checked when the last
    record has been read; a mismatch, a truncated file or a wrong passphrase raise KVError (kinds
    ``corrupt``, ``passphrase``) - a consumer that must not act on a damaged file calls
    :func:`verify_backup` first.  ``stats`` (a dict), when given, receives the trailer.
    """
    src, fh, dummy = open_plain(path, passphrase)
    try:
        reader = _HashingReader(src, path)
        _read_logical_header(reader, path)
        db = 0
        head_size = _KEY_HEAD.size
        while True:
            at = reader.offset
            kind = reader.exact(1)
            if kind == _REC_KEY:
                klen, plen, expire = _KEY_HEAD.unpack(reader.exact(head_size))
                reader.length(klen, at + 1, 'a key length', MAX_KEY_BYTES)
                reader.length(plen, at + 5, 'a payload length', None)
                if expire != -1 and not 0 <= expire <= MAX_EXPIRE_MS:
                    raise KVError('%s is corrupt at offset %d: %d is no expiry time' % (path, at + 13, expire),
                                  kind='corrupt', details={'offset': at + 13})
                key = reader.exact(klen)
                if not (payloads is True or (payloads and payloads(db, key))):
                    reader.skip(plen)
                    payload = None
                elif plen > BIG_VALUE:
                    payload = reader.spooled(plen, spool_dir)
                else:
                    payload = reader.exact(plen)
                yield db, key, payload, None if expire < 0 else expire
            elif kind == _REC_DB:
                db = struct.unpack('>I', reader.exact(4))[0]
            elif kind == _REC_END:
                size = reader.length(struct.unpack('>I', reader.exact(4))[0], at + 1, 'the trailer', HEADER_LIMIT)
                try:
                    trailer = json.loads(reader.exact(size).decode('utf-8'))
                except ValueError:
                    raise KVError('%s is corrupt at offset %d: its trailer is unreadable' % (path, at + 5),
                                  kind='corrupt', details={'offset': at + 5})
                digest = src.read(32)
                if digest != reader.sha.digest():
                    raise KVError('%s is corrupt: its sha256 trailer does not match its content' % path,
                                  kind='corrupt')
                if src.read(1):
                    raise KVError('%s is corrupt: data follows its trailer' % path, kind='corrupt')
                if stats is not None:
                    stats.update(trailer)
                return
            else:
                raise KVError('%s is corrupt at offset %d: unknown record type %r' % (path, at, kind), kind='corrupt',
                              details={'offset': at})
    finally:
        fh.close()
