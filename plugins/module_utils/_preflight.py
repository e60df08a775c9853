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

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._cluster_plan import (
    keys_per_db, node_plan, plan_lines, source_cluster_facts, source_plan_lines, target_cluster_facts)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    merge_groups, merge_text, sample_key, scan_batches, select_dbs)
from ansible_collections.kvtools.migration.plugins.module_utils._pair import migrate_blockers, pair_problems
from ansible_collections.kvtools.migration.plugins.module_utils._payload import rdb_version_for, same_body, target_accepts
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import find_field_ttls, values_equal
from ansible_collections.kvtools.migration.plugins.module_utils._wire import (
    ReplyError, Wire, pack_key_commands, recv_key_replies)

# Rates used for the estimate: kv_dump_restore measured on a 2-core machine with source, target and
# copier on it (tests/benchmarks/bench_copy.py); real networks are usually slower per byte.
EST_KEYS_PER_SECOND = 100000.0
EST_BYTES_PER_SECOND = 50 * 1000 * 1000.0
METHODS = ('auto', 'migrate', 'dump_restore')
SAMPLE_KEYS = 200


def foreign_keys(source_ep, target_ep, s_db, t_db, limit=SAMPLE_KEYS, stats=None, source_topology=None):
    """Up to ``limit`` keys of the target db (from its first SCAN batches) that the source db does not hold
    with the same value: empty when the target looks like an earlier copy of this source.  ``stats`` (a dict)
    receives ``sampled``, the number of target keys compared.  ``source_topology``: the source is a cluster, each
    key is read on the master that serves its slot."""
    target_client = source_client = None
    clients = {}
    wires = []
    try:
        target_client = target_ep.client(db=t_db)
        keys = []
        for dummy, batch in scan_batches(target_client, count=limit):
            keys.extend(batch)
            if len(keys) >= limit:
                break
        keys = keys[:limit]
        if stats is not None:
            stats['sampled'] = len(keys)
        if not keys:
            return []
        groups = {}  # source endpoint index -> the keys read there
        for key in keys:
            groups.setdefault(0 if source_topology is None else source_topology.owner[key_slot(key)], []).append(key)
        source_dumps = {}
        for index, group in sorted(groups.items()):
            ep = source_ep if source_topology is None else source_topology.masters[index].endpoint
            clients[index] = ep.client(db=s_db)
            wires.append(Wire(clients[index]))  # a big payload comes as a temp file (SpooledPayload)
            wires[-1].send(pack_key_commands((b'DUMP',), group), packed=True)
            source_dumps.update(zip(group, recv_key_replies(wires[-1], (b'DUMP',), group)))
        wires.append(Wire(target_client))
        wires[-1].send(pack_key_commands((b'DUMP',), keys), packed=True)
        target_dumps = recv_key_replies(wires[-1], (b'DUMP',), keys)
        owner = dict((key, index) for index, group in groups.items() for key in group)
        out = []
        for key, b in zip(keys, target_dumps):
            a = source_dumps[key]
            for reply in (a, b):
                if isinstance(reply, ReplyError):
                    raise reply
            if b is None:
                continue  # gone meanwhile
            source_client = clients[owner[key]]
            big = a.__class__ is not bytes or b.__class__ is not bytes
            if a is None or (not same_body(a, b) and not values_equal(source_client, target_client, key, big=big)):
                out.append(key)
        return out
    except KVError:
        raise
    except Exception as exc:
        raise target_ep.error(exc, 'comparing keys of the target with the source', db=t_db)
    finally:
        for wire in wires:
            wire.close()
        for client in list(clients.values()) + [target_client]:
            if client is not None:
                client.close()


def _facts(server):
    facts = server.facts(with_permissions=True)
    facts['address'] = server.endpoint.address
    facts['tls_cluster'] = server.config_get('tls-cluster')
    facts['unknown'] = dict(server.unknown)
    if facts['used_memory'] is None:
        facts['used_memory_dataset'] = None
    else:
        startup = int(server.info.get('used_memory_startup', 0) or 0)
        facts['used_memory_dataset'] = max(0, facts['used_memory'] - startup)
    return facts


