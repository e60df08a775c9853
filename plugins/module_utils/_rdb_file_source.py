# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An RDB file (``source.url: file:///path/backup.rdb``) as the source of kv_dump_restore.

The file is what ``kv_rdb_backup`` writes with ``method: sync`` (plain or encrypted), or an RDB a
platform hands out (a dashboard download, ``dump.rdb``).  :class:`~._rdb_snapshot.SnapshotParser` splits
it into one DUMP-identical payload per key (the RDB version of the file's header is stamped on every
payload); the job and the writer are those of a live copy: identical keys skipped, conflicts by
``on_conflict`` (checked for every db before the first write), pipelined ``RESTORE ... ABSTTL``, check
mode, report, progress.  It has the interface of a source described in :mod:`._live_source`.

Like a logical backup, a file has no live values to fall back on (``typed_reader`` is false): a target
that refuses the file's RDB version stops the run before anything is written, and there is no cursor to
resume from (``resumable`` is false).  The whole file is read once first - its structure, its CRC-64
trailer and, when encrypted, the authentication of every chunk - so a damaged file writes nothing.  A
key whose expiry time in the file has passed is counted as expired and not written.  Function libraries
in the file are not loaded: the result (``source.functions``) and a warning name them.

:func:`FileRestore` chooses between this source and the logical backup's by the content's magic; the manifest of
a cluster's backup (:mod:`._backup_manifest`) gives :class:`BackupPartsSource`, its parts one after the other.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.kvtools.migration.plugins.module_utils._backup_source import (
    BATCH_BYTES, BackupFileReader, BackupFileSource, key_matches)
from ansible_collections.kvtools.migration.plugins.module_utils._backup_files import existing_backup
from ansible_collections.kvtools.migration.plugins.module_utils._backup_manifest import (
    PartFile, is_manifest, read_manifest)
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyJob
from ansible_collections.kvtools.migration.plugins.module_utils._encryption import open_plain
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._files import file_sha256
from ansible_collections.kvtools.migration.plugins.module_utils._logical import LOGICAL_MAGIC
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import RDB_MAGIC
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import SnapshotParser
from ansible_collections.kvtools.migration.plugins.module_utils._restore_writer import RestoreWriter

LIBRARY_NAME = re.compile(br'^#![^\n]*?\bname=([^\s]+)')
MAX_NAMES_LISTED = 50


def file_content(path, passphrase=None):
    """``'rdb'`` or ``'logical'``: what a backup file holds, by the magic of its (decrypted) content."""
    src, fh, dummy = open_plain(path, passphrase)
    try:
        head = src.read(9)
    finally:
        fh.close()
    if head[:len(LOGICAL_MAGIC)] == LOGICAL_MAGIC:
        return 'logical'
    if RDB_MAGIC.match(head):
        return 'rdb'
    raise KVError('%s is neither a logical backup of kv_rdb_backup (KVTLOG1) nor an RDB file (REDISnnnn or '
                  'VALKEYnnn): it starts with %r' % (path, bytes(head)), kind='corrupt')


def FileRestore(source, target, options, passphrase=None, warn=None):  # pylint: disable=invalid-name
    """The job of kv_dump_restore with ``source.url: file:///...``: an RDB file or a logical backup.

    A path that does not exist is looked for with the suffix of encrypted backups (``.enc``), so the path of
    ``kv_rdb_backup``'s ``dest`` finds the encrypted file it wrote.
    """
    source.backup_file = existing_backup(source.backup_file)
    if is_manifest(source.backup_file):  # a cluster's backup: one part per master
        parts = BackupPartsSource(source, passphrase)
        job = CopyJob('kv_dump_restore', parts, target, options, RestoreWriter, warn=warn)
        parts.warn = job.warn
        return job
    if file_content(source.backup_file, passphrase) == 'rdb':
        return RdbRestore(source, target, options, passphrase=passphrase, warn=warn)
    return CopyJob('kv_dump_restore', BackupFileSource(source, passphrase), target, options, RestoreWriter, warn=warn)


def RdbRestore(source, target, options, passphrase=None, warn=None):  # pylint: disable=invalid-name
    """The job of kv_dump_restore with an RDB file as its source, the RESTORE writer."""
    rdb = RdbFileSource(source, passphrase)
    job = CopyJob('kv_dump_restore', rdb, target, options, RestoreWriter, warn=warn)
    rdb.warn = job.warn  # what the file holds that is not restored goes into the job's warnings and report
    return job


