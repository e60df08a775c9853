# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The applier of ``kv_sync``: the snapshot's keys and the source's command stream, onto the target.

:class:`Applier` owns one pipelined connection to the target and a bounded in-flight window.  It
applies, in order:

* snapshot events (``key`` -> ``RESTORE key ttl payload ABSTTL [REPLACE]``, ``function`` ->
  ``FUNCTION LOAD REPLACE``), and then
* the command stream, parsed from RESP: ``SELECT`` through the db map, commands on dbs that are not
  migrated skipped, ``MULTI``/``EXEC`` sent as one transaction, ``PING``/``REPLCONF`` consumed (``GETACK``
  answered by the link), ``PUBLISH`` dropped, ``FLUSHALL`` -> ``FLUSHDB`` on each mapped db, db numbers in
  ``MOVE``/``COPY ... DB``/``SWAPDB`` translated (or refused, naming the command, when they need a db that
  is not migrated).

``applied`` is the offset of the last stream byte whose command the target has answered; it is what
the link acknowledges.

Expiry never kills a key in transit.  Relative expiries (a 6.2 source's ``EXPIRE``, ``SETEX``, ...) become
absolute, from the time the bytes were received.  With ``ttl_mode='import'`` (Valkey >= 8.1 target in
import mode, this connection ``CLIENT IMPORT-SOURCE ON``) the target keeps expired keys for us.  With
``ttl_mode='hold'`` every expiry is written :data:`HOLD_OFFSET` ms later than the source's, so the target
cannot expire a key whose renewal is still in the stream; :func:`settle_expiries` sets the exact
times at the drain.

The touched-keys log (:class:`KeysLog`, read with :func:`iter_keys_log`) gets every (target db, key)
the applied commands wrote; ``FLUSHDB``/``FLUSHALL``/``SWAPDB`` write a whole-db marker (key None).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import re
import select
import socket
import struct
import time

try:
    import hiredis
    HAS_HIREDIS = True
except ImportError:  # pragma: no cover - hiredis is a dependency of the collection
    hiredis = None
    HAS_HIREDIS = False

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import db_result

HOLD_OFFSET = 100 * 365 * 86400 * 1000      # 100 years: an expiry this far out is one we hold back
WINDOW = 2000                                # commands in flight to the target
FLUSH_BYTES = 256 << 10
KEYS_MAGIC = b'KVTKEYS1\n'
_KEYREC = struct.Struct('>iI')
_WHOLE_DB = 0xFFFFFFFF
_DROP = frozenset([b'ping', b'publish', b'spublish', b'opinfo'])
_ARGS_TAIL = re.compile(r',? with args beginning with:.*$', re.S)


class TargetError(Exception):
    """An error reply of the target (``str()`` is the server's words)."""


# -- the touched-keys log -------------------------------------------------------------------------

class KeysLog:
    """Append-only binary log of (target db, key); key None means the whole db changed."""

    def __init__(self, path):
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.fh = os.fdopen(fd, 'ab')
        if new:
            self.fh.write(KEYS_MAGIC)
        self.buf = []

    def add(self, db, key):
        if key is None:
            self.buf.append(_KEYREC.pack(db, _WHOLE_DB))
        else:
            self.buf.append(_KEYREC.pack(db, len(key)) + key)
        if len(self.buf) > 4096:
            self.flush()

    def flush(self):
        if self.buf:
            self.fh.write(b''.join(self.buf))
            self.buf = []
        self.fh.flush()

    def size(self):
        self.flush()
        return os.path.getsize(self.path)

    def close(self):
        self.flush()
        self.fh.close()


def iter_keys_log(path, start=0):
    """Yield ``(db, key)`` from a touched-keys log, from byte ``start`` (0 or a size returned before).

    ``key`` is None for a whole-db marker (the db was flushed or swapped).  A record cut off at the end
    (the follower is still writing) is left for the next call.
    """
    with open(path, 'rb') as fh:
        if start <= len(KEYS_MAGIC):
            if fh.read(len(KEYS_MAGIC)) != KEYS_MAGIC:
                raise KVError('%s is not a kv_sync keys log' % path, kind='config')
        else:
            fh.seek(start)
        while True:
            head = fh.read(_KEYREC.size)
            if len(head) < _KEYREC.size:
                return
            db, size = _KEYREC.unpack(head)
            if size == _WHOLE_DB:
                yield db, None
                continue
            key = fh.read(size)
            if len(key) < size:
                return
            yield db, key


# -- RESP parsing of the command stream ------------------------------------------------------------

def parse_commands(buf, pos=0):
    """Complete commands in ``buf`` from ``pos``: ``([(args, end), ...], pos after the last one)``."""
    out = []
    size = len(buf)
    find = buf.find
    while pos < size:
        if buf[pos:pos + 1] != b'*':
            raise KVError('the replication stream is not RESP at byte %d: %r' % (pos, bytes(buf[pos:pos + 20])),
                          kind='protocol')
        eol = find(b'\r\n', pos)
        if eol < 0:
            break
        count = int(buf[pos + 1:eol])
        p = eol + 2
        args = []
        complete = True
        for dummy in range(count):
            eol = find(b'\r\n', p)
            if eol < 0:
                complete = False
                break
            length = int(buf[p + 1:eol])
            start = eol + 2
            if start + length + 2 > size:
                complete = False
                break
            args.append(bytes(buf[start:start + length]))
            p = start + length + 2
        if not complete:
            break
        out.append((args, p))
        pos = p
    return out, pos


def _pack(args):
    return b'*%d\r\n' % len(args) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in args)


