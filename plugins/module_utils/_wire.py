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

Big values never sit in memory whole.  :meth:`Wire.recv` notices a reply that grows past
:data:`BIG_REPLY` before it is complete (or a batch whose replies pass :data:`RECV_BUDGET`): it drops the
connection, opens a new one and raises :class:`ReplyCut` with the replies complete so far; the caller sends
the rest again and reads it with :meth:`Wire.recv_spooled`, which writes every bulk reply above
:data:`BIG_REPLY` to a 0600 temp file as it arrives (a :class:`~._spooled_payload.SpooledPayload`).
:meth:`Wire.call_restores` streams such a payload from its file into a RESTORE.  The usual small-key path
pays one comparison per socket read for this.
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

from ansible_collections.kvtools.migration.plugins.module_utils._spooled_payload import BIG_VALUE, ReplySpool

BIG_REPLY = BIG_VALUE     # a bulk reply above this is spooled to a temp file, never held whole
RECV_BUDGET = 32 << 20    # reply bytes one recv() takes in before the rest is read with spooling
SMALL_BULK = 64 << 10     # past RECV_BUDGET, bulk replies above this are spooled too


class ReplyError(Exception):
    """An error reply of one command in a batch (the server's words, e.g. ``BUSYKEY ...``)."""


class ReplyCut(Exception):
    """:meth:`Wire.recv` stopped at a reply too big to hold (or a batch past its budget).

    ``replies``: the replies complete before it.  The wire is on a new connection with nothing in flight:
    the caller sends the commands of the missing replies again and reads them with :meth:`Wire.recv_spooled`.
    """

    def __init__(self, replies):
        Exception.__init__(self, 'a reply too big to hold in memory after %d replies' % len(replies))
        self.replies = replies


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


def restore_head(key, length, expire_at, raw, absolute, replace):
    """``(head, tail)`` of ``RESTORE key ttl <payload of length bytes> [ABSTTL] [REPLACE]``: the payload goes
    between them (streamed from a file).  ``expire_at`` and ``raw`` as in :func:`pack_restores`."""
    flags = [b'REPLACE'] if replace else []
    if expire_at is None:
        ttl = b'0'
    elif absolute:
        ttl = b'%d' % expire_at
        flags.insert(0, b'ABSTTL')
    else:
        ttl = b'%d' % raw
    head = b'*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n' % (
        4 + len(flags), len(key), key, len(ttl), ttl, length)
    return head, b'\r\n' + b''.join(b'$%d\r\n%s\r\n' % (len(flag), flag) for flag in flags)


