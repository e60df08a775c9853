"""Independent check used by the tests: does a target db hold exactly the source db's keys,
values and expiries?  (Type-aware reads with redis-py; scores compared as doubles.)"""

import time

from redis import exceptions as redis_exceptions


def _scan_all(client):
    keys = set()
    cursor = 0
    while True:
        cursor, batch = client.scan(cursor=cursor, count=1000)
        keys.update(batch)
        if int(cursor) == 0:
            return keys


def _value(client, key):
    ktype = client.type(key).decode()
    if ktype == 'string':
        return ktype, client.get(key)
    if ktype == 'hash':
        return ktype, client.hgetall(key)
    if ktype == 'list':
        return ktype, client.lrange(key, 0, -1)
    if ktype == 'set':
        return ktype, client.smembers(key)
    if ktype == 'zset':
        return ktype, dict(client.zrange(key, 0, -1, withscores=True))
    if ktype == 'stream':
        groups = sorted((g['name'], g['last-delivered-id']) for g in client.xinfo_groups(key))
        return ktype, (client.xrange(key), groups, client.xinfo_stream(key)['last-generated-id'])
    return ktype, None


def _field_ttls(client, key):
    """{field: absolute expiry ms} of the hash's fields with a TTL (empty where the server has none)."""
    fields = client.hkeys(key)
    if not fields:
        return {}
    try:
        ttls = client.execute_command('HPEXPIRETIME', key, 'FIELDS', len(fields), *fields)
    except redis_exceptions.ResponseError:
        return {}
    return dict((f, int(t)) for f, t in zip(fields, ttls) if int(t) > 0)


def _stream_state(client, key):
    """Everything of a stream besides its entries: metadata, groups, consumers, pending entries."""
    info = client.xinfo_stream(key)
    meta = dict((k, info.get(k)) for k in ('last-generated-id', 'entries-added', 'max-deleted-entry-id')
                if info.get(k) is not None)
    groups = {}
    for g in client.xinfo_groups(key):
        name = g['name']
        pel = [(e['message_id'], e['consumer'], e['times_delivered'])
               for e in client.xpending_range(key, name, '-', '+', 1000000)]
        consumers = sorted(c['name'] for c in client.xinfo_consumers(key, name))
        groups[name] = dict(last=g['last-delivered-id'], entries_read=g.get('entries-read'), pel=pel,
                            consumers=consumers, has_entries_read='entries-read' in g)
    return meta, groups


def stream_problems(src, tgt, key):
    """Differences of a stream's metadata, groups, consumers and pending entries (the fields only one side
    reports are not compared)."""
    problems = []
    (s_meta, s_groups), (t_meta, t_groups) = _stream_state(src, key), _stream_state(tgt, key)
    for name in set(s_meta) & set(t_meta):
        if s_meta[name] != t_meta[name]:
            problems.append('stream meta %s differs: %r (%s vs %s)' % (name, key, s_meta[name], t_meta[name]))
    if sorted(s_groups) != sorted(t_groups):
        problems.append('stream groups differ: %r' % key)
        return problems
    for name, sg in s_groups.items():
        tg = t_groups[name]
        if sg['last'] != tg['last']:
            problems.append('group last-delivered-id differs: %r %r' % (key, name))
        if sg['has_entries_read'] and tg['has_entries_read'] and sg['entries_read'] != tg['entries_read']:
            problems.append('group entries-read differs: %r %r (%s vs %s)' % (key, name, sg['entries_read'],
                                                                              tg['entries_read']))
        if sg['pel'] != tg['pel']:
            problems.append('pending entries differ: %r %r' % (key, name))
        if sg['consumers'] != tg['consumers']:
            problems.append('consumers differ: %r %r' % (key, name))
    return problems


