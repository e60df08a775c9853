# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cluster helpers of ``kv_sync``: slot sets, per-master offset markers, the watch on a followed master.

* A follower of one master of a cluster source (a *part*) owns the slots of that master: a full resync, or a
  ``FLUSHALL``/``FLUSHDB`` in its stream, removes only the keys of those slots from the target
  (:func:`unlink_slots`), never the keys the followers of the other masters wrote.
* :func:`master_problem` tells whether a followed master still is a master with the same slots and no slot
  in migration (a failover or a reshard moves writes to a stream the follower does not read: it must stop).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import SLOTS, discover, key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


def slot_flags(ranges):
    """A bytearray of 16384 flags: 1 for each slot in ``ranges`` ([(first, last), ...])."""
    flags = bytearray(SLOTS)
    for first, last in ranges:
        for slot in range(int(first), int(last) + 1):
            flags[slot] = 1
    return flags


def topology_signature(topology):
    """What must not change while a cluster source is followed: ``[[node id, address, ranges], ...]``."""
    return [[m.node_id, m.address, [list(r) for r in m.ranges]] for m in topology.masters]


def discover_cluster(endpoint, side):
    """The :class:`~._cluster.Topology` of the cluster of ``endpoint``; a config error when it cannot be copied."""
    client = endpoint.client(db=0)
    try:
        topology = discover(endpoint, client)
    finally:
        client.close()
    problems = topology.problems(side)
    if problems:
        raise KVError('. '.join(problems), kind='config', endpoint=endpoint.address)
    return topology


def unlink_slots(endpoint, db, flags, batch=1000):
    """Remove from ``db`` of one server (``endpoint``) every key whose slot is flagged; returns how many."""
    client = endpoint.client(db=db)
    removed = 0
    try:
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor=cursor, count=batch)
            mine = [key for key in keys if flags[key_slot(key)]]
            if mine:
                pipe = client.pipeline(transaction=False)
                for key in mine:  # one key per UNLINK: a cluster master refuses keys of several slots
                    pipe.unlink(key)
                removed += sum(int(n) for n in pipe.execute())
            if int(cursor) == 0:
                break
    except Exception as exc:
        raise endpoint.error(exc, 'removing the keys of the followed slots before a new snapshot', db=db)
    finally:
        client.close()
    return removed


def _myself(nodes_text):
    for line in nodes_text.splitlines():
        parts = line.split()
        if len(parts) > 2 and 'myself' in parts[2].split(','):
            return parts
    return None


def master_problem(client, address, ranges):
    """A sentence when the followed master (``client`` on it) is no longer a master serving exactly ``ranges``
    with no slot being migrated, else None."""
    text = client.execute_command('CLUSTER', 'NODES')
    text = text.decode('utf-8', 'replace') if isinstance(text, bytes) else text
    me = _myself(text or '')
    if me is None:
        return 'the followed master %s does not list itself in CLUSTER NODES' % address
    flags = me[2].split(',')
    if 'master' not in flags:
        return ('the followed master %s is no longer a master (flags %s): a failover moved its slots to another '
                'node' % (address, me[2]))
    owned = []
    moving = []
    for item in me[8:]:
        if item.startswith('['):
            moving.append(item)
        elif '-' in item:
            first, last = item.split('-', 1)
            owned.append([int(first), int(last)])
        else:
            owned.append([int(item), int(item)])
    if moving:
        return ('slots of the followed master %s are being migrated (%s): a reshard moves keys to a master whose '
                'follower may apply them first' % (address, ' '.join(moving[:5])))
    if sorted(owned) != sorted([list(r) for r in ranges]):
        return ('the slots of the followed master %s changed (now %s, followed %s): a reshard or failover moved '
                'slots' % (address, _ranges_text(owned), _ranges_text(ranges)))
    return None


def _ranges_text(ranges):
    return ','.join('%d-%d' % (a, b) if a != b else '%d' % a for a, b in sorted(ranges)) or 'none'


class MasterWatch:
    """Asks the followed master about its role and slots at most once a second; raises a ``topology``
    KVError (not retried by the follower: the record names it, a rerun takes new snapshots) on a change."""

    def __init__(self, endpoint, ranges, every=1.0):
        self.endpoint = endpoint
        self.ranges = ranges
        self.every = every
        self.last = 0.0
        self.client = None

    def check(self, now):
        if now - self.last < self.every:
            return
        self.last = now
        try:
            if self.client is None:
                self.client = self.endpoint.client(db=0)
            problem = master_problem(self.client, self.endpoint.address, self.ranges)
        except Exception:
            self.close()  # the link will say whether the master is gone; the next check asks again
            return
        if problem:
            raise KVError('%s. Nothing is lost silently: the follow stops here; once the cluster is stable again, '
                          'run state=started to take new snapshots of the masters it has then' % problem,
                          kind='topology', endpoint=self.endpoint.address)

    def close(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                pass
            self.client = None
