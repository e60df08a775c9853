# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The live source of a copy: SCAN, then DUMP + PEXPIRETIME (PTTL before 7.0) of a running server.

A *source* is what :class:`~._copy.CopyJob` reads from.  Its interface (the backup file source and the
replication snapshot source have the same):

``label``
    how messages name it (``'the source'``, ``'the backup'``).
``resumable``
    True when :meth:`batches` yields a SCAN cursor a checkpoint can resume from.
``typed_reader``
    True when its readers offer ``client``, a redis-py client on the source db, so a writer can copy a key
    type-aware (the fallback for payloads the target refuses) and compare values type-aware.
``server``
    the connected :class:`~._server.Server`, or None (a file).
``open()``
    connect and read the facts; then ``rdb_version``, ``rdb_version_source``, ``absolute_expiry``
    (items carry absolute expiry times) are set.
``describe()``
    the ``source`` entry of the job's result.
``keys_per_db()`` / ``data_bytes()``
    what the plan and the progress count with, and what the room check compares with the target.
``batches(db, match, count, cursor)``
    runs in the job's thread; yields ``(cursor_after, work)``: ``work`` is opaque to the job and goes to a
    reader.  A cursor of 0 (or None, when not resumable) after the last batch.
``reader(db, values, max_part)``
    one per worker thread, with connections of its own; ``read(work)`` yields :class:`Batch` objects;
    ``close()``.  With ``values`` false the batches hold keys only (MIGRATE's fast path: the source server
    sends the values itself).
``parted`` (optional, default false)
    True for a source made of parts (:class:`~._cluster_source.ClusterSource`: the masters of a cluster): its
    work is ``(part, keys)`` and ``reader(db, values, max_part, part)`` reads one part.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._dumpread import DumpReader, live_entries
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import scan_batches
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._wire import Wire


class Batch:
    """What a reader hands to a writer.

    ``keys``: every key of the part (after ``match``); ``items``: ``(key, payload, expire_at_ms or None,
    raw expiry)`` of the keys that still exist (payload None in keys-only mode); ``expired``: keys the
    source says are gone or expired; ``size``: payload bytes read.
    """

    __slots__ = ('keys', 'items', 'expired', 'size')

    def __init__(self, keys, items, expired=0, size=0):
        self.keys = keys
        self.items = items
        self.expired = expired
        self.size = size


class LiveSource:
    """A running server, read with SCAN + DUMP + expiry (never written)."""

    label = 'the source'
    resumable = True
    typed_reader = True

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.server = None
        self.rdb_version = self.rdb_version_source = None
        self.absolute_expiry = False

    def open(self):
        self.server = connect_server(self.endpoint)
        self.rdb_version, self.rdb_version_source = self.server.rdb_version()
        self.absolute_expiry = self.server.capabilities['pexpiretime']
        return self

    def describe(self):
        server = self.server
        return dict(address=self.endpoint.address, engine=server.engine, version=server.version_string,
                    rdb_version=self.rdb_version, rdb_version_source=self.rdb_version_source, tls=self.endpoint.tls)

    def keys_per_db(self):
        return dict((db, entry.get('keys', 0)) for db, entry in self.server.keyspace().items())

    def data_bytes(self):
        """Bytes of data (used_memory above the startup's); None when INFO cannot be read."""
        used = self.server.memory['used_memory']
        if used is None:
            return None
        return used - int(self.server.info.get('used_memory_startup', 0) or 0)

    def batches(self, db, match=None, count=1000, cursor=0):
        client = self.endpoint.client(db=db)
        try:
            for cursor_after, keys in scan_batches(client, match=match, count=count, cursor=cursor):
                yield cursor_after, keys
        except Exception as exc:
            raise self.endpoint.error(exc, 'scanning db %d' % db, db=db)
        finally:
            client.close()

    def reader(self, db, values=True, max_part=1000):
        return LiveReader(self, db, values, max_part)


class LiveReader:
    """Reads SCAN batches of one db over a connection of its own (one per worker thread)."""

    def __init__(self, source, db, values, max_part):
        self.endpoint = source.endpoint
        self.db = db
        self.values = values
        self.client = source.endpoint.client(db=db)
        self.wire = None
        self.dump = None
        if values:
            self.wire = Wire(self.client)
            self.dump = DumpReader(self.wire, source.absolute_expiry, self._fail, max_part)

    def _fail(self, exc, action):
        return self.endpoint.error(exc, '%s in db %d' % (action, self.db) if action != 'reading'
                                   else 'reading db %d' % self.db, db=self.db)

    def read(self, keys):
        """Yield the :class:`Batch` objects of one SCAN batch: with values in parts of bounded size, the
        next part already asked for while the caller writes this one."""
        if not self.values:
            yield Batch(keys, [(key, None, None, None) for key in keys])
            return
        for part, entries, size in self.dump.parts(keys):
            items, expired, size = live_entries(entries, size=size)
            yield Batch(part, items, expired, size)

    def close(self):
        if self.wire is not None:
            self.wire.close()
        self.client.close()