def field_ttl_problems(src, tgt, key, ttl_tolerance_ms=1000, target_holds=True):
    """Field TTL differences of a hash; with ``target_holds`` False only fields losing their TTL are
    expected (returned as ``lost:`` lines)."""
    a, b = _field_ttls(src, key), _field_ttls(tgt, key)
    if not target_holds:
        return ['lost: %d field TTLs of %r' % (len(a), key)] if a else []
    problems = []
    if sorted(a) != sorted(b):
        problems.append('field TTLs differ: %r (%d vs %d fields with a TTL)' % (key, len(a), len(b)))
    elif any(abs(a[f] - b[f]) > ttl_tolerance_ms for f in a):
        problems.append('field TTL values differ: %r' % key)
    return problems


def _expiry(client, key):
    pttl = client.pttl(key)
    return None if pttl < 0 else time.time() * 1000 + pttl


def differences(src, tgt, ttl_tolerance_ms=1000, limit=20, deep=False, target_holds_field_ttls=True):
    """List of human-readable differences between two dbs (empty when they match).  With ``deep`` also hash
    field TTLs and stream metadata, groups, consumers and pending entries (lost field TTLs the target cannot
    hold come as ``lost:`` lines).  ``src`` / ``tgt`` are clients of one db each, or lists of clients: the
    masters of a cluster (every key is read on the master that holds it)."""
    problems = []
    s_keys = _holders(src)
    t_keys = _holders(tgt)
    for key in sorted(set(s_keys) - set(t_keys))[:limit]:
        problems.append('missing on target: %r' % key)
    for key in sorted(set(t_keys) - set(s_keys))[:limit]:
        problems.append('extra on target: %r' % key)
    for key in sorted(set(s_keys) & set(t_keys)):
        if len(problems) >= limit:
            break
        s_client, t_client = s_keys[key], t_keys[key]
        value = _value(s_client, key)
        if value != _value(t_client, key):
            problems.append('value differs: %r' % key)
            continue
        if deep and value[0] == 'hash':
            problems += field_ttl_problems(s_client, t_client, key, ttl_tolerance_ms, target_holds_field_ttls)
        elif deep and value[0] == 'stream':
            problems += stream_problems(s_client, t_client, key)
        a, b = _expiry(s_client, key), _expiry(t_client, key)
        if (a is None) != (b is None) or (a is not None and abs(a - b) > ttl_tolerance_ms):
            problems.append('expiry differs: %r (%s vs %s)' % (key, a, b))
    return problems


def _holders(clients):
    """``{key: client}``: the keys of one db, or of every master of a cluster (a key twice is a defect)."""
    if not isinstance(clients, (list, tuple)):
        return dict((key, clients) for key in _scan_all(clients))
    out = {}
    for client in clients:
        for key in _scan_all(client):
            assert key not in out, 'key %r is held by two masters' % key
            out[key] = client
    return out


def assert_same(source, target, pairs, ttl_tolerance_ms=1000):
    """``pairs``: [(source_db, target_db)].  Raises AssertionError listing what differs."""
    for s_db, t_db in pairs:
        problems = differences(source.admin(s_db), target.admin(t_db), ttl_tolerance_ms)
        assert not problems, 'db %d -> %d: %s' % (s_db, t_db, problems)


def source_writes(server):
    """A counter that moves whenever a write command runs on the server (for never-touch-the-source checks): the
    calls of every command in the ``write`` ACL category, from INFO commandstats.  (``rdb_changes_since_last_save``
    is not usable: the BGSAVE a backup or a replica's sync starts resets it to 0.)"""
    admin = server.admin()
    write_commands = set(name.decode().lower() for name in admin.execute_command('ACL', 'CAT', 'write'))
    write_commands.discard('migrate')  # MIGRATE ... COPY leaves the source as it was (tests check its keys stay)
    total = 0
    for name, stats in admin.info('commandstats').items():
        if name.startswith('cmdstat_') and name[len('cmdstat_'):].lower() in write_commands:
            total += int(stats['calls'])
    return total


def snapshot(server, dbs=range(16)):
    """``{db: {key: (DUMP payload, has TTL)}}`` of the non-empty dbs: equal before and after = untouched."""
    out = {}
    for db in dbs:
        client = server.admin(db)
        keys = _scan_all(client)
        if keys:
            out[db] = dict((key, (client.dump(key), client.pttl(key) > 0)) for key in keys)
    return out
