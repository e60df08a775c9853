# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The snapshot side of ``kv_sync``'s appliers: the ``RESTORE`` commands of snapshot keys, packed, and the loop
over a snapshot's events that every applier (one target, or a cluster's masters) runs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._restore_block import restore_block
from ansible_collections.kvtools.migration.plugins.module_utils._sync_batch import Batch

ABSTTL = b'$6\r\nABSTTL\r\n'
REPLACE = b'$7\r\nREPLACE\r\n'
RESTORE_FMT = b'*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s'
RESTORE_LABEL = 'RESTORE of a snapshot key'


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
