#!/usr/bin/env python
"""Benchmark kv_sync's snapshot splitter and its RESTOREs (measurements, not assertions).

    .venv/bin/python tests/benchmarks/bench_snapshot.py [--keys 200000] [--out FILE]

* CRC-64/Jones: anycrc and the pure-Python fallback, calls/s on 100-byte payloads and MB/s on 64 MiB.
* Redis 7.0 source with ``--keys`` small keys (100-byte strings, 10% with a TTL, over dbs 0 and 1):
  parse only (per-key events, and batches as the follower reads them; keys/s and MB/s of RDB, from the server's
  dump.rdb), parse with the pure-Python CRC, and parse + restore into a Valkey 8.0 target with kv_sync's applier
  (keys/s), from dump.rdb and over a diskless transfer.
  Wall-clock rates and the CPU seconds of this process (``keys_per_cpu_s``: what one free core would give;
  on a loaded machine the wall-clock rate mostly measures the wait for a core).
* ``parse_format``: the follower's own work without a target (parse, RESTORE blocks, replies counted), into a
  socket stand-in that answers +OK: its CPU seconds per key hardly depend on the other processes.
  ``--rdb FILE`` measures only the parse and ``parse_format`` of a saved snapshot (no server started), e.g.
  bench_sync's "small" dataset saved once: the same data before and after a change.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.support import servers  # noqa: E402
from tests.support.ansible import ensure_collection_path  # noqa: E402

sys.path.insert(0, ensure_collection_path())

from ansible_collections.kvtools.migration.plugins.module_utils import _rdb_encoding as enc  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils import _rdb_snapshot as snap  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._replication import ReplicationStream  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._crc64 import crc64 as py_crc64  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._sync_stream import Applier  # noqa: E402


def bench_crc():
    out = {}
    small = [os.urandom(100) for dummy in range(1000)]
    big = os.urandom(64 << 20)
    impls = [('python', py_crc64)]
    if enc.HAS_ANYCRC:
        impls.insert(0, ('anycrc', enc.ANYCRC_MODEL.calc))
    for name, fn in impls:
        rounds = 200 if name == 'anycrc' else 20
        t0 = time.perf_counter()
        for dummy in range(rounds):
            for data in small:
                fn(data, 0)
        calls = rounds * len(small) / (time.perf_counter() - t0)
        data = big if name == 'anycrc' else big[:8 << 20]
        t0 = time.perf_counter()
        fn(data, 0)
        mbs = len(data) / (time.perf_counter() - t0) / 1e6
        out[name] = dict(calls_per_s_100b=round(calls), mb_per_s=round(mbs, 1))
    return out


def load(server, n):
    for db in (0, 1):
        client = server.admin(db)
        pipe = client.pipeline(transaction=False)
        for i in range(db, n, 2):
            if i % 10 == 0:
                pipe.set(b'key:%d' % i, b'v' * 100, px=3600 * 1000)
            else:
                pipe.set(b'key:%d' % i, b'v%099d' % i)
            if i % 5000 == 0:
                pipe.execute()
        pipe.execute()


def restore(target_ep, events):
    """kv_sync's applier (expiries held back, as in the follower); returns the keys copied."""
    folder = tempfile.mkdtemp(prefix='kv-bench-snap-')
    keys_log, held_log = KeysLogWriter(os.path.join(folder, 'keys')), KeysLogWriter(os.path.join(folder, 'held'))
    applier = Applier(target_ep, [(0, 0), (1, 1)], keys_log, held_log=held_log)
    try:
        applier.connect()
        applier.restore_snapshot(events)
    finally:
        applier.close()
        keys_log.close()
        held_log.close()
        shutil.rmtree(folder)
    return sum(c['copied'] for c in applier.counts.values())


