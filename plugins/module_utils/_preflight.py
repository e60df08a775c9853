# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Preflight: read both servers, find what would stop a migration, choose the copy method, plan.

Everything here only reads.  :func:`preflight` returns a dict with the facts of both sides, the
list of ``problems`` (each one a sentence that says what to do), the chosen ``method`` with the
reasons, the per-db plan and an estimate of the duration.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key, scan_batches, select_dbs
from ansible_collections.kvtools.migration.plugins.module_utils._pair import migrate_blockers, pair_problems
from ansible_collections.kvtools.migration.plugins.module_utils._payload import payload_body, rdb_version_for, target_accepts
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import values_equal

# Rates used for the estimate: kv_dump_restore measured on a 2-core machine with source, target and
# copier on it (tests/benchmarks/bench_copy.py); real networks are usually slower per byte.
EST_KEYS_PER_SECOND = 100000.0
EST_BYTES_PER_SECOND = 50 * 1000 * 1000.0
METHODS = ('auto', 'migrate', 'dump_restore')
SAMPLE_KEYS = 200


def foreign_keys(source_ep, target_ep, s_db, t_db, limit=SAMPLE_KEYS):
    """Up to ``limit`` keys of the target db (from its first SCAN batches) that the source db does not hold
    with the same value: empty when the target looks like an earlier copy of this source."""
    src, tgt = source_ep.client(db=s_db), target_ep.client(db=t_db)
    try:
        keys = []
        for dummy, batch in scan_batches(tgt, count=limit):
            keys.extend(batch)
            if len(keys) >= limit:
                break
        keys = keys[:limit]
        if not keys:
            return []
        pipe = src.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        src_dumps = pipe.execute()
        pipe = tgt.pipeline(transaction=False)
        for key in keys:
            pipe.dump(key)
        tgt_dumps = pipe.execute()
        out = []
        for key, a, b in zip(keys, src_dumps, tgt_dumps):
            if b is None:
                continue  # gone meanwhile
            if a is None or (payload_body(a) != payload_body(b) and not values_equal(src, tgt, key)):
                out.append(key)
        return out
    except KVError:
        raise
    except Exception as exc:
        raise target_ep.error(exc, 'comparing keys of the target with the source', db=t_db)
    finally:
        src.close()
        tgt.close()


def _facts(server):
    facts = server.facts(with_permissions=True)
    facts['address'] = server.endpoint.address
    facts['tls_cluster'] = server.config_get('tls-cluster')
    facts['used_memory_dataset'] = max(0, facts['used_memory'] - int(server.info.get('used_memory_startup', 0) or 0))
    return facts


def choose_method(source_ep, target_ep, src_server, accepts, wanted='auto', isolation='none', src=None, tgt=None):
    """``(method, reasons, migrate_possible)``: 'migrate' or 'dump_restore' and why."""
    migrate_permitted = None if src is None else src.get('commands', {}).get('migrate') != 'no'
    blockers = [p.text for p in migrate_blockers(
        source_ep, target_ep, src_server, accepts, src and src['rdb_version'], tgt and tgt['rdb_version'],
        isolation=isolation, migrate_permitted=migrate_permitted)]
    if wanted == 'dump_restore':
        return 'dump_restore', ['chosen: method is dump_restore'], not blockers
    if wanted == 'migrate':
        if blockers:
            raise KVError('method=migrate cannot work here: %s. Use method=auto or dump_restore' % '; '.join(blockers),
                          kind='config')
        return 'migrate', ['chosen: method is migrate'], True
    if blockers:
        return 'dump_restore', blockers, False
    return 'migrate', ['the source can send its keys itself (same payload format, same transport); if it cannot reach '
                       'the target, the first MIGRATE fails before anything is copied and the copy falls back to '
                       'kv_dump_restore'], True


REPLICATION_COMMANDS = (('psync', ['PSYNC', '?', '-1']), ('replconf', ['REPLCONF', 'ACK', '0']))


