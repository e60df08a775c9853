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

The touched-keys log (``_sync_keys.KeysLog``) gets every (target db, key) the applied commands
wrote; ``FLUSHDB``/``FLUSHALL``/``SWAPDB`` write a whole-db marker (key None).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import select
import socket

try:
    import hiredis
    HAS_HIREDIS = True
except ImportError:  # pragma: no cover - hiredis is a dependency of the collection
    hiredis = None
    HAS_HIREDIS = False

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import db_result
from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import (
    HOLD_OFFSET, absolute_expiry, hold_expiry, server_words)

WINDOW = 2000                                # commands in flight to the target
FLUSH_BYTES = 256 << 10
_RESTORE_FMT = b'*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s'
_ABSTTL = b'$6\r\nABSTTL\r\n'
_REPLACE = b'$7\r\nREPLACE\r\n'
_RESTORE_LABEL = 'RESTORE of a snapshot key'
_DROP = frozenset([b'ping', b'publish', b'spublish', b'opinfo'])


class TargetError(Exception):
    """An error reply of the target (``str()`` is the server's words)."""


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


# -- the applier -----------------------------------------------------------------------------------

class _Batch:
    """One flush: ``metas`` ``[(label, keys)]`` per command; ``atomic`` when wrapped in MULTI/EXEC."""
    __slots__ = ('metas', 'atomic', 'replies', 'index', 'end', 'db')

    def __init__(self, metas, atomic, end, db):
        self.metas = metas
        self.atomic = atomic
        self.replies = len(metas) + (2 if atomic else 0)
        self.index = 0
        self.end = end
        self.db = db


