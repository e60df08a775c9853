# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cluster mode: the key slot, the masters and their slots, and whether every slot is served.

A user gives any one node of a cluster as ``source`` or ``target``; :func:`discover` asks it for the
cluster's shards (``CLUSTER SHARDS``; ``CLUSTER SLOTS`` on servers before 7.0) and returns a
:class:`Topology`: the masters (each with an :class:`~._connection.Endpoint` of its own, with the given
node's credentials and TLS settings), the owner of every slot, and what is wrong with the cluster for a
copy (:meth:`Topology.problems`: unassigned slots, failing nodes, a state other than ``ok``).

:func:`key_slot` is the servers' own function (CRC16-XMODEM of the key, or of its ``{hash tag}``, modulo
16384); only the writers into a cluster call it, so a copy into a standalone server pays nothing for it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import threading
import time
from binascii import crc_hqx

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind

SLOTS = 16384
PROBLEMS_LISTED = 5
SETTLE_SECONDS = 30.0  # the longest a key is redirected round after round before it counts as refused
SETTLE_PAUSE = 0.02    # before each round of redirections after the second


class Settle:
    """How long a writer keeps following the redirections of one batch while a slot moves.

    The first round of redirections is sent again at once (the writer's slot table was only stale).  A key
    redirected again means the masters do not agree yet: during a reshard the nodes learn the new owner one by
    one (``CLUSTER SETSLOT ... NODE`` is sent to each in turn), and until then the old owner answers ``MOVED`` to
    the new one while the new one, still importing, answers ``MOVED`` back.  Such rounds are paced by
    :data:`SETTLE_PAUSE` and end after :data:`SETTLE_SECONDS`, not after a number of rounds that a fast
    ping-pong uses up in milliseconds.
    """

    def __init__(self, seconds=SETTLE_SECONDS, pause=SETTLE_PAUSE, clock=time.time, sleep=time.sleep):
        self.rounds = 0
        self.seconds = seconds
        self.pause = pause
        self.clock = clock
        self.sleep = sleep
        self.deadline = None

    def again(self):
        """Whether to send the redirected keys once more (paced); False once the time is up."""
        self.rounds += 1
        if self.rounds == 1:
            return True
        now = self.clock()
        if self.deadline is None:
            self.deadline = now + self.seconds
        elif now >= self.deadline:
            return False
        self.sleep(self.pause)
        return True


