# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Streams with commands: an exact copy (entries, metadata, consumer groups, consumers, pending entries)
and the comparison kv_verify makes of everything but the entries.

The copy of one stream into a temporary key, in this order:

1. the entries, in id order (XRANGE in chunks -> pipelined XADD with the same ids).  A pending entry
   whose stream entry was deleted (XDEL after delivery) still sits in its group's pending entries list,
   and XCLAIM can only claim an id the stream holds: such ids get a placeholder entry at the same id,
   woven into the id order, deleted again at the end;
2. a stream without any entry is created by ``XGROUP CREATE ... MKSTREAM`` with a group of our own,
   destroyed again (no seed entry: its metadata stays exactly the source's);
3. ``XSETID`` to the last generated id, then every group (``XGROUP CREATE`` at its last-delivered id,
   with ``ENTRIESREAD`` where the target has it), every consumer (``XGROUP CREATECONSUMER``, also those
   without pending entries) and every pending entry (``XCLAIM ... IDLE ... RETRYCOUNT ... FORCE JUSTID``,
   read with XPENDING in chunks, so a big pending list never sits in memory);
4. the placeholders are deleted and the final ``XSETID`` sets entries-added and max-deleted-entry-id
   where both servers have them (Redis 7.0+, Valkey).

A consumer's seen/active times and a pending entry's delivery time are recreated relative to now (the
idle time), so they drift by the duration of the copy; nothing else does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

OWN_GROUP = b'kvtools:tmp-group'
PLACEHOLDER = (b'kvtools', b'placeholder')


def stream_id(value):
    """``b'1-2'`` -> ``(1, 2)`` (comparable)."""
    text = value.decode('ascii') if isinstance(value, bytes) else str(value)
    ms, _sep, seq = text.partition('-')
    return int(ms), int(seq or 0)


def _b(value):
    if isinstance(value, bytes):
        return value
    return str(value).encode('utf-8')


def raw_command(client, *args):
    """One command on a redis-py client without its reply callbacks (they turn stream entries into dicts,
    which loses repeated field names, and do not know every reply shape)."""
    pool = client.connection_pool
    try:
        conn = pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants the command name
        conn = pool.get_connection(args[0])
    try:
        conn.send_command(*args)
        reply = conn.read_response()
    except Exception as exc:
        if exc.__class__.__name__ != 'ResponseError' and not isinstance(exc, ValueError):
            conn.disconnect()
        raise
    finally:
        pool.release(conn)
    return reply


def _after(entry_id, exclusive_ok):
    if exclusive_ok:
        return b'(' + _b(entry_id)
    ms, seq = stream_id(entry_id)
    return b'%d-%d' % (ms, seq + 1)


def iter_entries(client, key, chunk, exclusive_ok=True):
    """XRANGE ``key`` in chunks: lists of ``(id, [field, value, ...])``."""
    start = b'-'
    while True:
        entries = raw_command(client, 'XRANGE', key, start, b'+', 'COUNT', chunk)
        if not entries:
            return
        out = []
        for entry_id, fields in entries:
            if isinstance(fields, dict):
                flat = []
                for f, v in fields.items():
                    flat += [f, v]
                fields = flat
            out.append((entry_id, list(fields)))
        yield out
        if len(entries) < chunk:
            return
        start = _after(entries[-1][0], exclusive_ok)


def iter_pending(client, key, group, chunk, exclusive_ok=True):
    """The pending entries of ``group``, in id order and in chunks: lists of
    ``(id, consumer, idle ms, delivery count)``."""
    start = b'-'
    while True:
        rows = raw_command(client, 'XPENDING', key, group, start, b'+', chunk)
        if not rows:
            return
        out = []
        for row in rows:
            if isinstance(row, dict):
                out.append((row['message_id'], row['consumer'], int(row['time_since_delivered']),
                            int(row['times_delivered'])))
            else:
                out.append((row[0], row[1], int(row[2]), int(row[3])))
        yield out
        if len(rows) < chunk:
            return
        start = _after(out[-1][0], exclusive_ok)


def _field(info, name):
    if name in info:
        return info[name]
    return info.get(name.encode('ascii')) if isinstance(name, str) else None


def _pairs(reply):
    """A flat ``[name, value, ...]`` reply (or a dict a client callback made) -> dict with str keys."""
    if isinstance(reply, dict):
        return dict((k.decode('utf-8', 'replace') if isinstance(k, bytes) else k, v) for k, v in reply.items())
    out = {}
    for n in range(0, len(reply) - 1, 2):
        name = reply[n]
        out[name.decode('utf-8', 'replace') if isinstance(name, bytes) else name] = reply[n + 1]
    return out


def stream_info(client, key):
    """XINFO STREAM as a dict with str keys (None when the key is gone)."""
    try:
        reply = raw_command(client, 'XINFO', 'STREAM', key)
    except Exception as exc:
        if 'no such key' in str(exc).lower():
            return None
        raise
    return None if reply is None else _pairs(reply)


def groups_info(client, key):
    return [_pairs(g) for g in raw_command(client, 'XINFO', 'GROUPS', key) or []]


def consumers_info(client, key, group):
    return [_pairs(c) for c in raw_command(client, 'XINFO', 'CONSUMERS', key, group) or []]


def _merged_pending_ids(src, key, groups, chunk, exclusive_ok):
    """Every pending id of every group, in id order, each once: ``(sortable id, id)``."""
    iters = []
    for group in groups:
        if int(group.get('pending') or 0):
            iters.append(_ids_of(iter_pending(src, key, group['name'], chunk, exclusive_ok)))
    heads = []
    for it in iters:
        first = next(it, None)
        if first is not None:
            heads.append([first, it])
    last = None
    while heads:
        heads.sort(key=lambda h: h[0][0])
        item = heads[0][0]
        following = next(heads[0][1], None)
        if following is None:
            heads.pop(0)
        else:
            heads[0][0] = following
        if item[0] != last:
            last = item[0]
            yield item


def _ids_of(chunks):
    for rows in chunks:
        for row in rows:
            yield stream_id(row[0]), row[0]


class StreamWriter:
    """Writes one stream into a temporary target key.  ``touch(tmp)`` keeps the temporary key's expiry
    fresh while it is built."""

    def __init__(self, src, tgt, chunk, exclusive_ok, target_meta, target_consumers, touch):
        self.src = src
        self.tgt = tgt
        self.chunk = chunk
        self.exclusive_ok = exclusive_ok
        self.target_meta = target_meta            # XSETID ENTRIESADDED/MAXDELETEDID, XGROUP CREATE ENTRIESREAD
        self.target_consumers = target_consumers  # XGROUP CREATECONSUMER
        self.touch = touch

    def write(self, key, tmp):
        """Returns False when the source key is gone."""
        src, tgt = self.src, self.tgt
        info = stream_info(src, key)
        if info is None:
            return False
        groups = groups_info(src, key)
        placeholders = []
        pending = _merged_pending_ids(src, key, groups, self.chunk, self.exclusive_ok)
        nextp = next(pending, None)
        created = False
        for entries in iter_entries(src, key, self.chunk, self.exclusive_ok):
            pipe = tgt.pipeline(transaction=False)
            for entry_id, fields in entries:
                sid = stream_id(entry_id)
                while nextp is not None and nextp[0] < sid:
                    pipe.execute_command('XADD', tmp, nextp[1], *PLACEHOLDER)
                    placeholders.append(nextp[1])
                    nextp = next(pending, None)
                if nextp is not None and nextp[0] == sid:
                    nextp = next(pending, None)
                pipe.execute_command('XADD', tmp, entry_id, *fields)
            pipe.execute()
            created = True
            self.touch(tmp)
        while nextp is not None:  # pending ids after the last entry
            tgt.execute_command('XADD', tmp, nextp[1], *PLACEHOLDER)
            placeholders.append(nextp[1])
            created = True
            nextp = next(pending, None)
        own_group = False
        if not created:  # no entry at all: create the stream empty, with no seed entry
            tgt.execute_command('XGROUP', 'CREATE', tmp, OWN_GROUP, '0', 'MKSTREAM')
            own_group = True
        self.touch(tmp)
        last_id = info.get('last-generated-id')
        meta = None
        if self.target_meta and info.get('entries-added') is not None:
            meta = ['ENTRIESADDED', info['entries-added'], 'MAXDELETEDID', info.get('max-deleted-entry-id') or b'0-0']
        # the metadata before the groups too: a server may cap a group's entries-read at entries-added (Redis 8.2)
        try:
            tgt.execute_command('XSETID', tmp, last_id, *(meta or []))
        except Exception as exc:
            if meta is None or exc.__class__.__name__ != 'ResponseError':
                raise
            tgt.execute_command('XSETID', tmp, last_id)
        for group in groups:
            self._group(key, tmp, group)
        if placeholders:
            for n in range(0, len(placeholders), self.chunk):
                tgt.execute_command('XDEL', tmp, *placeholders[n:n + self.chunk])
        if own_group:
            tgt.execute_command('XGROUP', 'DESTROY', tmp, OWN_GROUP)
        if meta is not None:
            tgt.execute_command('XSETID', tmp, last_id, *meta)  # the placeholders' XDEL moved max-deleted-entry-id
        elif placeholders and self.target_meta:
            # the source has no such metadata (Redis 6.2): no trace of the placeholders either
            tgt.execute_command('XSETID', tmp, last_id, 'ENTRIESADDED', info.get('length') or 0,
                                'MAXDELETEDID', b'0-0')
        return True

    def _group(self, key, tmp, group):
        src, tgt = self.src, self.tgt
        name = group['name']
        args = ['XGROUP', 'CREATE', tmp, name, group['last-delivered-id']]
        if self.target_meta and group.get('entries-read') is not None:
            args += ['ENTRIESREAD', group['entries-read']]
        tgt.execute_command(*args)
        if self.target_consumers:
            consumers = consumers_info(src, key, name)
            if consumers:
                pipe = tgt.pipeline(transaction=False)
                for consumer in consumers:
                    pipe.execute_command('XGROUP', 'CREATECONSUMER', tmp, name, consumer['name'])
                pipe.execute()
        if not int(group.get('pending') or 0):
            return
        for rows in iter_pending(src, key, name, self.chunk, self.exclusive_ok):
            pipe = tgt.pipeline(transaction=False)
            for entry_id, consumer, idle, count in rows:
                pipe.xclaim(tmp, name, consumer, 0, [entry_id], idle=idle, retrycount=count, force=True,
                            justid=True)
            replies = pipe.execute()
            for (entry_id, _c, _i, _n), reply in zip(rows, replies):
                if not reply:
                    raise ValueError('the pending entry %s of a consumer group could not be recreated'
                                     % _b(entry_id).decode('ascii', 'replace'))
            self.touch(tmp)


# -- comparison (kv_verify) -------------------------------------------------------------------------

def _text(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)


def stream_differences(src, tgt, key, chunk, src_meta, tgt_meta, limit=3):
    """What differs between the two copies of stream ``key`` besides its entries: ``[(kind, detail)]`` with
    kinds ``stream_meta_differs``, ``group_differs`` and ``pending_differs``.  ``src_meta``/``tgt_meta``: the
    server reports entries-added, max-deleted-entry-id and entries-read (Redis 7.0+, Valkey)."""
    out = []
    s_info, t_info = stream_info(src, key), stream_info(tgt, key)
    if s_info is None or t_info is None:
        return out
    fields = ['last-generated-id']
    if src_meta and tgt_meta:
        fields += ['entries-added', 'max-deleted-entry-id']
    meta = [f for f in fields if _text(s_info.get(f)) != _text(t_info.get(f))]
    if meta:
        out.append(('stream_meta_differs', ', '.join('%s %s on the source, %s on the target' % (
            f, _text(s_info.get(f)), _text(t_info.get(f))) for f in meta)))
    s_groups = dict((g['name'], g) for g in groups_info(src, key))
    t_groups = dict((g['name'], g) for g in groups_info(tgt, key))
    problems = []
    for name in sorted(set(s_groups) | set(t_groups)):
        if name not in t_groups:
            problems.append('group %s missing on the target' % _text(name))
            continue
        if name not in s_groups:
            problems.append('group %s only on the target' % _text(name))
            continue
        sg, tg = s_groups[name], t_groups[name]
        if _text(sg.get('last-delivered-id')) != _text(tg.get('last-delivered-id')):
            problems.append('group %s: last-delivered-id %s on the source, %s on the target' % (
                _text(name), _text(sg.get('last-delivered-id')), _text(tg.get('last-delivered-id'))))
        if src_meta and tgt_meta and sg.get('entries-read') != tg.get('entries-read'):
            problems.append('group %s: entries-read %s on the source, %s on the target' % (
                _text(name), sg.get('entries-read'), tg.get('entries-read')))
        s_cons = sorted(c['name'] for c in consumers_info(src, key, name))
        t_cons = sorted(c['name'] for c in consumers_info(tgt, key, name))
        if s_cons != t_cons:
            problems.append('group %s: consumers differ (%d on the source, %d on the target)' % (
                _text(name), len(s_cons), len(t_cons)))
    if problems:
        out.append(('group_differs', '; '.join(problems[:limit])))
    pending = []
    for name in sorted(set(s_groups) & set(t_groups)):
        if not int(s_groups[name].get('pending') or 0) and not int(t_groups[name].get('pending') or 0):
            continue
        detail = _pending_difference(src, tgt, key, name, chunk)
        if detail:
            pending.append('group %s: %s' % (_text(name), detail))
    if pending:
        out.append(('pending_differs', '; '.join(pending[:limit])))
    return out


def _pending_difference(src, tgt, key, group, chunk):
    """The first difference of two pending entries lists (ids, consumers, delivery counts), or None."""
    s_rows = (row for rows in iter_pending(src, key, group, chunk) for row in rows)
    t_rows = (row for rows in iter_pending(tgt, key, group, chunk) for row in rows)
    while True:
        a, b = next(s_rows, None), next(t_rows, None)
        if a is None and b is None:
            return None
        if b is None:
            return 'pending entry %s missing on the target' % _text(a[0])
        if a is None:
            return 'pending entry %s only on the target' % _text(b[0])
        if a[0] != b[0]:
            return 'pending entry %s on the source, %s on the target' % (_text(a[0]), _text(b[0]))
        if a[1] != b[1]:
            return 'pending entry %s: consumer %s on the source, %s on the target' % (
                _text(a[0]), _text(a[1]), _text(b[1]))
        if a[3] != b[3]:
            return 'pending entry %s: delivered %d times on the source, %d on the target' % (_text(a[0]), a[3], b[3])
