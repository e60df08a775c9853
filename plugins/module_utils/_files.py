# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Files the collection writes: atomically, through a temp file next to their destination.

:func:`atomic_write` writes a small file (checkpoint, report, progress, record, sidecar) in one go;
:class:`TempOutput` streams a large one (a backup) and is moved into place by ``commit()`` only when
complete.  :func:`file_sha256` / :func:`hash_stream` hash a file in bounded memory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import tempfile

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, write_error

READ_SIZE = 1 << 20  # bytes read at a time when hashing


def atomic_write(path, data, mode=0o600):
    """Write ``data`` (bytes or text) to ``path`` through a temp file and a rename."""
    directory = os.path.dirname(os.path.abspath(path)) or '.'
    try:
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    except OSError as exc:
        raise write_error(path, exc)
    try:
        with os.fdopen(fd, 'wb') as fh:
            fh.write(data if isinstance(data, bytes) else data.encode('utf-8'))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # a full disk, a read-only or vanished directory: say which file
            raise write_error(path, exc)
        raise


def hash_stream(src, sha):
    """Feed everything ``src.read()`` returns into ``sha``; returns the number of bytes."""
    size = 0
    while True:
        data = src.read(READ_SIZE)
        if not data:
            return size
        sha.update(data)
        size += len(data)


def file_sha256(path):
    sha = hashlib.sha256()
    with open(path, 'rb') as fh:
        hash_stream(fh, sha)
    return sha.hexdigest()


class _Sink:
    """The bytes on their way to disk: counts size and sha256 of the file as written."""

    def __init__(self, fh):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)


class TempOutput:
    """``write()`` the content; ``encoder(sink)``, when given, wraps the file (e.g. an
    :class:`~._encryption.EncryptWriter`): it gets the plain content and writes to the sink.

    ``commit(dest)`` closes, fsyncs and renames; ``abort()`` removes the temp file.
    """

    def __init__(self, dest, mode=0o600, encoder=None):
        self.dest = dest
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            raise KVError('the directory of dest does not exist: %s' % directory, kind='config')
        try:
            fd, self.tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(dest), suffix='.tmp', dir=directory)
        except OSError as exc:
            raise KVError('cannot create a file in %s: %s' % (directory, exc), kind='io')
        self.mode = mode
        self.fh = os.fdopen(fd, 'wb')
        self.sink = _Sink(self.fh)
        self.content_sha = hashlib.sha256()
        self.content_size = 0
        self.writer = encoder(self.sink) if encoder else self.sink
        self.encrypted = encoder is not None
        self.closed = False

    def write(self, data):
        self.content_sha.update(data)
        self.content_size += len(data)
        try:
            self.writer.write(data)
        except OSError as exc:
            raise KVError('cannot write the backup next to %s: %s' % (self.dest, exc), kind='io')

    def close(self):
        if self.closed:
            return
        try:
            if self.encrypted:
                self.writer.close()
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.chmod(self.tmp, self.mode)
        except OSError as exc:
            raise KVError('cannot write the backup next to %s: %s' % (self.dest, exc), kind='io')
        self.closed = True

    def commit(self, dest=None):
        self.close()
        os.rename(self.tmp, dest or self.dest)
        self.tmp = None

    def abort(self):
        try:
            self.fh.close()
        except Exception:  # pragma: no cover - cleaning up
            pass
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)
        self.tmp = None

    def facts(self):
        return dict(size=self.sink.size, sha256=self.sink.sha.hexdigest(), content_size=self.content_size,
                    content_sha256=self.content_sha.hexdigest(), encrypted=self.encrypted)


def read_record_file(path, record_format, what):
    """The JSON record at ``path`` (a dict of format ``record_format``), or None when there is none.

    ``what`` names the record's owner in errors (``kv_sync``, ``kv_isolate``): an unreadable file or a file of
    another format is ``error: config``.
    """
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, 'r') as fh:
            record = json.load(fh)
    except (IOError, OSError, ValueError) as exc:
        raise KVError('cannot read the %s record %s: %s' % (what, path, exc), kind='config')
    if not isinstance(record, dict) or record.get('format') != record_format:
        raise KVError('%s is not a %s record (format %r); choose another record path'
                      % (path, what, record.get('format') if isinstance(record, dict) else None), kind='config')
    return record


def write_record_file(path, record, what):
    """Write a JSON record atomically, mode 0600; a failure is ``error: io`` naming the file."""
    try:
        atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + '\n', mode=0o600)
    except (IOError, OSError) as exc:
        raise KVError('cannot write the %s record %s: %s' % (what, path, exc), kind='io')
