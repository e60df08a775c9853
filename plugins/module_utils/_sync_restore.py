# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The snapshot side of ``kv_sync``'s appliers: the ``RESTORE`` commands of snapshot keys, packed, and the loop
over a snapshot's events that every applier (one target, or a cluster's masters) runs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

ABSTTL = b'$6\r\nABSTTL\r\n'
REPLACE = b'$7\r\nREPLACE\r\n'
RESTORE_FMT = b'*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s'
RESTORE_LABEL = 'RESTORE of a snapshot key'
# RESTORE key 0 payload [REPLACE] / RESTORE key ms payload ABSTTL [REPLACE], by replace (False, True)
_PLAIN = (b'*4\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$1\r\n0\r\n$%d\r\n%b\r\n',
          b'*5\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$1\r\n0\r\n$%d\r\n%b\r\n' + REPLACE)
_TIMED = (b'*5\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n' + ABSTTL,
          b'*6\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n' + ABSTTL + REPLACE)


def restore_commands(t_db, keys, payloads, expires, replace, shift, held):
    """One packed ``RESTORE key ttl payload [ABSTTL] [REPLACE]`` per key of a ``keys`` event.

    ``shift``: ms added to every expiry (hold mode), each such key then added to ``held`` (a keys log, or None).
    """
    plain = _PLAIN[bool(replace)]
    timed = _TIMED[bool(replace)]
    out = []
    add = out.append
    for key, payload, expire in zip(keys, payloads, expires):
        if expire is None:
            add(plain % (len(key), key, len(payload), payload))
        else:
            ttl = b'%d' % (expire + shift if shift else max(1, expire))
            add(timed % (len(key), key, len(ttl), ttl, len(payload), payload))
            if held is not None:
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