def _int(value):
    return int(value)


# -- expiry rewriting ------------------------------------------------------------------------------

def absolute_expiry(args, received_ms):
    """The command with every relative expiry made absolute (ms), or None when it changes nothing.

    ``EXPIRE``/``PEXPIRE``/``EXPIREAT`` -> ``PEXPIREAT``; ``SETEX``/``PSETEX`` and ``SET ... EX|PX|EXAT``
    -> ``SET ... PXAT``; ``GETEX`` -> ``PEXPIREAT``/``PERSIST``; ``RESTORE`` with a relative ttl -> ``ABSTTL``.
    """
    name = args[0].lower()
    if name in (b'expire', b'pexpire', b'expireat') and len(args) >= 3:
        value = _int(args[2])
        when = {b'expire': received_ms + value * 1000, b'pexpire': received_ms + value,
                b'expireat': value * 1000}[name]
        return [b'PEXPIREAT', args[1], b'%d' % when] + args[3:]
    if name in (b'setex', b'psetex') and len(args) == 4:
        value = _int(args[2])
        when = received_ms + (value * 1000 if name == b'setex' else value)
        return [b'SET', args[1], args[3], b'PXAT', b'%d' % when]
    if name == b'set' and len(args) > 3:
        out = args[:3]
        i = 3
        while i < len(args):
            opt = args[i].lower()
            if opt in (b'ex', b'px', b'exat') and i + 1 < len(args):
                value = _int(args[i + 1])
                when = {b'ex': received_ms + value * 1000, b'px': received_ms + value, b'exat': value * 1000}[opt]
                out += [b'PXAT', b'%d' % when]
                i += 2
                continue
            out.append(args[i])
            i += 1
        return out
    if name == b'getex' and len(args) >= 2:
        if len(args) >= 4:
            opt, value = args[2].lower(), _int(args[3])
            when = {b'ex': received_ms + value * 1000, b'px': received_ms + value, b'exat': value * 1000,
                    b'pxat': value}.get(opt)
            if when is not None:
                return [b'PEXPIREAT', args[1], b'%d' % when]
        if len(args) == 3 and args[2].lower() == b'persist':
            return [b'PERSIST', args[1]]
        return []
    if name == b'restore' and len(args) >= 4:
        flags = [a.lower() for a in args[4:]]
        if args[2] not in (b'0',) and b'absttl' not in flags:
            return args[:2] + [b'%d' % (received_ms + _int(args[2]))] + args[3:] + [b'ABSTTL']
    return None


def hold_expiry(args):
    """The command with every absolute expiry moved :data:`HOLD_OFFSET` later (``ttl_mode='hold'``)."""
    name = args[0].lower()
    if name == b'pexpireat' and len(args) >= 3:
        return args[:2] + [b'%d' % (_int(args[2]) + HOLD_OFFSET)] + args[3:]
    if name == b'set':
        out = list(args)
        for i in range(3, len(out) - 1):
            if out[i].lower() == b'pxat':
                out[i + 1] = b'%d' % (_int(out[i + 1]) + HOLD_OFFSET)
        return out
    if name == b'restore' and len(args) >= 4 and args[2] != b'0' and b'absttl' in [a.lower() for a in args[4:]]:
        return args[:2] + [b'%d' % (_int(args[2]) + HOLD_OFFSET)] + args[3:]
    return args


