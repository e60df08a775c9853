# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backup of ``kv_sync``: the snapshot the source forked for the live copy, kept as a backup file.

:class:`SnapshotBackup` is the replica link's ``tee`` during a full resync: the link's reader thread
gives it every RDB byte in the order received (:meth:`SnapshotBackup.write`), the same bytes the
snapshot parser reads.  When the transfer ended with all its bytes the reader calls
:meth:`SnapshotBackup.complete`, which runs :meth:`SnapshotBackup.install` in a thread of its own (the
reader goes on reading; the backup does not wait for the restore, so a target failing during the restore
does not cost it).  :meth:`SnapshotBackup.install` validates what was received exactly as ``kv_rdb_backup`` does (magic and RDB version, end opcode,
CRC-64 trailer), closes the temp file next to ``dest`` (encrypted with a passphrase: the KVTENC1
format of :mod:`._encryption`), rotates older backups (``keep``), renames it into place and writes the
sidecar ``<dest>.json`` - with the engine's own function (:func:`~._backup.install_backup`), so the
file, its sidecar and what reads them (``kv_backup_decrypt``, ``verify_backup``, a server loading the
RDB) cannot tell the two apart.  The sidecar adds ``taken_by: kv_sync`` and the replication id and
offset of the snapshot.  :meth:`SnapshotBackup.abort` removes the temp file: a transfer cut off, a
failed check or a follower stopped mid-snapshot leave nothing named as a backup.

The CRC-64 is computed as the bytes pass (``anycrc`` when installed, at C speed, in the reader thread),
so nothing is read back from disk.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._backup import backup_output, install_backup
from ansible_collections.kvtools.migration.plugins.module_utils._backup_files import backup_path
from ansible_collections.kvtools.migration.plugins.module_utils._encryption import need_cryptography
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import CRC64
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_validate import RdbValidator

TRANSFER_NAMES = dict(disk='sized', diskless='eof-stream')   # as kv_rdb_backup names them


class SnapshotBackup:
    """One backup of one snapshot: ``begin()``, ``write()`` the RDB bytes, then ``install()`` or ``abort()``.

    ``spec``: ``dest`` (absolute path, ``.enc`` appended when encrypted), ``keep`` (older backups kept),
    ``keep_first`` (never remove the oldest backup), ``mode`` (int), ``source`` (address),
    ``engine``, ``version`` (the source's, for the sidecar).
    """

    def __init__(self, spec, passphrase=None):
        self.spec = spec
        self.dest = spec['dest']
        self.passphrase = passphrase
        self.out = None
        self.validator = None
        self.crc = 0
        self.tail = b''
        self.replid = self.offset = self.transfer = None
        self.started = None
        self.installing = None       # the thread of complete()
        self.done = threading.Event()
        self.facts = None            # set once installed
        self.error = None

    def begin(self, replid, offset, transfer):
        """Open the temp file next to ``dest`` for the snapshot ``replid``/``offset``."""
        self.replid, self.offset, self.transfer = replid, offset, transfer
        self.validator = RdbValidator('the snapshot from %s (backup %s)' % (self.spec.get('source'), self.dest),
                                      crc=False)
        self.out = backup_output(self.dest, self.passphrase, 'rdb', self.spec.get('mode', 0o600))
        self.started = time.time()
        return self

    def write(self, data):
        """The next RDB bytes (called by the link's reader thread)."""
        if not data:
            return
        self.validator.feed(data)
        # the CRC covers everything but the 8-byte trailer: keep the last 8 bytes seen out of it
        if len(data) >= 8:
            if self.tail:
                self.crc = CRC64(self.tail, self.crc)
            self.crc = CRC64(memoryview(data)[:-8], self.crc)
            self.tail = bytes(data[-8:])
        else:
            buf = self.tail + bytes(data)
            if len(buf) > 8:
                self.crc = CRC64(buf[:-8], self.crc)
                buf = buf[-8:]
            self.tail = buf
        self.out.write(data)

    def complete(self):
        """The transfer ended with all its bytes (called by the link's reader thread): install the backup in a
        thread of its own, so the reader goes on reading the stream and the backup does not wait for the snapshot
        to be restored - a target that fails during the restore does not cost the backup."""
        def run():
            try:
                self.facts = self.install()
            except Exception as exc:  # handed to result()
                self.error = exc
            finally:
                self.done.set()
        self.installing = threading.Thread(target=run, name='kv-sync-backup')
        self.installing.daemon = True
        self.installing.start()

    def result(self, timeout=None):
        """The facts of the installed backup once :meth:`complete` has finished; its error if it failed."""
        if self.installing is None:
            raise KVError('the backup of the snapshot was not written: the RDB transfer did not complete',
                          kind='truncated')
        if not self.done.wait(timeout):
            raise KVError('the backup of the snapshot was not written within %s s' % timeout, kind='timeout')
        if self.error is not None:
            if isinstance(self.error, KVError):
                raise self.error
            raise KVError('the backup of the snapshot was not written: %s: %s'
                          % (type(self.error).__name__, self.error))
        return self.facts

    def install(self):
        """Validate, close, rotate, move into place, write the sidecar; returns the backup's facts."""
        try:
            facts = self.validator.finish()
            if facts['checksum'] == 'pending':
                self.validator.check_crc(facts, self.crc)
            self.out.close()
            result = dict(format='rdb', transfer=TRANSFER_NAMES.get(self.transfer, self.transfer),
                          rdb_version=facts['rdb_version'], magic=facts['magic'], crc64=facts['crc64'],
                          checksum=facts['checksum'], engine=self.spec.get('engine'), version=self.spec.get('version'))
            result.update(self.out.facts())
            extra = dict(taken_by='kv_sync', replid=self.replid, snapshot_offset=self.offset)
            result.update(install_backup(self.out, self.dest, int(self.spec.get('keep') or 0),
                                         self.spec.get('mode', 0o600), result, self.spec.get('source'), extra,
                                         keep_first=bool(self.spec.get('keep_first'))))
        except Exception as exc:
            self._remove_temp()
            if isinstance(exc, KVError):
                raise KVError('the backup of the snapshot was not written: %s' % exc.message, kind=exc.kind)
            if isinstance(exc, (IOError, OSError)):
                raise KVError('the backup of the snapshot was not written: %s' % exc, kind='io')
            raise
        self.out = None
        seconds = max(time.time() - self.started, 1e-6)
        result.update(extra, dest=self.dest, sidecar=self.dest + '.json', method='sync', method_used='sync',
                      seconds=round(seconds, 3), mb_per_second=round(result['content_size'] / seconds / 1e6, 1))
        return result

    def abort(self):
        """Remove the temp file (nothing is left at ``dest`` by this backup); an installed backup stays."""
        if self.installing is not None and self.installing is not threading.current_thread():
            self.done.wait(120)
        self._remove_temp()

    def _remove_temp(self):
        if self.out is not None:
            self.out.abort()
            self.out = None


