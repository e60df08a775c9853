# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The replica link of ``kv_sync``: a PSYNC connection to the source and the spool it fills.

* :class:`ReplicaLink` connects as a replica: ``REPLCONF listening-port 0`` (nothing can reach it, so
  Sentinel never promotes it), ``REPLCONF capa eof capa psync2``, ``REPLCONF version`` (Valkey >= 9 then
  writes an RDB the target reads), then ``PSYNC ? -1`` or ``PSYNC <replid> <offset+1>`` to continue.
  Never ``rdb-only``: the source would close the link after the RDB.
* One thread (:meth:`ReplicaLink.run`) owns the socket: it reads without pause - the RDB into one
  :class:`Spool`, the command stream into another - and sends ``REPLCONF ACK <applied>`` every second,
  right after the RDB (a diskless source waits for it) and when the source asks with ``GETACK``.  The
  offset it acknowledges is the one the applier reports: applied *and* answered by the target.
* :class:`Spool` keeps what is received but not yet applied on disk: segment files of mode 0600, each
  record stamped with the time it was received (relative expiries of old sources are converted with
  it), AES-256-GCM sealed when a passphrase is given.  Consumed segments are removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import socket
import struct
import threading
import time

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    HAS_AESGCM = True
except ImportError:  # pragma: no cover - reported when a spool passphrase is given
    AESGCM = None
    HAS_AESGCM = False

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._replication import (
    EOF_MARK_SIZE, Handshake, pack_command, transfer_header)

RECV_SIZE = 1 << 20
SEGMENT_BYTES = 64 << 20
ACK_INTERVAL = 1.0
_REC = struct.Struct('>IQ')          # record length, receive time in ms
_SPOOL_MAGIC = b'KVTSPL1\n'


def _now_ms():
    return int(time.time() * 1000)


