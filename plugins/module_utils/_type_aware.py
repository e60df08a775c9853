# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Type-aware reading, writing and comparing of single keys.

Used where a DUMP payload cannot cross (the target refuses its RDB version) and to decide whether
a key already on the target equals the source's.  Values are read in chunks (HSCAN, SSCAN,
ZSCAN, LRANGE, XRANGE) and written into a temporary key that is renamed into place only when
complete, so a failure never leaves half a key under the real name.

A temporary key (``kvtools:tmp:<random>``; into a cluster ``kvtools:tmp:{<tag>}<random>``, whose hash tag puts it
in the key's slot: :func:`tmp_key`) carries an expiry of :data:`TMP_TTL_MS`, renewed while it
is built, so a crash leaves nothing behind for long; the rename and the key's own expiry (or none)
are one MULTI/EXEC.  :func:`remove_leftovers` removes temporary keys a crashed run left (those not
renewed lately) at the start of a run.

Hash field TTLs (Redis 7.4+, Valkey 9+) are copied exactly with HPEXPIREAT per field where the target
has them.  Where it has not, :func:`find_field_ttls` counts them before anything is written and the
copy follows ``on_unsupported``: ``fail`` (a key met with field TTLs fails) or ``drop`` (copied
without them; :attr:`TypedCopier.dropped` counts keys and fields).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import key_slot, slot_tag
from ansible_collections.kvtools.migration.plugins.module_utils._spooled_payload import BIG_VALUE
from ansible_collections.kvtools.migration.plugins.module_utils._stream import (
    StreamWriter, groups_info, raw_command, stream_differences)

COPYABLE_TYPES = ('string', 'hash', 'list', 'set', 'zset', 'stream')
TMP_PREFIX = b'kvtools:tmp:'
TMP_TTL_MS = 120000          # expiry of a temporary key while it is built
TMP_RENEW_S = 20.0           # renewed at least this often
TMP_STALE_MS = 60000         # a temporary key with less left than this was not renewed lately: a leftover
# DUMP type bytes of hashes that carry field TTLs: Redis 7.4+ (22/23 pre-GA, 24/25), Valkey 9 (22)
FIELD_TTL_TYPES = (22, 23, 24, 25)
# DUMP type bytes of streams (listpacks 1, 2, 3)
STREAM_TYPES = (15, 19, 21)


class UncopyableKey(Exception):
    """A key whose type the type-aware path cannot copy (e.g. a module type)."""


class UnsupportedData(ValueError):
    """A key holds what the target cannot (hash field TTLs) and on_unsupported is fail."""


def _s(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)


def key_type(client, key):
    return _s(client.type(key))


def tmp_key(key=None, in_slot=False):
    """A temporary name; with ``in_slot``, one in the slot of ``key`` (a hash tag of that slot: into a cluster the
    temporary key and the key live on the same master, and RENAME between them is allowed)."""
    if in_slot:
        return TMP_PREFIX + b'{' + slot_tag(key_slot(key)) + b'}' + os.urandom(12).hex().encode()
    return TMP_PREFIX + os.urandom(12).hex().encode()


def _sscan(client, key, chunk):
    cursor = b'0'
    while True:
        cursor, items = client.execute_command('SSCAN', key, cursor, 'COUNT', chunk)
        if items:
            yield items
        if cursor in (b'0', 0, '0'):
            return


def _raw_scan_pairs(client, command, key, chunk):
    cursor = b'0'
    while True:
        reply = client.execute_command(command, key, cursor, 'COUNT', chunk)
        cursor, items = reply[0], reply[1]
        if isinstance(items, dict):  # a client-side callback paired them up
            flat = []
            for k, v in items.items():
                flat += [k, v]
            items = flat
        elif items and isinstance(items[0], tuple):
            flat = []
            for k, v in items:
                flat += [k, v]
            items = flat
        if items:
            yield items
        if cursor in (b'0', 0, '0'):
            return


def field_expiries(client, key, fields):
    """HPEXPIRETIME of ``fields``: a list of ints (-1 no TTL, -2 no such field)."""
    return [int(t) for t in raw_command(client, 'HPEXPIRETIME', key, 'FIELDS', len(fields), *fields) or []]


def count_field_ttls(client, keys_with_ttl_fields, chunk=1000):
    """``(keys, fields)``: how many of the given hashes use field TTLs and how many fields have one."""
    keys = fields = 0
    for key in keys_with_ttl_fields:
        timed = 0
        for items in _raw_scan_pairs(client, 'HSCAN', key, chunk):
            timed += sum(1 for t in field_expiries(client, key, items[0::2]) if t > 0)
        if timed:
            keys += 1
            fields += timed
    return keys, fields


def find_field_ttls(client, keyspace_entry=None, match=None, chunk=1000):
    """``(keys, fields)`` of hashes with field TTLs in the client's db.  INFO keyspace's count of such hashes
    (Redis ``subexpiry``, Valkey ``keys_with_volatile_items``), when the server reports it, spares the walk
    of a db that has none; otherwise hashes are found with SCAN TYPE hash, and only those whose encoding can
    hold field TTLs (``listpackex``, ``hashtable``) are read with HPEXPIRETIME."""
    entry = keyspace_entry or {}
    for name in ('subexpiry', 'keys_with_volatile_items'):
        if name in entry and not int(entry[name] or 0):
            return 0, 0
    keys = fields = 0
    cursor = b'0'
    while True:
        args = ['SCAN', cursor, 'COUNT', chunk, 'TYPE', 'hash']
        if match:
            args += ['MATCH', match]
        cursor, batch = client.execute_command(*args)
        if batch:
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.object('encoding', key)
            candidates = [k for k, enc in zip(batch, pipe.execute()) if _s(enc) in ('listpackex', 'hashtable')]
            found = count_field_ttls(client, candidates, chunk)
            keys += found[0]
            fields += found[1]
        if cursor in (b'0', 0, '0'):
            return keys, fields


def remove_leftovers(client, count=1000, dry_run=False):
    """Remove (or with ``dry_run`` only count) the temporary keys of crashed runs in the client's db: those
    without an expiry (older releases) or not renewed lately.  Returns how many."""
    removed = 0
    cursor = b'0'
    while True:
        cursor, keys = client.execute_command('SCAN', cursor, 'MATCH', TMP_PREFIX + b'*', 'COUNT', count)
        if keys:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.pttl(key)
            stale = [k for k, ttl in zip(keys, pipe.execute()) if ttl == -1 or 0 <= ttl < TMP_STALE_MS]
            if stale and not dry_run:
                removed += int(client.delete(*stale))
            elif stale:
                removed += len(stale)
        if cursor in (b'0', 0, '0'):
            return removed


class TypedCopier:
    """Copies one key from ``src`` to ``tgt`` (redis-py clients on the right dbs) with commands."""

    def __init__(self, src, tgt, source_server, target_server, chunk=1000, on_unsupported='fail', dropped=None,
                 lock=None, in_slot=False):
        self.in_slot = in_slot  # into a cluster: temporary keys in the key's slot
        self.src = src
        self.tgt = tgt
        self.chunk = int(chunk)
        self.exclusive_ranges = source_server.at_least((6, 2, 0))
        self.src_field_ttl = source_server.capabilities['hash_field_ttl']
        self.tgt_field_ttl = target_server.capabilities['hash_field_ttl']
        self.on_unsupported = on_unsupported
        self.dropped = dict(keys=0, fields=0) if dropped is None else dropped
        self.lock = lock or threading.Lock()
        self.streams = StreamWriter(src, tgt, self.chunk, self.exclusive_ranges,
                                    target_meta=target_server.at_least((7, 0, 0)),
                                    target_consumers=target_server.at_least((6, 2, 0)), touch=self._touch)
        self._touched = {}

    def _touch(self, tmp):
        """Give the temporary key its expiry, and renew it while it is built."""
        now = time.time()
        if now - self._touched.get(tmp, 0) >= TMP_RENEW_S:
            self.tgt.pexpire(tmp, TMP_TTL_MS)
            self._touched[tmp] = now

    def copy(self, key, expire_at_ms, replace):
        """Copy ``key``; returns ``(status, note)`` with status ``copied``, ``expired`` or ``busykey``.

        ``expire_at_ms`` is the absolute expiry in ms (None for none).  Raises UncopyableKey for
        types this path cannot write; redis errors propagate to the caller.
        """
        ktype = key_type(self.src, key)
        if ktype == 'none':
            return 'expired', None
        if ktype not in COPYABLE_TYPES:
            raise UncopyableKey('type %r cannot be copied with commands' % ktype)
        note = None
        head = None
        if ktype == 'string':
            head = self.src.getrange(key, 0, BIG_VALUE)  # one byte more than a small value may hold
            if not head and not self.src.exists(key):
                return 'expired', None
            if len(head) <= BIG_VALUE:
                if not self.tgt.set(key, head, nx=not replace):
                    return 'busykey', None
                if expire_at_ms:
                    self.tgt.pexpireat(key, int(expire_at_ms))
                return 'copied', None
        tmp = tmp_key(key, self.in_slot)
        try:
            if head is not None:
                written = self._write_string(key, tmp, head)
            else:
                written, note = getattr(self, '_write_' + ktype)(key, tmp)
            if not written:
                self.tgt.delete(tmp)
                return 'expired', None
            # the key's own expiry (or none) and the rename in one transaction: the temporary expiry never
            # reaches the real key
            pipe = self.tgt.pipeline(transaction=True)
            if expire_at_ms:
                pipe.pexpireat(tmp, int(expire_at_ms))
            else:
                pipe.persist(tmp)
            if replace:
                pipe.rename(tmp, key)
            else:
                pipe.renamenx(tmp, key)
            renamed = pipe.execute()[-1]
            if not renamed:
                self.tgt.delete(tmp)
                return 'busykey', None
        except Exception:
            try:
                self.tgt.delete(tmp)
            except Exception:
                pass
            raise
        finally:
            self._touched.pop(tmp, None)
        return 'copied', note

    def _write_string(self, key, tmp, head):
        """A big string, :data:`BIG_VALUE` bytes at a time (GETRANGE, APPEND), never held whole."""
        self.tgt.set(tmp, head)
        self._touch(tmp)
        start = len(head)
        while True:
            part = self.src.getrange(key, start, start + BIG_VALUE - 1)
            if not part:
                return True
            self.tgt.append(tmp, part)
            self._touch(tmp)
            start += len(part)

    def _write_hash(self, key, tmp):
        written = False
        lost = 0
        check = False
        for items in _raw_scan_pairs(self.src, 'HSCAN', key, self.chunk):
            self.tgt.execute_command('HSET', tmp, *items)
            self._touch(tmp)
            written = True
            if not self.src_field_ttl:
                continue
            fields = items[0::2]
            expiries = field_expiries(self.src, key, fields)
            gone = [f for f, t in zip(fields, expiries) if t == -2]
            if gone:  # expired on the source since HSCAN: not invented on the target
                self.tgt.execute_command('HDEL', tmp, *gone)
                check = True
            timed = [(f, t) for f, t in zip(fields, expiries) if t > 0]
            if not timed:
                continue
            if not self.tgt_field_ttl:
                if self.on_unsupported != 'drop':
                    raise UnsupportedData('the hash uses field TTLs, which the target cannot hold '
                                          '(on_unsupported: fail)')
                lost += len(timed)
                continue
            pipe = self.tgt.pipeline(transaction=False)
            for field, at in timed:
                pipe.execute_command('HPEXPIREAT', tmp, at, 'FIELDS', 1, field)
            for reply in pipe.execute():
                if reply and reply[0] == 2:  # the field expired meanwhile: deleted on the target too
                    check = True
        if check and written and not self.tgt.exists(tmp):
            written = False
        note = None
        if lost:
            with self.lock:
                self.dropped['keys'] += 1
                self.dropped['fields'] += lost
            note = 'copied without the TTLs of %d fields: the target cannot hold hash field TTLs ' \
                   '(on_unsupported: drop)' % lost
        return written, note

    def _write_list(self, key, tmp):
        start = 0
        written = False
        while True:
            items = self.src.lrange(key, start, start + self.chunk - 1)
            if not items:
                return written, None
            self.tgt.rpush(tmp, *items)
            self._touch(tmp)
            written = True
            if len(items) < self.chunk:
                return written, None
            start += len(items)

    def _write_set(self, key, tmp):
        written = False
        for items in _sscan(self.src, key, self.chunk):
            self.tgt.sadd(tmp, *items)
            self._touch(tmp)
            written = True
        return written, None

    def _write_zset(self, key, tmp):
        written = False
        for items in _raw_scan_pairs(self.src, 'ZSCAN', key, self.chunk):
            args = []
            for member, score in zip(items[0::2], items[1::2]):
                args += [score if isinstance(score, bytes) else repr(float(score)), member]
            self.tgt.execute_command('ZADD', tmp, *args)
            self._touch(tmp)
            written = True
        return written, None

    def _write_stream(self, key, tmp):
        return self.streams.write(key, tmp), None


def read_value(client, key, ktype=None):
    """A canonical, comparable form of a key's value (whole value in memory).  For a stream: its entries
    (ids and fields, repeated field names kept); groups and metadata are compared by
    :func:`key_differences`."""
    ktype = ktype or key_type(client, key)
    if ktype == 'string':
        return ktype, client.get(key)
    if ktype == 'hash':
        return ktype, client.hgetall(key)
    if ktype == 'list':
        return ktype, client.lrange(key, 0, -1)
    if ktype == 'set':
        return ktype, set(client.smembers(key))
    if ktype == 'zset':
        return ktype, dict((m, float(s)) for m, s in client.zrange(key, 0, -1, withscores=True))
    if ktype == 'stream':
        return ktype, raw_command(client, 'XRANGE', key, '-', '+')
    return ktype, None


SIZE_COMMANDS = dict(string='STRLEN', hash='HLEN', list='LLEN', set='SCARD', zset='ZCARD', stream='XLEN')
WHOLE_ITEMS = 10000  # a collection of more items than this is compared in chunks


def values_differ(src, tgt, key, ktype, chunk=1000, big=False):
    """Whether the values of ``key`` (of ``ktype`` on both sides) differ.  Values are read whole
    (:func:`read_value`) unless ``big`` (a DUMP payload of the key is above :data:`BIG_VALUE`): then a string
    above :data:`BIG_VALUE` or a collection of more than :data:`WHOLE_ITEMS` items is compared in chunks, never
    held whole."""
    if not big:
        return read_value(src, key, ktype) != read_value(tgt, key, ktype)
    command = SIZE_COMMANDS[ktype]
    size = int(src.execute_command(command, key))
    if size != int(tgt.execute_command(command, key)):
        return True
    if size <= (BIG_VALUE if ktype == 'string' else WHOLE_ITEMS):
        return read_value(src, key, ktype) != read_value(tgt, key, ktype)
    step = max(1, int(chunk))
    if ktype in ('string', 'list'):
        step = BIG_VALUE if ktype == 'string' else step
        read = (lambda c, a, b: c.getrange(key, a, b)) if ktype == 'string' else (lambda c, a, b: c.lrange(key, a, b))
        for start in range(0, size, step):
            if read(src, start, start + step - 1) != read(tgt, start, start + step - 1):
                return True
        return False
    if ktype == 'stream':
        return _streams_differ(src, tgt, key, step)
    if ktype == 'set':
        for members in _sscan(src, key, step):
            pipe = tgt.pipeline(transaction=False)
            for member in members:
                pipe.sismember(key, member)
            if not all(pipe.execute()):
                return True
        return False
    for items in _raw_scan_pairs(src, 'HSCAN' if ktype == 'hash' else 'ZSCAN', key, step):
        names, values = items[0::2], items[1::2]
        if ktype == 'hash':
            if tgt.hmget(key, names) != list(values):
                return True
            continue
        pipe = tgt.pipeline(transaction=False)
        for member in names:
            pipe.zscore(key, member)
        for score, theirs in zip(values, pipe.execute()):
            if theirs is None or float(score) != float(theirs):
                return True
    return False


def _streams_differ(src, tgt, key, step):
    """Stream entries compared ``step`` at a time (XRANGE from the last id seen, that entry dropped)."""
    start = b'-'
    while True:
        mine = raw_command(src, 'XRANGE', key, start, '+', 'COUNT', step + 1)
        theirs = raw_command(tgt, 'XRANGE', key, start, '+', 'COUNT', step + 1)
        if start != b'-':
            mine, theirs = mine[1:], theirs[1:]
        if mine != theirs:
            return True
        if not mine:
            return False
        start = mine[-1][0]


class CompareScope:
    """What two servers can both hold, for a comparison: hash field TTLs, stream metadata (entries-added,
    max-deleted-entry-id, entries-read); and the TTL tolerance."""

    def __init__(self, source_server=None, target_server=None, tolerance_ms=1000, chunk=1000):
        def has(server, name):
            return bool(server is not None and server.capabilities.get(name))

        def meta(server):
            return bool(server is not None and server.at_least((7, 0, 0)))
        self.src_field_ttl = has(source_server, 'hash_field_ttl')
        self.tgt_field_ttl = has(target_server, 'hash_field_ttl')
        self.src_stream_meta = meta(source_server)
        self.tgt_stream_meta = meta(target_server)
        self.tolerance_ms = tolerance_ms
        self.chunk = chunk
        self.full = source_server is not None and target_server is not None


def field_ttl_differences(src, tgt, key, scope):
    """``[(kind, detail)]`` for the field TTLs of hash ``key``: ``field_ttl_differs`` (beyond the tolerance,
    or on one side only) where both servers hold field TTLs; ``field_ttl_dropped`` (not an
    inconsistency: the target cannot hold them) where only the source does."""
    if not scope.src_field_ttl:
        return []
    differing = lost = 0
    example = None
    for items in _raw_scan_pairs(src, 'HSCAN', key, scope.chunk):
        fields = items[0::2]
        s_exp = field_expiries(src, key, fields)
        if not scope.tgt_field_ttl:
            lost += sum(1 for t in s_exp if t > 0)
            continue
        t_exp = field_expiries(tgt, key, fields)
        for a, b in zip(s_exp, t_exp):
            if a == -2 or b == -2:
                continue  # a field missing on one side is a value difference
            if (a > 0) != (b > 0) or (a > 0 and abs(a - b) > scope.tolerance_ms):
                differing += 1
                if example is None:
                    example = 'a field %s' % ('has no TTL on the target' if b <= 0 else
                                              'has no TTL on the source' if a <= 0 else
                                              'expires %.1f s apart' % (abs(a - b) / 1000.0))
    out = []
    if differing:
        out.append(('field_ttl_differs', '%d field TTLs differ (for example %s)' % (differing, example)))
    if lost:
        out.append(('field_ttl_dropped',
                    '%d fields have a TTL on the source; the target cannot hold hash field TTLs' % lost))
    return out


def key_differences(src, tgt, key, scope=None, src_type_byte=None, tgt_type_byte=None, big=False):
    """``[(kind, detail)]``: what differs for ``key`` between the two clients (empty: equal).

    Kinds: ``type_differs``, ``value_differs``; with a full ``scope`` also ``field_ttl_differs``,
    ``field_ttl_dropped`` (a loss the target cannot avoid, not a difference), ``stream_meta_differs``,
    ``group_differs`` and ``pending_differs``.  Without a scope a stream's groups are compared by name and
    last-delivered id.  The DUMP type bytes, when known, spare the field TTL reads of hashes without any.
    ``big``: a DUMP payload of the key is above :data:`BIG_VALUE` (the value is compared in chunks).
    """
    s_type = key_type(src, key)
    t_type = key_type(tgt, key)
    if s_type != t_type:
        return [('type_differs', '%s on the source, %s on the target' % (s_type, t_type))]
    if s_type not in COPYABLE_TYPES:
        return [] if src.dump(key) == tgt.dump(key) else [('value_differs', '%s values differ' % s_type)]
    out = []
    if values_differ(src, tgt, key, s_type, scope.chunk if scope is not None else 1000, big):
        out.append(('value_differs', '%s values differ' % s_type))
    if s_type == 'hash' and scope is not None and scope.full:
        if src_type_byte is None or src_type_byte in FIELD_TTL_TYPES or tgt_type_byte in FIELD_TTL_TYPES:
            out += field_ttl_differences(src, tgt, key, scope)
    elif s_type == 'stream':
        if scope is not None and scope.full:
            out += stream_differences(src, tgt, key, scope.chunk, scope.src_stream_meta, scope.tgt_stream_meta)
        else:
            groups = [sorted((g['name'], g['last-delivered-id']) for g in groups_info(c, key)) for c in (src, tgt)]
            if groups[0] != groups[1]:
                out.append(('group_differs', 'consumer groups or their last-delivered ids differ'))
    return out


def values_equal(src, tgt, key, scope=None, big=False):
    """Whether ``key`` holds the same type and value on both clients (scores compared as doubles); with a
    full ``scope`` also what both servers can hold beyond the value (field TTLs, stream groups, pending
    entries, metadata)."""
    return not [d for d in key_differences(src, tgt, key, scope, big=big) if d[0] != 'field_ttl_dropped']