def recv_key_replies(wire, names, keys):
    """The replies of ``NAME key`` for each of ``names`` and each of ``keys``, sent on ``wire`` with
    ``pack_key_commands(names, keys)``; their bytes replies must be bulk strings.  After a :class:`ReplyCut`
    the keys not read yet are asked for again and read with spooling (a big value is a SpooledPayload)."""
    per_key = len(names)
    try:
        return wire.recv(per_key * len(keys), exact=True)
    except ReplyCut as cut:
        done = len(cut.replies) // per_key
        wire.send(pack_key_commands(names, keys[done:]), packed=True)
        return cut.replies[:per_key * done] + wire.recv_spooled(per_key * (len(keys) - done))


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

    def __init__(self, client, spool_dir=None):
        self.client = client
        self.spool_dir = spool_dir
        self.conn = open_connection(client)
        self.sock = self.conn._sock
        self.reader = hiredis.Reader(replyError=ReplyError) if HAS_HIREDIS else None
        self.spooling = SpoolingReader(self.sock, spool_dir)

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

    def recv(self, count, exact=False, first=b''):
        """The next ``count`` replies.

        A reply that grows past :data:`BIG_REPLY` before it is complete (or replies past
        :data:`RECV_BUDGET`) are read on with spooling (:meth:`recv_spooled`).  With ``exact`` (the caller
        knows that every bytes reply is a bulk string, none a status line) the reading goes on where hiredis
        stopped: the last chunks fed are kept (about the size of the reply being read), and the complete
        replies' wire size says where in them the cut reply starts.  Otherwise (or when an error reply makes
        that unsure) the connection is dropped and :class:`ReplyCut` is raised: the caller asks again.
        ``first``: bytes already received for these replies (fed before anything else).
        """
        if self.reader is None:
            if first:
                self.spooling.buf += first
            return self.recv_spooled(count)
        out = []
        reader = self.reader
        clean = exact and not reader.has_data()  # this call's bytes start with its first reply
        sock = self.sock
        gets = reader.gets
        fed = len(first)
        kept = [first]  # the last chunks fed: they hold the reply being read
        kept_bytes = fed
        if first:
            reader.feed(first)
        while len(out) < count:
            reply = gets()
            if reply is False:
                pending = reader.len()  # unparsed bytes (and at most 1023 parsed ones)
                if fed > RECV_BUDGET or pending > BIG_REPLY:
                    return out + self._read_on(out, count, kept, fed - kept_bytes, clean, max(0, fed - pending))
                data = _recv_chunk(sock)
                fed += len(data)
                reader.feed(data)
                kept.append(data)
                kept_bytes += len(data)
                while kept_bytes - len(kept[0]) > pending + len(data) + 1024:
                    kept_bytes -= len(kept.pop(0))
                continue
            out.append(reply)
        return out

    def _read_on(self, out, count, kept, kept_from, clean, held):
        """After ``out``, the rest of ``count`` replies with spooling: from the kept chunks (``kept_from``: their
        offset in this call's bytes) when the cut reply's start is known exactly, else :class:`ReplyCut`.
        ``held``: about the bytes of ``out`` (they count against :data:`RECV_BUDGET`)."""
        start = wire_size(out) if clean else None
        if start is None or start < kept_from:
            self.reset()
            raise ReplyCut(out)
        tail = b''.join(kept)[start - kept_from:]
        del kept[:]
        if tail[:1] not in (b'$', b'*'):  # pragma: no cover - a reply that is not what the caller said
            self.reset()
            raise ReplyCut(out)
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.spooling.buf = bytearray(tail)
        self.spooling.pos = 0
        del tail
        return self.recv_spooled(count - len(out), held)

    def recv_spooled(self, count, held=0):
        """The next ``count`` replies, parsed here: bulk replies above :data:`BIG_REPLY` (and above
        :data:`SMALL_BULK` once :data:`RECV_BUDGET` is held) come as SpooledPayload objects.  Call it after a
        :class:`ReplyCut` (or on a wire whose hiredis parser holds nothing).  ``held``: reply bytes the caller
        already holds."""
        if self.reader is None:
            return self.spooling.replies(count, held)
        if self.reader.has_data():  # pragma: no cover - a caller's mistake, never silently misread
            raise RuntimeError('recv_spooled() with replies buffered by hiredis: only after a ReplyCut')
        out = self.spooling.replies(count, held)
        rest = self.spooling.take_rest()
        if rest:  # the start of later replies: hiredis goes on from there
            self.reader.feed(rest)
        return out

    def reset(self):
        """Drop the connection with whatever is in flight on it; go on on a new one (same db and user)."""
        try:
            self.conn.disconnect()
        except Exception:  # pragma: no cover - closing only
            pass
        self.conn.connect()
        self.sock = self.conn._sock
        self.reader = hiredis.Reader(replyError=ReplyError) if HAS_HIREDIS else None
        self.spooling = SpoolingReader(self.sock, self.spool_dir)

    def call_restores(self, items, absolute, replace_keys=()):
        """RESTORE ``items`` (as :func:`pack_restores`) and return the replies; a spooled payload is streamed
        from its file."""
        try:
            data = pack_restores(items, absolute, replace_keys)
        except TypeError:  # a SpooledPayload among the payloads
            data = None
        if data is not None:
            return self.call_packed(data, len(items))
        packed = []
        for item in items:
            key, payload = item[0], item[1]
            if payload.__class__ is bytes:
                packed.append(pack_restores([item], absolute, replace_keys))
                continue
            if packed:
                send_all(self.sock, b''.join(packed))
                packed = []
            head, tail = restore_head(key, len(payload), item[2], item[3], absolute, key in replace_keys)
            send_all(self.sock, head)
            for chunk in payload.chunks():
                send_all(self.sock, chunk)
            send_all(self.sock, tail)
        if packed:
            send_all(self.sock, b''.join(packed))
        return self.recv(len(items))

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


