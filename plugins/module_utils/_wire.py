# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Raw pipelining on one authenticated connection, for the copy paths' hot loops.

redis-py's Pipeline costs tens of microseconds per command in Python; a copy of a million
small keys sends three million commands.  :class:`Wire` packs a whole batch into one buffer,
sends it with one ``sendall`` and reads the replies with hiredis when it is installed (redis-py's
own parser otherwise).  Error replies are returned in place as :class:`ReplyError` objects, not
raised, so one refused key never desynchronises the batch.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

try:
    import hiredis
    HAS_HIREDIS = True
except ImportError:  # pragma: no cover - optional accelerator
    hiredis = None
    HAS_HIREDIS = False

try:
    from redis import exceptions as rexc
except ImportError:  # pragma: no cover
    rexc = None


class ReplyError(Exception):
    """An error reply of one command in a batch (the server's words, e.g. ``BUSYKEY ...``)."""


def _arg(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, int):
        return b'%d' % value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode('utf-8')


def pack(commands):
    """RESP-encode a sequence of commands (each a sequence of args) into one bytes buffer."""
    out = []
    append = out.append
    for command in commands:
        append(b'*%d\r\n' % len(command))
        for arg in command:
            arg = arg if isinstance(arg, bytes) else _arg(arg)
            append(b'$%d\r\n' % len(arg))
            append(arg)
            append(b'\r\n')
    return b''.join(out)


def pack_key_commands(names, keys):
    """Pack ``NAME key`` for every name in ``names`` (e.g. DUMP, PEXPIRETIME), for every key.

    One formatting operation per key: this is the hot path of the source side.
    """
    fmt = b''.join(b'*2\r\n$%d\r\n%s\r\n$%%d\r\n%%s\r\n' % (len(n), n) for n in names)
    count = len(names)
    return b''.join([fmt % ((len(k), k) * count) for k in keys])


def pack_restores(items, absolute, replace_keys=()):
    """Pack ``RESTORE key ttl payload [ABSTTL] [REPLACE]`` for copy items.

    ``items`` are ``(key, payload, expire_at_ms or None, raw relative ttl)``; with ``absolute`` the
    expiry is sent as an absolute time (ABSTTL), else the raw relative TTL is used.
    """
    plain = b'*4\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$1\r\n0\r\n$%d\r\n%s\r\n'
    if not replace_keys and not any(item[2] is not None for item in items):
        return b''.join([plain % (len(k), k, len(p), p) for k, p, _e, _r in items])
    fmt = b'*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s%s'
    out = []
    for key, payload, expire_at, raw in items:
        replace = b'$7\r\nREPLACE\r\n' if key in replace_keys else b''
        if expire_at is None:
            ttl, flag = b'0', b''
        elif absolute:
            ttl, flag = b'%d' % expire_at, b'$6\r\nABSTTL\r\n'
        else:
            ttl, flag = b'%d' % raw, b''
        argc = 4 + (1 if flag else 0) + (1 if replace else 0)
        out.append(fmt % (argc, len(key), key, len(ttl), ttl, len(payload), payload, flag, replace))
    return b''.join(out)


class Wire:
    """Pipelined raw commands over a dedicated connection of a redis-py client."""

    def __init__(self, client):
        self.client = client
        self.conn = open_connection(client)
        self.sock = self.conn._sock
        self.reader = hiredis.Reader(replyError=ReplyError) if HAS_HIREDIS else None

    def call(self, commands):
        """Send ``commands`` and return their replies (ReplyError objects for error replies)."""
        if not commands:
            return []
        self.send(commands)
        return self.recv(len(commands))

    def call_packed(self, data, count):
        """Send an already packed buffer of ``count`` commands and return their replies."""
        if not count:
            return []
        self.send(data, packed=True)
        return self.recv(count)

    def send(self, commands, packed=False):
        send_all(self.sock, commands if packed else pack(commands))

    def recv(self, count):
        out = []
        if self.reader is None:
            for dummy in range(count):
                try:
                    out.append(self.conn.read_response(disable_decoding=True))
                except rexc.ResponseError as exc:
                    out.append(ReplyError(str(exc)))
            return out
        reader = self.reader
        sock = self.sock
        gets = reader.gets
        while len(out) < count:
            reply = gets()
            if reply is False:
                reader.feed(_recv_chunk(sock))
                continue
            out.append(reply)
        return out

    def close(self):
        try:
            self.conn.disconnect()
        except Exception:  # pragma: no cover - closing only
            pass
        try:
            self.client.connection_pool.release(self.conn)
        except Exception:  # pragma: no cover
            pass


