# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""DUMP payloads and RDB versions: what a payload says about itself, and who accepts it.

A DUMP payload is ``<type byte><value><RDB version: 2 bytes LE><CRC64 Jones: 8 bytes LE>``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

# Valkey reserves these RDB versions for Redis ("foreign") formats.
FOREIGN_RDB_RANGE = (12, 79)

# Known RDB versions of DUMP payloads by engine and (major, minor), used only when no key can be
# dumped (an empty server).  Measured on real servers (see tests) and in the servers' sources.
_RDB_TABLE = {
    'redis': [((8, 0), 12), ((7, 4), 12), ((7, 2), 11), ((7, 0), 10), ((6, 2), 9), ((6, 0), 9), ((5, 0), 9),
              ((4, 0), 8)],
    'valkey': [((9, 2), 81), ((9, 0), 80), ((7, 2), 11)],
}


def payload_rdb_version(payload):
    """The RDB version a DUMP payload carries, or None if it is too short to hold one."""
    if not payload or len(payload) < 11:
        return None
    return struct.unpack('<H', bytes(payload[-10:-8]))[0]


def payload_type_byte(payload):
    return bytearray(payload[:1])[0] if payload else None


def rdb_version_for(engine, version):
    """The RDB version a server of this engine and version (a tuple) writes, or None."""
    for (major, minor), rdb in _RDB_TABLE.get(engine, []):
        if tuple(version[:2]) >= (major, minor):
            return rdb
    return None


def target_accepts(target_engine, target_rdb, payload_rdb, rdb_version_check=None):
    """Whether a target will accept RESTORE of a payload of ``payload_rdb``.

    Returns True, False, or None when the outcome cannot be known in advance.  Redis accepts
    versions up to its own.  Valkey in ``strict`` mode accepts versions up to its own except the
    foreign range 12-79; ``relaxed`` (Valkey >= 9.0) accepts foreign payloads too, apart from new
    types the server cannot read (found only when RESTORE answers).
    """
    if target_rdb is None or payload_rdb is None:
        return None
    if target_engine == 'valkey':
        lo, hi = FOREIGN_RDB_RANGE
        foreign = lo <= payload_rdb <= hi
        if foreign:
            return None if (rdb_version_check or 'strict') == 'relaxed' else False
        if payload_rdb > target_rdb:
            return None if (rdb_version_check or 'strict') == 'relaxed' else False
        return True
    return payload_rdb <= target_rdb


FOOTER_SIZE = 10  # RDB version (2 bytes) + CRC64 (8 bytes)


def payload_body(payload):
    """A DUMP payload without its footer: the serialized value, equal for equal values whatever
    RDB version the server stamped on it."""
    return payload[:-FOOTER_SIZE]


def same_body(one, other):
    """Whether two DUMP payloads hold the same serialized value (:func:`payload_body` equal).  Either may be a
    :class:`~._spooled_payload.SpooledPayload` (a big payload in a temp file): compared block by block, never
    held whole."""
    if one.__class__ is bytes and other.__class__ is bytes:
        return one[:-FOOTER_SIZE] == other[:-FOOTER_SIZE]
    return same_bytes(one, other, FOOTER_SIZE)


def same_bytes(one, other, footer=0):
    """Whether two values (bytes or SpooledPayload) are equal, but for their last ``footer`` bytes."""
    if one.__class__ is bytes and other.__class__ is bytes:
        return one == other if not footer else one[:-footer] == other[:-footer]
    if one is None or other is None or len(one) != len(other):
        return False
    left = len(one) - footer
    for mine, theirs in zip(_blocks(one), _blocks(other)):
        if left <= 0:
            break
        if mine[:left] != theirs[:left]:
            return False
        left -= len(mine)
    return True


_BLOCK = 1 << 20


def _blocks(payload):
    """A payload in blocks of :data:`_BLOCK` bytes (the last may be shorter)."""
    if payload.__class__ is bytes:
        view = memoryview(payload)
        return (view[start:start + _BLOCK].tobytes() for start in range(0, len(payload), _BLOCK))
    return payload.chunks(_BLOCK)


def first_byte(payload):
    """The first byte of a payload (bytes or spooled): its RDB type."""
    if payload is None:
        return b''
    if payload.__class__ is bytes:
        return payload[:1]
    return payload.head(1)
