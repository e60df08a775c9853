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
