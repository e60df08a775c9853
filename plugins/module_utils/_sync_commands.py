# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The source's command stream as kv_sync's applier sees it: RESP parsing and the translation of one
command onto the target.

* :func:`parse_commands` splits the replication stream into commands (binary-safe, partial tails left).
* :class:`CommandTranslator` (a base of ``_sync_stream.Applier``) maps a command through the db map:
  ``FLUSHALL`` -> ``FLUSHDB`` on each mapped db, db numbers of ``SWAPDB``/``MOVE``/``COPY ... DB`` translated
  (or refused, naming the command, when they need a db that is not migrated), relative expiries made
  absolute, held expiries shifted, and the keys each command touches (for the touched-keys log).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import absolute_expiry, hold_expiry


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


class CommandTranslator:
    """Translation of stream commands onto the target; the subclass provides ``map`` (source db -> target
    db), ``src_db`` (the db the stream selected), ``marker``, ``ttl_mode``, ``keyspec`` (a dict) and
    ``client`` (a redis-py client of the target, for COMMAND INFO / GETKEYS)."""

    def _mapped(self, db):
        return self.map.get(db)

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