def wire_size(replies):
    """The RESP2 bytes of ``replies`` as hiredis parsed them, bytes taken as bulk strings; None when that
    cannot be known (an error reply, whose raw bytes are not kept)."""
    total = 0
    for reply in replies:
        cls = reply.__class__
        if cls is bytes:
            total += len(reply) + len(b'%d' % len(reply)) + 5
        elif cls is int:
            total += len(b'%d' % reply) + 3
        elif reply is None:
            total += 5
        elif cls is list:
            inner = wire_size(reply)
            if inner is None:
                return None
            total += inner + len(b'%d' % len(reply)) + 3
        else:
            return None
    return total


def _recv_chunk(sock, size=1 << 20):
    """The next bytes from ``sock``; a closed connection is an error here."""
    data = recv_some(sock, size)
    if not data:
        raise rexc.ConnectionError('Connection closed by server.')
    return data


class SpoolingReader:
    """A RESP2 parser on ``sock`` that never holds a bulk reply above :data:`BIG_REPLY`: it goes to a temp
    file in ``spool_dir`` as it arrives (also every one above :data:`SMALL_BULK` once :data:`RECV_BUDGET` of
    replies is held).  Replies as hiredis gives them: bytes, int, None, lists, ReplyError objects."""

    def __init__(self, sock, spool_dir=None):
        self.sock = sock
        self.spool_dir = spool_dir
        self.buf = bytearray()
        self.pos = 0
        self.held = 0

    def _fill(self):
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += _recv_chunk(self.sock)

    def _line(self):
        while True:
            end = self.buf.find(b'\r\n', self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos:end])
                self.pos = end + 2
                return line
            self._fill()

    def replies(self, count, held=0):
        self.held = held
        return [self.reply() for dummy in range(count)]

    def take_rest(self):
        """The bytes received beyond the replies read (the start of later replies)."""
        rest = bytes(self.buf[self.pos:])
        self.buf = bytearray()
        self.pos = 0
        return rest

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b'$':
            size = int(rest)
            return None if size < 0 else self._bulk(size)
        if kind == b':':
            return int(rest)
        if kind == b'*':
            size = int(rest)
            return None if size < 0 else [self.reply() for dummy in range(size)]
        if kind == b'+':
            return rest
        if kind == b'-':
            return ReplyError(rest.decode('utf-8', 'replace'))
        raise rexc.InvalidResponse('Protocol error: %r' % line[:40])

    def _bulk(self, size):
        if size <= BIG_REPLY and (self.held <= RECV_BUDGET or size <= SMALL_BULK):
            while len(self.buf) - self.pos < size + 2:
                self._fill()
            data = bytes(self.buf[self.pos:self.pos + size])
            self.pos += size + 2
            self.held += size
            return data
        spool = ReplySpool(self.spool_dir, size)
        try:
            have = min(size, len(self.buf) - self.pos)
            if have:
                spool.write(bytes(self.buf[self.pos:self.pos + have]))
                self.pos += have
            while spool.missing:
                spool.write(_recv_chunk(self.sock, min(spool.missing, 1 << 20)))
            while len(self.buf) - self.pos < 2:  # the CRLF after the value
                self._fill()
            self.pos += 2
        except BaseException:
            spool.abort()
            raise
        return spool.finish()


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
