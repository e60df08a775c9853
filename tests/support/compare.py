"""Independent check used by the tests: does a target db hold exactly the source db's keys,
values and expiries?  (Type-aware reads with redis-py; scores compared as doubles.)"""

import time


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


def _expiry(client, key):
    pttl = client.pttl(key)
    return None if pttl < 0 else time.time() * 1000 + pttl


def differences(src, tgt, ttl_tolerance_ms=1000, limit=20):
    """List of human-readable differences between two dbs (empty when they match)."""
    problems = []
    s_keys = _scan_all(src)
    t_keys = _scan_all(tgt)
    for key in sorted(s_keys - t_keys)[:limit]:
        problems.append('missing on target: %r' % key)
    for key in sorted(t_keys - s_keys)[:limit]:
        problems.append('extra on target: %r' % key)
    for key in sorted(s_keys & t_keys):
        if len(problems) >= limit:
            break
        if _value(src, key) != _value(tgt, key):
            problems.append('value differs: %r' % key)
            continue
        a, b = _expiry(src, key), _expiry(tgt, key)
        if (a is None) != (b is None) or (a is not None and abs(a - b) > ttl_tolerance_ms):
            problems.append('expiry differs: %r (%s vs %s)' % (key, a, b))
    return problems


def assert_same(source, target, pairs, ttl_tolerance_ms=1000):
    """``pairs``: [(source_db, target_db)].  Raises AssertionError listing what differs."""
    for s_db, t_db in pairs:
        problems = differences(source.admin(s_db), target.admin(t_db), ttl_tolerance_ms)
        assert not problems, 'db %d -> %d: %s' % (s_db, t_db, problems)


def source_writes(server):
    """A counter that moves whenever the server's data is written (for never-touch-the-source checks)."""
    info = server.admin().info('persistence')
    return info['rdb_changes_since_last_save']


def snapshot(server, dbs=range(16)):
    """``{db: {key: (DUMP payload, has TTL)}}`` of the non-empty dbs: equal before and after = untouched."""
    out = {}
    for db in dbs:
        client = server.admin(db)
        keys = _scan_all(client)
        if keys:
            out[db] = dict((key, (client.dump(key), client.pttl(key) > 0)) for key in keys)
    return out
