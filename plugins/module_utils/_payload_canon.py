# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whether two DUMP payloads of an unordered collection hold the same value, whatever the order of its elements.

A set, hash or sorted set big enough for a hash table is serialized in the order of its table, and a server that
restored it may serialize it in another order: the payloads differ, the values do not.  Where a copy has live
values to read (a server as its source) it compares those (:mod:`._type_aware`); a file has none, so
:func:`same_unordered` reads both payloads - RDB type 2 (set), 4 (hash) and 5 (sorted set, binary scores) - into
sorted lists of their elements and compares those.  Any other type, a payload held in a temp file (a big value:
not read whole here), or anything it cannot read completely is "not known to be the same" (False).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import lzf_decompress

FOOTER = 10  # RDB version + CRC64 of a DUMP payload
_INTS = {0xc0: ('<b', 1), 0xc1: ('<h', 2), 0xc2: ('<i', 4)}


def _length(buf, pos):
    first = buf[pos]
    kind = first >> 6
    if kind == 0:
        return first & 0x3f, pos + 1
    if kind == 1:
        return ((first & 0x3f) << 8) | buf[pos + 1], pos + 2
    if first == 0x80:
        return struct.unpack_from('>I', buf, pos + 1)[0], pos + 5
    if first == 0x81:
        return struct.unpack_from('>Q', buf, pos + 1)[0], pos + 9
    raise ValueError('not a length')


def _string(buf, pos):
    first = buf[pos]
    if first in _INTS:
        fmt, size = _INTS[first]
        return str(struct.unpack_from(fmt, buf, pos + 1)[0]).encode(), pos + 1 + size
    if first == 0xc3:
        clen, pos = _length(buf, pos + 1)
        ulen, pos = _length(buf, pos)
        return lzf_decompress(buf[pos:pos + clen], ulen), pos + clen
    size, pos = _length(buf, pos)
    if pos + size > len(buf):
        raise ValueError('string past the end')
    return bytes(buf[pos:pos + size]), pos + size


def elements(payload):
    """The elements of a type 2/4/5 payload, sorted: ``(type, [element, ...])``; None for anything else."""
    if payload.__class__ is not bytes or len(payload) <= FOOTER + 1:
        return None
    kind = bytearray(payload[:1])[0]
    if kind not in (2, 4, 5):
        return None
    buf = bytearray(payload[:-FOOTER])
    try:
        count, pos = _length(buf, 1)
        out = []
        for dummy in range(count):
            item, pos = _string(buf, pos)
            if kind == 4:
                value, pos = _string(buf, pos)
                item = (item, value)
            elif kind == 5:
                item = (item, struct.unpack_from('<d', buf, pos)[0])
                pos += 8
            out.append(item)
    except (ValueError, IndexError, struct.error):
        return None
    if pos != len(buf):
        return None
    return kind, sorted(out)


def same_unordered(one, other):
    """Whether two payloads hold the same set, hash or sorted set (read as above); False when not known."""
    mine = elements(one)
    return mine is not None and mine == elements(other)
