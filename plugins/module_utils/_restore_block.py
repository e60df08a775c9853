# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One block of snapshot RESTOREs (or one MSET of plain strings) in RESP, for kv_sync's applier: the per-key
cost of the initial copy.

:func:`restore_block` writes ``RESTORE key 0 payload [REPLACE]`` (no expiry) or ``RESTORE key ms payload
ABSTTL [REPLACE]`` for each key of a run, as one ``bytes``.  It is one ``b''.join`` over four parts per key
(header, key, middle, payload) laid out by list slices, with the headers looked up by length
(:class:`_Heads`) instead of formatted per key: only the keys with an expiry take a turn of a Python loop.
The end of each command (``\\r\\n``, then ``$7 REPLACE`` with ``replace``) opens the next command's header, so
the headers of a block are the same for every key without an expiry; an expiry's ``ABSTTL`` follows its
payload.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from itertools import compress, repeat
from operator import is_not

_ABSTTL_TAIL = b'\r\n$6\r\nABSTTL'             # after the payload of a key with an expiry
_ENDS = (b'\r\n', b'\r\n$7\r\nREPLACE\r\n')     # the end of every command of a block, by replace
_CACHED = 1 << 12                               # lengths below this keep their header (bounded memory)


class _Heads(dict):
    """``heads[n]``: ``fmt % n``, formatted once per length below :data:`_CACHED`."""

    def __init__(self, fmt):
        super(_Heads, self).__init__()
        self.fmt = fmt

    def __missing__(self, size):
        head = self.fmt % size
        if size < _CACHED:
            self[size] = head
        return head


# by replace: (header of a key without expiry, header of a key with one), each opened by the previous command's end
_HEADS = tuple((_Heads(end + b'*%d\r\n$7\r\nRESTORE\r\n$%%d\r\n' % (4 + replace)),
                _Heads(end + b'*%d\r\n$7\r\nRESTORE\r\n$%%d\r\n' % (5 + replace)))
               for replace, end in enumerate(_ENDS))
_NO_TTL = _Heads(b'\r\n$1\r\n0\r\n$%d\r\n')     # between the key and the payload: ttl 0, the payload's length


def restore_block(keys, payloads, sizes, expires, replace, shift):
    """The RESTOREs of ``keys`` (``bytes`` payloads of ``sizes`` bytes, ``expires`` absolute ms or None) as one
    ``bytes``; an expiry is written ``shift`` ms later (kv_sync's hold), or at least 1 when ``shift`` is 0.
    Returns ``(data, keys with an expiry)``."""
    count = len(keys)
    plain, timed_head = _HEADS[replace]
    parts = [None] * (4 * count)
    parts[0::4] = map(plain.__getitem__, map(len, keys))
    parts[1::4] = keys
    parts[2::4] = map(_NO_TTL.__getitem__, sizes)
    parts[3::4] = payloads
    timed = []
    if expires.count(None) != count:
        for i in compress(range(count), map(is_not, expires, repeat(None))):
            expire = expires[i]
            key = keys[i]
            ttl = b'%d' % (expire + shift if shift else max(1, expire))
            at = 4 * i
            parts[at] = timed_head[len(key)]
            parts[at + 2] = b'\r\n$%d\r\n%b\r\n$%d\r\n' % (len(ttl), ttl, sizes[i])
            parts[at + 3] = payloads[i] + _ABSTTL_TAIL
            timed.append(key)
    end = _ENDS[replace]
    if count:
        parts[0] = parts[0][len(end):]          # the first command opens the block
        parts.append(end)
    return b''.join(parts), timed


def spooled_restore(key, size, expire, replace, shift):
    """The RESTORE of a payload of ``size`` bytes that is streamed from its spool file: ``(the bytes before the
    payload, the bytes after it, whether it has an expiry)``, as :func:`restore_block` writes them."""
    data, timed = restore_block([key], [b''], [size], [expire], replace, shift)
    tail = len(_ENDS[replace]) + (len(_ABSTTL_TAIL) if timed else 0)
    return data[:-tail], data[-tail:], bool(timed)


_BULK = _Heads(b'\r\n$%d\r\n')                # a bulk string's header, opened by the end of the one before
_MSET_HEADS = (b'*%d\r\n$4\r\nMSET', b'*%d\r\n$6\r\nMSETNX')


def mset_command(keys, values, nx):
    """``MSET`` (``MSETNX`` with ``nx``) of ``keys`` to ``values`` (plain strings of a snapshot) as one ``bytes``:
    a header per key and per value looked up by length, joined once - no Python loop per key."""
    count = len(keys)
    parts = [None] * (4 * count + 1)
    parts[0] = _MSET_HEADS[bool(nx)] % (2 * count + 1)
    parts[1::4] = map(_BULK.__getitem__, map(len, keys))
    parts[2::4] = keys
    parts[3::4] = map(_BULK.__getitem__, map(len, values))
    parts[4::4] = values
    parts.append(b'\r\n')
    return b''.join(parts)