def replication_permissions(server):
    """``{'psync': 'yes'|'no'|'unknown', 'replconf': ...}`` for the connected user (ACL DRYRUN, Redis/Valkey >= 7)."""
    out = dict((name, 'unknown') for name, _a in REPLICATION_COMMANDS)
    if not server.capabilities.get('acl_dryrun'):
        return out
    user = server.whoami()
    for name, args in REPLICATION_COMMANDS:
        try:
            reply = server.client.execute_command('ACL', 'DRYRUN', user, *args)
        except Exception:
            return out
        text = reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else str(reply)
        out[name] = 'yes' if text == 'OK' else 'no'
    return out


def snapshot_rdb_version(src, tgt, diskless):
    """The RDB version the source will send us: Valkey >= 9 writes the target's own when asked (diskless only)."""
    own = rdb_version_for(src.engine, src.version)
    if src.engine == 'valkey' and src.version >= (9, 1, 0) and diskless:  # measured: 9.0 ignores REPLCONF version
        wanted = rdb_version_for(tgt.engine, tgt.version) if tgt.engine == 'valkey' else 11
        if wanted is not None and own is not None:
            return min(own, max(wanted, 11))
    return own


def live_possibility(src, tgt, match=None, permissions=None):
    """``(possible, reason)`` for a live copy between two connected :class:`Server` objects."""
    reasons = []
    if match:
        reasons.append('a match filter is set: a command stream cannot be filtered by key pattern without breaking '
                       'multi-key commands; copy offline (kv_migrate / kv_dump_restore)')
    for side, server in (('source', src), ('target', tgt)):
        if server.cluster_enabled:
            reasons.append('the %s runs in cluster mode, which live copy does not support' % side)
    perms = permissions if permissions is not None else replication_permissions(src)
    refused = [name.upper() for name, value in sorted(perms.items()) if value == 'no']
    if refused:
        reasons.append('the source user may not run %s: grant +psync +replconf (ACL SETUSER <user> +psync +replconf), '
                       'or copy offline' % '/'.join(refused))
    diskless = (src.config_get('repl-diskless-sync') or 'yes') == 'yes'
    payload = snapshot_rdb_version(src, tgt, diskless)
    target_rdb = rdb_version_for(tgt.engine, tgt.version)
    accepts = target_accepts(tgt.engine, target_rdb, payload, tgt.rdb_version_check.get('value'))
    if accepts is False:
        hint = ''
        if src.engine == 'valkey' and src.version >= (9, 1, 0) and not diskless:
            hint = ' (a Valkey 9.1+ source writes an older RDB for us only with repl-diskless-sync yes)'
        reasons.append('the target (%s %s, RDB %s) refuses the source\'s payload version (RDB %s)%s; copy offline with '
                       'the type-aware fallback of kv_dump_restore' % (tgt.engine, tgt.version_string, target_rdb,
                                                                       payload, hint))
    if tgt.role not in ('master', 'primary'):
        reasons.append('the target is a replica (read-only)')
    return (not reasons), ('; '.join(reasons) if reasons else None)


