# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kv_verify's look for keys extra on the target: SCAN the target, EXISTS pipelined on the source (on every source
db of a merge), each extra key counted once however often SCAN returns it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key, scan_batches
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import EXTRA_DEDUP_LIMIT
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyError, Wire, pack_key_commands


def extra_pass(verifier, state, group=None):
    """Walk the target of ``state``'s db pair and ask the source whether each key exists there (in any db of a merge's
    ``group``); a key on the target only is ``extra``."""
    s_db, t_db = state.result['db'], state.result['target_db']
    target_client = verifier.target_ep.client(db=t_db)
    source_client = verifier.source_ep.client(db=s_db)
    others = [(db, verifier.source_ep.client(db=db)) for db in group or () if db != s_db]
    wire = None
    seen = set()
    extra = 0
    ignore = verifier.opts.ignore.get(t_db, ())
    try:
        wire = Wire(source_client)
        for dummy, keys in scan_batches(target_client, match=verifier.opts.match, count=verifier.opts.batch_size):
            if not keys:
                continue
            try:
                replies = wire.call_packed(pack_key_commands((b'EXISTS',), keys), len(keys))
            except Exception as exc:
                raise verifier.source_ep.error(exc, 'EXISTS in db %d' % s_db, db=s_db)
            for db, client in others:  # a key of another merged db is not extra
                found = client.pipeline(transaction=False)
                for key in keys:
                    found.exists(key)
                replies = [a or b for a, b in zip(replies, found.execute())]
            differences = []
            for key, reply in zip(keys, replies):
                if isinstance(reply, ReplyError):
                    raise verifier.source_ep.error(reply, 'EXISTS in db %d' % s_db, db=s_db)
                if reply or key in ignore:
                    continue
                if key in seen:
                    continue  # a SCAN duplicate
                if len(seen) < EXTRA_DEDUP_LIMIT:
                    seen.add(key)
                extra += 1
                state.note(key)
                differences.append(dict(db=s_db, target_db=t_db, key=sample_key(key), kind='extra',
                                        detail='on the target only'))
            verifier.add_differences(differences)
    except KVError:
        raise
    except Exception as exc:
        raise verifier.target_ep.error(exc, 'scanning db %d' % t_db, db=t_db)
    finally:
        if wire is not None:
            wire.close()
        source_client.close()
        target_client.close()
        for dummy, client in others:
            client.close()
    with state.lock:
        state.result['extra'] += extra