def library_name(code):
    """The name of a function library from its source (``#!lua name=mylib``), or None."""
    match = LIBRARY_NAME.match(bytes(code))
    return match.group(1).decode('utf-8', 'backslashreplace') if match else None


def _drop(payload):
    if payload.__class__ is not bytes:
        payload.close()  # a big object spooled to a temp file


class RdbFileSource:
    """The keys of an RDB file, plain or encrypted by kv_rdb_backup."""

    label = 'the RDB file'
    resumable = False
    typed_reader = False
    server = None
    absolute_expiry = True  # an RDB holds absolute expiry times

    def __init__(self, endpoint, passphrase=None, spool_dir=None):
        self.endpoint = endpoint
        self.path = endpoint.backup_file
        self.passphrase = passphrase
        self.spool_dir = spool_dir
        self.warn = lambda msg: None
        self.engine = self.version_string = self.rdb_version = None
        self.rdb_version_source = 'RDB file header'
        self.checksum = None
        self.counts = None
        self.payload_bytes = 0
        self.libraries = []
        self.ascending = False  # the dbs follow each other in ascending order (as servers write them)

    def _events(self, what):
        """``(parser, fh)``: a parser over the plain content of the file."""
        src, fh, dummy = open_plain(self.path, self.passphrase)
        way_out = ('Load the file into a server of the version that wrote it (its dbfilename) and copy from that '
                   'server with kv_dump_restore')
        return SnapshotParser(src.read, spool_dir=self.spool_dir, what='%s (%s)' % (self.path, what),
                              way_out=way_out), src, fh

    def open(self):
        """The header and the AUX fields before the first key: engine, version, RDB version."""
        parser, dummy, fh = self._events('the RDB file')
        aux = {}
        events = parser.events()
        try:
            for event in events:
                if event[0] != 'aux':
                    if event[0] == 'key':
                        _drop(event[3])
                    break
                aux[bytes(event[1])] = bytes(event[2])
        finally:
            events.close()
            fh.close()
        self.rdb_version = parser.rdb_version
        self.engine = 'valkey' if b'valkey-ver' in aux else parser.engine
        version = aux.get(b'valkey-ver') or aux.get(b'redis-ver')
        self.version_string = version.decode('ascii', 'replace') if version else None
        return self

    def describe(self):
        libraries = self.libraries
        return dict(address=self.endpoint.address, engine=self.engine, version=self.version_string,
                    rdb_version=self.rdb_version, rdb_version_source=self.rdb_version_source, tls=False, backup=True,
                    content='rdb', checksum=self.checksum,
                    functions=dict(count=len(libraries), names=libraries[:MAX_NAMES_LISTED], loaded=False))

    def _verify(self):
        """The whole file, once: a damaged, truncated or unknown RDB (or a wrong passphrase) writes nothing."""
        if self.counts is not None:
            return self.counts
        parser, src, fh = self._events('checking the RDB file')
        counts = {}
        size = 0
        libraries = []
        crc_ok = False
        dbs = []
        try:
            for event in parser.batches():
                kind = event[0]
                if kind == 'keys':  # a run of keys (bytes payloads)
                    counts[event[1]] = counts.get(event[1], 0) + len(event[2])
                    size += sum(len(payload) for payload in event[3])
                elif kind == 'db':
                    dbs.append(event[1])
                elif kind == 'key':
                    counts[event[1]] = counts.get(event[1], 0) + 1
                    size += len(event[3])
                    _drop(event[3])
                elif kind == 'function':
                    libraries.append(library_name(event[1]) or '(unnamed)')
                elif kind == 'end':
                    crc_ok = event[1]
            trailing = parser.rest or src.read(1)
        finally:
            fh.close()
        if not crc_ok:
            raise KVError('%s is corrupt: its CRC-64 trailer does not match its content (damaged or changed after it '
                          'was written). Nothing was written' % self.path, kind='corrupt')
        if trailing:
            raise KVError('%s is corrupt: data follows the end of the RDB (at byte offset %d). Nothing was written'
                          % (self.path, parser.offset), kind='corrupt', details=dict(offset=parser.offset))
        self.checksum = parser.checksum
        if self.checksum != 'verified':
            self.warn('%s carries no checksum (%s): only its structure was checked' % (self.path, self.checksum))
        self.libraries = libraries
        if libraries:
            self.warn('%s holds %d function librar%s (%s) that kv_dump_restore does not load into the target: load '
                      'them with FUNCTION LOAD (or FUNCTION RESTORE of a FUNCTION DUMP of the old server)'
                      % (self.path, len(libraries), 'y' if len(libraries) == 1 else 'ies',
                         ', '.join(libraries[:MAX_NAMES_LISTED])))
        self.payload_bytes = size
        self.ascending = all(one < other for one, other in zip(dbs, dbs[1:]))
        self.counts = counts
        return counts

    def keys_per_db(self):
        return dict((db, n) for db, n in self._verify().items() if n)

    def data_bytes(self):
        self._verify()
        return self.payload_bytes

    def batches(self, db, match=None, count=1000, cursor=0):
        """One pass over the file: the keys of ``db`` in batches of ``count`` (no cursor) and about
        :data:`BATCH_BYTES` of payloads held in memory (a big payload is a temp file: it holds none).  The pass
        ends at the next db when the check found the dbs in ascending order."""
        self._verify()
        parser, dummy, fh = self._events('reading db %d' % db)
        events = parser.events()
        batch = []
        held = 0
        try:
            for event in events:
                if event[0] != 'key':
                    if event[0] == 'db' and event[1] > db and self.ascending:
                        break  # the keys of db are behind
                    continue
                payload = event[3]
                if event[1] != db or (match and not key_matches(match, event[2])):
                    _drop(payload)
                    continue
                batch.append((bytes(event[2]), payload, event[4], event[4]))
                if payload.__class__ is bytes:
                    held += len(payload)
                if len(batch) >= count or held >= BATCH_BYTES:
                    yield None, batch
                    batch = []
                    held = 0
            if batch:
                yield None, batch
        finally:
            events.close()
            fh.close()

    def reader(self, db, values=True, max_part=1000):
        return BackupFileReader()


