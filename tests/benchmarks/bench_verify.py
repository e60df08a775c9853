#!/usr/bin/env python
"""Benchmark kv_verify against the runbook's key-name-only check.

    make bench-verify                                  # 1,000,000 keys
    .venv/bin/python tests/benchmarks/bench_verify.py --scale 0.1

Source Redis 7.0 (Debian), target Valkey 8.0 (Debian backports), both on loopback on this machine.
Dataset: bench_copy's "small" one - 1,000,000 keys of 100-byte strings, 10% with a TTL - copied to the
target with kv_dump_restore's engine.  Then, in the same run:

  (a) the runbook's check, timed end to end as shell commands:
      redis-cli KEYS '*' | sort > source.txt; redis-cli KEYS '*' | sort > target.txt; diff source.txt target.txt
      (key names only, no values, no TTLs; names with newlines break it)
  (b) a full kv_verify (key sets both ways, every value and TTL) in its own process, with its peak RSS.

The issue's target: (b) at most twice (a), peak RSS under 256 MiB.  Prints a table; --out writes JSON.
Timings are measurements, not assertions.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_copy import load_small, open_default  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.ansible import ensure_collection_path  # noqa: E402

sys.path.insert(0, ensure_collection_path())

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore  # noqa: E402

VERIFIER = r'''
import json, sys, time
sys.path.insert(0, %(collections)r)
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions
args = json.loads(sys.argv[1])
t0 = time.time()
result = Verifier(Endpoint(args['source'], 'source'), Endpoint(args['target'], 'target'),
                  VerifyOptions(**args['options'])).run()
out = dict(seconds=time.time() - t0, consistent=result['consistent'], totals=result['totals'],
           extra_check=[d['extra_check'] for d in result['dbs']],
           peak_rss_mib=[int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0] / 1024.0)
print(json.dumps(out))
'''

CLI = '/usr/bin/redis-cli'


def run_runbook(src, tgt, workdir):
    """The runbook's check, end to end: KEYS on both sides, sort, diff.  Returns (seconds, identical)."""
    s_file, t_file = os.path.join(workdir, 'source.txt'), os.path.join(workdir, 'target.txt')
    cmd = ("%s -h 127.0.0.1 -p %d KEYS '*' | sort > %s; %s -h 127.0.0.1 -p %d KEYS '*' | sort > %s; "
           "diff %s %s > /dev/null" % (CLI, src.port, s_file, CLI, tgt.port, t_file, s_file, t_file))
    t0 = time.time()
    done = subprocess.run(cmd, shell=True, executable='/bin/bash', check=False)
    seconds = time.time() - t0
    return seconds, done.returncode == 0


def run_verifier(src, tgt, options):
    """kv_verify's engine in its own process: wall time (process start included) and peak RSS."""
    code = VERIFIER % dict(collections=ensure_collection_path())
    args = json.dumps(dict(source=src.endpoint(), target=tgt.endpoint(), options=options))
    t0 = time.time()
    out = subprocess.run([sys.executable, '-c', code, args], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result['wall'] = time.time() - t0
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=float, default=1.0, help='multiply the dataset size (1.0 = 1,000,000 keys)')
    parser.add_argument('--repeat', type=int, default=1, help='measure (a) and (b) this many times, alternating')
    parser.add_argument('--workers', type=int, default=None, help='kv_verify worker threads (default: its own)')
    parser.add_argument('--out')
    args = parser.parse_args()
    n = int(1000000 * args.scale)
    src = servers.Server('redis70', extra=['enable-debug-command yes'], name='bench-verify-src').start()
    tgt = servers.Server('valkey80', name='bench-verify-tgt').start()
    workdir = tempfile.mkdtemp(prefix='kv-bench-verify-')
    rows = []
    try:
        open_default(src)
        open_default(tgt)
        t0 = time.time()
        load_small(src, n)
        copied = DumpRestore(Endpoint(src.endpoint(), 'source'), Endpoint(tgt.endpoint(), 'target'),
                             CopyOptions()).run()
        assert copied['totals']['copied'] == n and copied['totals']['failed'] == 0
        print('loaded and copied %d keys in %.1fs' % (n, time.time() - t0), flush=True)
        options = {}
        if args.workers:
            options['workers'] = args.workers
        for attempt in range(args.repeat):
            runbook_s, same = run_runbook(src, tgt, workdir)
            outcome = 'clean' if same else 'FOUND DIFFERENCES'
            print('[%d] (a) KEYS + sort + diff: %.2fs (diff %s)' % (attempt + 1, runbook_s, outcome), flush=True)
            verify = run_verifier(src, tgt, options)
            print('[%d] (b) kv_verify values=full: %.2fs, peak RSS %.0f MiB, consistent %s'
                  % (attempt + 1, verify['wall'], verify['peak_rss_mib'], verify['consistent']), flush=True)
            assert verify['consistent'] and verify['totals']['identical'] == n, verify
            rows.append(dict(run=attempt + 1, keys=n, runbook_s=round(runbook_s, 2), verify_s=round(verify['wall'], 2),
                             verify_engine_s=round(verify['seconds'], 2), ratio=round(verify['wall'] / runbook_s, 2),
                             peak_rss_mib=round(verify['peak_rss_mib']), extra_check=','.join(verify['extra_check'])))
    finally:
        src.cleanup()
        tgt.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    cols = ['run', 'keys', 'runbook_s', 'verify_s', 'verify_engine_s', 'ratio', 'peak_rss_mib', 'extra_check']
    print()
    print('(a) runbook_s: KEYS + sort + diff on both sides, key names only')
    print('(b) verify_s: kv_verify, key sets both ways + every value and TTL, own process (start-up included)')
    print('| ' + ' | '.join(cols) + ' |')
    print('|' + '---|' * len(cols))
    for row in rows:
        print('| ' + ' | '.join(str(row[c]) for c in cols) + ' |')
    worst = max(row['ratio'] for row in rows)
    peak = max(row['peak_rss_mib'] for row in rows)
    print()
    print('target (b) <= 2 x (a): %s (worst ratio %.2f); peak RSS < 256 MiB: %s (%d MiB)'
          % ('met' if worst <= 2 else 'NOT met', worst, 'met' if peak < 256 else 'NOT met', peak))
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(dict(rows=rows, scale=args.scale, workers=args.workers), fh, indent=2)


if __name__ == '__main__':
    main()
