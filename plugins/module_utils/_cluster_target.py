# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A cluster as the target of the RESTORE writer: every key goes to the master that serves its slot.

:class:`ClusterTargetSide` has the interface of :class:`~._restore_writer.TargetSide` (``wire.call_restores``,
``entries``, ``client_for``, ``fail``, ``close``): the writer does not know it writes into a cluster.  A batch
is split by the key slot (:func:`~._cluster.key_slot`) into one pipeline per master; every pipeline is sent
before the first reply is read, so the masters work at the same time.  Connections are opened per master
as they are needed (one :class:`~._wire.Wire` each, owned by this writer).

During a reshard a master answers ``MOVED slot host:port`` (the slot has moved: the routing table is
corrected and the key sent again) or ``ASK slot host:port`` (the slot is moving and the key is already on
the importing node: ``ASKING`` + the command there).  Both are counted (:attr:`redirects`); rounds of
redirections are paced by :class:`~._cluster.Settle` (the masters learn a slot's new owner one by one), and a key
still redirected when it gives up is reported like any other refused key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
from binascii import crc_hqx

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import Settle, key_slot, node_endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_ms
from ansible_collections.kvtools.migration.plugins.module_utils._wire import (
    ReplyError, Wire, pack, pack_key_commands, pack_restores, recv_key_replies)

TRYAGAIN_PAUSE = 0.05
ASKING = pack([[b'ASKING']])


def redirect(reply):
    """``('MOVED' or 'ASK', slot, 'host:port')`` for a redirection reply, else None."""
    if reply.__class__ is not ReplyError:
        return None
    text = str(reply)
    if text.startswith('MOVED ') or text.startswith('ASK '):
        parts = text.split()
        if len(parts) >= 3:
            return parts[0], int(parts[1]), parts[2]
    return None


class _Node:
    """The connection of one writer to one master."""

    def __init__(self, endpoint, db):
        self.endpoint = endpoint
        self.pending = None  # the items of the RESTORE pipeline in flight, and its packed bytes (None: streamed)
        self.packed = None
        self.client = endpoint.client(db=db)
        try:
            self.wire = Wire(self.client)
        except Exception:
            self.client.close()
            raise

    def close(self):
        self.wire.close()
        self.client.close()


class ClusterTargetSide:
    """A writer's connections to the masters of a target cluster (db ``t_db``, always 0)."""

    def __init__(self, job, s_db, t_db):
        self.endpoint = job.target_ep
        self.s_db = s_db
        self.t_db = t_db
        self.slots = list(job.target_topology.slot_addresses())
        self.absolute = job.target.capabilities['pexpiretime']
        self.nodes = {}
        self.redirects = dict(moved=0, ask=0)
        self.written = {}  # master address -> keys this writer wrote there
        self.planned = {}  # master address -> keys the plan (check mode) would write there
        self.wire = self  # the writer calls wire.call_restores()

    # -- connections ---------------------------------------------------------------------------
    def node(self, address):
        node = self.nodes.get(address)
        if node is None:
            host, port = address.rsplit(':', 1)
            endpoint = node_endpoint(self.endpoint, host, int(port))
            endpoint.label = '%s node %s' % (self.endpoint.label, address)
            node = self.nodes[address] = _Node(endpoint, self.t_db)
        return node

    def plan(self, keys):
        """Check mode: count ``keys`` on the masters a real run would write them to."""
        for key in keys:
            address = self._owner(key)
            self.planned[address] = self.planned.get(address, 0) + 1

    def client_for(self, key):
        """A redis-py client on the master that serves ``key`` (type-aware comparisons)."""
        return self.node(self._owner(key)).client

    def _owner(self, key):
        return self.owner_of_slot(key_slot(key))

    def owner_of_slot(self, slot):
        """The address of the master that serves ``slot`` (as this writer knows it)."""
        address = self.slots[slot]
        if address is None:
            raise KVError('slot %d of the target cluster %s has no master: the cluster lost coverage during the '
                          'copy' % (slot, self.endpoint.address), kind='config', endpoint=self.endpoint.address)
        return address

    def fail(self, exc, action):
        return self.endpoint.error(exc, action, db=self.t_db)

    def fail_read(self, exc, action):
        return self.fail(exc, '%s in db %d' % (action, self.t_db))

    def close(self):
        for node in self.nodes.values():
            node.close()
        self.nodes = {}

    # -- routing ---------------------------------------------------------------------------------
    def _groups(self, indexes, keys):
        """{master address: [index of a key it serves]} (the per-key hot path of a copy into a cluster)."""
        groups = {}
        slots = self.slots
        for index in indexes:
            key = keys[index]
            # key_slot(), inlined for keys without a hash tag
            address = slots[key_slot(key) if b'{' in key else crc_hqx(key, 0) & 0x3FFF]
            if address is None:
                address = self._owner(key)  # raises: the slot has no master
            group = groups.get(address)
            if group is None:
                groups[address] = [index]
            else:
                group.append(index)
        return groups

    def _route(self, keys, send, recv, ask):
        """Replies (one entry per key) for ``keys``, each sent to its master and redirected as needed.

        ``send(node, indexes)`` sends the commands of the keys at ``indexes``; ``recv(node, indexes)`` returns
        one entry per such key (a ReplyError entry for a key whose first reply is an error); ``ask(node, index)``
        sends ASKING + the commands of one key, and returns its entry.
        """
        out = [None] * len(keys)
        todo = list(range(len(keys)))
        asks = []
        settle = Settle()
        while True:
            groups = self._groups(todo, keys)
            sent = []
            for address, indexes in groups.items():
                node = self.node(address)
                try:
                    send(node, indexes)
                except Exception as exc:
                    raise self.fail(exc, 'writing to %s' % address)
                sent.append((address, node, indexes))
            todo = []
            for address, node, indexes in sent:
                try:
                    entries = recv(node, indexes)
                except KVError:
                    raise
                except Exception as exc:
                    raise self.fail(exc, 'reading the replies of %s' % address)
                for index, entry in zip(indexes, entries):
                    out[index] = entry
                    reply = entry[0] if entry.__class__ is tuple else entry
                    if reply.__class__ is not ReplyError:
                        continue  # the common case: written
                    moved = redirect(reply)
                    if moved is None:
                        if _is_tryagain(entry):
                            todo.append(index)
                        continue
                    kind, slot, target = moved
                    if kind == 'MOVED':
                        self.redirects['moved'] += 1
                        self.slots[slot] = target
                        todo.append(index)
                    else:
                        self.redirects['ask'] += 1
                        asks.append((index, target))
            for index, target in asks:
                entry = ask(self.node(target), index)
                out[index] = entry
                again = redirect(entry[0] if isinstance(entry, tuple) else entry)
                if again is not None or _is_tryagain(entry):
                    if again is not None and again[0] == 'MOVED':
                        self.redirects['moved'] += 1
                        self.slots[again[1]] = again[2]
                    todo.append(index)
            asks = []
            if not todo:
                return out
            if any(_is_tryagain(out[i]) for i in todo):
                time.sleep(TRYAGAIN_PAUSE)  # a slot in the middle of a move: the servers settle it
            if not settle.again():
                return out

    # -- RESTORE ---------------------------------------------------------------------------------
    def call_restores(self, items, absolute, replace_keys=()):
        """RESTORE ``items`` on their masters; the replies in the order of ``items``."""
        keys = [item[0] for item in items]

        def send(node, indexes):
            node.pending = [items[i] for i in indexes]
            try:
                node.packed = pack_restores(node.pending, absolute, replace_keys)
            except TypeError:  # a spooled payload: streamed from its file in recv
                node.packed = None
                return
            node.wire.send(node.packed, packed=True)

        def recv(node, indexes):
            if node.packed is None:
                replies = node.wire.call_restores(node.pending, absolute, replace_keys)
            else:
                replies = node.wire.recv(len(indexes))
            written = sum(1 for reply in replies if reply.__class__ is not ReplyError)
            self.written[node.endpoint.address] = self.written.get(node.endpoint.address, 0) + written
            return replies

        def ask(node, index):
            item = items[index]
            try:
                node.wire.send(ASKING, packed=True)
                replies = [node.wire.recv(1)[0]] + node.wire.call_restores([item], absolute, replace_keys)
            except Exception as exc:
                raise self.fail(exc, 'RESTORE after ASK on %s' % node.endpoint.address)
            if replies[1].__class__ is not ReplyError:
                self.written[node.endpoint.address] = self.written.get(node.endpoint.address, 0) + 1
            return replies[1]

        return self._route(keys, send, recv, ask)

    # -- single-key commands -------------------------------------------------------------------------
    def call(self, commands):
        """Single-key commands (the key is their second word, each key once), each sent to its master and
        redirected as needed; the replies in the order of ``commands``."""
        keys = [command[1] for command in commands]

        def send(node, indexes):
            node.wire.send(pack([commands[i] for i in indexes]), packed=True)

        def recv(node, indexes):
            return node.wire.recv(len(indexes))

        def ask(node, index):
            try:
                node.wire.send(ASKING + pack([commands[index]]), packed=True)
                return node.wire.recv(2)[1]
            except Exception as exc:
                raise self.fail(exc, '%s after ASK on %s' % (commands[index][0].decode(), node.endpoint.address))

        return self._route(keys, send, recv, ask)

    # -- the target's state of keys ----------------------------------------------------------------
    def entries(self, items):
        """The target's entry per item, ``(key, payload or None, expire_at_ms or None, raw expiry)``."""
        keys = [item[0] for item in items]
        names = (b'DUMP', b'PEXPIRETIME' if self.absolute else b'PTTL')

        def send(node, indexes):
            node.wire.send(pack_key_commands(names, [keys[i] for i in indexes]), packed=True)

        def recv(node, indexes):
            replies = recv_key_replies(node.wire, names, [keys[i] for i in indexes])
            return [(replies[2 * n], replies[2 * n + 1]) for n in range(len(indexes))]

        def ask(node, index):
            key = keys[index]
            try:
                node.wire.send(ASKING + pack([[names[0], key]]) + ASKING + pack([[names[1], key]]), packed=True)
                replies = node.wire.recv(4)
            except Exception as exc:
                raise self.fail(exc, 'DUMP after ASK on %s' % node.endpoint.address)
            return replies[1], replies[3]

        pairs = self._route(keys, send, recv, ask)
        now = now_ms()
        out = []
        for key, (payload, expiry) in zip(keys, pairs):
            for reply in (payload, expiry):
                if reply.__class__ is ReplyError:
                    raise self.fail(reply, 'DUMP')
            if self.absolute:
                out.append((key, payload, None if expiry < 0 else expiry, expiry))
            else:
                out.append((key, payload, None if expiry < 0 else now + expiry, expiry))
        return out


def _is_tryagain(entry):
    reply = entry[0] if isinstance(entry, tuple) else entry
    return reply.__class__ is ReplyError and str(reply).startswith('TRYAGAIN')