def unknown_costs(source_facts, target_facts):
    """What the plan cannot check because a fact is unknown (a renamed, disabled or denied command), and why."""
    costs = []
    for side, facts in (('source', source_facts), ('target', target_facts)):
        unknown = facts.get('unknown') or {}
        if 'used_memory' in unknown or 'maxmemory' in unknown:
            costs.append('capacity: the %s\'s memory is unknown (%s)'
                         % (side, unknown.get('used_memory') or unknown.get('maxmemory')))
        if 'expires' in unknown:
            costs.append('keys with a TTL on the %s are not counted (%s)' % (side, unknown['expires']))
        if 'databases' in unknown:
            costs.append('the number of dbs of the %s (%s)' % (side, unknown['databases']))
        if 'info' in unknown:
            costs.append('the role and cluster mode of the %s come from HELLO; the change counters are unknown '
                         '(%s)' % (side, unknown['info']))
    if 'tls_cluster' in source_facts and source_facts.get('tls_cluster') is None \
            and (source_facts.get('unknown') or {}).get('config'):
        costs.append('whether the source can reach a TLS target with MIGRATE (tls-cluster: %s)'
                     % source_facts['unknown']['config'])
    return costs


def choose_method(source_ep, target_ep, source_server, accepts, wanted='auto', isolation='none', source_facts=None,
                  target_facts=None, target_server=None):
    """``(method, reasons, migrate_possible)``: 'migrate' or 'dump_restore' and why."""
    migrate_permitted = None if source_facts is None else source_facts.get('commands', {}).get('migrate') != 'no'
    blockers = [p.text for p in migrate_blockers(
        source_ep, target_ep, source_server, accepts, source_facts and source_facts['rdb_version'],
        target_facts and target_facts['rdb_version'],
        isolation=isolation, migrate_permitted=migrate_permitted, target=target_server)]
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


def field_ttl_census(source_ep, source_server, pairs, match=None):
    """``{'keys': n, 'fields': m}`` of hashes with field TTLs in the source dbs of ``pairs``."""
    keys = fields = 0
    for s_db, _t_db in pairs:
        client = source_ep.client(db=s_db)
        try:
            found = find_field_ttls(client, source_server.info.get('db%d' % s_db), match)
        except Exception as exc:
            raise source_ep.error(exc, 'looking for hash field TTLs in db %d' % s_db, db=s_db)
        finally:
            client.close()
        keys += found[0]
        fields += found[1]
    return dict(keys=keys, fields=fields)


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


def snapshot_rdb_version(source_server, target_server, diskless):
    """The RDB version the source will send us: Valkey >= 9 writes the target's own when asked (diskless only)."""
    own = rdb_version_for(source_server.engine, source_server.version)
    # measured: 9.0 ignores REPLCONF version
    if source_server.engine == 'valkey' and source_server.version >= (9, 1, 0) and diskless:
        wanted = rdb_version_for(target_server.engine, target_server.version) if target_server.engine == 'valkey' else 11
        if wanted is not None and own is not None:
            return min(own, max(wanted, 11))
    return own


def missing_commands(server, names):
    """The commands of ``names`` the server does not know (renamed or disabled), by COMMAND INFO; [] if unknown."""
    try:
        reply = server.client.execute_command('COMMAND', 'INFO', *names)
    except Exception:  # COMMAND itself renamed or denied: nothing learnt
        return []
    return [name.upper() for name, info in zip(names, reply or []) if not info]


def source_census(source_ep, source_server, source_cluster, pairs):
    """:func:`field_ttl_census` of the source, summed over the masters of a cluster source."""
    if source_cluster is None:
        return field_ttl_census(source_ep, source_server, pairs)
    keys = fields = 0
    for master in source_cluster['topology'].masters:
        server = connect_server(master.endpoint)
        try:
            found = field_ttl_census(master.endpoint, server, pairs)
        finally:
            server.client.close()
        keys += found['keys']
        fields += found['fields']
    return dict(keys=keys, fields=fields)


