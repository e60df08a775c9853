# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What ``kv_sync`` keeps about keys: the touched-keys log, the offset marker, the held-back expiries.

* The touched-keys log (every (target db, key) the follower's commands wrote) and the log of held
  expiries are written and read with ``_keys_log`` (``KeysLogWriter``, ``iter_keys_log``; the format is
  described there).
* The offset marker: a key on the target that the follower sets in the same transaction as each
  batch of commands (``replid offset stream-db``); :func:`read_marker` tells a resumed follower where
  the target really is, :func:`drop_marker` removes it at the drain.
* :func:`settle_expiries`: with ``ttl_mode='hold'`` every expiry was written :data:`HOLD_OFFSET` ms
  late; at the drain this sets the exact times.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import iter_keys_log
from ansible_collections.kvtools.migration.plugins.module_utils._sync_settle import settle_batch

HOLD_OFFSET = 100 * 365 * 86400 * 1000      # 100 years: an expiry this far out is one we hold back
_ARGS_TAIL = re.compile(r',? with args beginning with:.*$', re.S)


def server_words(text):
    """The server's error text without the arguments some servers echo (they may be values)."""
    return _ARGS_TAIL.sub('', str(text))[:300]


def _int(value):
    return int(value)


# -- expiry rewriting ------------------------------------------------------------------------------

def absolute_expiry(args, received_ms):
    """The command with every relative expiry made absolute (ms), or None when it changes nothing.

    ``EXPIRE``/``PEXPIRE``/``EXPIREAT`` -> ``PEXPIREAT``; ``SETEX``/``PSETEX`` and ``SET ... EX|PX|EXAT``
    -> ``SET ... PXAT``; ``GETEX`` -> ``PEXPIREAT``/``PERSIST``; ``RESTORE`` with a relative ttl -> ``ABSTTL``.
    """
    name = args[0].lower()
    if name in (b'expire', b'pexpire', b'expireat') and len(args) >= 3:
        value = _int(args[2])
        when = {b'expire': received_ms + value * 1000, b'pexpire': received_ms + value,
                b'expireat': value * 1000}[name]
        return [b'PEXPIREAT', args[1], b'%d' % when] + args[3:]
    if name in (b'setex', b'psetex') and len(args) == 4:
        value = _int(args[2])
        when = received_ms + (value * 1000 if name == b'setex' else value)
        return [b'SET', args[1], args[3], b'PXAT', b'%d' % when]
    if name == b'set' and len(args) > 3:
        out = args[:3]
        i = 3
        while i < len(args):
            opt = args[i].lower()
            if opt in (b'ex', b'px', b'exat') and i + 1 < len(args):
                value = _int(args[i + 1])
                when = {b'ex': received_ms + value * 1000, b'px': received_ms + value, b'exat': value * 1000}[opt]
                out += [b'PXAT', b'%d' % when]
                i += 2
                continue
            out.append(args[i])
            i += 1
        return out
    if name == b'getex' and len(args) >= 2:
        if len(args) >= 4:
            opt, value = args[2].lower(), _int(args[3])
            when = {b'ex': received_ms + value * 1000, b'px': received_ms + value, b'exat': value * 1000,
                    b'pxat': value}.get(opt)
            if when is not None:
                return [b'PEXPIREAT', args[1], b'%d' % when]
        if len(args) == 3 and args[2].lower() == b'persist':
            return [b'PERSIST', args[1]]
        return []
    if name == b'restore' and len(args) >= 4:
        flags = [a.lower() for a in args[4:]]
        if args[2] not in (b'0',) and b'absttl' not in flags:
            return args[:2] + [b'%d' % (received_ms + _int(args[2]))] + args[3:] + [b'ABSTTL']
    return None


def hold_expiry(args):
    """The command with every absolute expiry moved :data:`HOLD_OFFSET` later (``ttl_mode='hold'``)."""
    name = args[0].lower()
    if name == b'pexpireat' and len(args) >= 3:
        return args[:2] + [b'%d' % (_int(args[2]) + HOLD_OFFSET)] + args[3:]
    if name == b'set':
        out = list(args)
        for i in range(3, len(out) - 1):
            if out[i].lower() == b'pxat':
                out[i + 1] = b'%d' % (_int(out[i + 1]) + HOLD_OFFSET)
        return out
    if name == b'restore' and len(args) >= 4 and args[2] != b'0' and b'absttl' in [a.lower() for a in args[4:]]:
        return args[:2] + [b'%d' % (_int(args[2]) + HOLD_OFFSET)] + args[3:]
    return args


def read_marker(target_ep, marker):
    """``(replid, offset, stream db or None)`` from the offset marker on the target, or None."""
    t_db, key = marker
    client = target_ep.client(db=t_db)
    try:
        value = client.get(key)
    except Exception as exc:
        raise target_ep.error(exc, 'reading the offset marker', db=t_db)
    finally:
        client.close()
    if not value:
        return None
    parts = value.split()
    db = int(parts[2])
    return parts[0].decode('ascii'), int(parts[1]), (None if db < 0 else db)


def drop_marker(target_ep, marker):
    t_db, key = marker
    client = target_ep.client(db=t_db)
    try:
        client.delete(key)
    except Exception as exc:
        raise target_ep.error(exc, 'removing the offset marker', db=t_db)
    finally:
        client.close()


def _settle_script(client, keys):
    """One round trip per batch: the server reads and fixes each key (None: no EVAL, use the pipeline)."""
    outcome = settle_batch(client, keys, HOLD_OFFSET)
    return None if outcome is None else outcome[0]


def _settle_pipeline(client, keys, target_ep):
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command('PEXPIRETIME', key)
    times = pipe.execute(raise_on_error=False)
    pipe = client.pipeline(transaction=False)
    count = 0
    for key, when in zip(keys, times):
        if isinstance(when, int) and when >= HOLD_OFFSET:
            pipe.execute_command('PEXPIREAT', key, when - HOLD_OFFSET)
            count += 1
    if count:
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, Exception):
                raise KVError('setting the exact expiry of held keys failed on the target: %s'
                              % server_words(reply), kind='target', endpoint=target_ep.address)
    return count


