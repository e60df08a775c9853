#!/usr/bin/env python
"""Benchmark kv_dump_restore and kv_migrate against the runbook's xargs+MIGRATE pipeline and a full sync.

    make bench                       # every dataset at full size
    .venv/bin/python tests/benchmarks/bench_copy.py --datasets small --scale 0.1

Source Redis 7.0 (Debian), target Valkey 8.0 (Debian backports), both on loopback on this machine.
Datasets (full size):
  small  1,000,000 keys of 100-byte strings, 10% with a TTL
  mixed  200,000 mixed keys over dbs 0, 1, 5 + a hash of 1M fields, a list of 1M items, a zset of 500k
  big    1 GiB as 10,000 random values of 100 KiB
  awkward  1,000 keys whose names hold quotes, newlines, spaces, tabs, '*' and non-UTF-8 bytes
For each dataset: kv_dump_restore's engine ("copier") and kv_migrate's engine ("migrate"), each in
its own process with its peak RSS measured, the xargs pipeline
(`redis-cli --raw KEYS '*' | xargs redis-cli MIGRATE ... COPY KEYS`, per db) and the target's
own full sync (REPLICAOF until the initial sync is done).  Prints a table; --out writes JSON.
Timings are measurements, not assertions.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.support import servers  # noqa: E402
from tests.support.ansible import ensure_collection_path  # noqa: E402

COPIER = r'''
import json, resource, sys, time
sys.path.insert(0, %(collections)r)
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._migrate import Migrate, MigrateOptions
args = json.loads(sys.argv[1])
engine, options = (Migrate, MigrateOptions) if args['engine'] == 'migrate' else (DumpRestore, CopyOptions)
t0 = time.time()
result = engine(Endpoint(args['source']), Endpoint(args['target']), options(**args['options'])).run()
usage = resource.getrusage(resource.RUSAGE_SELF)
out = dict(seconds=time.time() - t0, totals=result['totals'], payload_path=result['payload_path'],
           cpu_s=usage.ru_utime + usage.ru_stime,
           peak_rss_mib=[int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0] / 1024.0)
print(json.dumps(out))
'''


def open_default(server):
    """Let the baselines in without a password (bench servers only, loopback only)."""
    server.admin().execute_command('ACL', 'SETUSER', 'default', 'on', 'nopass', '~*', '&*', '+@all')


def flush(server):
    server.admin().flushall()


def load_small(src, n):
    a = src.admin()
    a.execute_command('DEBUG', 'POPULATE', n, 'key', 100)
    pipe = a.pipeline(transaction=False)
    for i in range(0, n, 10):
        pipe.pexpire(b'key:%d' % i, 3600 * 1000)
        if i % 50000 == 0:
            pipe.execute()
    pipe.execute()
    return [0]


def load_mixed(src, n, big):
    per_db = n // 3
    for db in (0, 1, 5):
        a = src.admin(db)
        pipe = a.pipeline(transaction=False)
        for i in range(per_db):
            kind = i % 5
            k = b'm:%d' % i
            if kind == 0:
                pipe.set(k, b'v' * 50)
            elif kind == 1:
                pipe.hset(k, mapping={b'a': b'1', b'b': b'2', b'c': b'3'})
            elif kind == 2:
                pipe.rpush(k, b'x', b'y', b'z')
            elif kind == 3:
                pipe.sadd(k, b'p', b'q', b'r')
            else:
                pipe.zadd(k, {b'a': 1, b'b': 2.5})
            if i % 20 == 0:
                pipe.pexpire(k, 3600 * 1000)
            if i % 10000 == 9999:
                pipe.execute()
        pipe.execute()
    a = src.admin(0)
    pipe = a.pipeline(transaction=False)
    for i in range(0, big, 5000):
        rng = range(i, min(big, i + 5000))
        pipe.hset(b'big:hash', mapping=dict((b'f%d' % j, b'value-%d' % j) for j in rng))
        pipe.rpush(b'big:list', *[b'item-%d' % j for j in rng])
        if i < big // 2:
            pipe.zadd(b'big:zset', dict((b'member-%d' % j, j * 0.5) for j in rng))
        pipe.execute()
    return [0, 1, 5]


def load_awkward(src, n):
    """Key names the runbook's pipeline mangles: quotes, newlines, spaces, tabs, glob characters, non-UTF-8."""
    pieces = [b'"', b"'", b'\n', b' ', b'\t', b'*', b'\xff', b'\\', b'$(x)', b'\r\n']
    a = src.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(n):
        pipe.set(b'odd%s%d%s' % (pieces[i % len(pieces)], i, pieces[(i // 10) % len(pieces)]), b'value %d' % i)
    pipe.execute()
    return [0]


def load_big(src, n, size):
    a = src.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(n):
        pipe.set(b'blob:%d' % i, os.urandom(size))
        if i % 100 == 99:
            pipe.execute()
    pipe.execute()
    return [0]


def print_table(cols, rows, title=None):
    """The Markdown table of ``rows`` (dicts) in the order of ``cols`` (every benchmark prints this shape)."""
    print()
    if title:
        print(title)
    print('| ' + ' | '.join(cols) + ' |')
    print('|' + '---|' * len(cols))
    for row in rows:
        print('| ' + ' | '.join(str(row.get(c, '')) for c in cols) + ' |')


def run_copier(src, tgt, options, engine='dump_restore'):
    code = COPIER % dict(collections=ensure_collection_path())
    args = json.dumps(dict(source=src.endpoint(), target=tgt.endpoint(), options=options, engine=engine))
    t0 = time.time()
    out = subprocess.run([sys.executable, '-c', code, args], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True)
    wall = time.time() - t0
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result['wall'] = wall
    return result


def run_xargs(src, tgt, dbs):
    """The runbook's pipeline, per db (redis-cli from Debian's Redis 7.0)."""
    cli = '/usr/bin/redis-cli'
    t0 = time.time()
    for db in dbs:
        cmd = ("%s -h 127.0.0.1 -p %d -n %d --raw KEYS '*' | xargs %s -h 127.0.0.1 -p %d -n %d "
               "MIGRATE 127.0.0.1 %d \"\" %d 5000 COPY KEYS > /dev/null"
               % (cli, src.port, db, cli, src.port, db, tgt.port, db))
        # the pipeline fails on some key names (xargs: unmatched quote); what it copied is counted
        subprocess.run(cmd, shell=True, check=False, stderr=subprocess.DEVNULL)
    return time.time() - t0


def run_full_sync(src, tgt):
    a = tgt.admin()
    t0 = time.time()
    a.execute_command('REPLICAOF', '127.0.0.1', src.port)
    while True:
        info = a.info('replication')
        if info.get('master_link_status') == 'up' and not int(info.get('master_sync_in_progress', 0)):
            break
        time.sleep(0.01)
    seconds = time.time() - t0
    a.execute_command('REPLICAOF', 'NO', 'ONE')
    return seconds


def target_keys(tgt, dbs):
    return sum(tgt.admin(db).dbsize() for db in dbs)


def bench(name, loader, src, tgt, workers, batch_size, migrate_batch=None):
    flush(src)
    flush(tgt)
    t0 = time.time()
    dbs = loader()
    keys = sum(src.admin(db).dbsize() for db in dbs)
    used = src.admin().info('memory')['used_memory']
    print('[%s] loaded %d keys (%.0f MiB) in %.1fs' % (name, keys, used / 2 ** 20, time.time() - t0), flush=True)
    row = dict(dataset=name, keys=keys, source_mib=round(used / 2 ** 20))
    copier = run_copier(src, tgt, dict(workers=workers, batch_size=batch_size))
    assert target_keys(tgt, dbs) == keys, 'copier left keys behind'
    copier_mb_s = copier['totals']['bytes'] / 1e6 / copier['wall']
    row.update(copier_s=round(copier['wall'], 2), copier_keys_s=round(keys / copier['wall']),
               copier_peak_mib=round(copier['peak_rss_mib']), copier_mb_s=round(copier_mb_s, 1))
    print('[%s] copier %.2fs' % (name, copier['wall']), flush=True)
    flush(tgt)
    mopts = dict(batch_size=migrate_batch) if migrate_batch else {}
    migrate = run_copier(src, tgt, mopts, engine='migrate')
    assert target_keys(tgt, dbs) == keys, 'kv_migrate left keys behind'
    row.update(migrate_s=round(migrate['wall'], 2), migrate_keys_s=round(keys / migrate['wall']),
               migrate_peak_mib=round(migrate['peak_rss_mib']))
    print('[%s] migrate %.2fs' % (name, migrate['wall']), flush=True)
    flush(tgt)
    xargs = run_xargs(src, tgt, dbs)
    row.update(xargs_s=round(xargs, 2), xargs_keys_s=round(keys / xargs), xargs_copied=target_keys(tgt, dbs))
    print('[%s] xargs %.2fs' % (name, xargs), flush=True)
    flush(tgt)
    sync = run_full_sync(src, tgt)
    row.update(full_sync_s=round(sync, 2))
    print('[%s] full sync %.2fs' % (name, sync), flush=True)
    flush(tgt)
    row['copier_vs_sync'] = round(row['copier_s'] / max(sync, 1e-6), 2)
    row['copier_vs_xargs_speed'] = round(row['xargs_s'] / max(row['copier_s'], 1e-6), 2)
    row['migrate_vs_xargs_speed'] = round(row['xargs_s'] / max(row['migrate_s'], 1e-6), 2)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--datasets', default='small,mixed,big,awkward')
    parser.add_argument('--scale', type=float, default=1.0, help='multiply every dataset size')
    parser.add_argument('--workers', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=1000)
    parser.add_argument('--migrate-batch-size', type=int, help="kv_migrate's batch_size (default: its own)")
    parser.add_argument('--out')
    args = parser.parse_args()
    s = args.scale
    src = servers.Server('redis70', extra=['enable-debug-command yes', 'repl-diskless-sync-delay 0'],
                         name='bench-src').start()
    tgt = servers.Server('valkey80', name='bench-tgt').start()
    rows = []
    try:
        open_default(src)
        open_default(tgt)
        loaders = dict(
            small=lambda: load_small(src, int(1000000 * s)),
            mixed=lambda: load_mixed(src, int(200000 * s), int(1000000 * s)),
            big=lambda: load_big(src, int(10000 * s), 100 * 1024),
            awkward=lambda: load_awkward(src, 1000),
        )
        for name in args.datasets.split(','):
            rows.append(bench(name, loaders[name], src, tgt, args.workers, args.batch_size, args.migrate_batch_size))
    finally:
        src.cleanup()
        tgt.cleanup()
    cols = ['dataset', 'keys', 'source_mib', 'copier_s', 'copier_keys_s', 'copier_mb_s', 'copier_peak_mib',
            'migrate_s', 'migrate_keys_s', 'migrate_peak_mib', 'xargs_s', 'xargs_keys_s', 'xargs_copied',
            'full_sync_s', 'copier_vs_sync', 'copier_vs_xargs_speed', 'migrate_vs_xargs_speed']
    print_table(cols, rows)
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(dict(rows=rows, workers=args.workers, batch_size=args.batch_size, scale=s), fh, indent=2)


if __name__ == '__main__':
    main()
