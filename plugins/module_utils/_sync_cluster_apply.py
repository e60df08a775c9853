# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A cluster as the target of ``kv_sync``: the snapshot's keys and the command stream, routed by key slot.

:class:`ClusterApplier` has the interface the follower uses of :class:`~._sync_stream.Applier` and is made of
one such applier per target master (each with its own pipelined connection and in-flight window).  Every
RESTORE and every stream command goes to the master that serves its keys' slot:

* a command whose keys are all in one slot goes to that slot's master (a cluster source only streams such
  commands); a transaction is sent per slot as one ``MULTI``/``EXEC`` (a cluster refuses a transaction across
  slots, even on one master) - from a cluster source that is the whole transaction, atomic as on the source;
* from a standalone source, a command on keys of several slots is split per slot when that changes nothing
  (``DEL``, ``UNLINK``, ``MSET``, ``MSETNX`` - propagated only when it set every key); any other such command
  stops the follower with an error naming it: a cluster refuses it and it is never dropped silently;
* a command without keys (``FUNCTION LOAD``, ``FLUSHDB``) goes to every master.

There is no offset marker on a cluster target (a cluster cannot set one in the same transaction as commands
of other slots): a follower that died is restarted with a new snapshot, which replaces what it had written.

The applied offset is the smallest over the masters: each master's applier marks every stream offset, so one
that gets no command advances as soon as what it was sent is answered.  A ``MOVED``/``ASK`` while following
means the target cluster is being resharded: the follower stops and names it (a rerun takes a new snapshot
with the new slot owners); the copy engines (kv_dump_restore) follow redirections, a live follow cannot
re-order what it already sent.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import add_counts, db_result
from ansible_collections.kvtools.migration.plugins.module_utils._sync_commands import CommandTranslator, parse_commands
from ansible_collections.kvtools.migration.plugins.module_utils._sync_stream import Applier

SPLIT_PER_KEY = frozenset([b'del', b'unlink'])
SPLIT_PAIRS = frozenset([b'mset', b'msetnx'])
_DROP = frozenset([b'ping', b'publish', b'spublish', b'opinfo'])


