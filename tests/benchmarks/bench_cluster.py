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

The ``vs_baseline`` column is seconds over the baseline's seconds of the same round (1.0: as fast).  The
whole list runs ``--repeat`` times (3 by default), interleaved, so that a slow minute of the machine hits every
copy alike; the summary gives each copy's median seconds and median ratio.  Prints the table of every round and
the summary; --out writes JSON.  Timings are measurements, not assertions.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from bench_copy import load_small, open_default, print_table, run_copier  # noqa: E402
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


def one_copy(sides, source_kind, target_kind, engine, keys, args):
    """One timed copy into an emptied target, checked by its key count: a row of the table."""
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
    return dict(source=source_kind, target=target_kind, engine=engine, keys=keys, seconds=round(result['wall'], 2),
                keys_s=round(keys / result['wall']), copier_cpu_s=round(result['cpu_s'], 2),
                peak_mib=round(result['peak_rss_mib']))


def summarize(rows):
    """Per copy (in the order of RUNS): the median, min and max seconds and ratios over the rounds."""
    out = []
    for source_kind, target_kind, engine in RUNS:
        mine = [r for r in rows if (r['source'], r['target'], r['engine']) == (source_kind, target_kind, engine)]
        if not mine:
            continue
        seconds = [r['seconds'] for r in mine]
        ratios = [r['vs_baseline'] for r in mine]
        out.append(dict(source=source_kind, target=target_kind, engine=engine, rounds=len(mine),
                        median_s=round(statistics.median(seconds), 2), min_s=min(seconds), max_s=max(seconds),
                        peak_mib=max(r['peak_mib'] for r in mine),
                        median_vs_baseline=round(statistics.median(ratios), 2), max_vs_baseline=max(ratios)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--keys', type=int, default=1000000)
    parser.add_argument('--source-flavour', default='redis70')
    parser.add_argument('--target-flavour', default='valkey80')
    parser.add_argument('--masters', type=int, default=3)
    parser.add_argument('--workers', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=1000)
    parser.add_argument('--repeat', type=int, default=3, help='rounds of the whole list (default 3)')
    parser.add_argument('--copies', default='all',
                        help='comma-separated SOURCE-TARGET-ENGINE names (e.g. cluster-cluster-dump_restore) or all; '
                             'the baseline always runs first')
    parser.add_argument('--out')
    args = parser.parse_args()
    names = ['-'.join(run) for run in RUNS]
    wanted = names if args.copies == 'all' else [names[0]] + [n for n in args.copies.split(',') if n != names[0]]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        parser.error('--copies: unknown %s; choose from %s' % (', '.join(unknown), ', '.join(names)))
    runs = [run for run in RUNS if '-'.join(run) in wanted]
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
        for round_no in range(1, args.repeat + 1):
            baseline = None
            for source_kind, target_kind, engine in runs:
                row = one_copy(sides, source_kind, target_kind, engine, keys, args)
                if baseline is None:
                    baseline = row['seconds']
                row.update(round=round_no, vs_baseline=round(row['seconds'] / max(baseline, 1e-6), 2))
                rows.append(row)
                print('round %d: %s -> %s %s: %.2fs (%.2fx the baseline)' % (
                    round_no, source_kind, target_kind, engine, row['seconds'], row['vs_baseline']), flush=True)
    finally:
        for found in started:
            found.cleanup()
    title = '%d masters per cluster, %s -> %s, workers %d' % (args.masters, args.source_flavour,
                                                              args.target_flavour, args.workers)
    print_table(['round', 'source', 'target', 'engine', 'keys', 'seconds', 'keys_s', 'copier_cpu_s', 'peak_mib',
                 'vs_baseline'],
                rows, title='every round: ' + title)
    summary = summarize(rows)
    print_table(['source', 'target', 'engine', 'rounds', 'median_s', 'min_s', 'max_s', 'peak_mib',
                 'median_vs_baseline', 'max_vs_baseline'], summary, title='median of %d round(s): %s'
                % (args.repeat, title))
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(dict(rows=rows, summary=summary, repeat=args.repeat, masters=args.masters, workers=args.workers,
                           batch_size=args.batch_size, source_flavour=args.source_flavour,
                           target_flavour=args.target_flavour), fh, indent=2)


if __name__ == '__main__':
    main()