def server_words(text):
    """The server's error text without the arguments some servers echo (they may be values)."""
    return _ARGS_TAIL.sub('', str(text))[:300]


# -- the applier -----------------------------------------------------------------------------------

class _Pending:
    __slots__ = ('replies', 'end', 'db', 'label', 'keys')

    def __init__(self, replies, end, db, label, keys):
        self.replies = replies
        self.end = end
        self.db = db
        self.label = label
        self.keys = keys


class Applier:
    """Applies snapshot events and stream commands to the target; see the module docstring."""

    def __init__(self, target_ep, pairs, keys_log, ttl_mode='hold', replace=False, window=WINDOW, held_log=None):
        self.endpoint = target_ep
        self.map = dict(pairs)                  # source db -> target db (the migrated dbs)
        self.keys_log = keys_log
        self.held_log = held_log
        self.ttl_mode = ttl_mode
        self.replace = replace
        self.window = window
        self.client = self.conn = self.sock = None
        self.reader = None
        self.out = []
        self.out_bytes = 0
        self.pending = collections.deque()
        self.in_flight = 0
        self.target_db = None                   # db selected on the target connection
        self.src_db = None                      # db selected by the stream
        self.applied = None
        self.applied_db = None
        self.buf = b''
        self.block = None                       # commands of an open MULTI
        self.commands = 0
        self.skipped = 0
        self.dropped = 0
        self.counts = dict((s, db_result(s, t, functions=0)) for s, t in self.map.items())
        self.functions = 0
        self.keyspec = {}
        self.getack = False

    # -- connection -------------------------------------------------------------------------------
    def connect(self, import_source=False):
        self.client = self.endpoint.client(db=0)
        pool = self.client.connection_pool
        try:
            self.conn = pool.get_connection()
        except TypeError:  # redis-py < 5.1
            self.conn = pool.get_connection('RESTORE')
        self.conn.connect()
        self.sock = self.conn._sock
        self.reader = hiredis.Reader(replyError=TargetError)
        self.target_db = 0
        if import_source:
            self._send_now([b'CLIENT', b'IMPORT-SOURCE', b'ON'], 'CLIENT IMPORT-SOURCE ON')

    def _send_now(self, args, label):
        self._queue(args, label, None)
        self.wait_all()

    def close(self):
        for obj in (self.conn, self.client):
            if obj is not None:
                try:
                    obj.disconnect() if obj is self.conn else obj.close()
                except Exception:  # pragma: no cover - closing only
                    pass
        self.conn = self.client = None

    # -- pipeline ---------------------------------------------------------------------------------
    def _queue(self, args, label, keys, replies=1):
        data = _pack(args)
        self.out.append(data)
        self.out_bytes += len(data)
        self.pending.append(_Pending(replies, None, None, label, keys))
        self.in_flight += replies
        if self.out_bytes >= FLUSH_BYTES:
            self.flush()
        if self.in_flight > self.window:
            self.flush()
            while self.in_flight > self.window // 2:
                self._read(block=True)

    def _queue_raw(self, data, label, keys):
        """A command already in RESP (a RESTORE with a big payload as chunks)."""
        self.out.append(data)
        self.out_bytes += len(data)
        self.pending.append(_Pending(1, None, None, label, keys))
        self.in_flight += 1
        if self.out_bytes >= FLUSH_BYTES:
            self.flush()

    def _select(self, db):
        if self.target_db != db:
            self._queue([b'SELECT', b'%d' % db], 'SELECT', None)
            self.target_db = db

    def _mark(self, end):
        """Stream bytes up to ``end`` are done once everything queued so far is answered."""
        if self.pending:
            self.pending[-1].end = end
            self.pending[-1].db = self.src_db
        else:
            self.applied = end
            self.applied_db = self.src_db

    def flush(self):
        if not self.out:
            return
        data = b''.join(self.out)
        self.out = []
        self.out_bytes = 0
        try:
            self.sock.sendall(data)
        except (OSError, socket.timeout) as exc:
            raise KVError('cannot write to the target %s: %s' % (self.endpoint.address, exc), kind='connection',
                          endpoint=self.endpoint.address)

    def _read(self, block):
        if not block:
            pending_tls = getattr(self.sock, 'pending', None)
            if not (pending_tls and pending_tls()):
                ready = select.select([self.sock], [], [], 0)[0]
                if not ready:
                    return False
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise KVError('the target %s did not answer within %s s' % (self.endpoint.address,
                                                                        self.endpoint.socket_timeout),
                          kind='timeout', endpoint=self.endpoint.address)
        except OSError as exc:
            raise KVError('the connection to the target %s broke: %s' % (self.endpoint.address, exc),
                          kind='connection', endpoint=self.endpoint.address)
        if not data:
            raise KVError('the target %s closed the connection' % self.endpoint.address, kind='connection',
                          endpoint=self.endpoint.address)
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                break
            self._reply(reply)
        return True

    def _reply(self, reply):
        entry = self.pending[0]
        self.in_flight -= 1
        entry.replies -= 1
        bad = reply if isinstance(reply, TargetError) else None
        if bad is None and isinstance(reply, list) and entry.label.startswith('MULTI'):
            bad = next((r for r in reply if isinstance(r, TargetError)), None)
        if bad is not None:
            raise KVError('the target refused %s: %s' % (entry.label, server_words(bad)), kind='target',
                          endpoint=self.endpoint.address)
        if entry.replies == 0:
            self.pending.popleft()
            if entry.keys:
                for t_db, key in entry.keys:
                    self.keys_log.add(t_db, key)
            if entry.end is not None:
                self.applied = entry.end
                self.applied_db = entry.db

    def poll(self):
        """Read whatever replies have arrived, without waiting."""
        self.flush()
        while self.pending and self._read(block=False):
            pass

    def wait_all(self):
        self.flush()
        while self.pending:
            self._read(block=True)

    # -- snapshot ---------------------------------------------------------------------------------
    def snapshot_event(self, event):
        kind = event[0]
        if kind == 'aux' and event[1] == b'repl-stream-db':
            try:
                self.src_db = int(event[2])
            except ValueError:
                pass
        elif kind == 'key':
            self._restore(*event[1:5])
        elif kind == 'function':
            self.functions += 1
            self._queue([b'FUNCTION', b'LOAD', b'REPLACE', event[1]], 'FUNCTION LOAD (a library of the snapshot)',
                        None)

    def _restore(self, db, key, payload, expire_ms):
        if db not in self.map:
            return
        counts = self.counts[db]
        counts['keys'] += 1
        t_db = self.map[db]
        self._select(t_db)
        if expire_ms is None:
            ttl = b'0'
        elif self.ttl_mode == 'hold':
            ttl = b'%d' % (expire_ms + HOLD_OFFSET)
            if self.held_log is not None:
                self.held_log.add(t_db, key)
        else:
            ttl = b'%d' % max(1, expire_ms)
        tail = []
        if expire_ms is not None:
            tail.append(b'ABSTTL')
        if self.replace:
            tail.append(b'REPLACE')
        label = 'RESTORE (snapshot key in db %d)' % db
        if isinstance(payload, (bytes, bytearray)):
            self._queue([b'RESTORE', key, ttl, bytes(payload)] + tail, label, None)
            size = len(payload)
        else:  # a spooled payload: send its chunks without holding it in memory
            size = payload.length
            head = b'*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n' % (4 + len(tail), len(key), key,
                                                                               len(ttl), ttl, size)
            self.flush()
            self.out.append(head)
            for chunk in payload.chunks():
                self.out.append(chunk)
                self.flush()
            self._queue_raw(b'\r\n' + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in tail), label, None)
            payload.close()
        counts['copied'] += 1
        counts['bytes'] += size
        if self.in_flight > self.window:
            self.flush()
            while self.in_flight > self.window // 2:
                self._read(block=True)

    def prepare_full_resync(self):
        """Before a new snapshot over an earlier copy: empty the mapped target dbs."""
        for t_db in sorted(self.map.values()):
            self._select(t_db)
            self._queue([b'FLUSHDB'], 'FLUSHDB (before a new snapshot)', [(t_db, None)])
        self.wait_all()

    # -- command stream ---------------------------------------------------------------------------
    def feed(self, data, received_ms, base):
        """Apply the complete commands in ``data`` (appended to what was left); ``base`` is the offset
        of the first byte of the unconsumed buffer.  Returns the offset after the last complete command."""
        self.buf = self.buf + data if self.buf else data
        cmds, pos = parse_commands(self.buf)
        for args, end in cmds:
            self.command(args, base + end, received_ms)
        self.buf = self.buf[pos:]
        self.poll()
        return base + pos

    def _mapped(self, db):
        return self.map.get(db)

    def command(self, args, end, received_ms):
        name = args[0].lower()
        in_block = self.block is not None
        if name == b'select':
            self.src_db = int(args[1])
            return None if in_block else self._mark(end)
        if name in _DROP:
            self.dropped += 1
            return None if in_block else self._mark(end)
        if name == b'replconf':
            if len(args) > 1 and args[1].lower() == b'getack':
                self.getack = True
            self.dropped += 1
            return None if in_block else self._mark(end)
        if name == b'multi':
            self.block = []
            return None  # the transaction counts as applied when its EXEC is answered
        if name == b'exec':
            block, self.block = self.block or [], None
            return self._send_block(block, end)
        targets = self.translate(args, received_ms)
        if self.block is not None:
            self.block.append((self.src_db, targets))
            return None
        if not targets:
            self.skipped += 1
            return self._mark(end)
        for t_db, targs, keys in targets:
            if t_db is not None:
                self._select(t_db)
            self._queue(targs, self._label(targs, t_db), keys)
        self.commands += 1
        return self._mark(end)

    def _send_block(self, block, end):
        cmds = [t for item in block for t in item[1]]
        if not cmds:
            self.skipped += 1
            return self._mark(end)
        first_db = next((t_db for t_db, _a, _k in cmds if t_db is not None), None)
        if first_db is not None:
            self._select(first_db)
        label = 'MULTI/EXEC (%s)' % ', '.join(sorted(set(a[0].upper().decode('ascii', 'replace') for _d, a, _k in
                                                         cmds)))
        parts = [_pack([b'MULTI'])]
        keys = []
        replies = 2
        for t_db, targs, tkeys in cmds:
            if t_db is not None and t_db != self.target_db:
                parts.append(_pack([b'SELECT', b'%d' % t_db]))
                self.target_db = t_db
                replies += 1
            parts.append(_pack(targs))
            replies += 1
            keys.extend(tkeys or ())
        parts.append(_pack([b'EXEC']))
        data = b''.join(parts)
        self.out.append(data)
        self.out_bytes += len(data)
        self.pending.append(_Pending(replies, None, None, label, keys))
        self.in_flight += replies
        self.commands += 1
        self._mark(end)
        if self.in_flight > self.window:
            self.flush()
            while self.in_flight > self.window // 2:
                self._read(block=True)
        return None

    def _label(self, args, t_db):
        return '%s (target db %s)' % (args[0].upper().decode('ascii', 'replace'), t_db)

    def translate(self, args, received_ms):
        """``[(target db or None, args, [(target db, key), ...]), ...]`` for one stream command."""
        name = args[0].lower()
        db = self.src_db
        t_db = self._mapped(db)
        if name == b'flushall':
            return [(t, [b'FLUSHDB'], [(t, None)]) for t in sorted(self.map.values())]
        if name == b'swapdb':
            a, b = int(args[1]), int(args[2])
            ta, tb = self._mapped(a), self._mapped(b)
            if ta is None and tb is None:
                return []
            if ta is None or tb is None:
                raise KVError('the source ran SWAPDB %d %d, which mixes a migrated db with one that is not: the target '
                              'cannot follow it. Migrate both dbs (dbs option) and start again' % (a, b), kind='target')
            return [(None, [b'SWAPDB', b'%d' % ta, b'%d' % tb], [(ta, None), (tb, None)])]
        if name == b'move' and len(args) == 3:
            dest = self._mapped(int(args[2]))
            if t_db is None and dest is None:
                return []
            if t_db is None:
                raise KVError('the source ran MOVE from db %s (not migrated) into db %s (migrated): the target does not '
                              'hold the key. Migrate both dbs and start again' % (db, int(args[2])), kind='target')
            if dest is None:  # the key leaves the migrated dbs
                return [(t_db, [b'DEL', args[1]], [(t_db, args[1])])]
            return [(t_db, [b'MOVE', args[1], b'%d' % dest], [(t_db, args[1]), (dest, args[1])])]
        if name == b'copy':
            lowered = [a.lower() for a in args]
            if b'db' in lowered[3:]:
                i = lowered.index(b'db', 3)
                dest_src = int(args[i + 1])
                dest = self._mapped(dest_src)
                if t_db is None and dest is None:
                    return []
                if dest is None:
                    return []
                if t_db is None:
                    raise KVError('the source ran COPY from db %s (not migrated) into db %s (migrated): the target does '
                                  'not hold the key. Migrate both dbs and start again' % (db, dest_src), kind='target')
                targs = list(args)
                targs[i + 1] = b'%d' % dest
                return [(t_db, targs, [(dest, args[2])])]
        if t_db is None:
            return []
        if name == b'flushdb':
            return [(t_db, [b'FLUSHDB'], [(t_db, None)])]
        rewritten = absolute_expiry(args, received_ms)
        if rewritten is not None:
            if not rewritten:
                return []
            args = rewritten
        if self.ttl_mode == 'hold':
            args = hold_expiry(args)
        return [(t_db, args, [(t_db, k) for k in self.keys_of(args)])]

    def keys_of(self, args):
        name = args[0].lower()
        spec = self.keyspec.get(name)
        if spec is None:
            spec = self._keyspec(name)
        first, last, step, movable = spec
        if movable:
            try:
                return list(self.client.execute_command('COMMAND', 'GETKEYS', *args) or [])
            except Exception:
                return []
        if first <= 0:
            return []
        end = len(args) + last + 1 if last < 0 else last + 1
        return args[first:end:max(step, 1)]

    def _keyspec(self, name):
        spec = (0, 0, 1, False)
        try:
            info = self.client.execute_command('COMMAND', 'INFO', name)
            entry = info[0] if isinstance(info, list) else (info or {}).get(name.decode())
            if entry:
                if isinstance(entry, dict):  # redis-py parses COMMAND INFO into dicts
                    flags = [f if isinstance(f, bytes) else str(f).encode() for f in entry.get('flags', [])]
                    spec = (int(entry.get('first_key_pos', 0)), int(entry.get('last_key_pos', 0)),
                            int(entry.get('step_count', 1)), b'movablekeys' in flags)
                else:
                    flags = entry[2] or []
                    spec = (int(entry[3]), int(entry[4]), int(entry[5]), b'movablekeys' in flags)
        except Exception:
            pass
        self.keyspec[name] = spec
        return spec


