# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A cluster as the source of a copy: one :class:`~._live_source.LiveSource` per master.

It has the interface of a source (see :mod:`._live_source`) with one addition: it is ``parted``.  Its
batches are ``(cursor_after, (part, keys))``, ``part`` being the index of the master the keys were
scanned on, and ``reader(db, values, max_part, part)`` gives a reader of that master; the job's workers keep
a reader and a writer per part (:class:`~._copy.DbWorker`), so a key is always read, compared and copied
type-aware on the master that holds it.

The SCANs of the masters are interleaved, one batch of each in turn, so the job's workers read from every
master at once.  The resume point of a db is the list of every master's cursor (``-1``: that master is done),
exact at the end of any run of finished batches; ``0`` once all are done.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import discover
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import scan_batches
from ansible_collections.kvtools.migration.plugins.module_utils._live_source import LiveSource

DONE = -1


class ClusterSource:
    """The masters of the cluster whose node ``seed`` (an opened LiveSource) is."""

    label = 'the source'
    resumable = True
    typed_reader = True
    parted = True

    def __init__(self, seed):
        self.seed = seed
        self.endpoint = seed.endpoint
        self.server = seed.server
        self.rdb_version, self.rdb_version_source = seed.rdb_version, seed.rdb_version_source
        self.absolute_expiry = seed.absolute_expiry
        self.topology = None
        self.masters = []
        self.scanned = {}  # master address -> keys scanned
        self.lock = threading.Lock()

    def open(self):
        self.topology = discover(self.endpoint, self.server.client)
        problems = self.topology.problems('source')
        if problems:
            raise KVError('. '.join(problems), kind='config', endpoint=self.endpoint.address)
        self.masters = [LiveSource(master.endpoint).open() for master in self.topology.masters]
        self.absolute_expiry = all(m.absolute_expiry for m in self.masters)
        for master in self.masters:
            master.absolute_expiry = self.absolute_expiry
        return self

    def describe(self):
        out = self.seed.describe()
        out['cluster'] = self.topology.describe()
        return out

    @property
    def node_endpoints(self):
        return [m.endpoint for m in self.masters]

    def keys_per_db(self):
        out = {}
        for master in self.masters:
            for db, keys in master.keys_per_db().items():
                out[db] = out.get(db, 0) + keys
        return out

    def data_bytes(self):
        sizes = [m.data_bytes() for m in self.masters]
        return None if any(size is None for size in sizes) else sum(sizes)

    def nodes(self):
        """The per-master counts of the result: address, node id, slots and keys scanned."""
        return [dict(address=m.address, node_id=m.node_id, slots=m.slots, keys=self.scanned.get(m.address, 0))
                for m in self.topology.masters]

    def batches(self, db, match=None, count=1000, cursor=0):
        if cursor in (0, None):
            cursors = [0] * len(self.masters)
        elif isinstance(cursor, list) and len(cursor) == len(self.masters):
            cursors = [int(c) for c in cursor]
        else:
            raise KVError('the checkpoint was written for a cluster of another shape (%r): remove it to start over'
                          % (cursor,), kind='config')
        scans = []
        for index, master in enumerate(self.masters):
            if cursors[index] == DONE:
                scans.append(None)
                continue
            client = master.endpoint.client(db=db)
            scans.append((client, scan_batches(client, match=match, count=count, cursor=cursors[index])))
        address = [m.endpoint.address for m in self.masters]
        try:
            while any(scan is not None for scan in scans):
                for index, scan in enumerate(scans):
                    if scan is None:
                        continue
                    try:
                        cursor_after, keys = next(scan[1])
                    except StopIteration:  # pragma: no cover - scan_batches ends after cursor 0
                        cursor_after, keys = 0, []
                    except Exception as exc:
                        raise self.masters[index].endpoint.error(exc, 'scanning db %d' % db, db=db)
                    if cursor_after == 0:
                        scan[0].close()
                        scans[index] = None
                    cursors[index] = DONE if cursor_after == 0 else cursor_after
                    with self.lock:
                        self.scanned[address[index]] = self.scanned.get(address[index], 0) + len(keys)
                    done = all(c == DONE for c in cursors)
                    yield (0 if done else list(cursors)), (index, keys)
        finally:
            for scan in scans:
                if scan is not None:
                    scan[0].close()

    def reader(self, db, values=True, max_part=1000, part=0):
        return self.masters[part].reader(db, values, max_part)
