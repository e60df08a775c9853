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
import struct

from ansible_collections.kvtools.migration.plugins.module_utils._encryption import HEADER_LIMIT, open_plain
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

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
        """``items``: ``[(key, payload, expire_at_ms or None), ...]`` of the current db."""
        parts = []
        for key, payload, expire_at in items:
            parts.append(_REC_KEY + _KEY_HEAD.pack(len(key), len(payload), -1 if expire_at is None else expire_at))
            parts.append(key)
            parts.append(payload)
            self.payload_bytes += len(payload)
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


class _HashingReader:
    def __init__(self, src, path):
        self.src = src
        self.path = path
        self.sha = hashlib.sha256()

    def exact(self, size):
        data = self.src.read(size)
        if len(data) != size:
            raise KVError('%s is truncated: it ends in the middle of a record' % self.path, kind='corrupt')
        self.sha.update(data)
        return data


def _read_logical_header(reader, path):
    if reader.exact(len(LOGICAL_MAGIC)) != LOGICAL_MAGIC:
        raise KVError('%s is not a logical kvtools backup (no KVTLOG1 magic)' % path, kind='corrupt')
    size = struct.unpack('>I', reader.exact(4))[0]
    if size > HEADER_LIMIT:
        raise KVError('%s has an implausible header' % path, kind='corrupt')
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


def iter_logical(path, passphrase=None, stats=None):
    """Yield ``(db, key, payload, expire_at_ms or None)`` for every key of a logical backup.

    Bounded memory: one record at a time.  The file's sha256 trailer is checked when the last
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
            kind = reader.exact(1)
            if kind == _REC_KEY:
                klen, plen, expire = _KEY_HEAD.unpack(reader.exact(head_size))
                key = reader.exact(klen)
                payload = reader.exact(plen)
                yield db, key, payload, None if expire < 0 else expire
            elif kind == _REC_DB:
                db = struct.unpack('>I', reader.exact(4))[0]
            elif kind == _REC_END:
                size = struct.unpack('>I', reader.exact(4))[0]
                trailer = json.loads(reader.exact(size).decode('utf-8'))
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
                raise KVError('%s is corrupt: unknown record type %r' % (path, kind), kind='corrupt')
    finally:
        fh.close()
