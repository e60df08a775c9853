# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Split an RDB snapshot, as it streams, into one DUMP-identical payload per key.

:class:`SnapshotParser` reads from any ``read(n)`` callable (a replication socket, a spool file)
and yields events; it never holds the snapshot, only the object being read (up to a threshold;
a bigger object is spooled to a 0600 temp file and handed out as a :class:`SpooledPayload`).

Events are plain tuples, in the order of the stream:

* ``('aux', name, value)``: an AUX field (``redis-ver``, ``valkey-ver``, ``repl-id``, ``repl-offset``,
  ``repl-stream-db``, ``lua`` ...), both bytes (integer encodings as decimal text).
* ``('db', db)``: the following keys belong to db ``db`` (SELECTDB).
* ``('key', db, key, payload, expire_ms)``: ``payload`` is exactly what ``DUMP key`` returns on the
  server that wrote the snapshot: ``bytes``, or a :class:`SpooledPayload` (a 0600 temp file) for an
  object of which more than ``big_threshold`` bytes had to be kept across buffer refills, so a
  ``bytes`` payload is at most about ``big_threshold + 2 * read_size`` long.  The consumer calls
  ``payload.close()`` when it is done with a SpooledPayload (a spool file still being written when the
  generator is closed or fails is removed; a spool_dir that cannot take it raises kind ``io``).
  ``expire_ms`` is the absolute expiry in unix ms (EXPIRETIME_MS, or EXPIRETIME seconds x 1000), or None.
* ``('strings', db, keys, values)`` (only from ``batches(strings=True)``): keys whose object is a plain string
  (no expiry; a raw value, or an LZF one decompressed), with their values: no payload, for an ``MSET``.
* ``('function', code)``: the source of a function library (Redis >= 7.0, Valkey), for
  ``FUNCTION LOAD REPLACE``.
* ``('end', crc_ok)``: the end of the snapshot; ``crc_ok`` is True when the trailer's CRC-64 matches
  what was read, or when the snapshot carries no checksum (``parser.checksum`` says which:
  ``verified``, ``disabled``, ``none`` (RDB < 5), ``mismatch`` or ``not checked``).

A DUMP payload is the object's type byte, the object's bytes exactly as the RDB holds them, the
RDB version (2 bytes LE) and the CRC-64/Jones (8 bytes LE) of everything before it.  Values are
never decoded; the parser only learns where each object ends (the skip rule of each type is in
``_rdb_encoding.TYPES``).  Redis and Valkey give different meanings to type 22/23 and opcode 243, so
the magic decides; RDB versions outside the known ranges are refused.  An opcode or type the parser
does not know stops it with a KVError (kind ``unsupported``) naming the number and the offset: an
unknown object's length is unknowable, so skipping it would corrupt what follows.  Module values
and MODULE_AUX are refused the same way (the target would need the module).  A cut-off stream
raises kind ``truncated``, a malformed one kind ``corrupt``, both with the offset.

After the ``end`` event, ``parser.rest`` holds the bytes ``read`` returned past the snapshot's
trailer: the start of the command stream when ``read`` is a raw replication socket and the transfer was
sized (``$<length>``); after a diskless transfer (``$EOF:<mark>``) read raw, ``rest`` starts with the
40-byte end mark.  (``ReplicationStream.payload()`` through :func:`chunk_reader` does the framing
itself: then ``rest`` is empty.)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import (
    CRC64, CRC64_IMPLEMENTATION, KNOWN_VERSIONS, OP_AUX, OP_EOF, OP_EXPIRETIME, OP_EXPIRETIME_MS, OP_FREQ,
    OP_FUNCTION2, OP_FUNCTION_PRE_GA, OP_IDLE, OP_MODULE_AUX, OP_RESIZEDB, OP_SELECTDB, OP_SLOT_IMPORT, OP_SLOT_INFO,
    RDB_MAGIC, TYPES, lzf_decompress, split_keys, string_end)
from ansible_collections.kvtools.migration.plugins.module_utils._spooled_payload import ObjectSpool, SpooledPayload

