"""Sample data for tests, the demo and benchmarks: every type, awkward names, TTLs."""

AWKWARD_KEYS = [
    b'',                      # the empty name
    b'with\nnewline',
    b'with space',
    b'with "double" quotes',
    b"with 'single' quotes",
    b'with\ttab',
    b'star*glob?[x]',
    b'\xff\xfe non-utf8 \x00 nul',
    b'\r\n*3\r\n$3\r\nSET',   # looks like RESP
    b'-ERR not an error',
]


def load_all_types(client, prefix=b'', ttl_ms=None, big=0):
    """Write one key of each type (plus awkward-name strings) through ``client`` (admin, bytes).

    Returns the key names written.  ``big`` adds collections of that many elements.
    """
    p = prefix
    keys = []
    pipe = client.pipeline(transaction=False)
    for n, name in enumerate(AWKWARD_KEYS):
        key = p + name
        pipe.set(key, b'value \x00\xff\n "%d"' % n if n % 3 else b'')
        keys.append(key)
    pipe.set(p + b'str:ttl', b'expiring', px=ttl_ms or 3600 * 1000)
    pipe.hset(p + b'hash', mapping={b'f\n1': b'v1', b'f 2': b'', b'\xff': b'\x00'})
    pipe.rpush(p + b'list', b'a', b'', b'a', b'\xff\n')
    pipe.sadd(p + b'set', b'm1', b'', b'\xfe')
    pipe.zadd(p + b'zset', {b'a': 0.1, b'b': -1.5, b'c': 1e300, b'inf': float('inf'), b'd': 3})
    pipe.xadd(p + b'stream', {b'f': b'v1'}, id=b'1-1')
    pipe.xadd(p + b'stream', {b'f': b'v2', b'g': b'\xff'}, id=b'2-5')
    pipe.xadd(p + b'stream', {b'f': b'v3'}, id=b'3-0')
    pipe.execute()
    client.xgroup_create(p + b'stream', b'grp', id=b'2-5')
    client.xgroup_create(p + b'stream', b'grp2', id=b'0')
    keys += [p + b'str:ttl', p + b'hash', p + b'list', p + b'set', p + b'zset', p + b'stream']
    client.pexpire(p + b'hash', 7200 * 1000)
    if big:
        pipe = client.pipeline(transaction=False)
        for i in range(0, big, 1000):
            rng = range(i, min(big, i + 1000))
            pipe.hset(p + b'big:hash', mapping=dict((b'f%d' % j, b'v%d' % j) for j in rng))
            pipe.rpush(p + b'big:list', *[b'i%d' % j for j in rng])
            pipe.sadd(p + b'big:set', *[b's%d' % j for j in rng])
            pipe.zadd(p + b'big:zset', dict((b'm%d' % j, j / 7.0) for j in rng))
        pipe.execute()
        keys += [p + b'big:hash', p + b'big:list', p + b'big:set', p + b'big:zset']
    return keys


def field_ttls_supported(client):
    """Whether the server holds hash field TTLs (Redis 7.4+, Valkey 9+)."""
    try:
        client.execute_command('HPEXPIRETIME', b'kvtools-test:no-such-key', 'FIELDS', 1, b'f')
        return True
    except Exception:  # unknown command
        return False


def load_streams(client, prefix=b''):
    """Streams with every shape the type-aware copy must keep: groups with pending entries (one of them for an
    entry deleted after delivery), a consumer without pending entries, entries-added/max-deleted-entry-id
    moved by XDEL, and an empty stream that holds only a group (a drained queue)."""
    p = prefix
    key = p + b'stream:pel'
    for n in range(1, 8):
        client.xadd(key, {b'n': b'%d' % n, b'\xff f': b'v\n%d' % n}, id=b'%d-1' % n)
    client.xgroup_create(key, b'workers', id=b'0')
    client.xgroup_create(key, b'idle\ngroup', id=b'3-1')
    client.xreadgroup(b'workers', b'alice', {key: b'>'}, count=3)
    client.xreadgroup(b'workers', b'bob', {key: b'>'}, count=2)
    client.xreadgroup(b'workers', b'alice', {key: b'0'}, count=1)  # delivered again: count 2
    client.xack(key, b'workers', b'4-1')
    client.xdel(key, b'2-1')  # deleted after delivery: still pending
    try:
        client.execute_command('XGROUP', 'CREATECONSUMER', key, b'workers', b'carol (no pending)')
    except Exception:
        pass  # before 6.2
    client.xgroup_create(p + b'stream:empty+group', b'g', id=b'$', mkstream=True)
    client.xadd(p + b'stream:drained', {b'a': b'1'}, id=b'5-0')
    client.xgroup_create(p + b'stream:drained', b'g', id=b'0')
    client.xreadgroup(b'g', b'c', {p + b'stream:drained': b'>'})
    client.xack(p + b'stream:drained', b'g', b'5-0')
    client.xdel(p + b'stream:drained', b'5-0')
    return [key, p + b'stream:empty+group', p + b'stream:drained']


def load_field_ttls(client, prefix=b'', count=3):
    """Hashes with field TTLs (a small listpack one and a big hashtable one); returns (keys, fields with a TTL)."""
    p = prefix
    small, big = p + b'hash:fttl', p + b'hash:fttl:big'
    client.hset(small, mapping={b'a': b'1', b'b': b'2', b'keep': b'3'})
    client.hset(big, mapping=dict((b'f%d' % n, b'v' * 80) for n in range(300)))
    client.execute_command('HPEXPIRE', small, 3600000, 'FIELDS', 2, b'a', b'b')
    client.execute_command('HPEXPIRE', big, 7200000, 'FIELDS', count, *[b'f%d' % n for n in range(count)])
    client.expire(small, 9000)
    return [small, big], 2 + count


def load_compat(client, prefix=b''):
    """The compatibility data set: every type in each of its encodings, awkward names, key TTLs in seconds, in
    milliseconds and absolute, streams with groups and pending entries, an empty stream with a group, and hash
    field TTLs where the server has them.  Returns the key names."""
    import time
    p = prefix
    keys = load_all_types(client, prefix=p)
    pipe = client.pipeline(transaction=False)
    pipe.set(p + b'str:int', b'12345')
    pipe.set(p + b'str:raw', b'r' * 100)
    pipe.set(p + b'str:ttl:s', b'x', ex=3600)
    pipe.set(p + b'str:ttl:ms', b'y', px=7200123)
    pipe.set(p + b'str:ttl:abs', b'z')
    pipe.pexpireat(p + b'str:ttl:abs', int(time.time() * 1000) + 5400321)
    pipe.hset(p + b'hash:table', mapping=dict((b'k%d' % n, b'v%d' % n) for n in range(200)))
    pipe.hset(p + b'hash:longvalue', mapping={b'f': b'L' * 100})
    pipe.rpush(p + b'list:quick', *[b'e%d' % n * 20 for n in range(1000)])
    pipe.sadd(p + b'set:int', 1, 2, 3, 400000)
    pipe.sadd(p + b'set:table', *[b'm%d' % n for n in range(300)])
    pipe.zadd(p + b'zset:skip', dict((b'z%d' % n, n * 0.5) for n in range(300)))
    pipe.execute()
    keys += [p + b'str:int', p + b'str:raw', p + b'str:ttl:s', p + b'str:ttl:ms', p + b'str:ttl:abs', p + b'hash:table',
             p + b'hash:longvalue', p + b'list:quick', p + b'set:int', p + b'set:table', p + b'zset:skip']
    keys += load_streams(client, p)
    if field_ttls_supported(client):
        keys += load_field_ttls(client, p)[0]
    return keys