class ClusterApplier(CommandTranslator):
    """The follower's applier into the cluster ``topology`` (a :class:`~._cluster.Topology` of the target)."""

    def __init__(self, target_ep, topology, pairs, keys_log, ttl_mode='import', replace=False, slots=None):
        self.endpoint = target_ep
        self.map = dict(pairs)
        self.keys_log = keys_log
        self.held_log = None
        self.ttl_mode = ttl_mode
        self.marker = None          # SWAPDB/MOVE cannot reach a cluster (db 0 only): no marker to move
        self.owner = list(topology.owner)
        self.addresses = [m.address for m in topology.masters]
        self.nodes = []
        for master in topology.masters:
            self.nodes.append(Applier(master.endpoint, pairs, keys_log, ttl_mode=ttl_mode, replace=replace,
                                      slots=slots))
        self.keyspec = {}
        self.src_db = None
        self.buf = b''
        self.block = None
        self.commands = 0
        self.skipped = 0
        self.dropped = 0
        self.getack = False
        self.split = 0              # commands and transactions split per slot (from a standalone source)

    # -- what the follower reads and sets -----------------------------------------------------------
    @property
    def client(self):
        return self.nodes[0].client

    @property
    def conn(self):
        return self.nodes[0].conn

    def _set_all(self, name, value):
        for node in self.nodes:
            setattr(node, name, value)

    @property
    def applied(self):
        offsets = [node.applied for node in self.nodes]
        return None if any(o is None for o in offsets) else min(offsets)

    @applied.setter
    def applied(self, value):
        self._set_all('applied', value)

    @property
    def applied_db(self):
        node = min(self.nodes, key=lambda n: -1 if n.applied is None else n.applied)
        return node.applied_db

    @applied_db.setter
    def applied_db(self, value):
        self._set_all('applied_db', value)

    @property
    def atomic(self):
        return self.nodes[0].atomic

    @atomic.setter
    def atomic(self, value):
        self._set_all('atomic', value)

    @property
    def replid(self):
        return self.nodes[0].replid

    @replid.setter
    def replid(self, value):
        self._set_all('replid', value)

    @property
    def log_applied(self):
        return min(node.log_applied if node.pending else self.keys_log.size() for node in self.nodes)

    @property
    def functions(self):
        return self.nodes[0].functions

    @property
    def counts(self):
        out = {}
        for node in self.nodes:
            for s_db, counts in node.counts.items():
                add_counts(out.setdefault(s_db, db_result(counts['db'], counts['target_db'], functions=0)), counts)
        for total in out.values():
            total['functions'] = self.functions
        return out

    # -- connections --------------------------------------------------------------------------------
    def connect(self, import_source=False):
        for node in self.nodes:
            node.connect(import_source=import_source)

    def close(self):
        for node in self.nodes:
            node.close()

    def poll(self):
        for node in self.nodes:
            node.flush()
        for node in self.nodes:
            node.poll()

    def wait_all(self):
        try:
            for node in self.nodes:
                node.flush()
            for node in self.nodes:
                node.wait_all()
        except KVError as exc:
            raise self._explain(exc)

    def _explain(self, exc):
        text = str(exc)
        if 'MOVED ' in text or 'ASK ' in text or 'TRYAGAIN' in text:
            return KVError('%s. The target cluster is being resharded: a live copy follows the slot owners it found '
                           'when it started. Finish the reshard, then run state=started again (a new snapshot with '
                           'the new owners)' % text, kind='topology', endpoint=exc.endpoint)
        return exc

    def _node(self, key):
        index = self.owner[key_slot(key)]
        if index is None:
            raise KVError('slot %d of the target cluster %s has no master' % (key_slot(key), self.endpoint.address),
                          kind='topology', endpoint=self.endpoint.address)
        return index

    # -- snapshot -------------------------------------------------------------------------------------
    def prepare_full_resync(self):
        for node in self.nodes:
            node.prepare_full_resync()

    def restore_snapshot(self, events, progress=None):
        try:
            for event in events:
                if event[0] == 'end':
                    if not event[1]:
                        raise KVError('the snapshot\'s CRC-64 trailer does not match what was received: the transfer '
                                      'was corrupted and the keys written from it cannot be trusted', kind='corrupt')
                    continue
                self.snapshot_event(event)
                if progress is not None:
                    progress()
        except KVError as exc:
            raise self._explain(exc)
        self.wait_all()

    def snapshot_event(self, event):
        kind = event[0]
        if kind == 'aux' and event[1] == b'repl-stream-db':
            try:
                self.src_db = int(event[2])
            except ValueError:
                pass
        elif kind == 'keys':
            db, keys, payloads, expires = event[1:5]
            if self.map.get(db) is None:
                return
            parts = {}
            for key, payload, expire in zip(keys, payloads, expires):
                part = parts.get(self._node(key))
                if part is None:
                    part = parts[self._node(key)] = ([], [], [])
                part[0].append(key)
                part[1].append(payload)
                part[2].append(expire)
            for index, part in parts.items():
                self.nodes[index].snapshot_keys(db, part[0], part[1], part[2])
        elif kind == 'key':
            db, key, payload, expire_ms = event[1:5]
            self.nodes[self._node(key)].restore(db, key, payload, expire_ms)
        elif kind == 'function':  # a library belongs on every master
            for node in self.nodes:
                node.snapshot_event(event)

    # -- command stream -------------------------------------------------------------------------------
    def feed(self, data, received_ms, base):
        self.buf = self.buf + data if self.buf else data
        cmds, pos = parse_commands(self.buf)
        try:
            for args, end in cmds:
                self.command(args, base + end, received_ms)
            self.buf = self.buf[pos:]
            self.poll()
        except KVError as exc:
            if exc.kind == 'crossslot':  # what came before it is applied and answered: the record's offset is exact
                try:
                    self.wait_all()
                except KVError:
                    pass
            raise self._explain(exc)
        return base + pos

    def _mark(self, end):
        for node in self.nodes:
            node.mark(end, self.src_db)

    def command(self, args, end, received_ms):
        name = args[0].lower()
        in_block = self.block is not None
        if name == b'select':
            self.src_db = int(args[1])
            return None if in_block else self._mark(end)
        if name in _DROP or name == b'replconf':
            if name == b'replconf' and len(args) > 1 and args[1].lower() == b'getack':
                self.getack = True
            self.dropped += 1
            return None if in_block else self._mark(end)
        if name == b'multi':
            self.block = []
            return None
        if name == b'exec':
            block, self.block = self.block or [], None
            return self._send([t for item in block for t in item], end, ' in a MULTI/EXEC', transaction=True)
        targets = self.translate(args, received_ms)
        if self.block is not None:
            self.block.append(targets)
            return None
        return self._send(targets, end, '')

    def _send(self, targets, end, suffix, transaction=False):
        if not targets:
            self.skipped += 1
            return self._mark(end)
        touched = set()
        groups = {}                 # a transaction: (master, slot) -> its commands, in the stream's order
        for t_db, targs, keys in targets:
            label = '%s (target db %s)%s' % (targs[0].upper().decode('ascii', 'replace'), t_db, suffix)
            for index, nargs, nkeys in self._route(targs, keys):
                touched.add(index)
                if transaction and nkeys and nkeys[0][1] is not None:
                    groups.setdefault((index, t_db, key_slot(nkeys[0][1])), []).append((nargs, label, nkeys))
                else:
                    self.nodes[index].queue_command(t_db, nargs, label, nkeys)
        if len(groups) > 1:
            self.split += 1         # a transaction over several slots (a standalone source): one per slot
        for (index, t_db, _slot), cmds in groups.items():
            self.nodes[index].queue_transaction(t_db, cmds)
        self.commands += 1
        self._mark(end)
        for index in touched:
            self.nodes[index].keep_window()
        return None

    def _route(self, args, keys):
        """``[(master index, args, keys), ...]`` for one translated command (see the module docstring)."""
        names = [key for _db, key in keys or []]
        if not names or any(key is None for key in names):
            return [(index, args, keys) for index in range(len(self.nodes))]
        slots = {}
        for key in names:
            slots.setdefault(key_slot(key), []).append(key)
        if len(slots) == 1:
            return [(self._node(names[0]), args, keys)]
        name = args[0].lower()
        t_db = keys[0][0]
        out = []
        if name in SPLIT_PER_KEY:
            for slot_keys in slots.values():
                out.append((self._node(slot_keys[0]), [args[0]] + slot_keys, [(t_db, k) for k in slot_keys]))
        elif name in SPLIT_PAIRS and len(args) % 2 == 1:
            values = {}
            for i in range(1, len(args), 2):
                values.setdefault(key_slot(args[i]), []).extend(args[i:i + 2])
            for pairs in values.values():
                out.append((self._node(pairs[0]), [b'MSET'] + pairs, [(t_db, k) for k in pairs[::2]]))
        else:
            raise KVError('the source ran %s on keys of %d hash slots (%s): a cluster target refuses a command across '
                          'slots and kv_sync cannot split it without changing what it does. Nothing was dropped: '
                          'the follow stops here. Copy into the cluster offline (kv_dump_restore), or have the '
                          'writers keep the keys of such commands in one hash tag ({...})'
                          % (args[0].upper().decode('ascii', 'replace'), len(slots),
                             ', '.join(repr(k)[1:] for k in names[:3])), kind='crossslot')
        self.split += 1
        return out
