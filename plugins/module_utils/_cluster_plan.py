# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight of a copy from or into a cluster: the masters, their keys and memory, and the plan per node.

:func:`target_cluster_facts` reads every master of the target cluster (found from the node given);
:func:`node_plan` spreads the source's keys and data over the masters by their share of the slots (keys hash
evenly over the slots unless hash tags pile them up, so it is an estimate) and says which master would be too
small under its ``maxmemory``.  :func:`source_cluster_facts` reads every master of a source cluster: its keys
(db 0) and data are the sums over them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import SLOTS, discover
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server


def target_cluster_facts(endpoint, server):
    """``{'topology', 'masters': [{address, node_id, slots, keys (per db), used_memory, maxmemory}], 'problems'}``."""
    topology = discover(endpoint, server.client)
    masters = []
    for master in topology.masters:
        node = connect_server(master.endpoint)
        try:
            memory = node.memory
            keys = dict((db, entry.get('keys', 0)) for db, entry in node.keyspace().items())
        finally:
            node.client.close()
        masters.append(dict(address=master.address, node_id=master.node_id, slots=master.slots, keys=keys,
                            used_memory=memory['used_memory'], maxmemory=memory['maxmemory']))
    return dict(topology=topology, masters=masters, problems=topology.problems('target'))


def source_cluster_facts(endpoint, server):
    """A cluster source, read through every master: ``{'topology', 'masters': [{address, node_id, slots, keys,
    expires, data}], 'dbs': [{db, keys, expires}] (summed), 'data': summed used_memory above startup (None when a
    master does not say), 'problems'}``."""
    topology = discover(endpoint, server.client)
    masters = []
    for master in topology.masters:
        node = connect_server(master.endpoint)
        try:
            keyspace = node.keyspace()
            used = node.memory['used_memory']
            data = None if used is None else max(0, used - int(node.info.get('used_memory_startup', 0) or 0))
        finally:
            node.client.close()
        masters.append(dict(address=master.address, node_id=master.node_id, slots=master.slots,
                            keys=sum(v.get('keys', 0) for v in keyspace.values()),
                            expires=sum(v.get('expires') or 0 for v in keyspace.values()), data=data))
    data = [m['data'] for m in masters]
    return dict(topology=topology, masters=masters, problems=topology.problems('source'),
                dbs=[dict(db=0, keys=sum(m['keys'] for m in masters), expires=sum(m['expires'] for m in masters))],
                data=None if any(d is None for d in data) else sum(data))


def source_plan_lines(facts):
    return ['source master %s: %d slots, %d keys' % (m['address'], m['slots'], m['keys']) for m in facts['masters']]


def keys_per_db(facts):
    """The target's keys per db, summed over its masters."""
    out = {}
    for master in facts['masters']:
        for db, keys in master['keys'].items():
            out[db] = out.get(db, 0) + keys
    return out


def node_plan(facts, keys, data_bytes):
    """``(nodes, problems)``: per master the estimated keys and bytes that land there, and the masters too small for
    them under their maxmemory."""
    nodes = []
    problems = []
    for master in facts['masters']:
        share = master['slots'] / float(SLOTS)
        land = None if data_bytes is None else int(data_bytes * share)
        room = None
        if master['maxmemory'] and master['used_memory'] is not None:
            room = master['maxmemory'] - master['used_memory']
        nodes.append(dict(address=master['address'], node_id=master['node_id'], slots=master['slots'],
                          keys_now=sum(master['keys'].values()), keys_estimate=int(round(keys * share)),
                          bytes_estimate=land, free=room))
        if land is not None and room is not None and land > room:
            problems.append('the target master %s is too small: about %d MiB of the source\'s data land on its %d '
                            'slots, it has %d MiB left under maxmemory. Raise its maxmemory or add masters'
                            % (master['address'], land // 2 ** 20, master['slots'], max(room, 0) // 2 ** 20))
    return nodes, problems


def plan_lines(nodes):
    return ['target master %s: %d slots, about %d keys%s land there, it holds %d now'
            % (n['address'], n['slots'], n['keys_estimate'],
               '' if n['bytes_estimate'] is None else ' (%d MiB)' % (n['bytes_estimate'] // 2 ** 20), n['keys_now'])
            for n in nodes]
