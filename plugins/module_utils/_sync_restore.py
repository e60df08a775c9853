# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The snapshot side of ``kv_sync``'s appliers: the ``RESTORE`` commands of snapshot keys (and the ``MSET`` of its
plain strings), packed, and the loop over a snapshot's events that every applier (one target, or a cluster's
masters) runs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._restore_block import mset_command, restore_block
from ansible_collections.kvtools.migration.plugins.module_utils._sync_batch import Batch

RESTORE_LABEL = 'RESTORE of a snapshot key'
MSET_LABEL = 'MSET of snapshot strings'
MSETNX_LABEL = 'MSETNX of snapshot strings'


def restore_batch(t_db, keys, payloads, expires, replace, shift, held, tag, kept):
    """The RESTOREs of a ``keys`` event for an applier: ``(bytes to send, its Batch, payload bytes)``.

    One target: the whole block in one piece (the hot path of a snapshot).  ``kept`` (a cluster master's applier,
    which may have to send a redirected RESTORE again alone): one kept command per key in the batch.
    """
    if not kept:
        sizes = list(map(len, payloads))
        data, timed = restore_block(keys, payloads, sizes, expires, replace, shift)
        if timed and held is not None:
            held.add_keys(t_db, timed)
        return data, Batch([(RESTORE_LABEL, None)], False, None, None, replies=len(keys)), sum(sizes)
    out = restore_commands(t_db, keys, payloads, expires, replace, shift, held)
    batch = Batch([(RESTORE_LABEL, None)], False, None, None, replies=len(out))
    batch.sent = [(cmd, RESTORE_LABEL, None, tag) for cmd in out]
    return b''.join(out), batch, sum(map(len, payloads))


def strings_batch(keys, values, replace):
    """The plain strings of a ``strings`` event as one ``MSET`` (``MSETNX`` unless ``replace``): ``(bytes to send,
    its Batch, bytes)``, the bytes counted as a DUMP payload of the raw value would be (type, length, value,
    version, CRC): an LZF value counts at its decompressed size."""
    sizes = list(map(len, values))
    size = sum(sizes) + 12 * len(sizes) + sum(map((63).__lt__, sizes))
    label = MSET_LABEL if replace else MSETNX_LABEL
    return mset_command(keys, values, not replace), Batch([(label, None)], False, None, None, replies=1), size


def mset_refused(address):
    """The error of an ``MSETNX`` of snapshot strings that answered 0 (a RESTORE's ``BUSYKEY``)."""
    return KVError('the target refused %s: one of its keys is already on the target (MSETNX answered 0, nothing of it '
                   'was written). Something else writes to the target: stop it, or set on_conflict=replace'
                   % MSETNX_LABEL, kind='target', endpoint=address)


def restore_commands(t_db, keys, payloads, expires, replace, shift, held):
    """One packed ``RESTORE key ttl payload [ABSTTL] [REPLACE]`` per key of a ``keys`` event.

    ``shift``: ms added to every expiry (hold mode), each such key then added to ``held`` (a keys log, or None).
    """
    out = []
    for key, payload, expire in zip(keys, payloads, expires):
        data, timed = restore_block([key], [payload], [len(payload)], [expire], bool(replace), shift)
        out.append(data)
        if timed and held is not None:
            held.add(t_db, key)
    return out


def stream_db(event, current):
    """The db the command stream starts in, from the snapshot's ``aux repl-stream-db`` event (else ``current``)."""
    if event[1] == b'repl-stream-db':
        try:
            return int(event[2])
        except ValueError:
            pass
    return current


def apply_snapshot(events, on_event, progress=None):
    """``on_event(event)`` for each event of a snapshot (``SnapshotParser.batches()`` or ``.events()``), then
    ``progress()``; a snapshot whose CRC-64 trailer does not match stops with kind ``corrupt``."""
    for event in events:
        if event[0] == 'end':
            if not event[1]:
                raise KVError('the snapshot\'s CRC-64 trailer does not match what was received: the transfer '
                              'was corrupted and the keys written from it cannot be trusted', kind='corrupt')
            continue
        on_event(event)
        if progress is not None:
            progress()