def preflight(source_ep, target_ep, dbs=None, db_map=None, method='auto', isolation='none',
              allow_nonempty_target=False, match=None):
    if method not in METHODS:
        raise KVError('method must be one of %s' % ', '.join(METHODS), kind='config')
    src_server = connect_server(source_ep)
    try:
        tgt_server = connect_server(target_ep)
    except KVError:
        src_server.client.close()
        raise
    try:
        src, tgt = _facts(src_server), _facts(tgt_server)
        live_possible, live_reason = live_possibility(src_server, tgt_server, match=match)
    finally:
        src_server.client.close()
        tgt_server.client.close()
    problems = []
    warnings = []
    keyspace = dict((d['db'], d) for d in src['dbs'])
    pairs = select_dbs(keyspace, dbs, db_map)
    problems.extend(p.text for p in pair_problems(source_ep, target_ep, src_server, tgt_server, pairs))
    if src['role'] not in ('master', 'primary'):
        warnings.append('the source %s is a replica: make sure it is in sync with its primary' % src['address'])
    target_keys = dict((d['db'], d['keys']) for d in tgt['dbs'])
    plan = []
    for s_db, t_db in pairs:
        plan.append(dict(db=s_db, target_db=t_db, keys=keyspace.get(s_db, {}).get('keys', 0),
                         expires=keyspace.get(s_db, {}).get('expires', 0), target_keys=target_keys.get(t_db, 0)))
    busy = [p for p in plan if p['target_keys']]
    foreign = []
    for entry in busy:
        # A target that holds an earlier copy of this source (a rerun, a resumed run) is fine; keys of anything
        # else are not.  Judged on a sample: the first keys SCAN returns on the target.
        entry['target_sample_foreign'] = [sample_key(k) for k in foreign_keys(source_ep, target_ep, entry['db'],
                                                                              entry['target_db'])]
        if entry['target_sample_foreign']:
            foreign.append(entry)
    if foreign and not allow_nonempty_target:
        problems.append('the target holds keys that are not (or not equal) on the source (%s; for example %s): '
                        'empty the target, or set allow_nonempty_target to copy next to them (identical keys are '
                        'skipped, differing keys stop the copy unless on_conflict says otherwise)'
                        % (', '.join('db %d: %d keys' % (p['target_db'], p['target_keys']) for p in foreign),
                           ', '.join(repr(k) for k in foreign[0]['target_sample_foreign'][:3])))
    elif busy and not foreign:
        warnings.append('the target already holds keys identical to the source\'s (%s): an earlier copy; the copy '
                        'skips identical keys' % ', '.join('db %d: %d keys' % (p['target_db'], p['target_keys'])
                                                           for p in busy))
    need = src['used_memory_dataset']
    room = None
    if tgt['maxmemory']:
        room = tgt['maxmemory'] - tgt['used_memory']
        if need > room:
            problems.append('the target is too small: the source holds about %d MiB of data, the target has %d MiB '
                            'left under maxmemory. Choose a larger target or raise its maxmemory'
                            % (need // 2 ** 20, max(room, 0) // 2 ** 20))
    accepts = target_accepts(tgt['engine'], tgt['rdb_version'], src['rdb_version'],
                             (tgt.get('rdb_version_check') or {}).get('value'))
    chosen, reasons, migrate_possible = choose_method(source_ep, target_ep, src_server, accepts, method,
                                                      isolation, src, tgt)
    for side, facts, needed in (('source', src, ('scan', 'dump')), ('target', tgt, ('restore',))):
        refused = [c for c in needed if facts.get('commands', {}).get(c) == 'no']
        if refused:
            problems.append('the %s user may not run %s: grant it with ACL SETUSER' % (side, ', '.join(refused)))
    keys = sum(p['keys'] for p in plan)
    estimate = round(keys / EST_KEYS_PER_SECOND + need / EST_BYTES_PER_SECOND, 1)
    lines = ['%s %s %s -> %s %s %s' % (src['address'], src['engine'], src['version'], tgt['address'], tgt['engine'],
                                       tgt['version']),
             'method: %s (%s)' % (chosen, '; '.join(reasons)),
             'payloads: RDB %s -> %s, target accepts them: %s' % (src['rdb_version'], tgt['rdb_version'],
                                                                  {True: 'yes', False: 'no', None: 'unknown'}[accepts])]
    for p in plan:
        lines.append('db %d -> db %d: %d keys (%d with TTL), target holds %d' % (p['db'], p['target_db'], p['keys'],
                                                                                 p['expires'], p['target_keys']))
    lines.append('about %d MiB of data, estimated %.0f s' % (need // 2 ** 20, estimate))
    previous = bool(plan) and all(p['keys'] and p['target_keys'] == p['keys'] and p.get('target_sample_foreign') == []
                                  for p in plan)
    if previous:
        lines.append('the target already holds as many keys as the source in every db, every sampled key identical: '
                     'an earlier complete copy (this run checks it again and copies what differs)')
    return dict(changed=False, source=src, target=tgt, dbs=plan, previous_copy_complete=previous, method=chosen, method_reasons=reasons,
                migrate_possible=migrate_possible, payload=dict(source_rdb=src['rdb_version'],
                                                                target_rdb=tgt['rdb_version'], accepts=accepts),
                memory=dict(source_data=need, target_maxmemory=tgt['maxmemory'], target_free=room),
                target_empty=not any(target_keys.values()), keys=keys, estimate_seconds=estimate,
                problems=problems, preflight_warnings=warnings, plan=lines, ok=not problems,
                live_possible=live_possible, live_reason=live_reason)