# SpooledPayload is part of this module's API (the type of a big key's payload); it lives in _spooled_payload.
__all__ = ['SnapshotParser', 'SpooledPayload']

READ_SIZE = 1 << 20              # bytes asked of ``read`` at a time
BATCH_BYTES = 64 << 10          # about this many snapshot bytes per ``keys`` event of :meth:`SnapshotParser.batches`
BIG_THRESHOLD = 8 << 20          # objects above this are spooled to a temp file
MAX_HELD_STRING = 512 << 20      # proto-max-bulk-len: no key name can be longer


class SnapshotParser:
    """Streams an RDB snapshot from ``read(n)`` into events (see the module docstring).

    ``read(n)`` blocks until it has at least one byte and may return fewer than ``n`` bytes; it
    returns ``b''`` at the end of the input.  ``spool_dir`` is where big objects go (default: the
    system temp folder); ``big_threshold`` is the object size above which they do.
    ``verify_crc=False`` skips the whole-snapshot CRC (``parser.checksum`` says ``not checked``).
    ``what`` names the input in error messages; ``way_out`` is what they suggest after an opcode or
    type the parser does not know.
    """

    def __init__(self, read, spool_dir=None, big_threshold=BIG_THRESHOLD, read_size=READ_SIZE, verify_crc=True,
                 what='the RDB snapshot', way_out='Use the offline copy (kv_dump_restore) for this source'):
        if int(big_threshold) < 1:
            raise KVError('big_threshold must be at least 1 byte, got %r' % (big_threshold,), kind='config')
        self._read = read
        self.spool_dir = spool_dir
        self.big_threshold = int(big_threshold)
        self.read_size = int(read_size)
        self.verify_crc = verify_crc
        self.what = what
        self.way_out = way_out  # said after an unknown opcode or type: what the user can do instead
        # facts, filled as the stream is read
        self.magic = None
        self.engine = None
        self.rdb_version = None
        self.version_bytes = None
        self.checksum = None
        self.keys = 0
        self.spooled = 0
        self.lzf_strings = 0        # LZF-compressed key names / AUX fields / function sources decompressed
        self.opcodes = {}           # opcode number -> how many times it was read
        self.rest = b''
        self.finished = False
        # the buffer: _buf[_pos:] is unread; _base is the stream offset of _buf[0]
        self._buf = b''
        self._pos = 0
        self._base = 0
        self._crc = 0
        self._crc_done = 0          # _buf[:_crc_done] is in the running CRC
        self._crc_on = verify_crc
        # the object being captured: _cap (bytes before _buf) + _buf[_cap_start:_pos], or a spool
        self._cap_start = None
        self._cap = None
        self._spool = None
        self._rdb_type = None
        self._handed = []

    # -- low level ---------------------------------------------------------------------------------
    @property
    def offset(self):
        """Bytes of the stream consumed so far."""
        return self._base + self._pos

    def _error(self, text, kind='corrupt', offset=None):
        return KVError('%s: %s (at byte offset %d)' % (self.what, text, self.offset if offset is None else offset),
                       kind=kind, details=dict(offset=self.offset if offset is None else offset))

    def _more(self, size):
        data = self._read(size)
        if not data:
            raise self._error('the stream ended early after %d bytes (truncated: the transfer was cut off)'
                              % self.offset, kind='truncated')
        return data

    def _flush(self):
        """Move everything before _pos out of the buffer: into the CRC and into the capture."""
        buf, pos = self._buf, self._pos
        if self._crc_on and pos > self._crc_done:
            self._crc = CRC64(memoryview(buf)[self._crc_done:pos], self._crc)
        if self._cap_start is not None:
            if pos > self._cap_start:
                self._captured(buf[self._cap_start:pos])
            self._cap_start = 0
        self._base += pos
        self._buf = buf[pos:]
        self._pos = 0
        self._crc_done = 0

    def _captured(self, data):
        if self._spool is not None:
            self._spool.write(data)
            return
        if self._cap is None:
            self._cap = []
            self._cap_len = 0
        self._cap.append(data)
        self._cap_len += len(data)
        if self._cap_len > self.big_threshold:
            self._spool = ObjectSpool(self.spool_dir, self._rdb_type, CRC64)
            for part in self._cap:
                self._spool.write(part)
            self._cap = None

    def _fill(self, n):
        """Make sure ``n`` unread bytes are in the buffer (for small reads)."""
        self._flush()
        parts = [self._buf]
        have = len(self._buf)
        while have < n:
            data = self._more(max(self.read_size, n - have))
            parts.append(data)
            have += len(data)
        self._buf = b''.join(parts)

    def _take(self, n):
        pos = self._pos
        if pos + n > len(self._buf):
            self._fill(n)
            pos = 0
        self._pos = pos + n
        return self._buf[pos:pos + n]

    def _byte(self):
        pos = self._pos
        if pos >= len(self._buf):
            self._fill(1)
            pos = 0
        self._pos = pos + 1
        return self._buf[pos]

    def _skip(self, n):
        """Pass over ``n`` bytes (into the CRC and the capture) without holding them all."""
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            return
        if n <= self.read_size:
            self._fill(n)
            self._pos = n
            return
        self._pos = len(self._buf)
        n -= avail
        self._flush()
        while n > 0:
            data = self._more(min(self.read_size, n))
            if self._crc_on:
                self._crc = CRC64(data, self._crc)
            if self._cap_start is not None:
                self._captured(data)
            self._base += len(data)
            n -= len(data)

    def _length(self):
        """An RDB length; returns (value, None), or (None, encoding) for a special encoding."""
        first = self._byte()
        kind = first >> 6
        if kind == 0:
            return first, None
        if kind == 1:
            return ((first & 0x3f) << 8) | self._byte(), None
        if first == 0x80:
            return struct.unpack('>I', self._take(4))[0], None
        if first == 0x81:
            return struct.unpack('>Q', self._take(8))[0], None
        if kind == 3:
            return None, first & 0x3f
        raise self._error('bad length byte 0x%02x' % first, offset=self.offset - 1)

    def _len(self):
        value, enc = self._length()
        if value is None:
            raise self._error('a length was expected, found a string encoding (%d)' % enc, offset=self.offset - 1)
        return value

    def _skip_string(self):
        end = string_end(self._buf, self._pos)
        if end >= 0:
            self._pos = end
            return
        value, enc = self._length()
        if value is not None:
            self._skip(value)
        elif enc == 0:
            self._skip(1)
        elif enc == 1:
            self._skip(2)
        elif enc == 2:
            self._skip(4)
        elif enc == 3:
            compressed = self._len()
            self._len()
            self._skip(compressed)
        else:
            raise self._error('unknown string encoding %d' % enc, offset=self.offset - 1)

    def _string(self):
        """A whole string (key names, AUX fields, function code): decoded to its bytes."""
        buf, pos = self._buf, self._pos
        if pos < len(buf):
            first = buf[pos]
            if first < 0x40 and pos + 1 + first <= len(buf):
                self._pos = pos + 1 + first
                return buf[pos + 1:pos + 1 + first]
        start = self.offset
        value, enc = self._length()
        if value is not None:
            self._held(value, start)
            return bytes(self._take(value))
        if enc == 0:
            return b'%d' % struct.unpack('<b', self._take(1))[0]
        if enc == 1:
            return b'%d' % struct.unpack('<h', self._take(2))[0]
        if enc == 2:
            return b'%d' % struct.unpack('<i', self._take(4))[0]
        if enc == 3:
            compressed = self._len()
            size = self._len()
            self._held(max(compressed, size), start)
            data = self._take(compressed)
            self.lzf_strings += 1
            try:
                return lzf_decompress(data, size)
            except (ValueError, IndexError) as exc:
                raise self._error('an LZF-compressed string does not decompress: %s' % exc, offset=start)
        raise self._error('unknown string encoding %d' % enc, offset=self.offset - 1)

    def _held(self, size, start):
        """A key name, AUX field or function source is held in memory: refuse an impossible size (a corrupt
        length would otherwise make the parser read the rest of the stream into memory)."""
        if size > MAX_HELD_STRING:
            raise self._error('a key name, AUX field or function source of %d bytes (more than the 512 MiB a server '
                              'accepts): the stream is corrupt' % size, offset=start)

    # -- objects -----------------------------------------------------------------------------------
    def _skip_object(self, rule, rdb_type):
        skip_string = self._skip_string
        if rule == 'string':
            skip_string()
        elif rule == 'strings':
            for dummy in range(self._len()):
                skip_string()
        elif rule == 'pairs':
            for dummy in range(self._len()):
                skip_string()
                skip_string()
        elif rule == 'zset_binary':
            for dummy in range(self._len()):
                skip_string()
                self._skip(8)
        elif rule == 'zset_text':
            for dummy in range(self._len()):
                skip_string()
                size = self._byte()
                if size < 253:          # 253/254/255 are nan/+inf/-inf with no bytes
                    self._skip(size)
        elif rule == 'quicklist2':
            for dummy in range(self._len()):
                self._len()             # container: 1 plain, 2 packed
                skip_string()
        elif rule.startswith('stream'):
            self._skip_stream(int(rule[-1]))
        elif rule == 'hash2':
            for dummy in range(self._len()):
                skip_string()
                skip_string()
                self._skip(8)
        elif rule == 'hash_meta':
            self._skip(8)
            for dummy in range(self._len()):
                self._len()
                skip_string()
                skip_string()
        elif rule == 'hash_meta_pre_ga':
            for dummy in range(self._len()):
                self._len()
                skip_string()
                skip_string()
        elif rule == 'listpack_ex':
            self._skip(8)
            skip_string()
        elif rule == 'module':
            raise self._error('type %d is a module value (%s): the target would need the same module loaded, and '
                              'kv_sync does not copy module data. Migrate it with the module\'s own tools'
                              % (rdb_type, 'MODULE_PRE_GA' if rdb_type == 6 else 'MODULE_2'), kind='unsupported')
        else:  # pragma: no cover - every rule of the tables is handled above
            raise self._error('no skip rule %r for type %d' % (rule, rdb_type))

    def _skip_stream(self, version):
        skip_string = self._skip_string
        length = self._len
        for dummy in range(length()):    # listpack nodes: master id + listpack
            skip_string()
            skip_string()
        length()                          # number of entries
        length()                          # last id ms
        length()                          # last id seq
        if version >= 2:
            for dummy in range(5):        # first id ms/seq, max deleted id ms/seq, entries added
                length()
        for dummy in range(length()):     # consumer groups
            skip_string()                 # name
            length()                      # last delivered id ms
            length()                      # last delivered id seq
            if version >= 2:
                length()                  # entries read
            pel = length()
            for dummy2 in range(pel):     # 16-byte id, 8-byte delivery time, delivery count
                self._skip(24)
                length()
            for dummy2 in range(length()):  # consumers
                skip_string()             # name
                self._skip(16 if version >= 3 else 8)   # seen time (+ active time in v3)
                self._skip(16 * length())

    # -- the stream --------------------------------------------------------------------------------
    def _header(self):
        head = bytes(self._take(9))
        match = RDB_MAGIC.match(head)
        if not match:
            raise self._error('it starts with %r, not REDISnnnn or VALKEYnnn: not an RDB snapshot' % head, offset=0)
        self.magic = head.decode('ascii')
        self.engine = 'redis' if match.group(1) else 'valkey'
        self.rdb_version = int(match.group(2) or match.group(4))
        low, high = KNOWN_VERSIONS[self.engine]
        if not low <= self.rdb_version <= high:
            raise self._error('RDB version %d (magic %s) is not one this parser knows (%s: %d to %d); its opcodes '
                              'and types cannot be trusted to mean what they meant before. Use the offline '
                              'copy (kv_dump_restore) for this source'
                              % (self.rdb_version, self.magic, self.engine, low, high), kind='unsupported', offset=0)
        self.version_bytes = struct.pack('<H', self.rdb_version)
        self._types = TYPES[self.engine]
        if self.engine == 'redis' and self.rdb_version < 12:   # hash field TTLs came with RDB 12 (7.4)
            self._types = dict((k, v) for k, v in self._types.items() if k < 22)

    def events(self):
        """Yield the snapshot's events (see the module docstring); raise KVError on anything unknown."""
        for event in self.batches():
            if event[0] == 'keys':
                db = event[1]
                for key, payload, expire in zip(event[2], event[3], event[4]):
                    yield ('key', db, key, payload, expire)
            else:
                yield event

    def batches(self, batch_bytes=BATCH_BYTES, strings=False):
        """Like :meth:`events`, but runs of keys come as one event (the fast path of a consumer):
        ``('keys', db, keys, payloads, expires)``, three lists of the same length (payloads ``bytes``; a
        SpooledPayload always comes alone as a ``key`` event), from about ``batch_bytes`` of the snapshot each.

        ``strings=True``: the plain strings of such a run (type 0, no expiry, a raw value under 16 KiB or an LZF one
        that python-lzf decompresses) come as ``('strings', db, keys, values)`` instead, before the run's ``keys``
        event: the values themselves, for an ``MSET`` (no DUMP payload to build and check)."""
        try:
            yield from self._events(batch_bytes, strings)
        finally:
            if self._spool is not None:
                self._spool.abort()
                self._spool = None

    def _fast_keys(self, expire, keys, payloads, expires, budget, strings):
        """The hot path (``_rdb_encoding.split_keys``) over what is in the buffer; returns the pending expiry."""
        pos, expire, count, expiries = split_keys(self._buf, self._pos, self._fast_types, self.version_bytes, expire,
                                                  keys, payloads, expires, budget, strings)
        self._pos = pos
        self.keys += count
        if expiries:
            self.opcodes[OP_EXPIRETIME_MS] = self.opcodes.get(OP_EXPIRETIME_MS, 0) + expiries
        return expire

    def _events(self, batch_bytes, plain_strings=False):
        self._header()
        types = self._types
        # the hot loop's table: 1 for the types whose object is one string, 2 for EXPIRETIME_MS, 3 for the string
        # type (0) when its plain values come apart
        self._fast_types = tuple(2 if code == OP_EXPIRETIME_MS else 3 if code == 0 and plain_strings
                                 else 1 if types.get(code) == 'string' else 0 for code in range(256))
        db = 0
        expire = None
        version_bytes = self.version_bytes
        crc = CRC64
        pack_q = struct.Struct('<Q').pack
        opcodes = self.opcodes
        while True:
            keys, payloads, expires = [], [], []
            strings = ([], []) if plain_strings else None
            expire = self._fast_keys(expire, keys, payloads, expires, batch_bytes, strings)
            if plain_strings and strings[0]:
                yield ('strings', db, strings[0], strings[1])
                if not keys:
                    continue
            if keys:
                yield ('keys', db, keys, payloads, expires)
                continue
            pos = self._pos
            start = self._base + pos
            if pos < len(self._buf):
                code = self._buf[pos]
                self._pos = pos + 1
            else:
                code = self._byte()
            rule = types.get(code)
            if rule is not None:
                # the key name: in place when it is short and whole in the buffer (the usual case)
                buf, pos = self._buf, self._pos
                if pos < len(buf) and buf[pos] < 0x40 and pos + 1 + buf[pos] <= len(buf):
                    end = pos + 1 + buf[pos]
                    key = buf[pos + 1:end]
                    self._pos = pos = end
                else:
                    key = self._string()
                    buf, pos = self._buf, self._pos
                # capture the object's bytes from here
                self._rdb_type = code
                self._cap_start = pos
                if rule == 'string':
                    end = string_end(buf, pos)
                    if end >= 0:
                        self._pos = end
                    else:
                        self._skip_string()
                else:
                    self._skip_object(rule, code)
                if self._spool is not None:
                    if self._cap_start < self._pos:
                        self._spool.write(self._buf[self._cap_start:self._pos])
                    payload = self._spool.finish(version_bytes)
                    self._spool = None
                    self.spooled += 1
                else:
                    if self._cap:
                        body = b''.join([bytes(bytearray([code]))] + self._cap
                                        + [self._buf[self._cap_start:self._pos], version_bytes])
                    else:
                        body = b'%c%s%s' % (code, self._buf[self._cap_start:self._pos], version_bytes)
                    payload = body + pack_q(crc(body))
                self._cap_start = None
                self._cap = None
                self.keys += 1
                yield ('key', db, key, payload, expire)
                expire = None
                continue
            opcodes[code] = opcodes.get(code, 0) + 1
            if code == OP_EXPIRETIME_MS:
                expire = struct.unpack('<q', self._take(8))[0]
            elif code == OP_SELECTDB:
                db = self._len()
                yield ('db', db)
            elif code == OP_RESIZEDB:
                self._len()
                self._len()
            elif code == OP_AUX:
                name = self._string()
                value = self._string()
                yield ('aux', name, value)
            elif code == OP_IDLE:
                self._len()
            elif code == OP_FREQ:
                self._byte()
            elif code == OP_EXPIRETIME:
                expire = struct.unpack('<i', self._take(4))[0] * 1000
            elif code == OP_FUNCTION2:
                yield ('function', self._string())
            elif code == OP_EOF:
                self._finish()
                yield ('end', self.checksum in ('verified', 'disabled', 'none', 'not checked'))
                return
            elif code == OP_SLOT_INFO and (self.engine == 'valkey' or self.rdb_version >= 12):
                self._len()                # slot, keys in it, expiring keys in it (size hints)
                self._len()
                self._len()
            elif code == OP_MODULE_AUX:
                raise self._error('opcode 247 (MODULE_AUX): the source has a module that stores data in the '
                                  'snapshot; the target would need the same module, and kv_sync does not copy '
                                  'module data. Use the offline copy without the module\'s keys',
                                  kind='unsupported', offset=start)
            elif code == OP_FUNCTION_PRE_GA:
                raise self._error('opcode 246 (FUNCTION_PRE_GA, a Redis 7.0 release candidate format) is not '
                                  'supported: upgrade the source to a released version', kind='unsupported',
                                  offset=start)
            elif code == OP_SLOT_IMPORT and self.engine == 'valkey':
                raise self._error('opcode 243 (Valkey SLOT_IMPORT): the source is a cluster node importing slots; '
                                  'kv_sync does not support cluster mode', kind='unsupported', offset=start)
            else:
                what = 'opcode' if code >= 240 else 'object type'
                raise self._error('unknown %s %d in a %s snapshot (RDB version %d): it cannot be skipped safely, '
                                  'so nothing after it can be read. %s' % (what, code, self.engine.capitalize(),
                                                                           self.rdb_version, self.way_out),
                                  kind='unsupported', offset=start)

    def _finish(self):
        """After the EOF opcode: read and check the CRC trailer, keep what was read past it."""
        if self.rdb_version < 5:
            self.checksum = 'none'
        else:
            self._flush()                  # the CRC now covers everything up to the EOF opcode
            self._crc_on = False           # the trailer is not part of the CRC
            stored = struct.unpack('<Q', self._take(8))[0]
            if stored == 0:
                self.checksum = 'disabled'
            elif not self.verify_crc:
                self.checksum = 'not checked'
            elif stored == self._crc:
                self.checksum = 'verified'
            else:
                self.checksum = 'mismatch'
        self.rest = bytes(self._buf[self._pos:])
        self._base += self._pos
        self._buf = b''
        self._pos = 0
        self.finished = True

    def facts(self):
        """What the parser learned, for results and records."""
        return dict(magic=self.magic, engine=self.engine, rdb_version=self.rdb_version, keys=self.keys,
                    spooled=self.spooled, bytes=self.offset, checksum=self.checksum, crc=CRC64_IMPLEMENTATION)
