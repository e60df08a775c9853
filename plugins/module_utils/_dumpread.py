# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one DUMP + expiry reader: the copy's source reads, the target-state reads and the logical backup.

An *entry* is ``(key, payload or None, expire_at_ms or None, raw expiry reply)``: the payload is None
when the key does not exist; ``expire_at_ms`` is absolute (``PEXPIRETIME``, or ``PTTL`` made absolute at
read time on servers before 7.0); the raw reply is kept because ``RESTORE`` without ``ABSTTL`` takes it.

:class:`DumpReader` owns the reading side of one :class:`~._wire.Wire`: between :meth:`DumpReader.send`
and :meth:`DumpReader.recv` replies are in flight, so nothing else may use that wire.  :meth:`DumpReader.parts`
sends the read of the next part before it hands out the current one, so the server works while the
caller writes; parts adapt to about :data:`PART_BYTES` of payloads.  A payload above
:data:`~._wire.BIG_REPLY` is a :class:`~._spooled_payload.SpooledPayload` (a 0600 temp file, ``len()``,
``chunks()``, ``close()``), never bytes in memory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_ms
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyError, pack_key_commands, recv_key_replies

PART_BYTES = 16 * 1024 * 1024   # payload bytes one reader holds at a time (memory bound)
FIRST_PART = 64                 # keys read before the average payload size is known


def live_entries(entries, now=None, size=None):
    """``(items, expired, payload bytes)``: the entries of keys that exist and do not expire by ``now``.

    A key that is gone (nil DUMP, expiry -2) or whose expiry has passed is counted as expired: the
    server it was read from says so.  ``size``: the payload bytes of ``entries`` when known.
    """
    now = now_ms() if now is None else now
    kept = [entry for entry in entries if entry[1] is not None and entry[3] != -2
            and (entry[2] is None or entry[2] > now)]
    if size is None or len(kept) != len(entries):
        size = sum(len(entry[1]) for entry in kept)
    return kept, len(entries) - len(kept), size


class DumpReader:
    """``DUMP`` + ``PEXPIRETIME`` (``PTTL`` when ``absolute`` is false) for keys, pipelined on ``wire``.

    ``fail(exc, action)`` returns the exception to raise for a read that failed (the caller's
    endpoint and db go into it).
    """

    def __init__(self, wire, absolute, fail, max_part=None):
        self.wire = wire
        self.absolute = absolute
        self.expiry_cmd = b'PEXPIRETIME' if absolute else b'PTTL'
        self.fail = fail
        self.max_part = max_part or 1000
        self.part = min(FIRST_PART, self.max_part)
        self.last_bytes = 0  # payload bytes of the last recv()

    def send(self, keys):
        try:
            self.wire.send(pack_key_commands((b'DUMP', self.expiry_cmd), keys), packed=True)
        except Exception as exc:
            raise self.fail(exc, 'reading')

    def recv(self, keys):
        """The entries of ``keys`` (their replies must be the next on the wire).

        A big payload comes as a SpooledPayload (a temp file): see :func:`~._wire.recv_key_replies`.
        """
        try:
            replies = recv_key_replies(self.wire, (b'DUMP', self.expiry_cmd), keys)
        except KVError:
            raise
        except Exception as exc:
            raise self.fail(exc, 'reading')
        errors = [reply for reply in replies if reply.__class__ is ReplyError]
        if errors:
            raise self.fail(errors[0], 'DUMP')
        dumps = replies[0::2]
        exps = replies[1::2]
        try:
            self.last_bytes = sum(map(len, dumps))
        except TypeError:  # a nil: a key that does not exist
            self.last_bytes = sum(len(payload) for payload in dumps if payload is not None)
        if self.absolute:
            return [(k, p, None if e < 0 else e, e) for k, p, e in zip(keys, dumps, exps)]
        now = now_ms()
        return [(k, p, None if e < 0 else now + e, e) for k, p, e in zip(keys, dumps, exps)]

    def read(self, keys):
        if not keys:
            return []
        self.send(keys)
        return self.recv(keys)

    def parts(self, keys):
        """Yield ``(part keys, entries, payload bytes)`` for all ``keys``; the next part is already asked for while the
        caller handles the current one."""
        position = [0]

        def send_next():
            start = position[0]
            if start >= len(keys):
                return None
            part = keys[start:start + self.part]
            position[0] = start + len(part)
            self.send(part)
            return part

        pending = send_next()
        while pending is not None:
            entries = self.recv(pending)
            size = self.last_bytes
            avg = max(1, size // max(1, len(pending)))
            self.part = max(1, min(self.max_part, PART_BYTES // avg))
            following = send_next()
            yield pending, entries, size
            pending = following