class BackupPartsSource:
    """The backup of a cluster (kv_rdb_backup on a cluster node): the parts its manifest names, one per master,
    read one after the other (RDB or logical, plain or encrypted).  Every part is checked - present, the sha256
    the manifest recorded, then its whole content - before anything is written."""

    label = 'the cluster backup'
    resumable = False
    typed_reader = False
    server = None
    absolute_expiry = True

    def __init__(self, endpoint, passphrase=None):
        self.endpoint = endpoint
        self.path = endpoint.backup_file
        self.passphrase = passphrase
        self.manifest = read_manifest(self.path)
        self.parts = []
        self.engine = self.version_string = self.rdb_version = None
        self.rdb_version_source = 'RDB file headers of the parts'
        self._warn = lambda msg: None

    @property
    def warn(self):
        return self._warn

    @warn.setter
    def warn(self, callback):
        self._warn = callback
        for part in self.parts:
            part.warn = callback

    def open(self):
        entries = self.manifest.get('parts') or []
        if not entries:
            raise KVError('the cluster backup %s names no part' % self.path, kind='corrupt')
        for entry in entries:
            path = existing_backup(entry['path'])
            if not os.path.exists(path):
                raise KVError('the part %s of the cluster backup %s (node %s) is missing: restore from a complete '
                              'backup. Nothing was written' % (path, self.path, entry.get('address')), kind='config')
            if entry.get('sha256') and file_sha256(path) != entry['sha256']:
                raise KVError('the part %s of the cluster backup %s (node %s) is not the file the backup wrote (its '
                              'sha256 differs). Nothing was written' % (path, self.path, entry.get('address')),
                              kind='corrupt')
            if file_content(path, self.passphrase) == 'rdb':
                part = RdbFileSource(PartFile(path), self.passphrase)
                part.warn = self._warn
            else:
                part = BackupFileSource(PartFile(path), self.passphrase)
            self.parts.append(part.open())
        first = self.parts[0]
        self.engine, self.version_string = first.engine, first.version_string
        versions = [p.rdb_version for p in self.parts if p.rdb_version is not None]
        self.rdb_version = max(versions) if versions else None  # the newest payloads decide what a target accepts
        return self

    def describe(self):
        return dict(address=self.endpoint.address, engine=self.engine, version=self.version_string,
                    rdb_version=self.rdb_version, rdb_version_source=self.rdb_version_source, tls=False, backup=True,
                    content='cluster', parts=[dict(node=entry.get('address'), file=entry.get('file'),
                                                   keys=entry.get('keys')) for entry in self.manifest['parts']])

    def keys_per_db(self):
        out = {}
        for part in self.parts:
            for db, keys in part.keys_per_db().items():
                out[db] = out.get(db, 0) + keys
        return out

    def data_bytes(self):
        return sum(part.data_bytes() for part in self.parts)

    def batches(self, db, match=None, count=1000, cursor=0):
        for part in self.parts:
            yield from part.batches(db, match=match, count=count)

    def reader(self, db, values=True, max_part=1000):
        return BackupFileReader()
