"""A dataset that makes a server write every RDB type and encoding it has, for the snapshot parser's tests.

``load_every_encoding(server)`` fills dbs 0, 3 and 15 of a real server (admin client) and returns
``expected_types``: the RDB type bytes this server version must have written for it (so a test can
prove the snapshot held each of them, not only that what it held was parsed).
"""

import random

from tests.support import data

FUNCTION_CODE = b"#!lua name=kvsnaplib\nredis.register_function('kvsnap_echo', function(keys, args) return args[1] end)"


def version_tuple(server):
    info = server.admin().info('server')
    text = info.get('valkey_version') or info['redis_version']
    return tuple(int(x) for x in str(text).split('.')[:2])


def engine(server):
    return 'valkey' if 'valkey_version' in server.admin().info('server') else 'redis'


def hfe_supported(server):
    eng, ver = engine(server), version_tuple(server)
    return (eng == 'redis' and ver >= (7, 4)) or (eng == 'valkey' and ver >= (9, 0))


def load_every_encoding(server, ttl_ms=3600 * 1000):
    eng, ver = engine(server), version_tuple(server)
    rng = random.Random(11)
    c = server.admin(0)
    # quicklist nodes compressed with LZF (list-compress-depth), so compressed containers are covered too
    c.config_set('list-compress-depth', 1)
    data.load_all_types(c, prefix=b'aw:', big=300)
    # strings: int encodings (int8/16/32), a long int kept as text, raw, LZF-compressible, incompressible
    pipe = c.pipeline(transaction=False)
    for n, value in enumerate([b'7', b'-100', b'30000', b'-2000000000', b'12345678901234', b'0', b'']):
        pipe.set(b'str:int:%d' % n, value)
    pipe.set(b'str:raw', b'plain short value')
    pipe.set(b'str:lzf', b'abcabcabc' * 200)
    pipe.set(b'str:random', rng.randbytes(3000))
    pipe.set(b'K' * 64 + b':compressed-key-name', b'key name long and repetitive: LZF in the RDB')
    pipe.set(b'str:ttl', b'expires', px=ttl_ms)
    pipe.set(b'str:ttl-abs', b'expires at', pxat=4102444800000)
    pipe.set(b'str:big', rng.randbytes(200000))
    pipe.hset(b'hash:bigvalues', mapping=dict((b'f%d' % i, rng.randbytes(1000)) for i in range(100)))
    # lists: small (listpack / ziplist), long (several quicklist nodes), a large element (plain node on 7.0+)
    pipe.rpush(b'list:small', b'a', b'1', b'-7', b'\x00\xff')
    pipe.rpush(b'list:long', *[b'item-%d' % i for i in range(5000)])
    pipe.rpush(b'list:plain', b'small', b'P' * 20000, b'tail')
    pipe.pexpire(b'list:long', ttl_ms)
    # sets: intset, listpack (7.2+), hashtable
    pipe.sadd(b'set:int', 1, 2, 3, -40, 70000, 2 ** 40)
    pipe.sadd(b'set:small', b'a', b'b', b'\xff')
    pipe.sadd(b'set:big', *[b'member-%d' % i for i in range(1000)])
    # zsets: listpack / ziplist, skiplist (long member and many members), special scores
    pipe.zadd(b'zset:small', {b'a': 1.5, b'b': -2, b'c': float('inf'), b'd': float('-inf')})
    pipe.zadd(b'zset:big', dict((b'm%d' % i, i / 3.0) for i in range(500)))
    pipe.zadd(b'zset:longmember', {b'L' * 200: 1, b'x': 2})
    # hashes: listpack / ziplist, hashtable (many fields, and one long value)
    pipe.hset(b'hash:small', mapping={b'f1': b'v1', b'f2': b'12', b'\x00': b''})
    pipe.hset(b'hash:big', mapping=dict((b'f%d' % i, b'v%d' % i) for i in range(600)))
    pipe.hset(b'hash:longvalue', mapping={b'f': b'V' * 500})
    pipe.execute()
    # streams: groups, PEL, consumers, deleted entries, several nodes; an empty stream with only a group
    for i in range(1, 400):
        c.xadd(b'stream:big', {b'n': b'%d' % i, b'pad': b'p' * (i % 7)}, id=b'%d-1' % i)
    c.xdel(b'stream:big', b'5-1', b'6-1')
    c.xgroup_create(b'stream:big', b'g1', id=b'0')
    c.xgroup_create(b'stream:big', b'g2', id=b'100-1')
    c.xreadgroup(b'g1', b'alice', {b'stream:big': b'>'}, count=3)
    c.xreadgroup(b'g1', b'bob', {b'stream:big': b'>'}, count=2)
    c.xack(b'stream:big', b'g1', b'1-1')
    c.xgroup_createconsumer(b'stream:big', b'g2', b'idle-consumer')
    c.xgroup_create(b'stream:onlygroup', b'g', id=b'$', mkstream=True)
    c.xadd(b'stream:small', {b'f': b'v'}, id=b'1-1')
    # more dbs, with awkward names and TTLs
    for db in (3, 15):
        cdb = server.admin(db)
        pipe = cdb.pipeline(transaction=False)
        for n, name in enumerate(data.AWKWARD_KEYS):
            pipe.set(b'db%d:' % db + name, b'v%d' % n)
            pipe.set(name, b'bare %d' % n, px=ttl_ms + n)
        pipe.hset(b'db%d:hash' % db, mapping={b'a': b'1'})
        pipe.execute()
    expected = {0, 2, 4, 5, 11}                 # string, set ht, hash ht, zset skiplist, intset
    if ver >= (7, 0) or eng == 'valkey':
        expected |= {16, 17, 18}                # listpack hash / zset, quicklist 2
    else:
        expected |= {12, 13, 14}                # ziplist zset / hash, quicklist
    if ver >= (7, 2) or eng == 'valkey':
        expected |= {20, 21}                    # listpack set, stream v3
    elif ver >= (7, 0):
        expected |= {19}
    else:
        expected |= {15}
    if hfe_supported(server):
        hc = c
        hc.hset(b'hfe:small', mapping={b'a': b'1', b'b': b'2', b'c': b'3'})
        hc.execute_command('HPEXPIRE', b'hfe:small', ttl_ms, 'FIELDS', 1, b'a')
        hc.hset(b'hfe:big', mapping=dict((b'f%d' % i, b'v%d' % i) for i in range(600)))
        hc.execute_command('HPEXPIRE', b'hfe:big', ttl_ms, 'FIELDS', 2, b'f1', b'f7')
        hc.pexpire(b'hfe:big', ttl_ms * 2)
        expected |= {24, 25} if eng == 'redis' else {22}
    if ver >= (7, 0) or eng == 'valkey':
        c.execute_command('FUNCTION', 'LOAD', 'REPLACE', FUNCTION_CODE)
    return expected
