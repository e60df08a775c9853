# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The replication stream: receive a server's RDB as a replica does (``REPLCONF`` + ``SYNC``).

:class:`ReplicationStream` accepts a sized transfer (``$<len>``) and a diskless stream
(``$EOF:<40-byte mark>``), and yields the RDB bytes in order.  The backup engine validates and stores
them; the stream itself never writes anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

try:
    from redis import exceptions as rexc
except ImportError:  # pragma: no cover - the module reports missing_required_lib
    rexc = None

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._wire import open_connection, recv_some, send_all

RECV_SIZE = 1 << 20              # bytes asked of the socket per read
EOF_MARK_SIZE = 40


def pack_command(*args):
    """RESP for one command of byte-string arguments."""
    return b'*%d\r\n' % len(args) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in args)


def transfer_header(line):
    """``('diskless', mark)`` for ``$EOF:<40-byte mark>``, ``('disk', size)`` for ``$<size>``, else None."""
    if line.startswith(b'$EOF:') and len(line) >= 5 + EOF_MARK_SIZE:
        return 'diskless', line[5:5 + EOF_MARK_SIZE]
    if line.startswith(b'$') and line[1:].isdigit():
        return 'disk', int(line[1:])
    return None


class Handshake:
    """The replica's side of the handshake, shared by kv_rdb_backup (``SYNC``) and kv_sync (``PSYNC``).

    ``recv(size)`` returns bytes, None when nothing arrived within the socket's timeout, or ``b''`` when the
    server closed the connection (then ``closed(what)`` is the error raised); ``send(data, what)`` writes.
    ``timeout``: seconds one reply line may take (None: the socket's own timeout decides).  What the server
    sent after the last line read stays in :attr:`buf` (the start of the RDB or the stream).
    """

    def __init__(self, endpoint, recv, send, closed, timeout=None):
        self.endpoint = endpoint
        self.recv = recv
        self.send = send
        self.closed = closed
        self.timeout = timeout
        self.buf = b''

    def line(self, what, skip_newlines=False):
        """One reply line without CRLF.  With ``skip_newlines`` the keepalive newlines a server sends
        while it prepares the RDB are skipped first."""
        deadline = None if self.timeout is None else time.time() + self.timeout
        while True:
            if skip_newlines:
                self.buf = self.buf.lstrip(b'\n')
            pos = self.buf.find(b'\r\n')
            if pos >= 0:
                line, self.buf = self.buf[:pos], self.buf[pos + 2:]
                return line
            if len(self.buf) > 4096:
                raise KVError('%s: the server sent an unexpected reply (%r...) (%s)'
                              % (what, self.buf[:60], self.endpoint.address), kind='protocol',
                              endpoint=self.endpoint.address)
            if deadline is not None and time.time() > deadline:
                raise KVError('%s: no reply from %s' % (what, self.endpoint.address), kind='timeout',
                              endpoint=self.endpoint.address)
            data = self.recv(4096)
            if data is not None and not data:
                raise self.closed(what)
            if data:
                self.buf += data

    def replconf(self, commands):
        """Send ``[(name, (arg, ...))]`` as ``REPLCONF arg ...`` in one write; read the replies in order.

        Returns ``{name: 'ok' or the server's words}`` (secrets scrubbed); the caller decides what a refusal means.
        """
        if not commands:
            return {}
        self.send(b''.join(pack_command(b'REPLCONF', *args) for dummy_name, args in commands), 'REPLCONF')
        replies = {}
        for name, dummy_args in commands:
            line = self.line('REPLCONF %s' % name, skip_newlines=True)
            replies[name] = 'ok' if line.startswith(b'+') else scrub(line[1:200].decode('utf-8', 'replace'),
                                                                     self.endpoint.secrets)
        return replies


class SyncRefused(KVError):
    """The server answered SYNC (or the handshake) with an error: a logical backup may still work."""


DEFAULT_CAPABILITIES = ('eof', 'rdb-only', 'version')


