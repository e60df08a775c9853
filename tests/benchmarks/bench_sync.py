#!/usr/bin/env python
"""Benchmark kv_sync (the live copy) against the target's own full sync, and its lag under writes.

    make bench-sync                                   # full size (several minutes)
    .venv/bin/python tests/benchmarks/bench_sync.py --scale 0.01 --lag-seconds 3

Source Redis 7.0 (Debian), target Valkey 8.0 (Debian backports), loopback, ACL users (migrator).
Datasets (full size):
  small  1,000,000 keys of 100-byte strings, 10% with a TTL
  big    1 GiB as 10,000 random values of 100 KiB
  raw    (only when asked: --datasets raw) 1,000,000 keys of 16 random hex characters, 10% with a TTL: values
         the RDB holds uncompressed
For each: the target's own full sync (REPLICAOF until loaded) and kv_sync state=started until caught up
(snapshot seconds, wall seconds, the follower's peak RSS from /proc VmHWM), then state=stopped; the two are
repeated --repeat times in turn (a slow minute of the machine hits both) and the row gives the medians, and the
median and the largest of the per-round ratios.
Then "lag": an empty source, kv_sync started, a writer paced at --rate SETs/s (pipelines of 100,
default 20,000/s) for --lag-seconds; the lag (source master_repl_offset - applied offset) is sampled every
0.25 s; then the writer stops and state=stopped drains (drain seconds).
Timings are measurements, not assertions.  --out writes JSON.  The last line says whether anycrc and python-lzf
were installed (kv_sync sends LZF-compressed strings as MSET only with python-lzf).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from bench_copy import load_big, load_small, print_table  # noqa: E402

from tests.support import servers  # noqa: E402
from tests.support.ansible import ensure_collection_path  # noqa: E402

sys.path.insert(0, ensure_collection_path())

from ansible_collections.kvtools.migration.plugins.module_utils import _rdb_encoding  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._sync import Sync  # noqa: E402

PARAMS = dict(state='started', spool_dir=None, dbs=None, db_map=None, on_conflict='fail', max_lag=1048576,
              started_timeout=7200, drain_timeout=120, max_seconds=86400, spool_passphrase=None, backup=None,
              backup_passphrase=None)


def flush(server):
    """Empty ``server`` and wait until its memory is freed: a Valkey 8 FLUSHALL frees in a background thread
    (lazyfree-lazy-user-flush yes), which would otherwise compete with the next timed copy for the CPU."""
    a = server.admin()
    a.execute_command('FLUSHALL', 'SYNC')
    deadline = time.time() + 60
    while int(a.info('memory').get('lazyfree_pending_objects', 0)) and time.time() < deadline:
        time.sleep(0.01)


def full_sync(src, tgt):
    """The target's own initial sync; it authenticates as the source's migrator user."""
    a = tgt.admin()
    a.config_set('masteruser', 'migrator')
    a.config_set('masterauth', servers.PASSWORDS['migrator'])
    t0 = time.time()
    a.execute_command('REPLICAOF', '127.0.0.1', src.port)
    while True:
        info = a.info('replication')
        if info.get('master_link_status') == 'up' and not int(info.get('master_sync_in_progress', 0)):
            break
        time.sleep(0.01)
    seconds = time.time() - t0
    a.execute_command('REPLICAOF', 'NO', 'ONE')
    flush(tgt)
    return seconds


def vm_hwm_mib(pid):
    try:
        with open('/proc/%d/status' % pid) as fh:
            for line in fh:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except (IOError, OSError, TypeError):
        return None
    return None


def sync(src, tgt, record, state='started'):
    params = dict(PARAMS, record=record, state=state)
    return Sync(Endpoint(src.endpoint(), 'source'), Endpoint(tgt.endpoint(), 'target'), params).run()


def bench_dataset(name, loader, src, tgt, workdir, repeat=1):
    flush(src)
    flush(tgt)
    loader()
    keys = src.admin().dbsize()
    mib = src.admin().info('memory')['used_memory'] / 2.0 ** 20
    rounds = []
    for round_no in range(repeat):
        sync_s = full_sync(src, tgt)
        record = os.path.join(workdir, '%s-%d.json' % (name, round_no))
        t0 = time.time()
        started = sync(src, tgt, record)
        wall = time.time() - t0
        peak = vm_hwm_mib(started['pid'])
        stopped = sync(src, tgt, record, 'stopped')
        sync(src, tgt, record, 'absent')
        copied = tgt.admin().dbsize()
        flush(tgt)
        rounds.append(dict(full=sync_s, wall=wall, snapshot=started['snapshot_seconds'], peak=peak or 0,
                           drain=stopped['drain_seconds'], copied=copied))
        print(json.dumps(dict(dataset=name, round=round_no + 1, full_sync_s=round(sync_s, 2), kv_sync_s=round(wall, 2),
                              ratio=round(wall / sync_s, 2))), file=sys.stderr)

    def median(field):
        return round(statistics.median(r[field] for r in rounds), 2)
    ratios = [r['wall'] / r['full'] for r in rounds]
    return dict(dataset=name, keys=keys, source_mib=round(mib), rounds=repeat, full_sync_s=median('full'),
                kv_sync_s=median('wall'), snapshot_s=median('snapshot'),
                vs_full_sync=round(statistics.median(ratios), 2), max_vs_full_sync=round(max(ratios), 2),
                follower_peak_mib=round(max(r['peak'] for r in rounds)),
                target_keys=min(r['copied'] for r in rounds), drain_s=median('drain'))


def load_raw(src, n):
    """``n`` keys of 16 random hex characters (too short for LZF), every tenth with a TTL of an hour."""
    pipe = src.admin().pipeline(transaction=False)
    for i in range(n):
        pipe.set(b'raw:%d' % i, os.urandom(8).hex(), px=3600 * 1000 if i % 10 == 0 else None)
        if i % 10000 == 9999:
            pipe.execute()
    pipe.execute()


class PacedWriter(threading.Thread):
    def __init__(self, server, rate):
        super().__init__(daemon=True)
        self.client = server.admin()
        self.rate = rate
        self.stop = False
        self.done = 0

    def run(self):
        batch = 100
        start = time.time()
        n = 0
        while not self.stop:
            pipe = self.client.pipeline(transaction=False)
            for dummy in range(batch):
                pipe.set(b'w:%d' % (n % 200000), b'x' * 64)
                n += 1
            pipe.execute()
            self.done = n
            ahead = n / float(self.rate) - (time.time() - start)
            if ahead > 0:
                time.sleep(ahead)


def bench_lag(src, tgt, workdir, rate, seconds):
    flush(src)
    flush(tgt)
    record = os.path.join(workdir, 'lag.json')
    started = sync(src, tgt, record)
    writer = PacedWriter(src, rate)
    writer.start()
    samples = []
    t0 = time.time()
    while time.time() - t0 < seconds:
        time.sleep(0.25)
        with open(record) as fh:
            applied = json.load(fh).get('offset') or 0
        offset = src.admin().info('replication')['master_repl_offset']
        samples.append(max(0, offset - applied))
    writer.stop = True
    writer.join()
    achieved = writer.done / (time.time() - t0)
    peak = vm_hwm_mib(started['pid'])
    stopped = sync(src, tgt, record, 'stopped')
    sync(src, tgt, record, 'absent')
    samples.sort()
    return dict(dataset='lag', rate_asked=rate, rate_done=round(achieved), seconds=seconds,
                lag_p50_bytes=samples[len(samples) // 2] if samples else None,
                lag_max_bytes=samples[-1] if samples else None, drain_s=stopped['drain_seconds'],
                commands_applied=stopped['commands_applied'], follower_peak_mib=round(peak or 0))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--datasets', default='small,big,lag')
    parser.add_argument('--scale', type=float, default=1.0, help='multiply every dataset size')
    parser.add_argument('--rate', type=int, default=20000, help='writes per second for the lag run')
    parser.add_argument('--lag-seconds', type=float, default=30.0)
    parser.add_argument('--repeat', type=int, default=3, help='rounds of full sync + kv_sync per dataset (default 3)')
    parser.add_argument('--out')
    args = parser.parse_args()
    s = args.scale
    src = servers.Server('redis70', extra=['enable-debug-command yes', 'repl-diskless-sync-delay 0'],
                         name='bench-sync-src').start()
    tgt = servers.Server('valkey80', name='bench-sync-tgt').start()
    workdir = tempfile.mkdtemp(prefix='kv-bench-sync-')
    rows = []
    try:
        for name in args.datasets.split(','):
            if name == 'small':
                rows.append(bench_dataset(name, lambda: load_small(src, int(1000000 * s)), src, tgt, workdir,
                                          args.repeat))
            elif name == 'big':
                rows.append(bench_dataset(name, lambda: load_big(src, max(1, int(10000 * s)), 100 * 1024), src, tgt,
                                          workdir, args.repeat))
            elif name == 'raw':
                rows.append(bench_dataset(name, lambda: load_raw(src, int(1000000 * s)), src, tgt, workdir,
                                          args.repeat))
            elif name == 'lag':
                rows.append(bench_lag(src, tgt, workdir, args.rate, args.lag_seconds))
            print(json.dumps(rows[-1]))
    finally:
        src.cleanup()
        tgt.cleanup()
    cols = ['dataset', 'keys', 'source_mib', 'rounds', 'full_sync_s', 'kv_sync_s', 'snapshot_s', 'vs_full_sync',
            'max_vs_full_sync', 'follower_peak_mib', 'drain_s', 'rate_asked', 'rate_done', 'lag_p50_bytes', 'lag_max_bytes']
    print_table(cols, rows)
    extras = dict(crc=_rdb_encoding.CRC64_IMPLEMENTATION, python_lzf=_rdb_encoding.LZF_DECOMPRESS is not None)
    print('\nCRC-64: %(crc)s; python-lzf installed: %(python_lzf)s (without it, LZF strings are RESTOREd)' % extras)
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(dict(rows=rows, scale=s, **extras), fh, indent=2)


if __name__ == '__main__':
    main()