class Spool:
    """An append-only, on-disk FIFO of byte chunks between one writer thread and one reader.

    ``append(data)`` never waits for the reader; ``read(n)`` / ``next_chunk()`` wait for data and
    return ``b''`` / None once the writer has called :meth:`finish` and everything is consumed.
    """

    def __init__(self, directory, name, passphrase=None, segment_bytes=SEGMENT_BYTES):
        if passphrase and not HAS_AESGCM:
            raise KVError('spool_passphrase needs the Python library cryptography (pip install cryptography) on the '
                          'host that runs the module', kind='config')
        self.directory = directory
        self.name = name
        self.segment_bytes = segment_bytes
        self.cond = threading.Condition()
        self.segments = []          # [path, records written, closed]
        self.wfh = None
        self.written = 0            # payload bytes appended
        self.done = False
        self.error = None
        self.rfh = None
        self.rseg = 0
        self.rrecords = 0
        self.consumed = 0           # payload bytes handed to the reader
        self.pending = b''
        self.pending_ts = 0
        self.aes = None
        self.salt = b''
        if passphrase:
            self.salt = os.urandom(16)
            secret = passphrase.encode('utf-8') if not isinstance(passphrase, bytes) else passphrase
            self.aes = AESGCM(hashlib.scrypt(secret, salt=self.salt, n=1 << 14, r=8, p=1, dklen=32))
            self.nonce_prefix = os.urandom(4)
            self.counter = 0

    # -- writer side ------------------------------------------------------------------------------
    def _new_segment(self):
        path = os.path.join(self.directory, '.%s.%06d.spool' % (self.name, len(self.segments)))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fh = os.fdopen(fd, 'wb')
        fh.write(_SPOOL_MAGIC + struct.pack('>B', 1 if self.aes else 0) + self.salt.ljust(16, b'\0'))
        fh.flush()
        if self.wfh is not None:
            self.wfh.close()
        self.wfh = fh
        self.seg_size = 0
        self.segments.append([path, 0, False])

    def append(self, data, ts=None):
        if not data:
            return
        ts = _now_ms() if ts is None else ts
        body = bytes(data)
        if self.aes is not None:
            nonce = self.nonce_prefix + struct.pack('>Q', self.counter)
            self.counter += 1
            body = nonce + self.aes.encrypt(nonce, body, struct.pack('>Q', ts))
        if self.wfh is None or self.seg_size >= self.segment_bytes:
            with self.cond:
                if self.segments:
                    self.segments[-1][2] = True
                self._new_segment()
        self.wfh.write(_REC.pack(len(body), ts) + body)
        self.wfh.flush()
        self.seg_size += len(body) + _REC.size
        with self.cond:
            self.segments[-1][1] += 1
            self.written += len(data)
            self.cond.notify_all()

    def finish(self, error=None):
        with self.cond:
            self.done = True
            self.error = error
            if self.segments:
                self.segments[-1][2] = True
            self.cond.notify_all()
        if self.wfh is not None:
            self.wfh.close()
            self.wfh = None

    # -- reader side ------------------------------------------------------------------------------
    def next_chunk(self, timeout=None):
        """``(received_ms, bytes)``; None on timeout; ``(None, b'')`` when the writer finished and all is read."""
        deadline = None if timeout is None else time.time() + timeout
        with self.cond:
            while True:
                if self.rseg < len(self.segments) and self.rrecords < self.segments[self.rseg][1]:
                    break
                if self.rseg < len(self.segments) and self.segments[self.rseg][2] and \
                        self.rseg + 1 < len(self.segments):
                    self._drop_segment()
                    continue
                if self.done and (self.rseg >= len(self.segments) - 1):
                    return None, b''
                wait = None if deadline is None else deadline - time.time()
                if wait is not None and wait <= 0:
                    return None
                self.cond.wait(wait if wait is None else min(wait, 1.0))
            path = self.segments[self.rseg][0]
        if self.rfh is None:
            self.rfh = open(path, 'rb')
            self.rfh.seek(len(_SPOOL_MAGIC) + 17)
        head = self.rfh.read(_REC.size)
        size, ts = _REC.unpack(head)
        body = self.rfh.read(size)
        if len(body) != size:
            raise KVError('the spool file %s is truncated' % path, kind='io')
        if self.aes is not None:
            body = self.aes.decrypt(body[:12], body[12:], struct.pack('>Q', ts))
        with self.cond:
            self.rrecords += 1
            self.consumed += len(body)
        return ts, body

    def _drop_segment(self):
        if self.rfh is not None:
            self.rfh.close()
            self.rfh = None
        try:
            os.unlink(self.segments[self.rseg][0])
        except OSError:
            pass
        self.rseg += 1
        self.rrecords = 0

    def read(self, size):
        """File-like blocking read for the snapshot parser: up to ``size`` bytes, ``b''`` at the end."""
        while not self.pending:
            chunk = self.next_chunk()
            if chunk[1] == b'' and chunk[0] is None:
                if self.error is not None:
                    raise self.error
                return b''
            self.pending_ts, self.pending = chunk
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def close(self):
        """Remove every file of this spool."""
        if self.rfh is not None:
            self.rfh.close()
            self.rfh = None
        if self.wfh is not None:
            self.wfh.close()
            self.wfh = None
        for seg in self.segments:
            try:
                os.unlink(seg[0])
            except OSError:
                pass


