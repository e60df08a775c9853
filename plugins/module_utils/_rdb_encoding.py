# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The RDB encodings the snapshot splitter needs: magic, opcodes and object types by engine, lengths and
strings read in place from a buffer, LZF (for key names), and the CRC-64/Jones it uses.

LZF-compressed string values are decompressed at C speed by ``python-lzf`` when it is installed
(:data:`LZF_DECOMPRESS`, else None: such strings then stay DUMP payloads).

CRC-64/Jones (width 64, poly 0xad93d23594c935a9 reflected, init 0, no final xor) comes from the ``anycrc``
package (C, the ``CRC64-REDIS`` model) when it is installed, else from the collection's pure-Python
``crc64``; :data:`CRC64` is ``fn(data, crc=0) -> int`` either way and :data:`CRC64_IMPLEMENTATION` says
which (``anycrc`` or ``python``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import struct

try:
    import lzf
    LZF_DECOMPRESS = lzf.decompress       # python-lzf (C): decompress(data, length) -> bytes, None or ValueError
except Exception:  # pragma: no cover - without it, LZF strings stay DUMP payloads
    LZF_DECOMPRESS = None

try:
    import anycrc
    ANYCRC_MODEL = anycrc.Model('CRC64-REDIS')
    HAS_ANYCRC = True
except Exception:  # pragma: no cover - the pure-Python CRC is the fallback
    ANYCRC_MODEL = None
    HAS_ANYCRC = False

from ansible_collections.kvtools.migration.plugins.module_utils._crc64 import crc64 as py_crc64


def _pick_crc():
    if HAS_ANYCRC:
        return ANYCRC_MODEL.calc, 'anycrc'
    return py_crc64, 'python'


CRC64, CRC64_IMPLEMENTATION = _pick_crc()
_TYPE_BYTE = [bytes(bytearray([code])) for code in range(256)]
_UNPACK_Q = struct.Struct('<q').unpack_from

RDB_MAGIC = re.compile(br'^(REDIS)(\d{4})$|^(VALKEY)(\d{3})$')
# RDB versions whose every opcode and type this parser knows (by magic).
KNOWN_VERSIONS = {'redis': (1, 12), 'valkey': (80, 81)}

# Opcodes (the same numbers in both engines unless noted).
OP_SLOT_IMPORT = 243     # Valkey 9: slot import state (cluster); Redis 8.6: KEY_META (not known here)
OP_SLOT_INFO = 244       # Redis 7.4 cluster; Valkey: foreign, safe to ignore
OP_FUNCTION2 = 245
OP_FUNCTION_PRE_GA = 246
OP_MODULE_AUX = 247
OP_IDLE = 248
OP_FREQ = 249
OP_AUX = 250
OP_RESIZEDB = 251
OP_EXPIRETIME_MS = 252
OP_EXPIRETIME = 253
OP_SELECTDB = 254
OP_EOF = 255

# How each object type is skipped (a rule name), by engine.  Types 0-21 are shared; 22 and 23 differ.
_COMMON_TYPES = {
    0: 'string',            # STRING
    1: 'strings',           # LIST (plain, RDB < 7 era)
    2: 'strings',           # SET (plain / hashtable)
    3: 'zset_text',         # ZSET (old: scores as text)
    4: 'pairs',             # HASH (hashtable)
    5: 'zset_binary',       # ZSET_2 (skiplist: binary doubles)
    6: 'module',            # MODULE_PRE_GA
    7: 'module',            # MODULE_2
    9: 'string',            # HASH_ZIPMAP
    10: 'string',           # LIST_ZIPLIST
    11: 'string',           # SET_INTSET
    12: 'string',           # ZSET_ZIPLIST
    13: 'string',           # HASH_ZIPLIST
    14: 'strings',          # LIST_QUICKLIST (ziplists)
    15: 'stream1',          # STREAM_LISTPACKS
    16: 'string',           # HASH_LISTPACK
    17: 'string',           # ZSET_LISTPACK
    18: 'quicklist2',       # LIST_QUICKLIST_2
    19: 'stream2',          # STREAM_LISTPACKS_2
    20: 'string',           # SET_LISTPACK
    21: 'stream3',          # STREAM_LISTPACKS_3
}


def _with(extra):
    table = dict(_COMMON_TYPES)
    table.update(extra)
    return table


TYPES = {
    'redis': _with({
        22: 'hash_meta_pre_ga',   # HASH_METADATA_PRE_GA (7.4 RC): n x (absolute ttl, field, value)
        23: 'string',             # HASH_LISTPACK_EX_PRE_GA (7.4 RC)
        24: 'hash_meta',          # HASH_METADATA (7.4+): min expire + n x (relative ttl, field, value)
        25: 'listpack_ex',        # HASH_LISTPACK_EX (7.4+): min expire + listpack
    }),
    'valkey': _with({
        22: 'hash2',              # HASH_2 (9.0+): n x (field, value, 8-byte expiry, -1 = none)
    }),
}
TYPE_NAMES = {
    0: 'string', 1: 'list', 2: 'set', 3: 'zset', 4: 'hash', 5: 'zset', 6: 'module', 7: 'module', 9: 'hash',
    10: 'list', 11: 'set', 12: 'zset', 13: 'hash', 14: 'list', 15: 'stream', 16: 'hash', 17: 'zset', 18: 'list',
    19: 'stream', 20: 'set', 21: 'stream', 22: 'hash', 23: 'hash', 24: 'hash', 25: 'hash',
}


def lzf_decompress(data, expected):
    """LZF-decompress ``data`` (the RDB's compressed strings) into ``expected`` bytes."""
    out = bytearray()
    pos = 0
    end = len(data)
    while pos < end:
        ctrl = data[pos]
        pos += 1
        if ctrl < 32:                      # a literal run of ctrl + 1 bytes
            run = ctrl + 1
            if pos + run > end:
                raise ValueError('literal run past the end')
            out += data[pos:pos + run]
            pos += run
            continue
        length = ctrl >> 5                 # a back reference
        if length == 7:
            if pos >= end:
                raise ValueError('truncated back reference')
            length += data[pos]
            pos += 1
        if pos >= end:
            raise ValueError('truncated back reference')
        ref = len(out) - ((ctrl & 0x1f) << 8) - data[pos] - 1
        pos += 1
        length += 2
        if ref < 0:
            raise ValueError('back reference before the start')
        if ref + length <= len(out):
            out += out[ref:ref + length]
        else:                              # overlapping copy: byte by byte
            for i in range(length):
                out.append(out[ref + i])
    if len(out) != expected:
        raise ValueError('decompressed to %d bytes, expected %d' % (len(out), expected))
    return bytes(out)


def string_end(buf, pos):
    """Where the RDB string at ``buf[pos]`` ends, if all of it is in ``buf``; else -1 (the slow path decides).

    The hot path of the parser: most objects are one or a few short strings that lie in the buffer.
    """
    size = len(buf)
    if pos >= size:
        return -1
    first = buf[pos]
    if first < 0x40:
        end = pos + 1 + first
    elif first < 0x80:
        if pos + 1 >= size:
            return -1
        end = pos + 2 + (((first & 0x3f) << 8) | buf[pos + 1])
    elif first == 0xc0:
        end = pos + 2
    elif first == 0xc1:
        end = pos + 3
    elif first == 0xc2:
        end = pos + 5
    elif first == 0xc3:
        clen, nxt = length_at(buf, pos + 1)
        if clen < 0:
            return -1
        ulen, nxt = length_at(buf, nxt)
        if ulen < 0:
            return -1
        end = nxt + clen
    else:
        return -1
    return end if end <= size else -1


def length_at(buf, pos):
    """A 6- or 14-bit RDB length at ``buf[pos]`` -> (value, next position); (-1, pos) otherwise."""
    if pos >= len(buf):
        return -1, pos
    first = buf[pos]
    if first < 0x40:
        return first, pos + 1
    if first < 0x80 and pos + 1 < len(buf):
        return ((first & 0x3f) << 8) | buf[pos + 1], pos + 2
    return -1, pos


# The longest head of a record the hot loop reads before it knows the record's end: the type, the key's length and
# name (under 64 bytes), and the value's encoding (an LZF string: 0xc3, a 14-bit and a 6/14-bit length).
_HEAD_MAX = 2 + 63 + 4


def split_keys(buf, pos, kinds, version, expire, keys, payloads, expires, budget, strings=None):
    """The snapshot splitter's hot loop, over ``buf`` from ``pos``: key/value pairs whose object is one RDB
    string (raw, integer or LZF: strings, listpacks, intsets ... - the types ``kinds[type] == 1`` marks) with a
    key name under 64 bytes, wholly in ``buf``, and the EXPIRETIME_MS opcodes before them (``kinds[252] == 2``).
    Appends the key names, the DUMP payloads and the expiries (``expire`` is the one pending) to the three
    lists, for about ``budget`` bytes of ``buf``; stops at the first thing it does not handle, and
    :data:`_HEAD_MAX` bytes before the end of ``buf`` (the parser's general loop takes it).

    With ``strings`` (two lists, and ``kinds[0] == 3``), a plain string - type 0, no expiry, a raw value of up to
    16383 bytes or an LZF-compressed one (decompressed with python-lzf, when it is installed) - is no payload: its
    key name and value are appended to ``strings[0]`` and ``strings[1]`` (no CRC-64, no payload), for an
    ``MSET``.  An LZF string that does not decompress to its stated length stays a payload (the target judges it).

    Returns ``(pos, pending expire, keys added (both kinds), EXPIRETIME_MS opcodes read)``.

    Per key it is the loop's cost that counts (a million keys take about a second of the follower's CPU): no
    bounds checks inside a record's head (the loop stops ``_HEAD_MAX`` bytes from the end), ``kinds`` a tuple (an
    indexed tuple is a fast path of the interpreter, a bytearray is not), and the expiries set after the loop
    (most keys have none).
    """
    size = len(buf)
    stop = min(size - _HEAD_MAX, pos + budget)
    crc = CRC64
    prefix = _TYPE_BYTE
    add_key, add_payload = keys.append, payloads.append
    first_key = len(keys)
    timed = []                                 # (index in keys, expiry) of the EXPIRETIME_MS opcodes read
    if strings is not None:
        add_name, add_value = strings[0].append, strings[1].append
        first_string = len(strings[0])
    held = expire is not None                  # the next key has an expiry (it takes the payload path)
    unlzf = LZF_DECOMPRESS
    while pos < stop:
        code = buf[pos]
        kind = kinds[code]
        if kind & 1:                           # 1: a type whose object is one string; 3: type 0 when ``strings``
            klen = buf[pos + 1]
            if klen >= 0x40:
                break
            start = pos + 2 + klen             # the object's first byte
            first = buf[start]
            if first < 0x40:                   # a string of up to 63 bytes
                end = start + 1 + first
            elif first == 0xc3:                # LZF: compressed length, raw length, data
                clen = buf[start + 1]
                if clen < 0x40:
                    ulen = buf[start + 2]
                    if ulen < 0x40:
                        data = start + 3
                    elif ulen < 0x80:
                        ulen = ((ulen & 0x3f) << 8) | buf[start + 3]
                        data = start + 4
                    else:
                        break
                elif clen < 0x80:
                    clen = ((clen & 0x3f) << 8) | buf[start + 2]
                    ulen = buf[start + 3]
                    if ulen < 0x40:
                        data = start + 4
                    elif ulen < 0x80:
                        ulen = ((ulen & 0x3f) << 8) | buf[start + 4]
                        data = start + 5
                    else:
                        break
                else:
                    break
                end = data + clen
            elif first < 0x80:                 # a string of up to 16383 bytes
                end = start + 2 + (((first & 0x3f) << 8) | buf[start + 1])
            elif 0xc0 <= first <= 0xc2:        # an 8, 16 or 32-bit integer
                end = start + (2, 3, 5)[first - 0xc0]
            else:
                break
            if end > size:
                break
            if kind == 3 and not held:         # a plain string: its name and value (decompressed)
                if first < 0x80:
                    add_name(buf[pos + 2:start])
                    add_value(buf[start + 1 + (first >= 0x40):end])
                    pos = end
                    continue
                if first == 0xc3 and unlzf is not None and ulen:
                    try:
                        value = unlzf(buf[data:end], ulen)
                    except ValueError:         # damaged: the payload goes, the target judges it
                        value = None
                    if value is not None and len(value) == ulen:
                        add_name(buf[pos + 2:start])
                        add_value(value)
                        pos = end
                        continue
            body = prefix[code] + buf[start:end] + version
            add_payload(body + crc(body).to_bytes(8, 'little'))
            add_key(buf[pos + 2:start])
            pos = end
            held = False
        elif kind == 2:                        # EXPIRETIME_MS: for the next key
            timed.append((len(keys), _UNPACK_Q(buf, pos + 1)[0]))
            pos += 9
            held = True
        else:
            break
    count = len(keys) - first_key
    plain = len(strings[0]) - first_string if strings is not None else 0
    if count:
        added = [None] * count
        if expire is not None:                 # pending from before: the first key's
            added[0] = expire
            expire = None
        for index, value in timed:
            if index < len(keys):
                added[index - first_key] = value
            else:                              # read after the last key: the next key's
                expire = value
        expires.extend(added)
    elif timed:
        expire = timed[-1][1]
    return pos, expire, count + plain, len(timed)


def chunk_reader(chunks):
    """A ``read(n)`` callable over an iterable of byte chunks (e.g. ``ReplicationStream.payload()``)."""
    source = iter(chunks)
    state = [b'']

    def read(size):
        data = state[0]
        while not data:
            data = next(source, None)
            if data is None:
                return b''
        state[0] = data[size:]
        return data[:size]
    return read
