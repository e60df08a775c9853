# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What ``kv_sync``'s applier keeps of the commands in flight to the target: a :class:`Batch` per flush, the
target's error replies (:class:`TargetError`) and the packing of one command."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class TargetError(Exception):
    """An error reply of the target (``str()`` is the server's words)."""


def pack_command(args):
    """One command (a list of bytes) in RESP."""
    return b'*%d\r\n' % len(args) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in args)


class Batch:
    """One flush: ``metas`` ``[(label, keys)]`` per command; ``atomic`` when wrapped in MULTI/EXEC.
    A block of snapshot RESTOREs is one batch of ``replies`` commands with one meta (its label)."""
    __slots__ = ('metas', 'atomic', 'replies', 'index', 'end', 'db', 'log_end', 'sent', 'redirect')

    def __init__(self, metas, atomic, end, db, replies=None):
        self.metas = metas
        self.atomic = atomic
        self.replies = (len(metas) + (2 if atomic else 0)) if replies is None else replies
        self.index = 0
        self.end = end       # the stream offset done once the batch is answered (None: no offset)
        self.db = db
        self.log_end = None  # the keys log's size once this batch's keys were logged
        self.sent = None     # a cluster master's applier: the commands as sent, ``[(data, label, keys, tag)]``
        self.redirect = None  # a transaction: the first redirection of one of its commands
