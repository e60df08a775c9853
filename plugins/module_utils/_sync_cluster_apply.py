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
* a command without keys (``FLUSHDB``, ``FUNCTION LOAD``) goes to every master, once everything before it is
  applied (below: a redirected command before it must not land after it).

There is no offset marker on a cluster target (a cluster cannot set one in the same transaction as commands
of other slots): a follower that died is restarted with a new snapshot, which replaces what it had written.
The applied offset is the smallest over the masters: each master's applier marks every stream offset, so one
that gets no command advances as soon as what it was sent is answered.

**A reshard of the target while following.**  Each master's applier keeps what it sent until it is answered
(``Applier.keep``); a reply ``MOVED``, ``ASK`` or ``TRYAGAIN`` means that command (or that whole transaction:
a redirected command aborts it) did not run, and it is handed back here.  From then on no new command is
queued: what is queued is sent and every master's replies are read to the end (the rest either ran or is
handed back too), then the redirected commands are applied **one at a time, in stream order**, each waiting
for its reply:

* ``MOVED slot host:port`` - the slot's owner is updated (a master not known yet gets an applier of its own,
  with the same user, password and TLS, and in import mode) and the command goes there;
* ``ASK slot host:port`` - ``ASKING`` + the command (a ``RESTORE``, a command, a ``MULTI``/``EXEC``) on the
  importing master; the owner stays (the slot has not moved yet);
* ``TRYAGAIN`` (the keys of a multi-key command are split between the two masters for a moment) - the same
  again after :data:`REDIRECT_PAUSE`; a command still redirected after :data:`REDIRECT_SECONDS` stops the
  follower with ``error=topology`` naming the slot and the reply.

Then the stream goes on.  Why the order per key holds: until the redirected commands are applied, every
command went to the master the table named, in stream order, so what ran ran in order; a command of the same
key after a redirected one, in flight to the same master, is redirected too: after ``MOVED`` the master no
longer serves the slot, after ``ASK`` the key is missing there and nothing can create it there (every write
to it is answered ``ASK``, a multi-key one ``TRYAGAIN``); a key the migrating master still has runs there and
leaves with its new value in the resharder's ``MIGRATE``.  The applied offset (what the link acknowledges)
never passes a redirected command that is not applied yet.  Not covered: a slot migration aborted
(``SETSLOT STABLE``) or a slot moved back to its master while our commands for it are in flight.  The
redirections are counted (``redirects``: ``moved``, ``ask``, ``tryagain``), as the copy engine does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import key_slot, node_endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import add_counts, db_result
from ansible_collections.kvtools.migration.plugins.module_utils._sync_commands import CommandTranslator, parse_commands
from ansible_collections.kvtools.migration.plugins.module_utils._sync_restore import apply_snapshot, stream_db
from ansible_collections.kvtools.migration.plugins.module_utils._sync_stream import Applier

REDIRECT_SECONDS = 30.0     # the longest one command is redirected again and again before the follow stops
REDIRECT_PAUSE = 0.02       # before a try after TRYAGAIN, or after a redirection to a master it came from
KEEP_BYTES = 32 << 20       # fed since all was answered: then wait (what the masters' appliers keep stays bounded)
SPLIT_PER_KEY = frozenset([b'del', b'unlink'])
SPLIT_PAIRS = frozenset([b'mset', b'msetnx'])
_DROP = frozenset([b'ping', b'publish', b'spublish', b'opinfo'])


