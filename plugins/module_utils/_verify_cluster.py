# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Clusters in kv_verify: each side is a server or the masters of a cluster (:class:`VerifySide`).

The checks stay those of :class:`~._verify_checker.KeyChecker`; what changes is where keys are read.  The source
is walked master by master (SCANs interleaved, one batch of each in turn); :class:`RoutedChecker` splits each
batch by the master of the other side that serves the key's slot and hands each part to a KeyChecker of that
(source master, target master) pair, made when first needed.  The extra-key pass walks every target master and
asks the source master that serves each key.  DBSIZE, INFO keyspace, the write counters and ``used_memory`` are
summed over the masters.  :class:`NodeCounts` gives the per-node counts of the result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import discover, key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import scan_batches, total_dbsize
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._verify_checker import KeyChecker
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import read_counters

NODE_COUNTS = ('keys', 'identical', 'conflicts', 'missing', 'expired', 'extra')


class VerifySide:
    """The ``source`` or ``target`` of a verification: ``server`` (the node given) and ``masters``, a list of
    ``(endpoint, Server)`` - the node itself when it is not a cluster node."""

    def __init__(self, label, endpoint, server):
        self.label = label
        self.endpoint = endpoint
        self.server = server
        self.topology = None
        self.masters = [(endpoint, server)]
        self.owner = None

    def open(self):
        if not self.server.cluster_enabled:
            return self
        self.topology = discover(self.endpoint, self.server.client)
        problems = self.topology.problems(self.label)
        if problems:
            raise KVError('. '.join(problems), kind='config', endpoint=self.endpoint.address)
        self.masters = []
        try:
            for master in self.topology.masters:
                self.masters.append((master.endpoint, connect_server(master.endpoint)))
        except Exception:
            self.close()
            raise
        self.owner = self.topology.owner
        return self

    @property
    def cluster(self):
        return self.topology is not None

    @property
    def endpoints(self):
        return [endpoint for endpoint, _server in self.masters]

    def index_of(self, key):
        return 0 if self.owner is None else self.owner[key_slot(key)]

    def route(self, keys):
        """``{master index: [keys]}``: every key with the master that serves its slot."""
        if self.owner is None:
            return {0: keys}
        owner = self.owner
        out = {}
        for key in keys:
            out.setdefault(owner[key_slot(key)], []).append(key)
        return out

    def dbsize(self, db):
        return total_dbsize([endpoint for endpoint, _server in self.masters], db)

    def counters(self):
        """:func:`~._verify_rules.read_counters` summed over the masters (None when one is unknown); the sum of
        the save times moves when any master saves, as the single server's does."""
        readings = [read_counters(server) for _endpoint, server in self.masters]
        if any(reading is None for reading in readings):
            return None
        return dict((name, sum(r[name] for r in readings)) for name in readings[0])

    def keyspace(self):
        if not self.cluster:
            return self.server.keyspace()
        out = {}
        for _endpoint, server in self.masters:
            for db, entry in server.keyspace().items():
                into = out.setdefault(db, dict(keys=0, expires=0))
                into['keys'] += entry.get('keys', 0)
                into['expires'] += entry.get('expires', 0) or 0
        return out

    def servers(self):
        return [server for _endpoint, server in self.masters]

    def batches(self, db, match=None, count=1000):
        """``(cursor, (master index, keys))`` over every master, one SCAN batch of each in turn."""
        scans = []
        for index, (endpoint, _server) in enumerate(self.masters):
            client = endpoint.client(db=db)
            scans.append([index, endpoint, client, scan_batches(client, match=match, count=count)])
        try:
            while scans:
                for scan in list(scans):
                    index, endpoint, client, walk = scan
                    try:
                        cursor, keys = next(walk, (0, []))  # scan_batches ends after cursor 0 anyway
                    except Exception as exc:
                        raise endpoint.error(exc, 'scanning db %d' % db, db=db)
                    if cursor == 0:
                        client.close()
                        scans.remove(scan)
                    yield cursor, (index, keys)
        finally:
            for scan in scans:
                scan[2].close()

    def describe_nodes(self, counts):
        if not self.cluster:
            return None
        return [dict(m.describe(), counts=dict(counts.get(n, {}))) for n, m in enumerate(self.topology.masters)]

    def close(self):
        """Close the masters' clients (the node given is closed by its owner)."""
        for _endpoint, server in self.masters:
            if server is not self.server:
                server.client.close()


class NodeCounts:
    """The per-master counts of both sides of a verification (``{side: {index: {count: n}}}``)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = dict(source={}, target={})

    def add(self, side, index, counts):
        with self.lock:
            into = self.counts[side].setdefault(index, dict((name, 0) for name in NODE_COUNTS))
            for name in NODE_COUNTS:
                into[name] += counts.get(name, 0)


class _PairState:
    """A db's state as a KeyChecker of one (source master, target master) pair sees it: every count also goes to
    the two masters' counts."""

    def __init__(self, state, nodes, s_index, t_index):
        self.state = state
        self.result = state.result
        self.lock = state.lock
        self.nodes = nodes
        self.s_index = s_index
        self.t_index = t_index

    def add(self, counts, differences, found):
        self.state.add(counts, differences, found)
        self.nodes.add('source', self.s_index, counts)
        self.nodes.add('target', self.t_index, counts)

    def note(self, key):
        self.state.note(key)


class RoutedChecker:
    """A worker's KeyCheckers, one per (source master, target master) pair, each made when first needed."""

    def __init__(self, run, state, listed=False):
        self.run = run
        self.state = state
        self.listed = listed
        self.checkers = {}

    def checker(self, s_index, t_index):
        found = self.checkers.get((s_index, t_index))
        if found is None:
            run = self.run
            found = self.checkers[(s_index, t_index)] = KeyChecker(
                run, _PairState(self.state, run.node_counts, s_index, t_index), self.listed,
                source=run.source_side.endpoints[s_index], target=run.target_side.endpoints[t_index],
                mget=not (run.source_side.cluster or run.target_side.cluster))
        return found

    def process(self, keys, s_index=None):
        """Compare ``keys``, all of source master ``s_index`` (None: route them on the source side too)."""
        parts = self.run.source_side.route(keys) if s_index is None else {s_index: keys}
        for source_index, source_keys in parts.items():
            for t_index, part in self.run.target_side.route(source_keys).items():
                self.checker(source_index, t_index).process(part)

    def close(self):
        errors = []
        for checker in self.checkers.values():
            try:
                checker.close()
            except Exception as exc:  # close every connection, then say what failed first
                errors.append(exc)
        if errors:
            raise errors[0]