def settle_expiries(target_ep, keys_log_path, held_log_path, start=0, batch=1000, held_start=0, settle_log_path=None):
    """``ttl_mode='hold'`` at the drain: every key whose expiry we held back gets its exact expiry.

    The candidates are the snapshot's keys with a TTL (the held log from ``held_start``), every key the
    stream touched (the keys log from ``start``) and the keys the follower's background settler left
    held (``settle_log_path``; see ``_sync_settle``); dbs with a whole-db marker are scanned.  Returns the
    number of keys whose expiry was set.
    """
    candidates = {}
    whole = set()
    for path, begin in ((held_log_path, held_start), (keys_log_path, start), (settle_log_path, 0)):
        if path and os.path.exists(path):
            for db, key in iter_keys_log(path, begin):
                if key is None:
                    whole.add(db)
                else:
                    candidates.setdefault(db, set()).add(key)
    fixed = 0
    use_script = True
    for db in sorted(set(candidates) | whole):
        client = target_ep.client(db=db)
        try:
            if db in whole:
                cursor = 0
                while True:
                    cursor, keys = client.scan(cursor=cursor, count=1000)
                    candidates.setdefault(db, set()).update(keys)
                    if int(cursor) == 0:
                        break
            keys = list(candidates.get(db, ()))
            for i in range(0, len(keys), batch):
                part = keys[i:i + batch]
                count = _settle_script(client, part) if use_script else None
                if count is None:
                    use_script = False
                    count = _settle_pipeline(client, part, target_ep)
                fixed += count
        except KVError:
            raise
        except Exception as exc:
            raise target_ep.error(exc, 'setting the exact expiry of held keys', db=db)
        finally:
            client.close()
    return fixed