# -- raw socket access: the one place that touches a connection's socket ----------------------------------

def open_connection(client, command='PING'):
    """A connected (and authenticated) connection of its own from ``client``'s pool.

    Its socket is ``conn._sock``; give it back with ``conn.disconnect()`` and
    ``client.connection_pool.release(conn)``.
    """
    pool = client.connection_pool
    try:
        conn = pool.get_connection()
    except TypeError:  # redis-py < 5.1 wants a command name
        conn = pool.get_connection(command)
    conn.connect()
    return conn


def send_all(sock, data):
    """``sock.sendall(data)`` with socket errors turned into redis-py's exceptions."""
    try:
        sock.sendall(data)
    except socket.timeout as exc:
        raise rexc.TimeoutError('Timeout writing to socket: %s' % exc)
    except OSError as exc:
        raise rexc.ConnectionError('Error while writing to socket: %s' % exc)


def recv_some(sock, size=1 << 20):
    """Up to ``size`` bytes from ``sock`` (``b''`` when the peer closed), socket errors as redis-py's."""
    try:
        return sock.recv(size)
    except socket.timeout as exc:
        raise rexc.TimeoutError('Timeout reading from socket: %s' % exc)
    except OSError as exc:
        raise rexc.ConnectionError('Error while reading from socket: %s' % exc)


def _recv_chunk(sock):
    """The next bytes from ``sock``; a closed connection is an error here."""
    data = recv_some(sock)
    if not data:
        raise rexc.ConnectionError('Connection closed by server.')
    return data


def pack_mget(keys):
    """RESP for ``MGET key...`` with one formatting operation per key (the hot path of strings)."""
    return b'*%d\r\n$4\r\nMGET\r\n' % (len(keys) + 1) + b''.join([b'$%d\r\n%s\r\n' % (len(k), k) for k in keys])


def pack_expiry_mget(command, keys):
    """RESP for ``<command> key`` for every key (PEXPIRETIME), then ``MGET key...``: one format per key."""
    args = [b'$%d\r\n%s\r\n' % (len(k), k) for k in keys]
    each = b'*2\r\n$%d\r\n%s\r\n' % (len(command), command)
    return each + each.join(args) + b'*%d\r\n$4\r\nMGET\r\n' % (len(keys) + 1) + b''.join(args)


def read_lines(sock, count):
    """Read ``count`` one-line replies (integers or errors) raw from ``sock``.

    Returns ``(lines, rest)``: the lines without their CRLF, and the bytes received after them (the start
    of the following replies, for the connection's parser).  A one-line reply holds no CRLF, so the
    first ``count`` CRLFs of the stream end exactly these replies.
    """
    buf = bytearray()
    found = 0
    while found < count:
        data = _recv_chunk(sock)
        start = max(0, len(buf) - 1)  # a CRLF may straddle two reads
        buf += data
        found += buf.count(b'\r\n', start)
    parts = bytes(buf).split(b'\r\n', count)
    return parts[:count], parts[count]


def parse_lines(lines):
    """One-line replies from :func:`read_lines` -> ints (``:n``) or ReplyError objects (``-ERR ...``)."""
    return [int(line[1:]) if line[:1] == b':' else ReplyError(line[1:].decode('utf-8', 'replace'))
            for line in lines]