def backup_spec(params, source_address, engine=None, version=None):
    """The ``spec`` of :class:`SnapshotBackup` from kv_sync's options, validated (KVError kind ``config``).

    Returns None without ``backup``.
    """
    dest = params.get('backup')
    passphrase = params.get('backup_passphrase')
    keep = params.get('backup_keep')
    mode = params.get('backup_mode')
    if not dest:
        if passphrase is not None:
            raise KVError('backup_passphrase is set but backup is not: give backup (the path of the backup file) '
                          'or leave backup_passphrase out', kind='config')
        return None
    dest = backup_path(os.path.abspath(os.path.expanduser(dest)), bool(passphrase))
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        raise KVError('the directory of backup does not exist: %s' % directory, kind='config')
    if not os.access(directory, os.W_OK):
        raise KVError('the directory of backup is not writable: %s' % directory, kind='config')
    if os.path.isdir(dest):
        raise KVError('backup %s is a directory: give a file path' % dest, kind='config')
    if passphrase is not None and not passphrase:
        raise KVError('backup_passphrase must not be empty (leave it out for a plain backup)', kind='config')
    if passphrase:
        need_cryptography()
    keep = 0 if keep is None else keep
    if not isinstance(keep, int) or keep < 0:
        raise KVError('backup_keep must be 0 or more, got %r' % (keep,), kind='config')
    if mode is None:
        mode = 0o600
    elif not isinstance(mode, int):
        try:
            mode = int(str(mode), 8)
        except ValueError:
            mode = -1
    if not 0 <= mode <= 0o777:
        raise KVError('backup_mode must be an octal file mode from 0000 to 0777 (for example 0600), got %r'
                      % (params.get('backup_mode'),), kind='config')
    return dict(dest=dest, keep=keep, mode=mode, encrypted=bool(passphrase), source=source_address, engine=engine,
                version=version, keep_first=bool(params.get('backup_keep_first')),
                check_space=params.get('backup_check_free_space') is not False)
