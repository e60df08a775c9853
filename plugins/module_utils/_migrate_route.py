# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where the MIGRATE calls of one kv_migrate writer go, when a side is a cluster.

``MIGRATE`` is sent to the source server and connects from there to the host and port it names; it does not
follow ``MOVED`` or ``ASK``.  So :class:`MigrateRoutes` cuts a part of keys into calls:

* between two standalone servers: one call to the target;
* out of a cluster: one call per slot, because a cluster node refuses a command whose keys are in
  different slots (``CROSSSLOT``), MIGRATE included.  Servers that keep one table per slot (Redis 7.4+,
  Valkey 8+) SCAN slot by slot, so a batch holds few slots and the calls stay large; Redis 7.0 and 7.2 SCAN
  across the slots (:func:`scans_across_slots`), so the writer asks for SCAN batches ten times bigger and sorts
  them by slot before it cuts them into calls (the calls of a part are pipelined: one round trip per part);
* into a cluster: one call per target master (the master that serves the key's slot in the writer's routing
  table), sent to that master's address.

During a reshard of the target a master answers the RESTORE that MIGRATE sends with ``MOVED`` (the slot has
moved: the routing table is read again from the cluster, and the slot set as the reply says) or ``ASK`` (the
slot is being moved and the key is not on the old master).  The importing master takes a key of such a slot
only after ``ASKING``, which MIGRATE sends only from a cluster node (RESTORE-ASKING), and the old master
refuses it: the keys of a slot being moved are copied by the writer itself, DUMP on the source and RESTORE
after ASKING on the importing master (:class:`~._cluster_target.ClusterTargetSide`), until a MOVED says the
move is over.  MIGRATE reports the first error of a call only: the writer asks which keys of the call arrived
and sends the others again, routed anew; :meth:`MigrateRoutes.redirected` learns from the error, counts it
(:attr:`redirects`), and says whether to send again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import discover, key_slot

TRYAGAIN_PAUSE = 0.05


def redirection(text):
    """``('MOVED' or 'ASK', slot, 'host:port')`` or ``('TRYAGAIN', None, None)`` for a target's error text, else
    None."""
    parts = text.split()
    if len(parts) >= 3 and parts[0] in ('MOVED', 'ASK') and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2]
    if parts and parts[0] == 'TRYAGAIN':
        return 'TRYAGAIN', None, None
    return None


def scans_across_slots(job):
    """Whether the source is a cluster whose SCAN visits the slots in no order (Redis before 7.4, Valkey before 8:
    one table for every slot), so that a SCAN batch holds a key or two of each slot."""
    server = job.source.server
    return bool(getattr(job.source, 'parted', False) and server is not None
                and not server.at_least((7, 4, 0), (8, 0, 0)))


class MigrateRoutes:
    """The calls of one writer: ``calls(keys)`` gives ``[(address or None, keys)]`` (None: the target given).

    ``by_slot``: the source is a cluster; ``target_side``: the writer's
    :class:`~._cluster_target.ClusterTargetSide` (its routing table is shared, so the reads of the target that
    check what arrived route the same way), None for a standalone target.
    """

    def __init__(self, job, by_slot, target_side):
        self.job = job
        self.by_slot = by_slot
        self.target_side = target_side
        self.asked = {}  # slot -> the importing master's address (ASK), until a MOVED names the slot's owner
        self.redirects = dict(moved=0, ask=0)
        self.written = {}  # target master address -> keys this writer's calls wrote there
        self.planned = {}  # ... and in check mode those a real run would write there

    @property
    def cluster_target(self):
        return self.target_side is not None

    def asked_keys(self, keys):
        """``(keys of slots being moved, the others)``: the first are restored through this machine."""
        if not self.asked:
            return [], keys
        moving = [key for key in keys if key_slot(key) in self.asked]
        if not moving:
            return [], keys
        others = set(moving)
        return moving, [key for key in keys if key not in others]

    def slots_of(self, keys):
        """``{key: slot}`` when the calls depend on the slots (a side is a cluster), else None."""
        if not self.by_slot and not self.cluster_target:
            return None
        return dict((key, key_slot(key)) for key in keys)

    def calls(self, keys, slots=None):
        """``[(address or None, keys)]``: ``keys`` cut into the MIGRATE calls they need, in the order of ``keys``
        (``slots``: their slots, from :meth:`slots_of`, else computed here)."""
        if not self.by_slot and not self.cluster_target:
            return [(None, list(keys))] if keys else []
        groups = {}
        order = []
        for key in keys:
            slot = key_slot(key) if slots is None else slots[key]
            dest = self.target_side.owner_of_slot(slot) if self.cluster_target else None
            group = (slot if self.by_slot else None, dest)
            if group not in groups:
                groups[group] = []
                order.append(group)
            groups[group].append(key)
        return [(group[1], groups[group]) for group in order]

    def plan(self, keys, slots=None):
        """Check mode: the calls a real run would send for ``keys`` (their keys counted per target master)."""
        calls = self.calls(keys, slots)
        for address, part in calls:
            if address is not None:
                self.planned[address] = self.planned.get(address, 0) + len(part)
        return len(calls)

    def count_written(self, address, count):
        if address is not None and count:
            self.written[address] = self.written.get(address, 0) + count

    def redirected(self, text):
        """What a target's error (the text after ``Target instance replied with error:``) teaches: True when it
        was a redirection (the keys that did not arrive are sent again), else False."""
        found = redirection(text)
        if found is None or not self.cluster_target:
            return False
        kind, slot, address = found
        if kind == 'TRYAGAIN':
            time.sleep(TRYAGAIN_PAUSE)  # a multi-key write while its slot moves: the servers settle it
            return True
        if kind == 'ASK':
            self.redirects['ask'] += 1
            self.asked[slot] = address
            return True
        self.redirects['moved'] += 1
        self.asked.pop(slot, None)  # a move that ended (or was given up): the owner named is the one
        self.refresh()
        self.target_side.slots[slot] = address  # what the node that refused says wins over any view read
        return True

    def refresh(self):
        """Read the target cluster's slots again (after a MOVED: more slots than the one named may have moved).
        The slots being moved keep going to their importing master (ASK) until a MOVED names their owner."""
        endpoint = self.job.target_ep
        client = endpoint.client(db=0)
        try:
            topology = discover(endpoint, client)
        finally:
            client.close()
        self.target_side.slots[:] = topology.slot_addresses()