def settle_expiries(target_ep, keys_log_path, held_log_path, start=0, batch=1000):
    """``ttl_mode='hold'`` at the drain: every key whose expiry we held back gets its exact expiry.

    The candidates are the snapshot's keys with a TTL and every key the stream touched; dbs with a
    whole-db marker are scanned.  Returns the number of keys whose expiry was set.
    """
    candidates = {}
    whole = set()
    for path, begin in ((held_log_path, 0), (keys_log_path, start)):
        if path and os.path.exists(path):
            for db, key in iter_keys_log(path, begin):
                if key is None:
                    whole.add(db)
                else:
                    candidates.setdefault(db, set()).add(key)
    fixed = 0
    for db in sorted(set(candidates) | whole):
        client = target_ep.client(db=db)
        try:
            if db in whole:
                cursor = 0
                while True:
                    cursor, keys = client.scan(cursor=cursor, count=1000)
                    candidates.setdefault(db, set()).update(keys)
                    if int(cursor) == 0:
                        break
            keys = list(candidates.get(db, ()))
            for i in range(0, len(keys), batch):
                part = keys[i:i + batch]
                pipe = client.pipeline(transaction=False)
                for key in part:
                    pipe.execute_command('PEXPIRETIME', key)
                times = pipe.execute(raise_on_error=False)
                pipe = client.pipeline(transaction=False)
                count = 0
                for key, when in zip(part, times):
                    if isinstance(when, int) and when >= HOLD_OFFSET:
                        pipe.execute_command('PEXPIREAT', key, when - HOLD_OFFSET)
                        count += 1
                if count:
                    for reply in pipe.execute(raise_on_error=False):
                        if isinstance(reply, Exception):
                            raise KVError('setting the exact expiry of held keys failed on the target: %s'
                                          % server_words(reply), kind='target', endpoint=target_ep.address)
                fixed += count
        except KVError:
            raise
        except Exception as exc:
            raise target_ep.error(exc, 'setting the exact expiry of held keys', db=db)
        finally:
            client.close()
    return fixed
