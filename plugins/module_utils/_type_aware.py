# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Type-aware reading, writing and comparing of single keys.

Used where a DUMP payload cannot cross (the target refuses its RDB version) and to decide whether
a key already on the target equals the source's.  Values are read in chunks (HSCAN, SSCAN,
ZSCAN, LRANGE, XRANGE) and written into a temporary key that is renamed into place only when
complete, so a failure never leaves half a key under the real name.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.kvtools.migration.plugins.module_utils._errors import reply_kind

COPYABLE_TYPES = ('string', 'hash', 'list', 'set', 'zset', 'stream')


class UncopyableKey(Exception):
    """A key whose type the type-aware path cannot copy (e.g. a module type)."""


def _s(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)


def key_type(client, key):
    return _s(client.type(key))


def _tmp_key():
    return b'kvtools:tmp:' + os.urandom(12).hex().encode()


def _sscan(client, key, chunk):
    cursor = b'0'
    while True:
        cursor, items = client.execute_command('SSCAN', key, cursor, 'COUNT', chunk)
        if items:
            yield items
        if cursor in (b'0', 0, '0'):
            return


def _xrange(client, key, chunk, exclusive_ok=True):
    start = b'-'
    while True:
        entries = client.execute_command('XRANGE', key, start, b'+', 'COUNT', chunk)
        if not entries:
            return
        yield entries
        if len(entries) < chunk:
            return
        last = entries[-1][0]
        if exclusive_ok:
            start = b'(' + last
        else:
            ms, seq = last.split(b'-')
            start = b'%s-%d' % (ms, int(seq) + 1)


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


class TypedCopier:
    """Copies one key from ``src`` to ``tgt`` (redis-py clients on the right dbs) with commands."""

    def __init__(self, src, tgt, source_server, target_server, chunk=1000):
        self.src = src
        self.tgt = tgt
        self.chunk = int(chunk)
        self.exclusive_ranges = source_server.at_least((6, 2, 0))
        self.src_field_ttl = source_server.capabilities['hash_field_ttl']
        self.tgt_field_ttl = target_server.capabilities['hash_field_ttl']
        self.tgt_stream_meta = target_server.at_least((7, 0, 0))

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
        if ktype == 'string':
            value = self.src.get(key)
            if value is None:
                return 'expired', None
            if not self.tgt.set(key, value, nx=not replace):
                return 'busykey', None
            if expire_at_ms:
                self.tgt.pexpireat(key, int(expire_at_ms))
            return 'copied', None
        tmp = _tmp_key()
        try:
            written, note = getattr(self, '_write_' + ktype)(key, tmp)
            if not written:
                return 'expired', None
            if replace:
                self.tgt.rename(tmp, key)
            elif not self.tgt.renamenx(tmp, key):
                self.tgt.delete(tmp)
                return 'busykey', None
        except Exception:
            try:
                self.tgt.delete(tmp)
            except Exception:
                pass
            raise
        if expire_at_ms:
            self.tgt.pexpireat(key, int(expire_at_ms))
        return 'copied', note

    def _write_hash(self, key, tmp):
        written = False
        note = None
        for items in _raw_scan_pairs(self.src, 'HSCAN', key, self.chunk):
            self.tgt.execute_command('HSET', tmp, *items)
            written = True
            if self.src_field_ttl:
                fields = items[0::2]
                ttls = self.src.execute_command('HPEXPIRETIME', key, 'FIELDS', len(fields), *fields)
                timed = [(f, int(t)) for f, t in zip(fields, ttls or []) if int(t) > 0]
                if timed:
                    if not self.tgt_field_ttl:
                        note = 'hash field TTLs dropped: the target does not support them'
                        continue
                    pipe = self.tgt.pipeline(transaction=False)
                    for field, at in timed:
                        pipe.execute_command('HPEXPIREAT', tmp, at, 'FIELDS', 1, field)
                    pipe.execute()
        return written, note

    def _write_list(self, key, tmp):
        start = 0
        written = False
        while True:
            items = self.src.lrange(key, start, start + self.chunk - 1)
            if not items:
                return written, None
            self.tgt.rpush(tmp, *items)
            written = True
            if len(items) < self.chunk:
                return written, None
            start += len(items)

    def _write_set(self, key, tmp):
        written = False
        for items in _sscan(self.src, key, self.chunk):
            self.tgt.sadd(tmp, *items)
            written = True
        return written, None

    def _write_zset(self, key, tmp):
        written = False
        for items in _raw_scan_pairs(self.src, 'ZSCAN', key, self.chunk):
            args = []
            for member, score in zip(items[0::2], items[1::2]):
                args += [score if isinstance(score, bytes) else repr(float(score)), member]
            self.tgt.execute_command('ZADD', tmp, *args)
            written = True
        return written, None

    def _write_stream(self, key, tmp):
        info = self.src.xinfo_stream(key)
        if info is None:
            return False, None
        last_id = info.get('last-generated-id')
        written = False
        for entries in _xrange(self.src, key, self.chunk, self.exclusive_ranges):
            pipe = self.tgt.pipeline(transaction=False)
            for entry_id, fields in entries:
                flat = []
                if isinstance(fields, dict):
                    for f, v in fields.items():
                        flat += [f, v]
                else:
                    flat = list(fields)
                pipe.execute_command('XADD', tmp, entry_id, *flat)
            pipe.execute()
            written = True
        if not written:  # an empty stream still exists: create it, then drop the seed entry
            self.tgt.execute_command('XADD', tmp, '0-1', 'k', 'v')
            self.tgt.execute_command('XDEL', tmp, '0-1')
        setid = ['XSETID', tmp, last_id]
        if self.tgt_stream_meta and info.get('entries-added') is not None:
            setid += ['ENTRIESADDED', info.get('entries-added'), 'MAXDELETEDID',
                      info.get('max-deleted-entry-id') or b'0-0']
        try:
            self.tgt.execute_command(*setid)
        except Exception as exc:
            if reply_kind(exc) != 'error':
                raise
            self.tgt.execute_command('XSETID', tmp, last_id)
        note = None
        for group in self.src.xinfo_groups(key):
            args = ['XGROUP', 'CREATE', tmp, group['name'], group['last-delivered-id']]
            if self.tgt_stream_meta and group.get('entries-read') is not None:
                args += ['ENTRIESREAD', group['entries-read']]
            self.tgt.execute_command(*args)
            if group.get('pending'):
                note = 'consumer groups copied with their last-delivered ids; pending entries lists were not'
        return True, note


def read_value(client, key, ktype=None):
    """A canonical, comparable form of a key's value (whole value in memory)."""
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
        entries = client.xrange(key, '-', '+')
        groups = sorted((g['name'], g['last-delivered-id']) for g in client.xinfo_groups(key))
        return ktype, (entries, groups)
    return ktype, None


def values_equal(src, tgt, key):
    """Whether ``key`` holds the same type and value on both clients (scores compared as doubles)."""
    s_type = key_type(src, key)
    t_type = key_type(tgt, key)
    if s_type != t_type:
        return False
    if s_type not in COPYABLE_TYPES:
        return src.dump(key) == tgt.dump(key)
    return read_value(src, key, s_type) == read_value(tgt, key, t_type)