def key_slot(key):
    """The hash slot of ``key`` (bytes): CRC16 of the first non-empty ``{...}`` section, else of the key.

    The servers' CRC16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), which the standard library computes in
    C as ``binascii.crc_hqx(data, 0)`` (about ten times faster than a table in Python: it runs once per key copied
    into a cluster)."""
    start = key.find(b'{')
    if start >= 0:
        end = key.find(b'}', start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc_hqx(key, 0) & 0x3FFF


_TAGS = [None] * SLOTS  # slot -> a short name that hashes to it, found as they are asked for
_TAG_SEARCH = [0]  # the next number to try
_TAG_LOCK = threading.Lock()


def slot_tag(slot):
    """A short name (bytes, no braces) whose slot is ``slot``: ``b'{' + slot_tag(s) + b'}'`` puts any name in slot
    ``s``.  Found by trying hexadecimal numbers in turn (every slot is covered by 5 digits); each one tried is
    remembered, so all slots together cost one pass of about 315,000 CRCs."""
    with _TAG_LOCK:
        while _TAGS[slot] is None:
            tag = b'%x' % _TAG_SEARCH[0]
            _TAG_SEARCH[0] += 1
            found = key_slot(tag)
            if _TAGS[found] is None:
                _TAGS[found] = tag
        return _TAGS[slot]


def node_endpoint(endpoint, host, port):
    """``endpoint`` (the node the user gave) moved to another node of its cluster: same user, password, TLS
    files and timeouts.  ``server_name`` (SNI) stays as given: one certificate usually serves every node."""
    other = copy.copy(endpoint)
    other.host = host
    other.port = int(port)
    other.migrate_host = host
    other.migrate_port = int(port)
    other.url_given = False
    return other


def _text(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else value


def _as_dict(value):
    """A CLUSTER SHARDS map, whether redis-py parsed it into a dict or left the flat RESP2 list."""
    if isinstance(value, dict):
        return dict((_text(k), v) for k, v in value.items())
    value = list(value or [])
    return dict((_text(k), v) for k, v in zip(value[::2], value[1::2]))


class Master:
    """One master of a cluster: ``address``, ``node_id``, ``ranges`` ([(first, last)]), ``health`` and its
    :attr:`endpoint`."""

    def __init__(self, endpoint, node_id, host, port, ranges, health='online', role='master'):
        self.node_id = node_id
        self.role = role
        self.host = host
        self.port = int(port)
        self.ranges = sorted(ranges)
        self.health = health
        self.endpoint = node_endpoint(endpoint, host, port)
        self.endpoint.label = '%s node %s:%d' % (endpoint.label, host, self.port)

    @property
    def address(self):
        return '%s:%d' % (self.host, self.port)

    @property
    def slots(self):
        return sum(last - first + 1 for first, last in self.ranges)

    def describe(self):
        return dict(address=self.address, node_id=self.node_id, slots=self.slots, health=self.health,
                    ranges=[list(r) for r in self.ranges])


class Topology:
    """The masters of one cluster as one node sees them.  ``owner[slot]`` is the index of the master that
    serves the slot (None when no master does); ``failing`` lists nodes the cluster marks as failing;
    ``replicas`` are the replicas (:class:`Master` objects with ``role='replica'`` and no slots)."""

    def __init__(self, endpoint, masters, state, failing=(), source_command='CLUSTER SHARDS', replicas=()):
        self.endpoint = endpoint
        self.masters = masters
        self.replicas = list(replicas)
        self.state = state
        self.failing = list(failing)
        self.source_command = source_command
        self.owner = [None] * SLOTS
        for index, master in enumerate(masters):
            for first, last in master.ranges:
                for slot in range(first, last + 1):
                    self.owner[slot] = index

    def unassigned(self):
        """``[(first, last), ...]``: the slots no master serves."""
        out = []
        start = None
        for slot, index in enumerate(self.owner + [0]):
            if index is None and start is None:
                start = slot
            elif index is not None and start is not None:
                out.append((start, slot - 1))
                start = None
        return out

    def problems(self, side):
        """What stops a copy from or into this cluster, as sentences (empty when every slot is served)."""
        out = []
        gaps = self.unassigned()
        if gaps:
            shown = ', '.join('%d-%d' % gap if gap[0] != gap[1] else '%d' % gap[0] for gap in gaps[:PROBLEMS_LISTED])
            out.append('the %s cluster (%s) does not serve every slot: %d slot(s) unassigned (%s%s); assign them '
                       '(CLUSTER ADDSLOTS) before a copy' % (side, self.endpoint.address,
                                                             sum(b - a + 1 for a, b in gaps), shown,
                                                             ', ...' if len(gaps) > PROBLEMS_LISTED else ''))
        if self.failing:
            out.append('the %s cluster (%s) has failing node(s): %s; wait for the failover or repair them'
                       % (side, self.endpoint.address, ', '.join(self.failing[:PROBLEMS_LISTED])))
        if self.state != 'ok' and not gaps and not self.failing:
            out.append('the %s cluster (%s) reports cluster_state:%s' % (side, self.endpoint.address, self.state))
        return out

    def describe(self):
        return dict(masters=[m.describe() for m in self.masters], state=self.state,
                    discovered_with=self.source_command, seed=self.endpoint.address)

    def slot_addresses(self):
        """``[address or None] * 16384``: the master address of every slot (a writer's routing table)."""
        addresses = [m.address for m in self.masters]
        return [None if index is None else addresses[index] for index in self.owner]


def _node_address(node, tls):
    host = _text(node.get('endpoint')) or ''
    if host in ('', '?') or not host.strip():
        host = _text(node.get('ip')) or _text(node.get('hostname'))
    port = node.get('tls-port') if tls and node.get('tls-port') else node.get('port')
    return host, int(port or 0)


def _from_shards(endpoint, reply, replicas=None):
    masters = []
    failing = []
    for shard in reply:
        shard = _as_dict(shard)
        flat = [int(n) for n in shard.get('slots') or []]
        ranges = list(zip(flat[::2], flat[1::2]))
        for node in shard.get('nodes') or []:
            node = _as_dict(node)
            host, port = _node_address(node, endpoint.tls)
            health = _text(node.get('health')) or 'online'
            if health == 'fail' or health == 'failed':
                failing.append('%s:%d (%s)' % (host, port, _text(node.get('role'))))
            if _text(node.get('role')) == 'master' and ranges:
                masters.append(Master(endpoint, _text(node.get('id')), host, port, ranges, health))
            elif _text(node.get('role')) == 'replica' and replicas is not None and health not in ('fail', 'failed'):
                replicas.append(Master(endpoint, _text(node.get('id')), host, port, [], health, role='replica'))
    return masters, failing


def _from_slots(endpoint, reply, replicas=None):
    by_node = {}
    seen = set()
    for entry in reply:
        first, last, node = int(entry[0]), int(entry[1]), entry[2]
        host, port = _text(node[0]), int(node[1])
        node_id = _text(node[2]) if len(node) > 2 else '%s:%d' % (host, port)
        by_node.setdefault((host, port, node_id), []).append((first, last))
        for other in entry[3:]:
            other_host, other_port = _text(other[0]), int(other[1])
            if replicas is not None and (other_host, other_port) not in seen:
                seen.add((other_host, other_port))
                other_id = _text(other[2]) if len(other) > 2 else '%s:%d' % (other_host, other_port)
                replicas.append(Master(endpoint, other_id, other_host, other_port, [], role='replica'))
    masters = [Master(endpoint, node_id, host, port, ranges) for (host, port, node_id), ranges in by_node.items()]
    return masters, []


def _cluster_state(client):
    info = _text(client.execute_command('CLUSTER', 'INFO')) or ''
    fields = dict(line.split(':', 1) for line in info.split('\r\n') if ':' in line)
    return fields.get('cluster_state', 'unknown').strip()


def _failing_from_nodes(client):
    """Nodes flagged fail / fail? in CLUSTER NODES (servers without CLUSTER SHARDS)."""
    text = _text(client.execute_command('CLUSTER', 'NODES')) or ''
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 2 and ('fail' in parts[2].split(',') or 'fail?' in parts[2].split(',')):
            out.append('%s (%s)' % (parts[1].split('@')[0], parts[2]))
    return out


def discover(endpoint, client):
    """The :class:`Topology` of the cluster whose node ``client`` (on ``endpoint``) is; raises KVError."""
    command = 'CLUSTER SHARDS'
    replicas = []
    try:
        try:
            masters, failing = _from_shards(endpoint, client.execute_command('CLUSTER', 'SHARDS'), replicas)
        except Exception as exc:
            if reply_kind(exc) != 'unknown_command':
                raise
            command = 'CLUSTER SLOTS'
            del replicas[:]
            masters, failing = _from_slots(endpoint, client.execute_command('CLUSTER', 'SLOTS'), replicas)
            failing = _failing_from_nodes(client)
        state = _cluster_state(client)
    except KVError:
        raise
    except Exception as exc:
        err = endpoint.error(exc, 'discovering the cluster (%s, CLUSTER INFO)' % command)
        if err.kind == 'noperm':
            err.message = ('%s. The %s user needs +cluster|shards (or +cluster|slots before 7.0), +cluster|info '
                           'and +cluster|nodes to find the masters of a cluster'
                           % (err.message.rstrip('.'), endpoint.label))
        raise err
    if not masters:
        raise KVError('the %s %s runs in cluster mode but no master serves any slot: assign the slots (CLUSTER '
                      'ADDSLOTS) first' % (endpoint.label, endpoint.address), kind='config',
                      endpoint=endpoint.address)
    masters.sort(key=lambda m: m.ranges[0])
    replicas.sort(key=lambda r: (r.host, r.port))
    return Topology(endpoint, masters, state, failing, command, replicas)


def refuse_cluster(server, side, tool):
    """The config error of a module that does not support cluster mode yet (None when ``server`` is not a
    cluster node)."""
    if server is None or not server.cluster_enabled:
        return None
    return KVError('the %s %s runs in cluster mode: %s is not supported for cluster yet (kv_dump_restore copies '
                   'from and into clusters)' % (side, server.endpoint.address, tool), kind='config',
                   endpoint=server.endpoint.address)
