#!/usr/bin/env python
"""Wait for the scenario's two containers to answer, then load the sample data into the source.

    load_data.py    reads KV_SOURCE_PORT, KV_TARGET_PORT (the published host ports on 127.0.0.1) and
                    KV_SOURCE_ADMIN, KV_TARGET_ADMIN (the admin passwords) from the environment; prints
                    {"source_keys": N} as JSON

The same data as molecule/default (its files/servers.py loads it): dbs 0, 3 and 9 of the source, awkward key
names, TTLs, every type.
Needs the redis Python package (the collection's own requirement).
"""

import json
import os
import sys
import time

import redis

# the data is the default scenario's, loaded by its own loader
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'default', 'files'))
from servers import load  # noqa: E402  pylint: disable=wrong-import-position


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


if __name__ == '__main__':
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    wait('SOURCE')
    wait('TARGET')
    print(json.dumps(dict(source_keys=load(int(os.environ['KV_SOURCE_PORT']), os.environ['KV_SOURCE_ADMIN']))))
