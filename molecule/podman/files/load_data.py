#!/usr/bin/env python
"""Wait for the scenario's two containers to answer, then load the sample data into the source.

    load_data.py    reads KV_SOURCE_PORT, KV_TARGET_PORT (the published host ports on 127.0.0.1) and
                    KV_SOURCE_ADMIN, KV_TARGET_ADMIN (the admin passwords) from the environment; prints
                    {"source_keys": N} as JSON

The same data as molecule/default: dbs 0, 3 and 9 of the source, awkward key names, TTLs, every type.
Needs the redis Python package (the collection's own requirement).
"""

import json
import os
import sys
import time

import redis

NAMES = [b'', b'line\nbreak', b'with space', b'"quoted" \'both\'', b'tab\there', b'star*', b'\xff\xfe not utf-8']


def client(side, db=0):
    return redis.Redis(host='127.0.0.1', port=int(os.environ['KV_%s_PORT' % side]), username='admin',
                       password=os.environ['KV_%s_ADMIN' % side], db=db, socket_timeout=10)


def wait(side, seconds=30):
    deadline = time.time() + seconds
    while True:
        try:
            return client(side).ping()
        except (redis.ConnectionError, redis.TimeoutError):
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def load():
    total = 0
    for db in (0, 3, 9):
        src = client('SOURCE', db)
        pipe = src.pipeline(transaction=False)
        for n, name in enumerate(NAMES):
            pipe.set(b'db%d:' % db + name, b'value %d' % n)
        for n in range(500):
            pipe.set(b'key:%d' % n, b'v' * (n % 50), px=3600 * 1000 if n % 10 == 0 else None)
        pipe.hset(b'hash', mapping={b'a': b'1', b'\xff': b''})
        pipe.rpush(b'list', b'x', b'', b'x')
        pipe.sadd(b'set', b'm', b'n')
        pipe.zadd(b'zset', {b'a': 0.1, b'b': -2})
        pipe.xadd(b'stream', {b'f': b'v'}, id=b'1-1')
        pipe.execute()
        total += src.dbsize()
    return total


if __name__ == '__main__':
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    wait('SOURCE')
    wait('TARGET')
    print(json.dumps(dict(source_keys=load())))