class ReplicationStream:
    """One replica-style connection that receives the server's RDB.

    The connection comes from the endpoint's own client factory, so TLS (CA, SNI via
    ``server_name``, client certificates), timeouts and AUTH work as for every other module.
    ``capabilities``: ``eof`` (accept a diskless stream), ``rdb-only`` (ask for the RDB only,
    Redis >= 7.0 / Valkey), ``version`` (``REPLCONF version``, Valkey >= 8; Valkey 9 needs it for
    hashes with field TTLs).  Replies to REPLCONF that are errors are ignored (older servers).
    """

    def __init__(self, endpoint, server_version=None, capabilities=DEFAULT_CAPABILITIES):
        self.endpoint = endpoint
        self.server_version = server_version
        self.capabilities = tuple(capabilities)
        self.client = None
        self.conn = None
        self.sock = None
        self.buf = b''
        self.transfer = None
        self.expected = None
        self.replconf = {}
        self.received = 0

    def _error(self, exc, action):
        return self.endpoint.error(exc, action)

    def _recv(self, size=RECV_SIZE):
        try:
            return recv_some(self.sock, size)
        except Exception as exc:
            raise self._error(exc, 'receiving the RDB')

    def _send(self, data, action='the handshake'):
        try:
            send_all(self.sock, data)
        except Exception as exc:
            raise self._error(exc, action)

    def _closed(self, action):
        return KVError('%s: the server closed the connection before it sent the RDB (%s). If SYNC needs '
                       'REPLCONF first there, grant the user +replconf as well as +sync'
                       % (action, self.endpoint.address), kind='truncated', endpoint=self.endpoint.address)

    def open(self):
        """Connect, authenticate, send the REPLCONF capabilities and SYNC; read the transfer header.

        Raises :class:`SyncRefused` when the server answers SYNC with an error (NOPERM, unknown
        command, ...), another KVError for connection problems.
        """
        self.client = self.endpoint.client(db=0, check=False)
        try:
            self.conn = open_connection(self.client, 'SYNC')  # AUTH happens here, as for every client
        except Exception as exc:
            self.close()
            raise self.endpoint.error(exc, 'connecting to %s for SYNC' % self.endpoint.label)
        self.sock = self.conn._sock
        hand = Handshake(self.endpoint, self._recv, self._send, self._closed)
        commands = []
        if 'eof' in self.capabilities:
            commands.append(('capa', (b'capa', b'eof')))
        if 'rdb-only' in self.capabilities:
            commands.append(('rdb-only', (b'rdb-only', b'1')))
        if 'version' in self.capabilities and self.server_version:
            commands.append(('version', (b'version', self.server_version.encode())))
        self.replconf = hand.replconf(commands)
        hand.send(b'SYNC\r\n', 'SYNC')
        while True:
            line = hand.line('SYNC', skip_newlines=True)
            if line.startswith(b'+'):  # e.g. +FULLRESYNC from servers that answer SYNC like PSYNC
                continue
            break
        if line.startswith(b'-'):
            text = scrub(line[1:], self.endpoint.secrets)
            exc = rexc.ResponseError(text) if rexc else Exception(text)
            err = self.endpoint.error(exc, 'SYNC')
            refused = SyncRefused(err.message, kind=err.kind, endpoint=err.endpoint, details=err.details)
            self.close()
            raise refused
        header = transfer_header(line)
        if header is None:
            self.close()
            raise KVError('SYNC: the server sent %r where an RDB transfer header ($<length> or $EOF:<mark>) was '
                          'expected (%s)' % (line[:60], self.endpoint.address), kind='protocol',
                          endpoint=self.endpoint.address)
        if header[0] == 'diskless':
            self.transfer, self.mark = 'eof-stream', header[1]
        else:
            self.transfer, self.expected = 'sized', header[1]
        self.buf = hand.buf
        return self

    def payload(self):
        """Yield the RDB bytes in order; raise KVError (kind ``truncated``) if the stream ends early."""
        if self.transfer == 'sized':
            remaining = self.expected
            first, self.buf = self.buf[:remaining], self.buf[remaining:]
            if first:
                remaining -= len(first)
                self.received += len(first)
                yield first
            while remaining > 0:
                data = self._recv(min(RECV_SIZE, remaining))
                if not data:
                    text = ('the RDB transfer from %s ended early: %d of %d bytes received. Nothing was written to '
                            'dest; run the backup again' % (self.endpoint.address, self.received, self.expected))
                    raise KVError(text, kind='truncated', endpoint=self.endpoint.address)
                remaining -= len(data)
                self.received += len(data)
                yield data
            return
        # diskless: the stream ends with the 40-byte mark of its header; hold the last 40 bytes back
        held = self.buf
        self.buf = b''
        while True:
            if len(held) >= EOF_MARK_SIZE and held.endswith(self.mark):
                rest = held[:-EOF_MARK_SIZE]
                if rest:
                    self.received += len(rest)
                    yield rest
                return
            data = self._recv()
            if not data:
                raise KVError('the RDB stream from %s ended without its end mark after %d bytes: the transfer was cut '
                              'off. Nothing was written to dest; run the backup again'
                              % (self.endpoint.address, self.received + len(held)),
                              kind='truncated', endpoint=self.endpoint.address)
            held += data
            if len(held) > EOF_MARK_SIZE + RECV_SIZE:
                cut = len(held) - EOF_MARK_SIZE
                self.received += cut
                yield held[:cut]
                held = held[cut:]

    def close(self):
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