class ReplicaLink:
    """One PSYNC connection; :meth:`open` does the handshake, :meth:`run` (a thread) reads and acknowledges.

    After :meth:`open`: ``mode`` is ``full`` (``replid``/``offset`` from ``+FULLRESYNC``, then the RDB in
    ``rdb_spool``) or ``continue`` (the stream goes on at ``offset``); ``transfer`` is ``disk``/``diskless``.
    """

    def __init__(self, endpoint, spool_dir, passphrase=None, version=None, name='sync'):
        self.endpoint = endpoint
        self.spool_dir = spool_dir
        self.passphrase = passphrase
        self.version = version
        self.name = name
        self.client = self.conn = self.sock = None
        self.buf = b''
        self.mode = self.transfer = self.replid = None
        self.offset = None
        self.rdb_size = None
        self.rdb_spool = self.stream_spool = None
        self.applied = None          # set by the applier: offset to acknowledge
        self.ack_now = False
        self.stop = False
        self.closed_error = None
        self.rdb_bytes = 0
        self.rdb_done = threading.Event()
        self.rdb_complete = False    # the whole RDB arrived (its size, or the EOF mark)
        self.tee = None              # set before start(): write(bytes) gets every RDB byte, complete() the end
        self.received = 0            # stream bytes received after the RDB
        self.replconf = {}
        self.thread = None

    # -- socket helpers ---------------------------------------------------------------------------
    def _err(self, text, kind='protocol'):
        return KVError('%s (source %s)' % (text, self.endpoint.address), kind=kind, endpoint=self.endpoint.address)

    def _recv(self, size=RECV_SIZE):
        try:
            data = self.sock.recv(size)
        except socket.timeout:
            return None
        except (OSError, ValueError) as exc:
            raise self._err('the replication link broke: %s' % exc, kind='connection')
        if not data:
            raise self._err('the source closed the replication link. If its log says "overcoming of output buffer '
                            'limits", raise its client-output-buffer-limit replica', kind='connection')
        return data

    def _closed(self, what):
        return self._err('%s: the source closed the replication link' % what, kind='connection')

    def _send(self, data):
        try:
            self.sock.sendall(data)
        except (OSError, socket.timeout, ValueError) as exc:
            raise self._err('cannot write to the replication link: %s' % exc, kind='connection')

    # -- handshake --------------------------------------------------------------------------------
    def open(self, replid=None, offset=None):
        self.client = self.endpoint.client(db=0, check=False)
        pool = self.client.connection_pool
        try:
            try:
                self.conn = pool.get_connection()
            except TypeError:  # redis-py < 5.1 wants a command name
                self.conn = pool.get_connection('PSYNC')
            self.conn.connect()
        except Exception as exc:
            self.close()
            raise self.endpoint.error(exc, 'connecting to the source as a replica')
        self.sock = self.conn._sock
        self.sock.settimeout(0.25)
        hand = Handshake(self.endpoint, self._recv, lambda data, what: self._send(data), self._closed,
                         timeout=max(60.0, self.endpoint.socket_timeout))
        commands = [('listening-port', (b'listening-port', b'0')), ('capa', (b'capa', b'eof', b'capa', b'psync2'))]
        if self.version:
            commands.append(('version', (b'version', self.version.encode())))
        self.replconf = hand.replconf(commands)
        if self.replconf['capa'] != 'ok':
            raise self._err('the source refused REPLCONF: %s. Grant the user +replconf +psync' % self.replconf['capa'],
                            kind='noperm' if 'NOPERM' in self.replconf['capa'] else 'protocol')
        if replid and offset is not None:
            self._send(pack_command(b'PSYNC', replid.encode(), b'%d' % (offset + 1)))
        else:
            self._send(pack_command(b'PSYNC', b'?', b'-1'))
        line = hand.line('PSYNC', skip_newlines=True)
        if line.startswith(b'-LOADING'):
            raise self._err('the source is loading its data set', kind='loading')
        if line.startswith(b'-'):
            text = scrub(line[1:300].decode('utf-8', 'replace'), self.endpoint.secrets)
            raise self._err('the source refused PSYNC: %s. Live copy needs a user with +psync +replconf on a source '
                            'that allows replication; use the offline path otherwise' % text,
                            kind='noperm' if 'NOPERM' in text else 'protocol')
        parts = line.split()
        if parts[0] == b'+FULLRESYNC' and len(parts) == 3:
            self.mode = 'full'
            self.replid = parts[1].decode()
            self.offset = int(parts[2])
            header = hand.line('the RDB transfer header', skip_newlines=True)
            framing = transfer_header(header)
            if framing is None:
                raise self._err('expected an RDB transfer header, got %r' % header[:60])
            if framing[0] == 'diskless':
                self.transfer, self.mark = framing
            else:
                self.transfer, self.rdb_size = framing
            self.rdb_spool = Spool(self.spool_dir, '%s.rdb' % self.name, self.passphrase)
        elif parts[0] == b'+CONTINUE':
            self.mode = 'continue'
            if len(parts) > 1:
                self.replid = parts[1].decode()
            else:
                self.replid = replid
            self.offset = offset
            self.rdb_done.set()
        else:
            raise self._err('PSYNC: unexpected reply %r' % line[:80])
        self.buf = hand.buf
        self.applied = self.offset
        self.stream_spool = Spool(self.spool_dir, '%s.stream' % self.name, self.passphrase)
        return self

    # -- the reader thread ------------------------------------------------------------------------
    def start(self):
        self.thread = threading.Thread(target=self.run, name='kv-sync-reader')
        self.thread.daemon = True
        self.thread.start()

    def run(self):
        error = None
        try:
            if self.mode == 'full':
                self._read_rdb()
            self.rdb_done.set()
            self._ack()
            last_ack = time.time()
            data, self.buf = self.buf, b''
            while not self.stop:
                if data:
                    self.received += len(data)
                    self.stream_spool.append(data)
                if self.ack_now or time.time() - last_ack >= ACK_INTERVAL:
                    self.ack_now = False
                    self._ack()
                    last_ack = time.time()
                data = self._recv()
        except KVError as exc:
            error = exc
        except Exception as exc:  # pragma: no cover - a bug: surface it to the applier
            error = KVError('the replication reader failed: %s: %s' % (type(exc).__name__, exc))
        finally:
            self.closed_error = error
            if self.rdb_spool is not None and not self.rdb_spool.done:
                self.rdb_spool.finish(error or self._err('the RDB transfer was cut off', kind='truncated'))
            self.rdb_done.set()
            self.stream_spool.finish(error)

    def _read_rdb(self):
        spool, tee = self.rdb_spool, self.tee
        if self.transfer == 'disk':
            remaining = self.rdb_size
            first, self.buf = self.buf[:remaining], self.buf[remaining:]
            while True:
                if first:
                    spool.append(first)
                    if tee is not None:
                        tee.write(first)
                    remaining -= len(first)
                    self.rdb_bytes += len(first)
                if remaining <= 0:
                    self.rdb_complete = True
                    break
                if self.stop:
                    break
                first = self._recv(min(RECV_SIZE, remaining))
        else:
            held, self.buf = self.buf, b''
            while not self.stop:
                if len(held) >= EOF_MARK_SIZE and held.endswith(self.mark):
                    rest = held[:-EOF_MARK_SIZE]
                    if rest:
                        spool.append(rest)
                        if tee is not None:
                            tee.write(rest)
                        self.rdb_bytes += len(rest)
                    self.rdb_complete = True
                    break
                data = self._recv()
                if data:
                    held += data
                if len(held) > EOF_MARK_SIZE + RECV_SIZE:
                    cut = len(held) - EOF_MARK_SIZE
                    part, held = held[:cut], held[cut:]
                    spool.append(part)
                    if tee is not None:
                        tee.write(part)
                    self.rdb_bytes += cut
        spool.finish()
        if tee is not None and self.rdb_complete:
            tee.complete()

    def _ack(self):
        if self.applied is not None:
            self._send(pack_command(b'REPLCONF', b'ACK', b'%d' % self.applied))

    def close(self):
        self.stop = True
        if self.thread is not None and self.thread is not threading.current_thread():
            if self.conn is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except (OSError, AttributeError):
                    pass
            self.thread.join(5)
        if self.conn is not None:
            try:
                self.conn.disconnect()
            except Exception:  # pragma: no cover - closing only
                pass
            self.conn = None
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # pragma: no cover
                pass
            self.client = None

    def cleanup(self):
        for spool in (self.rdb_spool, self.stream_spool):
            if spool is not None:
                spool.close()
