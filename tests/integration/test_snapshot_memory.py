"""Bounded memory: a ~300 MB value and a ~60 MB hash go from a real source, through a diskless transfer, the
snapshot parser and kv_sync's applier, into a real target, in a process whose peak RSS stays under 256 MiB."""

import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.support import ansible as kv_ansible
sys.path.insert(0, kv_ansible.ensure_collection_path())
from ansible_collections.kvtools.migration.plugins.module_utils._replication import ReplicationStream
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import chunk_reader
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import SnapshotParser
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter
from ansible_collections.kvtools.migration.plugins.module_utils._sync_stream import Applier
spec = json.loads(sys.stdin.read())
stream = ReplicationStream(Endpoint(spec['source']), spec['version'])
stream.open()
keys_log = KeysLogWriter(spec['keys_log'])
applier = Applier(Endpoint(spec['target']), [(0, 0)], keys_log, ttl_mode='import')
try:
    applier.connect()
    parser = SnapshotParser(chunk_reader(stream.payload()), spool_dir=spec['spool_dir'])
    applier.restore_snapshot(parser.batches())
finally:
    stream.close()
    applier.close()
    keys_log.close()
# VmHWM: this process's own peak since exec (ru_maxrss would count the forking pytest worker's memory)
print(json.dumps(dict(maxrss_kb=[int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0], copied=applier.counts[0]['copied'],
                      facts=parser.facts())))
'''

CHUNK = 8 << 20


def _fill_big(client, total):
    """A ~``total``-byte incompressible string, appended 8 MiB at a time (the test never holds it)."""
    sha = hashlib.sha256()
    written = 0
    seed = hashlib.sha256(b'seed').digest()
    while written < total:
        block = hashlib.shake_256(seed + b'%d' % written).digest(CHUNK)
        client.append(b'big:string', block)
        sha.update(block)
        written += len(block)
    return written, sha.hexdigest()


def _sha_of(client, key, size):
    sha = hashlib.sha256()
    for start in range(0, size, CHUNK):
        sha.update(client.getrange(key, start, min(size, start + CHUNK) - 1))
    return sha.hexdigest()


def test_big_values_in_bounded_memory(redis70, valkey80, tmp_path):
    src = redis70.admin()
    size, digest = _fill_big(src, 300 * 1000 * 1000)
    src.pexpire(b'big:string', 3600 * 1000)
    for part in range(60):
        src.hset(b'big:hash', mapping=dict((b'f%d-%d' % (part, i), os.urandom(1000)) for i in range(1000)))
    src.set(b'small', b'v')
    spec = dict(source=redis70.endpoint(), target=valkey80.endpoint(), version='7.0.15', spool_dir=str(tmp_path),
                keys_log=str(tmp_path.parent / ('%s.keys' % tmp_path.name)))
    proc = subprocess.run([sys.executable, '-c', CHILD, ROOT], input=json.dumps(spec).encode(), capture_output=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert out['copied'] == 3
    assert out['facts']['spooled'] == 2
    rss_mib = out['maxrss_kb'] / 1024.0
    print('peak RSS %.1f MiB for a %.0f MB snapshot' % (rss_mib, out['facts']['bytes'] / 1e6))
    assert rss_mib < 256, 'peak RSS %.1f MiB' % rss_mib
    tgt = valkey80.admin()
    assert tgt.strlen(b'big:string') == size
    assert _sha_of(tgt, b'big:string', size) == digest
    assert tgt.execute_command('PEXPIRETIME', b'big:string') == src.execute_command('PEXPIRETIME', b'big:string')
    assert tgt.hlen(b'big:hash') == 60000
    for field in (b'f0-0', b'f59-999', b'f31-500'):
        assert tgt.hget(b'big:hash', field) == src.hget(b'big:hash', field)
    assert os.listdir(str(tmp_path)) == []
    src.flushall()
    tgt.flushall()