class Applier:
    """Applies snapshot events and stream commands to the target; see the module docstring.

    In the stream phase (``atomic``) every flush is one ``MULTI ... EXEC`` that also sets the
    ``marker`` key (``replid applied-offset stream-db``) in the first mapped target db, so that what the
    target holds and the offset it is at can never disagree, even when the follower is killed: a
    resumed follower reads the marker (:func:`read_marker`) and continues exactly there.  The marker is
    removed at the drain.
    """

    def __init__(self, target_ep, pairs, keys_log, ttl_mode='hold', replace=False, window=WINDOW, held_log=None,
                 marker=None):
        self.endpoint = target_ep
        self.map = dict(pairs)                  # source db -> target db (the migrated dbs)
        self.keys_log = keys_log
        self.held_log = held_log
        self.ttl_mode = ttl_mode
        self.replace = replace
        self.window = window
        self.marker = marker                    # (target db, key name)
        self.replid = b''
        self.atomic = False
        self.client = self.conn = self.sock = None
        self.reader = None
        self.cur = []                           # (packed, label, keys) of the batch being built
        self.cur_bytes = 0
        self.cur_end = None
        self.cur_db = None
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
            self._queue([b'CLIENT', b'IMPORT-SOURCE', b'ON'], 'CLIENT IMPORT-SOURCE ON', None)
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
    def _queue(self, args, label, keys):
        data = _pack(args)
        self.cur.append((data, label, keys))
        self.cur_bytes += len(data)
        if not self.atomic and (self.cur_bytes >= FLUSH_BYTES or len(self.cur) >= self.window // 4):
            self.flush()

    def _select(self, db):
        if self.target_db != db:
            self._queue([b'SELECT', b'%d' % db], 'SELECT %d' % db, None)
            self.target_db = db

    def _mark(self, end):
        """Stream bytes up to ``end`` are done once everything queued so far is answered."""
        self.cur_end, self.cur_db = end, self.src_db
        if not self.cur:
            if self.pending:
                self.pending[-1].end, self.pending[-1].db = end, self.src_db
            else:
                self.applied, self.applied_db = end, self.src_db
            self.cur_end = None
        elif self.cur_bytes >= FLUSH_BYTES or len(self.cur) >= self.window // 4:
            self.flush()
        return None

    def _window(self):
        if self.in_flight > self.window:
            self.flush()
            while self.in_flight > self.window // 2:
                self._read(block=True)

    def flush(self):
        if not self.cur:
            return
        parts = [c[0] for c in self.cur]
        metas = [(c[1], c[2]) for c in self.cur]
        atomic = self.atomic and self.marker is not None and self.cur_end is not None
        if atomic:
            m_db, m_key = self.marker
            if self.target_db != m_db:
                parts.append(_pack([b'SELECT', b'%d' % m_db]))
                metas.append(('SELECT %d' % m_db, None))
                self.target_db = m_db
            value = b'%s %d %d' % (self.replid, self.cur_end, -1 if self.cur_db is None else self.cur_db)
            parts.append(_pack([b'SET', m_key, value]))
            metas.append(('SET of the offset marker', None))
            parts = [b'*1\r\n$5\r\nMULTI\r\n'] + parts + [b'*1\r\n$4\r\nEXEC\r\n']
        batch = _Batch(metas, atomic, self.cur_end, self.cur_db)
        self.cur = []
        self.cur_bytes = 0
        self.cur_end = None
        # write-ahead: the keys are in the log (in the kernel's hands) before the target can have them
        logged = False
        for _label, keys in metas:
            if keys:
                for t_db, key in keys:
                    self.keys_log.add(t_db, key)
                logged = True
        if logged:
            self.keys_log.flush()
        self._send(b''.join(parts))
        self.pending.append(batch)
        self.in_flight += batch.replies

    def _send(self, data):
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

    def _refused(self, label, error):
        return KVError('the target refused %s: %s' % (label, server_words(error)), kind='target',
                       endpoint=self.endpoint.address)

    def _reply(self, reply):
        batch = self.pending[0]
        self.in_flight -= 1
        i = batch.index
        batch.index += 1
        if not batch.atomic:
            if isinstance(reply, TargetError):
                raise self._refused(batch.metas[i][0], reply)
        elif i == 0 or i <= len(batch.metas):
            if isinstance(reply, TargetError):
                raise self._refused(batch.metas[i - 1][0] if i else 'MULTI', reply)
        else:  # EXEC
            if isinstance(reply, TargetError):
                raise self._refused('a transaction (EXEC)', reply)
            for j, item in enumerate(reply or []):
                if isinstance(item, TargetError):
                    raise self._refused(batch.metas[j][0], item)
        if batch.index == batch.replies:
            self.pending.popleft()
            if batch.end is not None:
                self.applied = batch.end
                self.applied_db = batch.db

    def poll(self):
        """Send what is queued and read whatever replies have arrived, without waiting."""
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
            self._window()

    def _restore(self, db, key, payload, expire_ms):
        t_db = self.map.get(db)
        if t_db is None:
            return
        counts = self.counts[db]
        counts['keys'] += 1
        if self.target_db != t_db:
            self._select(t_db)
        flags = _REPLACE if self.replace else b''
        argc = 4 if not self.replace else 5
        if expire_ms is None:
            ttl = b'0'
        else:
            argc += 1
            flags = _ABSTTL + flags
            if self.ttl_mode == 'hold':
                ttl = b'%d' % (expire_ms + HOLD_OFFSET)
                if self.held_log is not None:
                    self.held_log.add(t_db, key)
            else:
                ttl = b'%d' % max(1, expire_ms)
        label = _RESTORE_LABEL
        if isinstance(payload, (bytes, bytearray)):
            size = len(payload)
            data = _RESTORE_FMT % (argc, len(key), key, len(ttl), ttl, size, payload, flags)
            self.cur.append((data, label, None))
            self.cur_bytes += len(data)
            if self.cur_bytes >= FLUSH_BYTES or len(self.cur) >= self.window // 4:
                self.flush()
            if self.in_flight > self.window:
                self._window()
        else:  # a spooled payload: send its chunks without holding it in memory
            size = payload.length
            head = b'*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n' % (
                argc, len(key), key, len(ttl), ttl, size)
            self.flush()
            self._send(head)
            for chunk in payload.chunks():
                self._send(chunk)
            self._send(b'\r\n' + flags)
            self.pending.append(_Batch([(label, None)], False, None, None))
            self.in_flight += 1
            payload.close()
        counts['copied'] += 1
        counts['bytes'] += size

    def prepare_full_resync(self):
        """Before a new snapshot over an earlier copy: empty the mapped target dbs."""
        for t_db in sorted(self.map.values()):
            self._select(t_db)
            self._queue([b'FLUSHDB'], 'FLUSHDB (before a new snapshot)', [(t_db, None)])
            try:
                self.wait_all()
            except KVError as exc:
                if 'NOPERM' not in str(exc):
                    raise
                self._reconnect_and_unlink(t_db)

    def _reconnect_and_unlink(self, t_db):
        """No FLUSHDB for this user: remove the db's keys with SCAN + UNLINK instead."""
        self.close()
        self.pending.clear()
        self.in_flight = 0
        self.connect(import_source=self.ttl_mode == 'import')
        client = self.endpoint.client(db=t_db)
        try:
            cursor = 0
            while True:
                cursor, keys = client.scan(cursor=cursor, count=1000)
                if keys:
                    client.unlink(*keys)
                if int(cursor) == 0:
                    break
        except Exception as exc:
            raise self.endpoint.error(exc, 'emptying a target db before a new snapshot', db=t_db)
        finally:
            client.close()
        self.keys_log.add(t_db, None)

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
        self._mark(end)
        self._window()
        return None

    def _send_block(self, block, end):
        cmds = [t for item in block for t in item[1]]
        if not cmds:
            self.skipped += 1
            return self._mark(end)
        for t_db, targs, tkeys in cmds:
            if t_db is not None:
                self._select(t_db)
            self._queue(targs, self._label(targs, t_db) + ' in a MULTI/EXEC', tkeys)
        self.commands += 1
        self._mark(end)
        self._window()
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
            out = [(None, [b'SWAPDB', b'%d' % ta, b'%d' % tb], [(ta, None), (tb, None)])]
            if self.marker is not None and self.marker[0] in (ta, tb):  # the marker moved with its db
                other = tb if self.marker[0] == ta else ta
                out.append((other, [b'DEL', self.marker[1]], None))
            return out
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
