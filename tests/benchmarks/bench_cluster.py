#!/usr/bin/env python
"""Benchmark copies out of and into clusters against the same keys between two standalone servers.

    make bench-cluster                                  # 1,000,000 keys (several minutes)
    .venv/bin/python tests/benchmarks/bench_cluster.py --keys 20000

The keys of bench_copy's ``small`` dataset (100-byte strings, 10% with a TTL; DEBUG POPULATE on a standalone
source).  Source flavour Redis 7.0, target flavour Valkey 8.0 by default (as ``make bench``); the clusters have
3 masters each, on loopback on this machine.  Each copy runs in its own process (bench_copy's runner: wall
time, peak RSS), each into an emptied target, each checked by its key count:

  standalone -> standalone  kv_dump_restore   the baseline of every ratio
  standalone -> standalone  kv_migrate
  standalone -> cluster     kv_dump_restore   (this loads the source cluster)
  standalone -> cluster     kv_migrate
  cluster    -> cluster     kv_dump_restore   issue #18: within 1.3x of the baseline
  cluster    -> cluster     kv_migrate
  cluster    -> standalone  kv_dump_restore

The ``vs_baseline`` column is seconds over the baseline's seconds (1.0: as fast).  Prints a table; --out
writes JSON.  Timings are measurements, not assertions.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from bench_copy import load_small, open_default, run_copier  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402

RUNS = (
    ('standalone', 'standalone', 'dump_restore'),
    ('standalone', 'standalone', 'migrate'),
    ('standalone', 'cluster', 'dump_restore'),
    ('standalone', 'cluster', 'migrate'),
    ('cluster', 'cluster', 'dump_restore'),
    ('cluster', 'cluster', 'migrate'),
    ('cluster', 'standalone', 'dump_restore'),
)


def keys_of(found):
    nodes = found.nodes if isinstance(found, Cluster) else [found]
    return sum(int(node.admin().dbsize()) for node in nodes)


def flush(found):
    if isinstance(found, Cluster):
        found.flushall()
    else:
        found.admin().flushall()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--keys', type=int, default=1000000)
    parser.add_argument('--source-flavour', default='redis70')
    parser.add_argument('--target-flavour', default='valkey80')
    parser.add_argument('--masters', type=int, default=3)
    parser.add_argument('--workers', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=1000)
    parser.add_argument('--out')
    args = parser.parse_args()
    started = []
    rows = []
    try:
        sides = dict(
            source=dict(standalone=servers.Server(args.source_flavour, extra=['enable-debug-command yes'],
                                                  name='bench-cl-src').start()),
            target=dict(standalone=servers.Server(args.target_flavour, name='bench-cl-tgt').start()))
        started += [sides['source']['standalone'], sides['target']['standalone']]
        sides['source']['cluster'] = Cluster(args.source_flavour, masters=args.masters, name='bench-src-cl').start()
        started.append(sides['source']['cluster'])
        sides['target']['cluster'] = Cluster(args.target_flavour, masters=args.masters, name='bench-tgt-cl').start()
        started.append(sides['target']['cluster'])
        for server in (sides['source']['standalone'], sides['target']['standalone']):
            open_default(server)
        t0 = time.time()
        load_small(sides['source']['standalone'], args.keys)
        keys = keys_of(sides['source']['standalone'])
        print('loaded %d keys in %.1fs' % (keys, time.time() - t0), flush=True)
        baseline = None
        for source_kind, target_kind, engine in RUNS:
            source, target = sides['source'][source_kind], sides['target'][target_kind]
            if source_kind == 'cluster' and keys_of(source) != keys:  # load the source cluster first
                flush(source)
                run_copier(sides['source']['standalone'], source, dict(workers=args.workers))
                assert keys_of(source) == keys, 'the source cluster was not loaded'
            flush(target)
            options = dict(workers=args.workers)
            if engine == 'dump_restore':
                options['batch_size'] = args.batch_size
            result = run_copier(source, target, options, engine=engine)
            arrived = keys_of(target)
            assert arrived == keys, '%s -> %s with %s left keys behind (%d of %d)' % (
                source_kind, target_kind, engine, arrived, keys)
            row = dict(source=source_kind, target=target_kind, engine=engine, keys=keys,
                       seconds=round(result['wall'], 2), keys_s=round(keys / result['wall']),
                       peak_mib=round(result['peak_rss_mib']))
            if baseline is None:
                baseline = result['wall']
            row['vs_baseline'] = round(result['wall'] / max(baseline, 1e-6), 2)
            rows.append(row)
            print('%s -> %s %s: %.2fs (%.2fx the baseline)'
                  % (source_kind, target_kind, engine, result['wall'], row['vs_baseline']), flush=True)
    finally:
        for found in started:
            found.cleanup()
    cols = ['source', 'target', 'engine', 'keys', 'seconds', 'keys_s', 'peak_mib', 'vs_baseline']
    print()
    print('%d masters per cluster, %s -> %s, workers %d'
          % (args.masters, args.source_flavour, args.target_flavour, args.workers))
    print('| ' + ' | '.join(cols) + ' |')
    print('|' + '---|' * len(cols))
    for row in rows:
        print('| ' + ' | '.join(str(row.get(c, '')) for c in cols) + ' |')
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(dict(rows=rows, masters=args.masters, workers=args.workers, batch_size=args.batch_size,
                           source_flavour=args.source_flavour, target_flavour=args.target_flavour), fh, indent=2)


if __name__ == '__main__':
    main()
