# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The applier of ``kv_sync``: the snapshot's keys and the source's command stream, onto the target.

:class:`Applier` owns one pipelined connection to the target and a bounded in-flight window.  It applies, in order:

* snapshot events (``key`` -> ``RESTORE key ttl payload ABSTTL [REPLACE]``, ``strings`` (plain strings without an
  expiry) -> one ``MSET``, ``MSETNX`` unless ``replace`` (a key there already stops the copy as a RESTORE's
  ``BUSYKEY`` would), ``function`` -> ``FUNCTION LOAD REPLACE``), and then
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

The touched-keys log (``_keys_log.KeysLogWriter``) gets every (target db, key) the applied commands
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

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import db_result
from ansible_collections.kvtools.migration.plugins.module_utils._restore_block import spooled_restore
from ansible_collections.kvtools.migration.plugins.module_utils._sync_batch import Batch, TargetError, pack_command
from ansible_collections.kvtools.migration.plugins.module_utils._sync_cluster import slot_flags, unlink_slots
from ansible_collections.kvtools.migration.plugins.module_utils._sync_commands import CommandTranslator, parse_commands
from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import HOLD_OFFSET, server_words
from ansible_collections.kvtools.migration.plugins.module_utils._sync_restore import (
    MSETNX_LABEL, RESTORE_LABEL, apply_snapshot, mset_refused, restore_batch, restore_commands, stream_db, strings_batch)

WINDOW = 2000                                # commands in flight to the target
SNAPSHOT_FACTOR = 10                         # snapshot RESTOREs in flight: this many times the window (bench_sync)
FLUSH_BYTES = 256 << 10
_OK = b'+OK\r\n'
_OKS = _OK * 4096
_DROP = frozenset([b'ping', b'publish', b'spublish', b'opinfo'])
ALL_SLOTS = slot_flags([(0, 16383)])


# -- the applier -----------------------------------------------------------------------------------