class _AnsweringSocket:
    """Stands in for the target's socket: takes every byte, answers +OK for each RESTORE in flight."""

    def __init__(self):
        self.applier = None

    def sendall(self, data):
        pass

    def recv(self, size):
        return b'+OK\r\n' * min(self.applier.in_flight, size // 5)


def parse_format(path):
    """Parse + the applier's RESTORE blocks (expiries held back), no target: the follower's CPU per key."""
    import hiredis
    folder = tempfile.mkdtemp(prefix='kv-bench-snap-')
    keys_log, held_log = KeysLogWriter(os.path.join(folder, 'keys')), KeysLogWriter(os.path.join(folder, 'held'))
    applier = Applier(types.SimpleNamespace(address='(no target)'), [(0, 0), (1, 1)], keys_log, held_log=held_log)
    applier.sock, applier.target_db = _AnsweringSocket(), 0
    applier.sock.applier = applier
    applier.reader = hiredis.Reader()
    applier.has_data = applier.reader.has_data
    try:
        with open(path, 'rb') as fh:
            parser = snap.SnapshotParser(fh.read)
            c0 = time.process_time()
            applier.restore_snapshot(parser.batches())
            cpu = time.process_time() - c0
    finally:
        keys_log.close()
        held_log.close()
        shutil.rmtree(folder)
    return dict(keys=parser.keys, copied=sum(c['copied'] for c in applier.counts.values()), cpu_seconds=round(cpu, 2),
                cpu_us_per_key=round(cpu * 1e6 / max(1, parser.keys), 3))


def parse_file(path, restore_to=None, batches=False):
    with open(path, 'rb') as fh:
        parser = snap.SnapshotParser(fh.read)
        c0 = time.process_time()
        t0 = time.perf_counter()
        copied = None
        if restore_to is not None:
            copied = restore(restore_to, parser.batches())
            events = parser.keys
        elif batches:
            events = sum(1 for dummy in parser.batches())
        else:
            events = sum(1 for dummy in parser.events())
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    return dict(keys=parser.keys, events=events, seconds=round(seconds, 2), keys_per_s=round(parser.keys / seconds),
                mb_per_s=round(parser.offset / seconds / 1e6, 1), cpu_seconds=round(cpu, 2),
                keys_per_cpu_s=round(parser.keys / cpu), copied=copied)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--keys', type=int, default=200000)
    ap.add_argument('--out')
    ap.add_argument('--rdb', help='a saved snapshot: measure only its parse and parse_format (no server)')
    args = ap.parse_args()
    if args.rdb:
        report = dict(rdb_bytes=os.path.getsize(args.rdb), crc_used=enc.CRC64_IMPLEMENTATION,
                      parse_only_batches=parse_file(args.rdb, batches=True), parse_format=parse_format(args.rdb))
        print(json.dumps(report, indent=2))
        return
    report = dict(crc=bench_crc(), crc_used=enc.CRC64_IMPLEMENTATION)
    source = servers.Server('redis70', name='bench-snap-src').start()
    target = servers.Server('valkey80', name='bench-snap-tgt').start()
    try:
        load(source, args.keys)
        source.admin().save()
        path = os.path.join(source.dir, 'dump.rdb')
        report['rdb_bytes'] = os.path.getsize(path)
        report['parse_only'] = parse_file(path)
        report['parse_only_batches'] = parse_file(path, batches=True)
        report['parse_format'] = parse_format(path)
        saved = snap.CRC64
        snap.CRC64 = enc.CRC64 = py_crc64     # the parser's general loop and its hot loop (split_keys)
        try:
            report['parse_only_python_crc'] = parse_file(path)
        finally:
            snap.CRC64 = enc.CRC64 = saved
        report['parse_restore_file'] = parse_file(path, Endpoint(target.endpoint()))
        target.flushall()
        stream = ReplicationStream(Endpoint(source.endpoint()), '7.0.15')
        stream.open()
        t0 = time.perf_counter()
        c0 = time.process_time()
        parser = snap.SnapshotParser(enc.chunk_reader(stream.payload()))
        copied = restore(Endpoint(target.endpoint()), parser.batches())
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
        stream.close()
        report['parse_restore_replication'] = dict(keys=parser.keys, seconds=round(seconds, 2),
                                                   keys_per_s=round(parser.keys / seconds),
                                                   cpu_seconds=round(cpu, 2), keys_per_cpu_s=round(parser.keys / cpu),
                                                   copied=copied, transfer=stream.transfer)
        report['peak_rss_mib'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    finally:
        source.cleanup()
        target.cleanup()
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(report, fh, indent=2)


if __name__ == '__main__':
    main()