class ClusterApplier(CommandTranslator):
    """The follower's applier into the cluster ``topology`` (a :class:`~._cluster.Topology` of the target)."""

    plain_strings = False       # every key is its own RESTORE (a cluster's MSET must stay in one slot)

    def __init__(self, target_ep, topology, pairs, keys_log, ttl_mode='import', replace=False, slots=None):
        self.endpoint = target_ep
        self.map = dict(pairs)
        self.keys_log = keys_log
        self.held_log = None
        self.ttl_mode = ttl_mode
        self.marker = None          # SWAPDB/MOVE cannot reach a cluster (db 0 only): no marker to move
        self.owner = list(topology.owner)
        self.addresses = [m.address for m in topology.masters]
        self.node_args = dict(pairs=pairs, keys_log=keys_log, ttl_mode=ttl_mode, replace=replace, slots=slots)
        self.import_source = False
        self.nodes = [self._new_node(master.endpoint) for master in topology.masters]
        self.redirects = dict(moved=0, ask=0, tryagain=0)
        self.caught = []            # redirected: [((seq, offset before), master's applier, kept, transaction, words)]
        self.hold = None            # the stream offset before the first redirected command not applied yet
        self.seq = 0                # stream order of what is queued (kept with it: redirected ones go in this order)
        self.last_end = None        # the stream offset of the last command queued
        self.fed = 0
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
        if any(o is None for o in offsets):
            return None
        return min(offsets) if self.hold is None else min(offsets + [self.hold])

    @applied.setter
    def applied(self, value):
        self.last_end = value
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
    def _new_node(self, endpoint):
        args = self.node_args
        node = Applier(endpoint, args['pairs'], args['keys_log'], ttl_mode=args['ttl_mode'], replace=args['replace'],
                       slots=args['slots'])
        node.keep = self._redirected
        return node

    def connect(self, import_source=False):
        self.import_source = import_source
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
        if self.caught:
            self.wait_all()

    def wait_all(self):
        """Until every master answered all it was sent, and every redirected command is applied."""
        while True:
            for node in self.nodes:
                node.flush()
            for node in self.nodes:
                node.wait_all()
            if not self.caught:
                break
            self._apply_redirected()
        self.fed = 0

    # -- redirections (see the module docstring) ------------------------------------------------------
    def _redirected(self, node, kept, transaction, words):
        """``Applier.keep`` of every master's applier: a command (or transaction) that did not run."""
        self.caught.append((kept[0][3] or (0, None), node, kept, transaction, words))

    def _apply_redirected(self):
        units = sorted(self.caught, key=lambda unit: unit[0][0])
        self.caught = []
        for unit in units:
            self.hold = unit[0][1]  # in stream order: the offsets before the later ones are not smaller
            self._apply_one(unit)
        self.hold = None

    def _apply_one(self, unit):
        """Apply one redirected command (or transaction) where the redirections send it, waiting for it."""
        node, kept, transaction, words = unit[1:]
        asking = False
        seen = set([node.endpoint.address])
        deadline = time.time() + REDIRECT_SECONDS
        while True:
            parts = words.split()
            if parts[0] in ('MOVED', 'ASK') and len(parts) >= 3:
                slot, address = int(parts[1]), parts[2]
                self.redirects['moved' if parts[0] == 'MOVED' else 'ask'] += 1
                index = self._master(address, slot)
                if parts[0] == 'MOVED':
                    self.owner[slot] = index
                node, asking = self.nodes[index], parts[0] == 'ASK'
                if address in seen:  # the masters do not agree yet on who serves the slot: let them settle
                    time.sleep(REDIRECT_PAUSE)
                seen.add(address)
            else:  # TRYAGAIN: the keys of the command are on two masters for a moment; the same again
                self.redirects['tryagain'] += 1
                time.sleep(REDIRECT_PAUSE)
            if time.time() > deadline:
                raise KVError('%s was redirected for %d s by the target cluster (last reply: %s): a slot stays in '
                              'migration. The follow stops here, nothing was dropped silently; once the reshard is done '
                              'run state=started again (a new snapshot)' % (kept[0][1], REDIRECT_SECONDS, words),
                              kind='topology', endpoint=node.endpoint.address)
            node.resend(kept, transaction, asking)
            node.wait_all()
            if not self.caught:
                return
            words = self.caught.pop()[4]

    def _master(self, address, slot):
        """The index of the master at ``address`` (a redirection's); a master not known yet is connected."""
        if address in self.addresses:
            return self.addresses.index(address)
        host, port = address.rsplit(':', 1)
        endpoint = node_endpoint(self.endpoint, host, int(port))
        endpoint.label = '%s node %s' % (self.endpoint.label, address)
        node = self._new_node(endpoint)
        try:
            node.connect(import_source=self.import_source)
        except KVError as exc:
            node.close()
            raise KVError('slot %d of the target cluster moved to %s, a master this follow did not know, which cannot '
                          'be written to: %s. When its import mode is off, switch it on there (CONFIG SET import-mode yes) as '
                          'on the other masters, then run state=started again (a new snapshot)'
                          % (slot, address, exc.message), kind='topology', endpoint=address)
        offsets = [n.applied for n in self.nodes]
        node.applied = None if any(o is None for o in offsets) else min(offsets)
        node.applied_db, node.src_db = self.applied_db, self.src_db
        node.atomic, node.replid = self.atomic, self.replid
        self.nodes.append(node)
        self.addresses.append(address)
        return len(self.nodes) - 1

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
        apply_snapshot(events, self.snapshot_event, progress)
        self.wait_all()

    def snapshot_event(self, event):
        self.seq += 1
        for node in self.nodes:
            node.tag = (self.seq, None)
        self._snapshot_event(event)
        if self.caught or self.fed > KEEP_BYTES:
            self.wait_all()

    def _snapshot_event(self, event):
        kind = event[0]
        if kind == 'aux':
            self.src_db = stream_db(event, self.src_db)
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
            self.fed += sum(map(len, payloads))
        elif kind == 'key':
            db, key, payload, expire_ms = event[1:5]
            self.nodes[self._node(key)].restore(db, key, payload, expire_ms)
            self.fed += len(payload)
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
            self.fed += len(data)
            if self.fed > KEEP_BYTES:
                self.wait_all()
            else:
                self.poll()
        except KVError as exc:
            if exc.kind == 'crossslot':  # what came before it is applied and answered: the record's offset is exact
                try:
                    self.wait_all()
                except KVError:
                    pass
            raise
        return base + pos

    def _mark(self, end):
        self.last_end = end
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
                    self._tag(index).queue_command(t_db, nargs, label, nkeys)
        if len(groups) > 1:
            self.split += 1         # a transaction over several slots (a standalone source): one per slot
        for (index, t_db, _slot), cmds in groups.items():
            self._tag(index).queue_transaction(t_db, cmds)
        self.commands += 1
        self._mark(end)
        for index in touched:
            self.nodes[index].keep_window()
        if self.caught:             # nothing more is sent before the redirected commands are applied
            self.wait_all()
        return None

    def _tag(self, index):
        """The applier of master ``index``, with the stream position of what is queued next (redirections)."""
        self.seq += 1
        node = self.nodes[index]
        node.tag = (self.seq, self.last_end)
        return node

    def _route(self, args, keys):
        """``[(master index, args, keys), ...]`` for one translated command (see the module docstring)."""
        names = [key for _db, key in keys or []]
        if not names or any(key is None for key in names):
            self.wait_all()         # on every master after all before it (a redirected command included)
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