class Applier(CommandTranslator):
    """Applies snapshot events and stream commands to the target; see the module docstring.

    In the stream phase (``atomic``) every flush is one ``MULTI ... EXEC`` that also sets the
    ``marker`` key (``replid applied-offset stream-db``) in the first mapped target db, so that what the
    target holds and the offset it is at can never disagree, even when the follower is killed: a
    resumed follower reads the marker (:func:`read_marker`) and continues exactly there.  The marker is
    removed at the drain.
    """

    plain_strings = True        # takes ``strings`` snapshot events (``SnapshotParser.batches(strings=True)``)

    def __init__(self, target_ep, pairs, keys_log, ttl_mode='hold', replace=False, window=WINDOW, held_log=None,
                 marker=None, slots=None):
        self.endpoint = target_ep
        self.slots = slots                      # the follower of one master of a cluster: its slots' flags
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
        self.rbuf = b''                         # the start of a +OK reply (the fast path of _read)
        self.has_data = None
        self.cur = []                           # (packed, label, keys, tag) of the batch being built
        self.cur_bytes = 0
        self.cur_end = None
        self.cur_db = None
        self.pending = collections.deque()
        self.in_flight = 0
        self.target_db = None                   # db selected on the target connection
        self.src_db = None                      # db selected by the stream
        self.applied = None
        self.applied_db = None
        # the keys log up to here holds only keys of commands the target has answered (see _sync_settle)
        self.log_applied = keys_log.size() if keys_log is not None else 0
        self.buf = b''
        self.block = None                       # commands of an open MULTI
        self.commands = 0
        self.skipped = 0
        self.dropped = 0
        self.counts = dict((s, db_result(s, t, functions=0)) for s, t in self.map.items())
        self.functions = 0
        self.keyspec = {}
        self.getack = False
        self.keep = None        # a cluster master's: ``keep(self, kept commands, transaction, words)`` on a redirection
        self.tag = None         # kept with the commands queued now (the cluster applier's stream position)

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
        self.has_data = getattr(self.reader, 'has_data', None)     # hiredis >= 2.2; without it no fast path
        self.rbuf = b''
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
        data = pack_command(args)
        self.cur.append((data, label, keys, self.tag))
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

    def keep_window(self, window=None):
        window = window or self.window
        if self.in_flight > window:
            self.flush()
            while self.in_flight > window // 2:
                self._read(block=True)

    def flush(self, transaction=False):
        if not self.cur:
            return
        parts = [c[0] for c in self.cur]
        metas = [(c[1], c[2]) for c in self.cur]
        marked = self.atomic and self.marker is not None and self.cur_end is not None
        atomic = marked or transaction
        if marked:
            m_db, m_key = self.marker
            if self.target_db != m_db:
                parts.append(pack_command([b'SELECT', b'%d' % m_db]))
                metas.append(('SELECT %d' % m_db, None))
                self.target_db = m_db
            value = b'%s %d %d' % (self.replid, self.cur_end, -1 if self.cur_db is None else self.cur_db)
            parts.append(pack_command([b'SET', m_key, value]))
            metas.append(('SET of the offset marker', None))
        if atomic:
            parts = [b'*1\r\n$5\r\nMULTI\r\n'] + parts + [b'*1\r\n$4\r\nEXEC\r\n']
        batch = Batch(metas, atomic, self.cur_end, self.cur_db)
        if self.keep is not None:
            batch.sent = self.cur
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
            batch.log_end = self.keys_log.flush()
        self._send(b''.join(parts))
        self.pending.append(batch)
        self.in_flight += batch.replies

    def _send(self, data):
        try:
            self.sock.sendall(data)
        except (OSError, socket.timeout) as exc:
            raise KVError('cannot write to the target %s: %s' % (self.endpoint.address, exc), kind='connection',
                          endpoint=self.endpoint.address)

    def _send_kept(self, data):
        """A command as kept: its bytes, or ``(head, spooled payload, tail)`` streamed from the payload's file."""
        if data.__class__ is not tuple:
            return self._send(data)
        self._send(data[0])
        for chunk in data[1].chunks():
            self._send(chunk)
        return self._send(data[2])

    # -- cluster redirections (``keep``, set by ``_sync_cluster_apply``) ------------------------------
    def _redirected(self, batch, i, words):
        """True when reply ``i`` of ``batch`` is a redirection (``MOVED``/``ASK``/``TRYAGAIN``): the command
        was not run, ``keep`` gets it.  In a transaction a redirected command aborts it (``EXEC`` answers
        ``EXECABORT``, or is redirected itself): ``keep`` gets the whole transaction at its ``EXEC``."""
        redirect = words.startswith(('MOVED ', 'ASK ', 'TRYAGAIN'))
        if not batch.atomic:
            if redirect:
                self.keep(self, batch.sent[i:i + 1], False, words)
            return redirect
        if 0 < i <= len(batch.metas):
            if redirect and batch.redirect is None:
                batch.redirect = words
            return redirect
        if i == 0 or (batch.redirect is None and not redirect):
            return False
        self.keep(self, batch.sent, True, batch.redirect or words)
        return True

    def resend(self, sent, transaction, asking):
        """Kept commands (one, or a transaction's) sent again, after ``ASKING`` when ``asking``; the caller
        waits for the replies (a redirection again goes to ``keep``).  It moves no offset: the first send did."""
        self.flush()
        if asking:
            self._send(b'*1\r\n$6\r\nASKING\r\n')
            self.pending.append(Batch([('ASKING', None)], False, None, None))
            self.in_flight += 1
        if transaction:
            self._send(b'*1\r\n$5\r\nMULTI\r\n')
        for item in sent:
            self._send_kept(item[0])
        if transaction:
            self._send(b'*1\r\n$4\r\nEXEC\r\n')
        batch = Batch([(item[1], item[2]) for item in sent], transaction, None, None)
        batch.sent = sent
        self.pending.append(batch)
        self.in_flight += batch.replies

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
        if not self.atomic and self.has_data is not None and not self.has_data():
            data = self._oks(self.rbuf + data if self.rbuf else data)
            if not data:
                return True
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                break
            self._reply(reply)
        return True

    def _oks(self, data):
        """Count the leading ``+OK`` replies of ``data`` (the snapshot's RESTOREs) without parsing each one;
        returns the rest, for the reply parser (a cut-off ``+OK`` at the end is kept for the next read)."""
        self.rbuf = b''
        done = 0
        size = len(data)
        while done < size:
            n = min((size - done) // 5, 4096)
            if n and data[done:done + 5 * n] == _OKS[:5 * n]:
                done += 5 * n
                continue
            while done + 5 <= size and data[done:done + 5] == _OK:
                done += 5
            break
        if done:
            self._replied(done // 5)
        rest = data[done:]
        if rest and len(rest) < 5 and _OK.startswith(rest):
            self.rbuf = rest
            return b''
        return rest

    def _replied(self, count):
        """``count`` replies that are not errors, for the oldest batches in flight."""
        pending = self.pending
        self.in_flight -= count
        while count:
            batch = pending[0]
            if batch.atomic:
                raise KVError('the target %s answered a transaction with +OK where its EXEC reply was due'
                              % self.endpoint.address, kind='protocol', endpoint=self.endpoint.address)
            take = min(count, batch.replies - batch.index)
            batch.index += take
            count -= take
            if batch.index == batch.replies:
                self._answered(pending.popleft())

    def _answered(self, batch):
        """``batch`` is answered whole: the offset and the keys log's bound it carries are applied."""
        if batch.end is not None:
            self.applied = batch.end
            self.applied_db = batch.db
        if batch.log_end is not None:
            self.log_applied = batch.log_end

    def _refused(self, label, error):
        words = server_words(error)
        if reply_kind(words) == 'payload':
            return KVError('the target refused %s: %s. The target refuses the payloads of this source (RDB version '
                           'or encoding newer than it understands): choose a target at least as new as the source, '
                           'or the offline copy (kv_dump_restore)' % (label, words), kind='payload',
                           endpoint=self.endpoint.address)
        return KVError('the target refused %s: %s' % (label, words), kind='target', endpoint=self.endpoint.address)

    def _reply(self, reply):
        batch = self.pending[0]
        self.in_flight -= 1
        i = batch.index
        batch.index += 1
        if batch.sent is not None and isinstance(reply, TargetError) and self._redirected(batch, i, str(reply)):
            pass
        elif not batch.atomic:
            if isinstance(reply, TargetError):
                raise self._refused(batch.metas[min(i, len(batch.metas) - 1)][0], reply)
            if reply == 0 and batch.metas[0][0] == MSETNX_LABEL:
                raise mset_refused(self.endpoint.address)
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
            self._answered(self.pending.popleft())

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
    def restore_snapshot(self, events, progress=None):
        """Apply the events of a snapshot (``_sync_restore.apply_snapshot``) and wait until the target has
        answered every command; ``progress()`` is called after each event."""
        apply_snapshot(events, self.snapshot_event, progress)
        self.wait_all()

    def snapshot_event(self, event):
        kind = event[0]
        if kind == 'aux':
            self.src_db = stream_db(event, self.src_db)
        elif kind == 'keys':
            self.snapshot_keys(event[1], event[2], event[3], event[4])
        elif kind == 'strings':
            self.snapshot_strings(event[1], event[2], event[3])
        elif kind == 'key':
            self.restore(*event[1:5])
        elif kind == 'function':
            self.functions += 1
            self._queue([b'FUNCTION', b'LOAD', b'REPLACE', event[1]], 'FUNCTION LOAD (a library of the snapshot)',
                        None)
            self.keep_window()

    def snapshot_keys(self, db, keys, payloads, expires):
        """A ``keys`` event of ``SnapshotParser.batches()``: one RESTORE per key, sent as one block."""
        shift = HOLD_OFFSET if self.ttl_mode == 'hold' else 0
        self._snapshot_block(db, len(keys), lambda t_db: restore_batch(t_db, keys, payloads, expires, self.replace, shift,
                             self.held_log if shift else None, self.tag, self.keep is not None))

    def snapshot_strings(self, db, keys, values):
        """A ``strings`` event of ``SnapshotParser.batches(strings=True)``: one ``MSET`` (``MSETNX``)."""
        self._snapshot_block(db, len(keys), lambda t_db: strings_batch(keys, values, self.replace))

    def _snapshot_block(self, db, count, make):
        """``make(target db)`` -> (bytes, Batch, payload bytes) for ``count`` keys of source db ``db``: sent."""
        t_db = self.map.get(db)
        if t_db is None or not count:
            return
        if self.target_db != t_db:
            self._select(t_db)
        data, batch, size = make(t_db)
        self.flush()
        self._send(data)
        self.pending.append(batch)
        self.in_flight += batch.replies
        counts = self.counts[db]
        counts['keys'] += count
        counts['copied'] += count
        counts['bytes'] += size
        if self.in_flight > self.window * SNAPSHOT_FACTOR:
            self.keep_window(self.window * SNAPSHOT_FACTOR)

    def restore(self, db, key, payload, expire_ms):
        """A ``key`` event: its RESTORE queued (``bytes``), or sent streaming from its spool file."""
        t_db = self.map.get(db)
        if t_db is None:
            if not isinstance(payload, (bytes, bytearray)):
                payload.close()             # a big object of a db that is not migrated: remove its spool file
            return
        if self.target_db != t_db:
            self._select(t_db)
        shift = HOLD_OFFSET if self.ttl_mode == 'hold' else 0
        held = self.held_log if shift else None
        if isinstance(payload, (bytes, bytearray)):
            size = len(payload)
            data = restore_commands(t_db, [key], [payload], [expire_ms], self.replace, shift, held)[0]
            self.cur.append((data, RESTORE_LABEL, None, self.tag))
            self.cur_bytes += len(data)
            if self.cur_bytes >= FLUSH_BYTES or len(self.cur) >= self.window // 4:
                self.flush()
            if self.in_flight > self.window:
                self.keep_window()
        else:  # a spooled payload: send its chunks without holding it in memory
            size = payload.length
            head, tail, timed = spooled_restore(key, size, expire_ms, self.replace, shift)
            if timed and held is not None:
                held.add(t_db, key)
            self.flush()
            batch = Batch([(RESTORE_LABEL, None)], False, None, None)
            sent = (head, payload, tail)
            self._send_kept(sent)
            if self.keep is not None:  # kept for a redirection: its spool file goes with the last reference
                batch.sent = [(sent, RESTORE_LABEL, None, self.tag)]
            else:
                payload.close()
            self.pending.append(batch)
            self.in_flight += 1
        counts = self.counts[db]
        counts['keys'] += 1
        counts['copied'] += 1
        counts['bytes'] += size

    def prepare_full_resync(self):
        """Before a new snapshot over an earlier copy: empty the mapped target dbs (the follower of one master
        of a cluster: remove the keys of its slots only, the other followers' keys stay)."""
        for t_db in sorted(self.map.values()):
            if self.slots is not None:
                self.flush_part(t_db)
                continue
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
        unlink_slots(self.endpoint, t_db, ALL_SLOTS)
        self.keys_log.add(t_db, None)

    def flush_part(self, t_db):
        """FLUSHDB for the follower of one master of a cluster: once all is answered, UNLINK its slots' keys."""
        self.wait_all()
        unlink_slots(self.endpoint, t_db, self.slots)
        self.keys_log.add(t_db, None)

    # -- the interface of a cluster target's per-master appliers (``_sync_cluster_apply``) -------------
    def queue_command(self, t_db, args, label, keys):
        if self.slots is not None and args == [b'FLUSHDB']:
            return self.flush_part(t_db)
        if self.slots is not None and args[0].lower() in (b'restore', b'restore-asking'):
            raise KVError('a key arrived on the followed master by MIGRATE (RESTORE in its stream): a reshard is moving '
                          'a slot to it, and its keys leave another master, whose follower may apply that first. The '
                          'follow stops here; once the reshard is done run state=started (new snapshots)', kind='topology')
        if t_db is not None:
            self._select(t_db)
        self._queue(args, label, keys)
        return None

    def queue_transaction(self, t_db, cmds):
        """``[(args, label, keys)]`` of one slot as one MULTI/EXEC (on a cluster master: no marker, no other slot)."""
        self._select(t_db)
        self.flush()
        for args, label, keys in cmds:
            self._queue(args, label, keys)
        self.flush(transaction=True)

    def mark(self, end, src_db):
        self.src_db = src_db
        self._mark(end)

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
            self.queue_command(t_db, targs, self._label(targs, t_db), keys)
        self.commands += 1
        self._mark(end)
        self.keep_window()
        return None

    def _send_block(self, block, end):
        cmds = [t for item in block for t in item[1]]
        if not cmds:
            self.skipped += 1
            return self._mark(end)
        for t_db, targs, tkeys in cmds:
            self.queue_command(t_db, targs, self._label(targs, t_db) + ' in a MULTI/EXEC', tkeys)
        self.commands += 1
        self._mark(end)
        self.keep_window()
        return None

    def _label(self, args, t_db):
        return '%s (target db %s)' % (args[0].upper().decode('ascii', 'replace'), t_db)