def cluster_result(cluster, nodes, source_cluster):
    """The ``cluster`` entry of the result: None unless a side is a cluster."""
    if cluster is None and source_cluster is None:
        return None
    out = dict(target=None, target_nodes=None, source=None, source_nodes=None)
    if cluster is not None:
        out.update(target=cluster['topology'].describe(), target_nodes=nodes)
    if source_cluster is not None:
        out.update(source=source_cluster['topology'].describe(), source_nodes=source_cluster['masters'])
    return out


def live_db_collision(source_server, dbs=None, db_map=None):
    """A sentence when kv_sync's db selection (every source db by default) sends two dbs into one target db."""
    mapping = dict((int(k), int(v)) for k, v in (db_map or {}).items())
    chosen = sorted(set(int(d) for d in dbs)) if dbs else list(range(source_server.databases or 16))
    groups = merge_groups([(s_db, mapping.get(s_db, s_db)) for s_db in chosen])
    if groups:
        return ('%s: a live copy cannot merge dbs (a followed FLUSHDB, SWAPDB or MOVE in one would act on the keys of '
                'the others), and it follows every selected source db (empty ones too, as writes may come): list the '
                'dbs to copy (kv_dbs) or copy offline' % merge_text(groups))
    return None


def live_possibility(source_server, target_server, match=None, permissions=None, dbs=None, db_map=None,
                     procedure=False):
    """``(possible, reason)`` for a live copy between two connected :class:`Server` objects (``procedure``: for
    the live strategy of playbooks/migrate.yml, which does not take a cluster source yet).

    ``possible`` is None when nothing refuses it but the source user's right to replicate could not be
    checked (no ACL DRYRUN): ``auto`` then copies offline, an explicit live strategy tries it.
    """
    reasons = []
    collision = live_db_collision(source_server, dbs, db_map)
    if collision:
        reasons.append(collision)
    missing = missing_commands(source_server, ['psync', 'replconf'])
    if missing:
        reasons.append('the source has no %s command (renamed or disabled, as managed plans do): copy offline'
                       % '/'.join(missing))
    if match:
        reasons.append('a match filter is set: a command stream cannot be filtered by key pattern without breaking '
                       'multi-key commands; copy offline (kv_migrate / kv_dump_restore)')
    if target_server.cluster_enabled and not (target_server.engine == 'valkey' and target_server.version >= (8, 1, 0)):
        reasons.append('the target is a %s %s cluster: a live copy into a cluster needs Valkey 8.1 or later (its import '
                       'mode keeps keys in transit from expiring on every master); copy offline'
                       % (target_server.engine, target_server.version_string))
    perms = permissions if permissions is not None else replication_permissions(source_server)
    refused = [name.upper() for name, value in sorted(perms.items()) if value == 'no']
    if refused:
        reasons.append('the source user may not run %s: grant +psync +replconf (ACL SETUSER <user> +psync +replconf), '
                       'or copy offline' % '/'.join(refused))
    diskless = (source_server.config_get('repl-diskless-sync') or 'yes') == 'yes'
    payload = snapshot_rdb_version(source_server, target_server, diskless)
    target_rdb = rdb_version_for(target_server.engine, target_server.version)
    accepts = target_accepts(target_server.engine, target_rdb, payload, target_server.rdb_version_check.get('value'))
    if accepts is False:
        hint = ''
        if source_server.engine == 'valkey' and source_server.version >= (9, 1, 0) and not diskless:
            hint = ' (a Valkey 9.1+ source writes an older RDB for us only with repl-diskless-sync yes)'
        reasons.append('the target (%s %s, RDB %s) refuses the source\'s payload version (RDB %s)%s; copy offline with '
                       'the type-aware fallback of kv_dump_restore'
                       % (target_server.engine, target_server.version_string, target_rdb, payload, hint))
    if target_server.role not in ('master', 'primary'):
        reasons.append('the target is a replica (read-only)')
    if not reasons and 'unknown' in perms.values() and not missing:
        return None, ('whether the source user may run PSYNC and REPLCONF could not be checked (ACL DRYRUN is not '
                      'available to it); kv_strategy auto copies offline, kv_strategy live tries it')
    return (not reasons), ('; '.join(reasons) if reasons else None)


