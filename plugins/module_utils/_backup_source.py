# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A logical backup (``source.url: file:///...``) as the source of kv_dump_restore.

The records of the file (``iter_logical`` of :mod:`._logical`: db, key, DUMP payload, absolute expiry)
take the place of SCAN + DUMP + PEXPIRETIME; the job and the writer are those of a live copy:
identical keys skipped, conflicts by ``on_conflict`` (checked for every db before the first write),
pipelined ``RESTORE ... ABSTTL``, check mode, report, progress.  It has the interface of a source
described in :mod:`._live_source`.

A file has no live values to fall back on (``typed_reader`` is false): where the target refuses the
payload version of the backup, the run stops before writing (restore the backup on a server of the
source's version, then copy from that server).  The whole file is read once and verified (sha256
trailer, and the authentication of every chunk when encrypted) before anything is written; it has no
cursor to resume from (``resumable`` is false).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch

from ansible_collections.kvtools.migration.plugins.module_utils._backup_files import existing_backup
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyJob
from ansible_collections.kvtools.migration.plugins.module_utils._dumpread import live_entries
from ansible_collections.kvtools.migration.plugins.module_utils._live_source import Batch
from ansible_collections.kvtools.migration.plugins.module_utils._logical import iter_logical, logical_header
from ansible_collections.kvtools.migration.plugins.module_utils._restore_writer import RestoreWriter

BATCH_BYTES = 4 << 20  # payload bytes of one batch (batches wait in a queue of 2 per worker)


def BackupRestore(source, target, options, passphrase=None, warn=None):  # pylint: disable=invalid-name
    """The job of kv_dump_restore with ``source.url: file:///...``: a backup file source, the RESTORE writer."""
    return CopyJob('kv_dump_restore', BackupFileSource(source, passphrase), target, options, RestoreWriter, warn=warn)


def key_matches(pattern, key):
    """``match`` for file records, as SCAN MATCH would: ``*``, ``?``, ``[abc]``, ``[^abc]`` (bytes)."""
    pattern = pattern if isinstance(pattern, bytes) else pattern.encode('utf-8')
    return fnmatch.fnmatchcase(key, pattern.replace(b'[^', b'[!'))


class BackupFileSource:
    """The records of a logical backup file, plain or encrypted."""

    label = 'the backup'
    resumable = False
    typed_reader = False
    server = None
    absolute_expiry = True  # the file holds absolute expiry times

    def __init__(self, endpoint, passphrase=None):
        self.endpoint = endpoint
        self.path = existing_backup(endpoint.backup_file)  # the path given finds the encrypted <path>.enc too
        self.passphrase = passphrase
        self.header = None
        self.stats = None
        self.engine = self.version_string = None
        self.rdb_version, self.rdb_version_source = None, 'backup header'

    def open(self):
        self.header = logical_header(self.path, self.passphrase)
        self.engine = self.header.get('engine')
        self.version_string = self.header.get('version')
        self.rdb_version = self.header.get('rdb_version')
        return self

    def describe(self):
        return dict(address=self.endpoint.address, engine=self.engine, version=self.version_string,
                    rdb_version=self.rdb_version, rdb_version_source=self.rdb_version_source, tls=False, backup=True)

    def _verify(self):
        """The whole file, once: a damaged or truncated backup (or a wrong passphrase) writes nothing."""
        if self.stats is None:
            stats = {}
            for dummy in iter_logical(self.path, self.passphrase, stats, payloads=False):
                pass  # the sha256 trailer (and every chunk's authentication) is checked at the end
            self.stats = stats
        return self.stats

    def keys_per_db(self):
        counts = dict((int(k), int(v)) for k, v in (self._verify().get('dbs') or {}).items())
        return dict((db, n) for db, n in counts.items() if n)

    def data_bytes(self):
        return int(self._verify().get('payload_bytes') or 0)

    def batches(self, db, match=None, count=1000, cursor=0):
        """One pass over the file: the records of ``db`` in batches of ``count`` (no cursor) and about
        :data:`BATCH_BYTES` of payloads held in memory (a big payload is a temp file: it holds none)."""
        batch = []
        held = 0

        def wanted(rec_db, key):
            return rec_db == db and (not match or key_matches(match, key))

        for dummy_db, key, payload, expire_at in iter_logical(self.path, self.passphrase, payloads=wanted):
            if payload is None:
                continue
            batch.append((key, payload, expire_at, expire_at))
            if payload.__class__ is bytes:
                held += len(payload)
            if len(batch) >= count or held >= BATCH_BYTES:
                yield None, batch
                batch = []
                held = 0
        if batch:
            yield None, batch

    def reader(self, db, values=True, max_part=1000):
        return BackupFileReader()


class BackupFileReader:
    """Turns records into batches: what expired since the backup was taken is counted as expired."""

    client = None

    def read(self, records):
        items, expired, size = live_entries(records)
        yield Batch([record[0] for record in records], items, expired, size)

    def close(self):
        pass
