# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A DUMP payload too big to hold in memory, in a 0600 temp file (the snapshot splitter's big objects, and
the big replies of a :class:`~._wire.Wire`: DUMP payloads and string values above :data:`~._wire.BIG_REPLY`).

:class:`ObjectSpool` is written while the object is read (its CRC-64 kept on the way) and becomes a
:class:`SpooledPayload`: ``length``, ``chunks()`` and ``close()``, so a RESTORE can be sent with the
payload's length and its bytes streamed from the file.  :class:`ReplySpool` is the same for a reply read
from a socket as it arrives.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import tempfile

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

SPOOL_CHUNK = 1 << 20
BIG_VALUE = 8 << 20  # a payload or value above this is spooled to a temp file, never held whole


class SpooledPayload:
    """A DUMP payload too big to hold in memory: a 0600 temp file of ``length`` bytes.

    ``chunks()`` yields its bytes in order (any number of times); ``close()`` removes the file.
    ``rdb_type`` is the object's type byte.
    """

    def __init__(self, path, length, rdb_type):
        self.path = path
        self.length = length
        self.rdb_type = rdb_type

    def __len__(self):
        return self.length

    def chunks(self, size=SPOOL_CHUNK):
        with open(self.path, 'rb') as fh:
            while True:
                data = fh.read(size)
                if not data:
                    return
                yield data

    def read_all(self):
        """The whole payload as bytes (tests and small payloads only)."""
        return b''.join(self.chunks())

    def head(self, size):
        """The first ``size`` bytes."""
        with open(self.path, 'rb') as fh:
            return fh.read(size)

    def close(self):
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None

    def __del__(self):  # a payload dropped on an error path takes its file with it
        try:
            self.close()
        except Exception:  # pragma: no cover - at interpreter exit
            pass

    def __repr__(self):
        return '<SpooledPayload %d bytes type %s>' % (self.length, self.rdb_type)


def spool_error(spool_dir, exc):
    return KVError('cannot write the spool file of a big value in %s: %s. Give it room for the largest key '
                   '(TMPDIR, or spool_dir where the module has it)' % (spool_dir or tempfile.gettempdir(), exc),
                   kind='io')


def open_spool(spool_dir, prefix):
    """``(path, file open for writing)`` of a new 0600 temp file in ``spool_dir`` (default: the temp dir)."""
    try:
        fd, path = tempfile.mkstemp(prefix=prefix, suffix='.tmp', dir=spool_dir)  # mode 0600
        return path, os.fdopen(fd, 'wb')
    except (OSError, IOError) as exc:
        raise spool_error(spool_dir, exc)


class ReplySpool:
    """A big reply of ``length`` bytes written to a temp file as it arrives: ``write(data)`` until
    ``missing`` is 0, then ``finish()`` returns its :class:`SpooledPayload` (``abort()`` on failure)."""

    def __init__(self, spool_dir, length):
        self.spool_dir = spool_dir
        self.path, self.fh = open_spool(spool_dir, 'kv-big-value-')
        self.missing = length
        self.length = length
        self.first = b''

    def write(self, data):
        if not self.first:
            self.first = data[:1]
        try:
            self.fh.write(data)
        except (OSError, IOError) as exc:
            self.abort()
            raise spool_error(self.spool_dir, exc)
        self.missing -= len(data)

    def finish(self):
        try:
            self.fh.close()
        except (OSError, IOError) as exc:
            self.abort()
            raise spool_error(self.spool_dir, exc)
        return SpooledPayload(self.path, self.length, bytearray(self.first)[0] if self.first else None)

    def abort(self):
        try:
            self.fh.close()
        except (OSError, IOError):
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass


class ObjectSpool:
    """The temp file a big object is written to while it is read, with its running CRC (``crc(data, crc)``).
    ``finish(version_bytes)`` completes the payload and returns its :class:`SpooledPayload`."""

    def __init__(self, spool_dir, rdb_type, crc):
        self.spool_dir = spool_dir or tempfile.gettempdir()
        self.crc_fn = crc
        self.path = self.fh = None
        try:
            fd, self.path = tempfile.mkstemp(prefix='kv-rdb-object-', suffix='.tmp', dir=spool_dir)  # mode 0600
            self.fh = os.fdopen(fd, 'wb')
        except (OSError, IOError) as exc:
            raise self._error(exc)
        self.rdb_type = rdb_type
        self.crc = 0
        self.length = 0
        self.write(bytes(bytearray([rdb_type])))

    def _error(self, exc):
        return KVError('cannot write the spool file of a big object in %s: %s. Give spool_dir a folder with room '
                       'for the largest key' % (self.spool_dir, exc), kind='io')

    def write(self, data):
        try:
            self.fh.write(data)
        except (OSError, IOError) as exc:
            raise self._error(exc)
        self.crc = self.crc_fn(data, self.crc)
        self.length += len(data)

    def finish(self, version_bytes):
        self.write(version_bytes)
        try:
            self.fh.write(struct.pack('<Q', self.crc))
            self.fh.close()
        except (OSError, IOError) as exc:
            raise self._error(exc)
        self.length += 8
        return SpooledPayload(self.path, self.length, self.rdb_type)

    def abort(self):
        try:
            if self.fh is not None:
                self.fh.close()
        except (OSError, IOError):
            pass
        finally:
            try:
                os.unlink(self.path)
            except (OSError, TypeError):
                pass