def _expiry_command(facts):
    """The command the copy reads expiries with on that server (see NEEDED_COMMANDS)."""
    return 'pexpiretime' if (facts.get('capabilities') or {}).get('pexpiretime') else 'pttl'


def preflight(source_ep, target_ep, dbs=None, db_map=None, method='auto', isolation='none',
              allow_nonempty_target=False, on_unsupported='fail', match=None, allow_db_merge=False):
    if method not in METHODS:
        raise KVError('method must be one of %s' % ', '.join(METHODS), kind='config')
    if on_unsupported not in ('fail', 'drop'):
        raise KVError('on_unsupported must be fail or drop, got %r' % (on_unsupported,), kind='config')
    source_server = connect_server(source_ep)
    try:
        target_server = connect_server(target_ep)
    except KVError:
        source_server.client.close()
        raise
    cluster = None  # a cluster target: its masters, read below
    source_cluster = None  # a cluster source: its masters
    try:
        source_facts, target_facts = _facts(source_server), _facts(target_server)
        if target_server.cluster_enabled:
            cluster = target_cluster_facts(target_ep, target_server)
        if source_server.cluster_enabled:
            source_cluster = source_cluster_facts(source_ep, source_server)
            source_facts['dbs'] = source_cluster['dbs']  # the keys of every master
            source_facts['used_memory_dataset'] = source_cluster['data']
            source_facts['total_keys'] = source_cluster['dbs'][0]['keys']
        census = None
        if source_facts['capabilities'].get('hash_field_ttl') and not target_facts['capabilities'].get('hash_field_ttl'):
            census = source_census(source_ep, source_server, source_cluster,
                                   select_dbs(dict((d['db'], d) for d in source_facts['dbs']), dbs, db_map,
                                              allow_merge=allow_db_merge, merge=cluster is not None))
        live_possible, live_reason = live_possibility(source_server, target_server, match=match, dbs=dbs,
                                                      db_map=db_map, procedure=True)
    finally:
        source_server.client.close()
        target_server.client.close()
    problems = []
    warnings = []
    keyspace = dict((d['db'], d) for d in source_facts['dbs'])
    pairs = select_dbs(keyspace, dbs, db_map, allow_merge=allow_db_merge, merge=cluster is not None)
    problems.extend(p.text for p in pair_problems(source_ep, target_ep, source_server, target_server, pairs,
                                                  tool='the migration procedure (kv_preflight, playbooks/migrate.yml)',
                                                  clusters=cluster is not None or source_cluster is not None))
    if cluster is not None:
        problems.extend(cluster['problems'])
    if source_cluster is not None:
        problems.extend(source_cluster['problems'])
    if source_facts['role'] not in ('master', 'primary'):
        warnings.append('the source %s is a replica: make sure it is in sync with its primary' % source_facts['address'])
    target_keys = dict((d['db'], d['keys']) for d in target_facts['dbs'])
    if cluster is not None:
        target_keys = keys_per_db(cluster)
    target_eps = [target_ep] if cluster is None else [m.endpoint for m in cluster['topology'].masters]
    plan = []
    for s_db, t_db in pairs:
        plan.append(dict(db=s_db, target_db=t_db, keys=keyspace.get(s_db, {}).get('keys', 0),
                         expires=keyspace.get(s_db, {}).get('expires', 0), target_keys=target_keys.get(t_db, 0)))
    busy = [p for p in plan if p['target_keys']]
    foreign = []
    groups = merge_groups(pairs) if cluster is None else {}  # a cluster's db 0 takes every db: its own rules
    for entry in busy:
        # A target that holds an earlier copy of this source (a rerun, a resumed run) is fine; keys of anything
        # else are not.  Judged on a sample: the first keys SCAN returns on the target.  A merged target db holds
        # the keys of every source db of the merge: foreign are those none of them holds.
        stats = {}
        sampled = 0
        entry['target_sample_foreign'] = []
        for ep in target_eps:
            sample = None
            for s_db in groups.get(entry['target_db'], [entry['db']]):
                found = foreign_keys(source_ep, ep, s_db, entry['target_db'], stats=stats,
                                     source_topology=source_cluster and source_cluster['topology'])
                sample = found if sample is None else [k for k in sample if k in set(found)]
            entry['target_sample_foreign'].extend(sample_key(k) for k in sample)
            sampled += stats.get('sampled', 0)
            stats = {}
        entry['target_sampled'] = sampled
        if entry['target_sample_foreign']:
            foreign.append(entry)
    if foreign and not allow_nonempty_target:
        problems.append('the target holds keys that are not (or not equal) on the source (%s; for example %s): '
                        'empty the target, or set allow_nonempty_target to copy next to them (identical keys are '
                        'skipped, differing keys stop the copy unless on_conflict says otherwise)'
                        % (', '.join('db %d: %d of %d sampled key(s) differ, %s key(s) in the db'
                                     % (p['target_db'], len(p['target_sample_foreign']), p['target_sampled'],
                                        '{:,}'.format(p['target_keys'])) for p in foreign),
                           ', '.join(repr(k) for k in foreign[0]['target_sample_foreign'][:3])))
    elif busy and not foreign:
        warnings.append('the target already holds keys identical to the source\'s (%s): an earlier copy; the copy '
                        'skips identical keys' % ', '.join('db %d: %d keys' % (p['target_db'], p['target_keys'])
                                                           for p in busy))
    need = source_facts['used_memory_dataset']
    room = None
    costs = unknown_costs(source_facts, target_facts)
    if target_facts['maxmemory'] and target_facts['used_memory'] is not None:
        room = target_facts['maxmemory'] - target_facts['used_memory']
    if need is not None and room is not None and cluster is None:
        if need > room:
            problems.append('the target is too small: the source holds about %d MiB of data, the target has %d MiB '
                            'left under maxmemory. Choose a larger target or raise its maxmemory'
                            % (need // 2 ** 20, max(room, 0) // 2 ** 20))
    accepts = target_accepts(target_facts['engine'], target_facts['rdb_version'], source_facts['rdb_version'],
                             (target_facts.get('rdb_version_check') or {}).get('value'))
    if (cluster is not None or source_cluster is not None) and method == 'migrate':  # MIGRATE per master, when asked
        chosen, reasons, migrate_possible = choose_method(source_ep, target_ep, source_server, accepts, method,
                                                          isolation, source_facts, target_facts, target_server)
        reasons = reasons + (['the source is a cluster: one MIGRATE call per slot, sent to the master that holds it']
                             if source_cluster else []) + (
            ['the target is a cluster: one MIGRATE call per target master'] if cluster else [])
    elif cluster is not None or source_cluster is not None:  # RESTORE routed per slot, every source master read
        chosen, dummy, migrate_possible = choose_method(source_ep, target_ep, source_server, accepts, 'dump_restore',
                                                        isolation, source_facts, target_facts, target_server)
        reasons = (['the source is a cluster: kv_dump_restore reads every master'] if source_cluster else []) + (
            ['the target is a cluster: kv_dump_restore restores each key on the master that serves its slot']
            if cluster else [])
    else:
        chosen, reasons, migrate_possible = choose_method(source_ep, target_ep, source_server, accepts, method,
                                                          isolation, source_facts, target_facts, target_server)
    # the copy reads each key's expiry with DUMP (PEXPIRETIME, PTTL before 7.0) on the source, and on the target
    # where a key is there already (a rerun, a resume): a user without them would fail only then
    needed_source = ('scan', 'dump', _expiry_command(source_facts)) + (('client_pause',) if isolation == 'pause' else ())
    needed_target = ('restore', 'dump', _expiry_command(target_facts))
    for side, facts, needed in (('source', source_facts, needed_source), ('target', target_facts, needed_target)):
        refused = [c for c in needed if facts.get('commands', {}).get(c) == 'no']
        why = facts.get('command_reasons') or {}
        for command in refused:
            if 'not available' in why.get(command, ''):  # renamed or disabled: no grant helps
                problems.append('the %s cannot run %s, which this migration needs: %s%s'
                                % (side, command.replace('_', ' ').upper(), why[command],
                                   '; choose another isolation (acl, cf or none)' if command == 'client_pause' else ''))
        granted = [c for c in refused if 'not available' not in why.get(c, '')]
        if granted:
            problems.append('the %s user may not run %s: grant it with ACL SETUSER' % (side, ', '.join(granted)))
    unsupported = None
    if census and census['keys']:
        unsupported = dict(hash_field_ttls=census)
        what = ('%d fields of %d hashes have a TTL of their own (hash field TTLs), which the target (%s %s) cannot '
                'hold' % (census['fields'], census['keys'], target_facts['engine'], target_facts['version']))
        if on_unsupported == 'fail':
            problems.append('%s: the copy refuses before writing anything (on_unsupported: fail). Set on_unsupported: '
                            'drop to copy them without those TTLs, or choose a target that holds them (Redis 7.4+, '
                            'Valkey 9+)' % what)
        else:
            warnings.append('%s: the copy drops those TTLs (on_unsupported: drop) and counts them' % what)
    keys = sum(p['keys'] for p in plan)
    nodes = None
    if cluster is not None:
        nodes, too_small = node_plan(cluster, keys, need)
        problems.extend(too_small)
    estimate = round(keys / EST_KEYS_PER_SECOND + (need or 0) / EST_BYTES_PER_SECOND, 1)
    lines = ['%s %s %s -> %s %s %s' % (source_facts['address'], source_facts['engine'], source_facts['version'],
                                       target_facts['address'], target_facts['engine'], target_facts['version']),
             'method: %s (%s)' % (chosen, '; '.join(reasons)),
             'payloads: RDB %s -> %s, target accepts them: %s'
             % (source_facts['rdb_version'], target_facts['rdb_version'],
                {True: 'yes', False: 'no', None: 'unknown'}[accepts])]
    for p in plan:
        lines.append('db %d -> db %d: %d keys (%s with TTL), target holds %d'
                     % (p['db'], p['target_db'], p['keys'], '?' if p['expires'] is None else p['expires'],
                        p['target_keys']))
    for t_db in sorted(groups):
        lines.append('%s (allow_db_merge): keys in more than one of them are handled by on_conflict'
                     % merge_text({t_db: groups[t_db]}))
    if unsupported:
        lines.append('hash field TTLs: %d fields of %d hashes, which the target cannot hold: %s' % (
            census['fields'], census['keys'], 'the copy refuses (on_unsupported: fail)' if on_unsupported == 'fail'
            else 'copied without them (on_unsupported: drop)'))
    if source_cluster is not None:
        lines.extend(source_plan_lines(source_cluster))
    if nodes is not None:
        lines.extend(plan_lines(nodes))
    lines.append('about %s MiB of data, estimated %.0f s' % ('?' if need is None else need // 2 ** 20, estimate))
    lines.extend('not checked: %s' % cost for cost in costs)
    previous = bool(plan) and all(p['keys'] and p['target_keys'] == p['keys'] and p.get('target_sample_foreign') == []
                                  for p in plan)
    if previous:
        lines.append('the target already holds as many keys as the source in every db, every sampled key identical: '
                     'an earlier complete copy (this run checks it again and copies what differs)')
    return dict(changed=False, source=source_facts, target=target_facts, dbs=plan, previous_copy_complete=previous,
                method=chosen, method_reasons=reasons,
                migrate_possible=migrate_possible, payload=dict(source_rdb=source_facts['rdb_version'],
                                                                target_rdb=target_facts['rdb_version'], accepts=accepts),
                memory=dict(source_data=need, target_maxmemory=target_facts['maxmemory'], target_free=room),
                not_checked=costs,
                target_empty=not any(target_keys.values()), keys=keys, estimate_seconds=estimate,
                problems=problems, preflight_warnings=warnings, plan=lines, ok=not problems, unsupported=unsupported,
                cluster=cluster_result(cluster, nodes, source_cluster),
                live_possible=live_possible, live_reason=live_reason)
