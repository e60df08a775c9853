# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Exact expiries for held keys while the follower streams, so that the drain has little left to do.

With ``ttl_mode='hold'`` the follower writes every expiry ``HOLD_OFFSET`` ms late, so that no key can
expire on the target while the command that renews it is still in transit, and the drain sets the
exact times.  Left to the drain alone, that is every snapshot key with a TTL plus every key the stream
touched: about 1.2 s for the 100,000 TTL keys of a 1M-key instance, inside the write pause.

:class:`BackgroundSettler` (a thread of the follower) does most of it before the pause.  While the
follower is caught up it reads the held-keys log and the touched-keys log from where it stopped, and
for each key, in one script per batch on the target (atomic, so it cannot interleave with a command
of the stream for that key): a held expiry whose exact time lies more than ``margin_ms`` ahead is set
exactly; a held expiry closer than that stays held and the key goes to the settle log, which the
drain reads with the rest of the logs from the offsets reached here (``published``).  A key renewed
later is touched again by the stream and seen again by a later pass.

The margin is the time a renewal may spend in transit after a pass: a follower that falls behind by
more than ``margin_ms`` after settling a key could see that key expire on the target before its
renewal arrives.  Such a key is in the touched-keys log (the renewal touched it), so the final
verification in the pause finds it; nothing is lost silently.  Without EVAL on the target the
settler stops and leaves everything to the drain (whose pipelined fallback cannot interleave safely
with a running stream).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogReader, KeysLogWriter

MARGIN_MS = 120000
PASS_EVERY = 0.5
BATCH = 1000

# KEYS: the keys; ARGV[1]: the hold offset; ARGV[2]: the earliest exact expiry to set (ms).
# Returns {settled, {indexes of held keys left held}}.
SETTLE_SCRIPT = (b"local off = tonumber(ARGV[1]) local min = tonumber(ARGV[2]) local n = 0 local near = {} "
                 b"for i, k in ipairs(KEYS) do local t = redis.call('PEXPIRETIME', k) "
                 b"if t >= off then if t - off >= min then "
                 b"redis.call('PEXPIREAT', k, string.format('%.0f', t - off)) n = n + 1 "
                 b"else near[#near + 1] = i end end end return {n, near}")


def settle_batch(client, keys, hold_offset, earliest_ms=0):
    """``(settled, [keys still held])`` for ``keys`` of the client's db; None when the target refuses EVAL."""
    try:
        reply = client.execute_command('EVAL', SETTLE_SCRIPT, len(keys), *(list(keys) + [hold_offset, earliest_ms]))
    except Exception as exc:  # no EVAL for this user (or scripts disabled)
        if reply_kind(exc) in ('noperm', 'unknown_command') or 'disabled' in str(exc).lower():
            return None
        raise
    return int(reply[0]), [keys[int(i) - 1] for i in (reply[1] or [])]


class BackgroundSettler(threading.Thread):
    """Sets exact expiries of held keys while the follower streams (see the module text).

    ``logs``: ``{'held': (path, offset), 'keys': (path, offset)}`` to read from; ``settle_log``: the
    log of keys left held (appended); ``ready()``: True while the follower is streaming and caught up;
    ``bounds()``: ``{'held': size, 'keys': size}``, how far each log holds only keys whose commands the
    target has answered.  The logs are written ahead of the commands: a key read past that point could
    have its held expiry written after the pass looked at it, and would never be looked at again.
    ``published`` is ``{'held': offset, 'keys': offset}``: every record before those offsets is either
    settled or in the settle log (flushed).
    """

    def __init__(self, target_ep, hold_offset, logs, settle_log, ready, bounds, margin_ms=MARGIN_MS,
                 every=PASS_EVERY, clock=time.time):
        super(BackgroundSettler, self).__init__(name='kv-sync-settler')
        self.daemon = True
        self.target = target_ep
        self.hold_offset = hold_offset
        self.paths = dict((name, path) for name, (path, _offset) in logs.items() if path)
        self.offsets = dict((name, offset or 0) for name, (path, offset) in logs.items() if path)
        self.published = dict(self.offsets)
        self.settle_log = settle_log
        self.ready = ready
        self.bounds = bounds
        self.margin_ms = margin_ms
        self.every = every
        self.clock = clock
        self.stopping = threading.Event()
        self.settled = 0
        self.left_held = 0
        self.disabled = None
        self.last_error = None
        self.clients = {}

    def stop(self, wait=5.0):
        self.stopping.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(wait)

    def run(self):
        writer = KeysLogWriter(self.settle_log)
        try:
            while not self.stopping.wait(self.every):
                if self.disabled or not self.ready():
                    continue
                try:
                    self.one_pass(writer)
                    self.last_error = None
                except Exception as exc:  # a lost connection: the next pass (or the drain) does it
                    self.last_error = '%s: %s' % (type(exc).__name__, exc)
                    self._close_clients()
        finally:
            writer.close()
            self._close_clients()

    def _close_clients(self):
        for client in self.clients.values():
            try:
                client.close()
            except Exception:  # pragma: no cover - closing only
                pass
        self.clients = {}

    def one_pass(self, writer):
        bounds = self.bounds()
        for name in ('held', 'keys'):
            if name not in self.paths or self.offsets[name] >= bounds.get(name, 0):
                continue
            bound = bounds[name]
            reader = KeysLogReader(self.paths[name], self.offsets[name])
            reached = self.offsets[name]
            batch = {}
            for db, key in reader.records():
                if self.stopping.is_set() or self.disabled:
                    return
                if reader.offset > bound:
                    break
                reached = reader.offset
                if key is None:  # a flushed or swapped db: the drain scans it
                    writer.whole_db(db)
                    continue
                keys = batch.setdefault(db, set())
                keys.add(key)
                if len(keys) >= BATCH:
                    self._settle(writer, db, list(keys))
                    batch[db] = set()
            for db, keys in batch.items():
                if keys:
                    self._settle(writer, db, list(keys))
            if self.disabled:
                return
            self.offsets[name] = reached
        writer.flush()
        self.published = dict(self.offsets)

    def _settle(self, writer, db, keys):
        client = self.clients.get(db)
        if client is None:
            client = self.clients[db] = self.target.client(db=db)
        earliest = int(self.clock() * 1000) + self.margin_ms
        outcome = settle_batch(client, keys, self.hold_offset, earliest)
        if outcome is None:
            self.disabled = 'the target refuses EVAL: the drain sets every held expiry'
            return
        settled, near = outcome
        self.settled += settled
        self.left_held += len(near)
        for key in near:
            writer.add(db, key)
