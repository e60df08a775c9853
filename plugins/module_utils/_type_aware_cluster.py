# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The type-aware copy into a cluster: each key rebuilt with commands on the master that serves its slot.

:class:`ClusterTypedCopier` has the ``copy(key, expire_at_ms, replace)`` of :class:`~._type_aware.TypedCopier`
and keeps one TypedCopier per target master (on the redis-py client of the writer's
:class:`~._cluster_target.ClusterTargetSide` for that master).  The temporary key a collection is built under
carries a hash tag of the key's slot (:func:`~._type_aware.tmp_key`), so it lives on the same master and the
final RENAME stays within one slot.

A reshard of the target while a key is built: a ``MOVED`` reply corrects the routing table (counted) and the
key is copied again on the new master (paced when the masters send it back and forth, see
:class:`~._cluster.Settle`); ``ASK`` or ``TRYAGAIN`` (its slot is being moved) are waited out - the key is copied
again once the move is over - for at most :data:`MOVE_WAIT_S`, then it fails like any key the target refuses.
A temporary key left behind by an interrupted build carries its short expiry and is removed by the next run
(:func:`~._type_aware.remove_leftovers`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import Settle, key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import TypedCopier

MOVE_WAIT_S = 30.0
MOVE_PAUSE_S = 0.05


def cluster_redirect(exc):
    """``('MOVED' or 'ASK', slot, 'host:port')``, ``('TRYAGAIN', None, None)`` for a redis-py error of a cluster
    node, else None.  redis-py raises MovedError / AskError (with ``slot_id`` and ``node_addr``) and
    TryAgainError for these replies; the text is read too, for clients that leave them plain."""
    name = type(exc).__name__
    if name in ('MovedError', 'AskError') and hasattr(exc, 'slot_id'):
        host, port = exc.node_addr
        return ('MOVED' if name == 'MovedError' else 'ASK'), int(exc.slot_id), '%s:%d' % (host, int(port))
    if name == 'TryAgainError':
        return 'TRYAGAIN', None, None
    parts = str(exc).split()
    if len(parts) >= 3 and parts[0] in ('MOVED', 'ASK') and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2]
    if parts and parts[0] in ('TRYAGAIN', 'CLUSTERDOWN'):
        return 'TRYAGAIN', None, None
    return None


class ClusterTypedCopier:
    """Type-aware copies from ``src`` (a redis-py client on the source) into the cluster behind ``target_side``."""

    def __init__(self, src, target_side, source_server, target_server, **options):
        self.src = src
        self.target_side = target_side
        self.source_server = source_server
        self.target_server = target_server
        self.options = options
        self.copiers = {}  # master address -> TypedCopier
        self.stuck = set()  # slots whose move did not end within MOVE_WAIT_S: their keys fail at once

    def copier(self, key):
        address = self.target_side.owner_of_slot(key_slot(key))
        found = self.copiers.get(address)
        if found is None:
            found = self.copiers[address] = TypedCopier(self.src, self.target_side.node(address).client,
                                                        self.source_server, self.target_server, in_slot=True,
                                                        **self.options)
        return found

    def copy(self, key, expire_at_ms, replace):
        """As :meth:`~._type_aware.TypedCopier.copy`, on the master that serves ``key``'s slot."""
        deadline = time.time() + MOVE_WAIT_S
        settle = Settle(seconds=MOVE_WAIT_S)
        asked = False
        while True:
            try:
                return self.copier(key).copy(key, expire_at_ms, replace)
            except Exception as exc:
                found = cluster_redirect(exc)
                if found is None:
                    raise
                kind, slot, address = found
                if kind == 'MOVED' and slot not in self.stuck and settle.again():
                    self.target_side.redirects['moved'] += 1
                    self.target_side.slots[slot] = address
                    continue
                if kind == 'ASK' and not asked:
                    asked = True
                    self.target_side.redirects['ask'] += 1
                if kind != 'MOVED' and time.time() < deadline and slot not in self.stuck:
                    time.sleep(MOVE_PAUSE_S)
                    continue
                if slot is not None:
                    self.stuck.add(slot)
                raise
