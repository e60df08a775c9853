# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The two wires of a kv_verify worker: one request to the source and the target, both replies read.

The servers work at the same time: both requests are sent before either reply is read.  A reply too big to
hold (:class:`~._wire.ReplyCut`) stops the read; the caller reads the part again with :meth:`PairWires.read_spooled`,
where a big payload is a :class:`~._spooled_payload.SpooledPayload` (a temp file) on each side.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._text import now_ms
from ansible_collections.kvtools.migration.plugins.module_utils._wire import (
    ReplyCut, pack_expiry_mget, pack_key_commands, pack_mget, read_lines)


class PairWires:
    """The source and target :class:`~._wire.Wire` of one worker, with the expiry command of each side
    (``PEXPIRETIME`` or ``PTTL``); ``fail(exc, side, action)`` gives the exception to raise."""

    def __init__(self, source_wire, target_wire, source_exp, target_exp, fail):
        self.source_wire = source_wire
        self.target_wire = target_wire
        self.source_exp = source_exp
        self.target_exp = target_exp
        self.fail = fail

    def _send(self, src_buf, tgt_buf):
        for wire, buf, side in ((self.source_wire, src_buf, 'source'), (self.target_wire, tgt_buf, 'target')):
            try:
                wire.send(buf, packed=True)
            except Exception as exc:
                raise self.fail(exc, side, 'reading')

    def exchange(self, src_buf, tgt_buf, count, lines=0, exact=True):
        """Send both buffers, then read both sides' replies: the two servers work at the same time.

        With ``lines`` the first replies are that many one-line replies (the expiry integers) read as raw
        lines (see :func:`read_lines`), then ``count`` replies parsed as usual.  Returns per side
        ``(lines or None, replies, time in ms)``.  ``exact``: no reply is a status line (see
        :meth:`~._wire.Wire.recv`).
        """
        self._send(src_buf, tgt_buf)
        out = []
        for wire, side in ((self.source_wire, 'source'), (self.target_wire, 'target')):
            try:
                raw, rest = None, b''
                if lines:
                    raw, rest = read_lines(wire.sock, lines)
                out.append((raw, wire.recv(count, exact=exact, first=rest), now_ms()))
            except ReplyCut:  # a value too big to hold: the caller reads the part again with spooling
                if side == 'source':
                    self.target_wire.reset()  # the target's replies are still in flight
                raise
            except Exception as exc:
                raise self.fail(exc, side, 'reading')
        return out

    def read_spooled(self, valued, others):
        """After a :class:`ReplyCut`: DUMP + expiry (TYPE + expiry for ``others``) on both sides again, read
        with spooling, so a big payload is a SpooledPayload (a temp file) on each side, never in memory."""
        src_buf, tgt_buf = self.dump_buffers(valued, others)
        count = 2 * (len(valued) + len(others))
        self._send(src_buf, tgt_buf)
        out = []
        for wire, side in ((self.source_wire, 'source'), (self.target_wire, 'target')):
            try:
                out.append((None, wire.recv_spooled(count), now_ms()))
            except Exception as exc:
                raise self.fail(exc, side, 'reading')
        return out

    # -- the three readers: each sends one request to both sides and returns, per side,
    #    (raw expiry lines or None, replies, time in ms) - the shape of :meth:`exchange`
    def read_expiry_lines_mget(self, valued):
        """Expiry integers first, read as raw lines (equal lines on both sides need no parsing), then MGET."""
        buf = pack_expiry_mget(self.source_exp, valued)
        return self.exchange(buf, buf, 1, len(valued))

    def read_mget_expiry(self, valued):
        """MGET, then the expiry of each key (servers whose expiry commands differ)."""
        head = pack_mget(valued)
        src_buf = head + pack_key_commands((self.source_exp,), valued)
        tgt_buf = src_buf if self.source_exp == self.target_exp else head + pack_key_commands((self.target_exp,), valued)
        return self.exchange(src_buf, tgt_buf, 1 + len(valued))

    def dump_buffers(self, valued, others):
        src_buf = pack_key_commands((b'DUMP', self.source_exp), valued) + pack_key_commands((b'TYPE', self.source_exp), others)
        tgt_buf = src_buf if self.source_exp == self.target_exp else \
            pack_key_commands((b'DUMP', self.target_exp), valued) + pack_key_commands((b'TYPE', self.target_exp), others)
        return src_buf, tgt_buf

    def read_dump_expiry(self, valued, others):
        """DUMP + expiry per valued key, TYPE + expiry per other key."""
        src_buf, tgt_buf = self.dump_buffers(valued, others)
        return self.exchange(src_buf, tgt_buf, 2 * (len(valued) + len(others)), exact=not others)  # TYPE: a status
