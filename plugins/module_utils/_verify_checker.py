# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The key comparison of kv_verify (:class:`KeyChecker`): one worker's connections to one source and one target
server, comparing the keys it is given (see :mod:`._verify` for the flow and the fast paths)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from ansible_collections.kvtools.migration.plugins.module_utils._merge import MergeLookup
from ansible_collections.kvtools.migration.plugins.module_utils._payload import first_byte, payload_body, same_body, same_bytes
from ansible_collections.kvtools.migration.plugins.module_utils._text import as_text
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import CompareScope, key_differences
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import (
    DIFF_KINDS, FIRST_PART, PART_BYTES, expire_at, reply_bytes, ttl_difference)
from ansible_collections.kvtools.migration.plugins.module_utils._verify_wire import PairWires
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyCut, ReplyError, Wire, parse_lines


class KeyChecker:
    """Compares SCAN batches of one db pair with its own source and target connections.

    ``source`` / ``target``: the endpoints to read (default the run's; one master of a cluster each when the
    keys of a batch are routed, see :mod:`._verify_cluster`); ``mget``: whether strings may be read with MGET."""

    def __init__(self, run, state, listed=False, source=None, target=None, mget=True):
        self.run = run
        self.state = state
        self.listed = listed  # keys named by a list, not found by SCAN: absent on both sides is fine
        self.ignore = run.opts.ignore.get(state.result['target_db'], ())
        self.held = run.opts.target_expiry_offset
        self.opts = run.opts
        self.s_db = state.result['db']
        self.t_db = state.result['target_db']
        self.source_client = None
        self.target_client = None
        self.source_wire = self.target_wire = None
        try:
            self.source_ep = source or run.source_ep
            self.target_ep = target or run.target_ep
            self.source_client = self.source_ep.client(db=self.s_db)
            self.target_client = self.target_ep.client(db=self.t_db)
            self.source_wire = Wire(self.source_client)
            self.target_wire = Wire(self.target_client)
        except Exception:
            self.close()
            raise
        self.source_absolute = run.source_absolute
        self.target_absolute = run.target_absolute
        self.pair = PairWires(self.source_wire, self.target_wire, b'PEXPIRETIME' if self.source_absolute else b'PTTL',
                              b'PEXPIRETIME' if self.target_absolute else b'PTTL', self._fail)
        self.tolerance = self.opts.ttl_tolerance_ms
        self.scope = CompareScope(run.source_server, run.target_server, self.tolerance)
        self.chunk = min(FIRST_PART, self.opts.batch_size)
        self.max_chunk = self.opts.batch_size
        self.random = random.Random()
        self.mget_allowed = mget  # False on a cluster: MGET of keys in several slots is refused (CROSSSLOT)
        self.mget = mget
        # PEXPIRETIME on both sides and the hiredis parser: expiry replies are compared as raw lines
        self.raw_lines = self.source_absolute and self.target_absolute and self.source_wire.reader is not None \
            and self.target_wire.reader is not None
        self.lookup = MergeLookup(run.choices, run.source_ep, self.s_db, self.t_db, self.target_client, self.scope,
                                  self.tolerance)

    def close(self):
        if getattr(self, 'lookup', None) is not None:
            self.lookup.close()
        for wire in (self.source_wire, self.target_wire):
            if wire is not None:
                wire.close()
        for client in (self.source_client, self.target_client):
            if client is not None:
                client.close()

    def _fail(self, exc, side, action):
        if isinstance(exc, KVError):
            return exc
        if side == 'source':
            return self.source_ep.error(exc, '%s in db %d' % (action, self.s_db), db=self.s_db)
        return self.target_ep.error(exc, '%s in db %d' % (action, self.t_db), db=self.t_db)

    def process(self, keys):
        """Compare one SCAN batch, in parts that hold about PART_BYTES of values per side."""
        mode = self.opts.values
        if mode == 'full':
            valued, others = keys, []
        elif mode == 'none':
            valued, others = [], keys
        else:
            rate = self.opts.sample_rate
            rnd = self.random.random
            valued, others = [], []
            for key in keys:
                (valued if rnd() < rate else others).append(key)
        if others:  # TYPE replies are small: one step
            self._read([], others, mget=False)
            self.run.tick()
        start = 0
        while start < len(valued):
            part = valued[start:start + self.chunk]
            start += len(part)
            size = self._read(part, [], mget=self.mget)
            self.run.tick(size)
            avg = max(1, size // max(1, 2 * len(part)))
            self.chunk = max(1, min(self.max_chunk, PART_BYTES // avg))

    def _read(self, valued, others, mget, adapt=True):
        """Read and compare ``valued`` keys (their values and expiries) and ``others`` (type and expiry).

        With ``mget`` the values come from one MGET per side (strings: cheaper on both servers than a DUMP
        per key, and compared byte for byte); keys that are no string on either side are read again with
        DUMP.  Otherwise DUMP + expiry per valued key, TYPE + expiry per other key.  Returns the value bytes
        read on both sides.  With ``adapt`` a part read with DUMP that holds mostly strings switches the
        next parts to MGET.
        """
        n_v = len(valued)
        try:
            if mget and self.raw_lines:
                reading = self.pair.read_expiry_lines_mget(valued)
            elif mget:
                reading = self.pair.read_mget_expiry(valued)
            else:
                reading = self.pair.read_dump_expiry(valued, others)
        except ReplyCut:
            reading = self.pair.read_spooled(valued, others)
            mget = False
        (s_lines, s_replies, s_now), (t_lines, t_replies, t_now) = reading
        if mget:
            s_vals, t_vals = s_replies[0], t_replies[0]
            for vals, side in ((s_vals, 'source'), (t_vals, 'target')):
                if isinstance(vals, ReplyError):
                    if reply_kind(vals) not in ('noperm', 'unknown_command'):
                        raise self._fail(vals, side, 'MGET')
                    self.mget = self.mget_allowed = False  # a user without MGET: DUMP does it all
                    return self._read(valued, others, mget=False)
            if s_lines is not None:
                if s_lines == t_lines and None not in s_vals and s_vals == t_vals:
                    self.state.add(dict(keys=n_v, identical=n_v), (), n_v)
                    return reply_bytes(s_vals) + reply_bytes(t_vals)
                s_exps, t_exps = parse_lines(s_lines), parse_lines(t_lines)
            else:
                s_exps, t_exps = s_replies[1:], t_replies[1:]
        else:
            s_vals, s_exps, t_vals, t_exps = s_replies[0::2], s_replies[1::2], t_replies[0::2], t_replies[1::2]
        size = reply_bytes(s_vals[:n_v]) + reply_bytes(t_vals[:n_v])
        # The usual case: every key on both sides, same expiry, same value.
        if not others and self.source_absolute and self.target_absolute and s_exps == t_exps:
            if mget:
                same = None not in s_vals and s_vals == t_vals
            else:
                try:
                    same = list(map(payload_body, s_vals)) == list(map(payload_body, t_vals))
                except TypeError:  # a nil (key gone) or an error reply
                    same = False
            if same:
                self.state.add(dict(keys=n_v, identical=n_v), (), n_v)
                return size
        if not mget:
            self._compare_each(valued + others, n_v, s_vals, s_exps, t_vals, t_exps, s_now, t_now, raw=False)
            if adapt and n_v >= 16:  # mostly strings after all: MGET them from the next part on
                strings = sum(1 for p in s_vals[:n_v] if p.__class__ is bytes and p[:1] == b'\x00')
                self.mget = self.mget_allowed and strings * 2 > n_v
            return size
        both = [i for i in range(n_v) if s_vals[i] is not None and t_vals[i] is not None]
        if len(both) < n_v:
            rest = [valued[i] for i in range(n_v) if s_vals[i] is None or t_vals[i] is None]
            if len(rest) * 2 > n_v:
                self.mget = False  # mostly other types: DUMP them from the next part on
            size += self._read(rest, [], mget=False, adapt=False)
        if both:
            pick = both if len(both) < n_v else range(n_v)
            self._compare_each([valued[i] for i in pick], len(both), [s_vals[i] for i in pick],
                               [s_exps[i] for i in pick], [t_vals[i] for i in pick], [t_exps[i] for i in pick],
                               s_now, t_now, raw=True)
        return size

    def _compare_each(self, keys, n_valued, s_vals, s_exps, t_vals, t_exps, s_now, t_now, raw):
        """Key by key.  The first ``n_valued`` keys come with values: whole string values (``raw``, from
        MGET) or DUMP payloads; the others with their TYPE."""
        counts = dict((name, 0) for name in ('keys', 'identical', 'conflicts', 'expired', 'missing', 'extra',
                                             'absent', 'skipped', 'merged', 'merge_conflicts') + DIFF_KINDS[2:]
                      + ('field_ttls_dropped',))
        differences = []
        found = 0
        slow = []  # (key, ttl detail) of keys whose payloads differ: compared type-aware below
        s_db, t_db = self.s_db, self.t_db
        for i, key in enumerate(keys):
            s_val, s_exp, t_val, t_exp = s_vals[i], s_exps[i], t_vals[i], t_exps[i]
            for reply in (s_val, s_exp):
                if isinstance(reply, ReplyError):
                    raise self._fail(reply, 'source', 'reading')
            for reply in (t_val, t_exp):
                if isinstance(reply, ReplyError):
                    raise self._fail(reply, 'target', 'reading')
            valued = i < n_valued
            s_present, s_at = expire_at(s_exp, self.source_absolute, s_now)
            t_present, t_at = expire_at(t_exp, self.target_absolute, t_now)
            if valued:
                s_present = s_present and s_val is not None
                t_present = t_present and t_val is not None
            else:
                s_present = s_present and as_text(s_val) != 'none'
                t_present = t_present and as_text(t_val) != 'none'
            if not s_present:
                if not self.listed:
                    counts['expired'] += 1  # gone from the source since SCAN
                elif not t_present or key in self.ignore:
                    counts['absent'] += 1  # deleted on both sides (or a key of the follower's own)
                else:
                    counts['extra'] += 1
                    self.state.note(key)
                    differences.append(dict(db=s_db, target_db=t_db, key=sample_key(key), kind='extra',
                                            detail='on the target only'))
                continue
            if not t_present and s_at is not None and s_at - s_now <= self.tolerance:
                counts['expired'] += 1  # expiring now: the target dropped it a moment earlier
                continue
            counts['keys'] += 1
            if not t_present:
                counts['missing'] += 1
                self.state.note(key)
                differences.append(dict(db=s_db, target_db=t_db, key=sample_key(key), kind='missing',
                                        detail='on the source, not on the target'))
                continue
            found += 1
            if self.held and t_at is not None and s_at is not None \
                    and abs(t_at - self.held - s_at) <= self.tolerance:
                t_at -= self.held  # an expiry the follower holds back until the drain
            ttl = ttl_difference(s_at, t_at, self.tolerance, s_now)
            kinds = []
            if valued and raw:
                if s_val != t_val and not same_bytes(s_val, t_val):
                    kinds.append(('value_differs', 'string values differ'))
            elif valued:
                if not same_body(s_val, t_val):
                    slow.append((key, ttl, first_byte(s_val), first_byte(t_val),
                                 s_val.__class__ is not bytes or t_val.__class__ is not bytes))
                    continue
            elif as_text(s_val) != as_text(t_val):
                kinds.append(('type_differs', '%s on the source, %s on the target' % (as_text(s_val), as_text(t_val))))
            if ttl:
                kinds.append(('ttl_differs', ttl))
            self._count(counts, differences, key, kinds)
        for key, ttl, s_byte, t_byte, big in slow:
            self._compare_typed(counts, differences, key, ttl, s_byte, t_byte, big)
        self.state.add(counts, differences, found)

    def _count(self, counts, differences, key, kinds):
        for kind, detail in kinds:
            if kind == 'field_ttl_dropped':  # the target cannot hold them: reported, not a difference
                counts['field_ttls_dropped'] += 1
                differences.append(dict(db=self.s_db, target_db=self.t_db, key=sample_key(key), kind=kind,
                                        detail=detail))
        kinds = [k for k in kinds if k[0] != 'field_ttl_dropped']
        if not kinds:
            counts['identical'] += 1
            return
        chosen = self.lookup.classify(key)  # skipped by on_conflict=skip, or a merge's kept value
        if chosen is not None and chosen[0] == 'wrong_db':
            kinds = [chosen[1:]]
        elif chosen is not None:
            counts[chosen[0]] = counts.get(chosen[0], 0) + 1
            differences.append(dict(db=self.s_db, target_db=self.t_db, key=sample_key(key), kind=chosen[1],
                                    detail=chosen[2]))
            return
        counts['conflicts'] += 1
        self.state.note(key)
        for kind, detail in kinds:
            counts[kind] += 1
            differences.append(dict(db=self.s_db, target_db=self.t_db, key=sample_key(key), kind=kind,
                                    detail=detail))

    def _compare_typed(self, counts, differences, key, ttl, s_byte=b'', t_byte=b'', big=False):
        """Payloads differ: other encodings or RDB formats can still hold the same value.  Compared type-aware,
        with what both servers can hold beyond the value: field TTLs of hashes whose payload type can carry
        them, and for streams their metadata, groups, consumers and pending entries."""
        try:
            kinds = key_differences(self.source_client, self.target_client, key, self.scope,
                                    bytearray(s_byte)[0] if s_byte else None, bytearray(t_byte)[0] if t_byte else None,
                                    big)
        except Exception as exc:
            raise self._fail(exc, 'target', 'comparing a key')
        if ttl:
            kinds.append(('ttl_differs', ttl))
        self._count(counts, differences, key, kinds)
