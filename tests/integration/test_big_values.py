"""Bounded memory with big keys: a 200 MB string and a ~200 MB hash (plus small keys with awkward names) go
through kv_dump_restore (a first run and a rerun that compares both sides), kv_verify, kv_migrate and a logical
backup (encrypted) and its restore; each engine runs in a process of its own whose peak RSS must stay under
256 MiB, and the target must hold every value and TTL of the source.  The same paths run in-process with
thresholds of a few KiB over hundreds of keys of every type (a difference found by kv_verify, the type-aware
copy).

A value above the spool threshold is never held in memory: its DUMP reply is spooled to a 0600 temp file as it
arrives and sent to the target from there (see docs/memory.md)."""

import glob
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import pytest

from tests.support import compare

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMIT_MIB = 256
CHUNK = 8 << 20
BIG_STRING = 200 * 1000 * 1000
HASH_PARTS = 200           # 200 x 1000 fields of 1000 bytes: ~200 MB
AWKWARD = [b'small \n"quoted" key', b'*star\x00nul', b'\xff\xfe not utf-8', b'tab\tspace ', b'']

CHILD = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
spec = json.loads(sys.stdin.read())
kind = spec['kind']
if kind == 'copy':
    from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
    result = DumpRestore(Endpoint(spec['source']), Endpoint(spec['target']), CopyOptions(**spec['options'])).run()
elif kind == 'migrate':
    from ansible_collections.kvtools.migration.plugins.module_utils._migrate import Migrate, MigrateOptions
    result = Migrate(Endpoint(spec['source']), Endpoint(spec['target']), MigrateOptions(**spec['options'])).run()
elif kind == 'verify':
    from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
    from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions
    result = Verifier(Endpoint(spec['source']), Endpoint(spec['target']), VerifyOptions(**spec['options'])).run()
elif kind == 'backup':
    from ansible_collections.kvtools.migration.plugins.module_utils._backup import Backup
    result = Backup(Endpoint(spec['source']), spec['dest'], method='logical', passphrase=spec['passphrase']).run()
elif kind == 'restore':
    from ansible_collections.kvtools.migration.plugins.module_utils._backup_source import BackupRestore
    from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions
    result = BackupRestore(Endpoint(dict(url='file://' + spec['dest'])), Endpoint(spec['target']),
                           CopyOptions(**spec['options']), passphrase=spec['passphrase']).run()
# VmHWM: the peak RSS of this process's own memory since exec (ru_maxrss would count the forking parent's)
with open('/proc/self/status') as fh:
    hwm = [int(line.split()[1]) for line in fh if line.startswith('VmHWM:')][0]
print(json.dumps(dict(maxrss_kb=hwm, result=result), default=str))
'''


def _collections():
    from tests.support.ansible import ensure_collection_path
    return ensure_collection_path()


def _run(kind, env_tmp, **spec):
    spec['kind'] = kind
    started = time.time()
    env = dict(os.environ, TMPDIR=env_tmp)
    proc = subprocess.run([sys.executable, '-c', CHILD, _collections()], input=json.dumps(spec).encode(),
                          capture_output=True, timeout=600, check=False, env=env)
    assert proc.returncode == 0, '%s failed: %s' % (kind, proc.stderr.decode('utf-8', 'replace')[-3000:])
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    out['rss_mib'] = out['maxrss_kb'] / 1024.0
    print('%s: peak RSS %.1f MiB, %.1f s' % (kind, out['rss_mib'], time.time() - started))
    return out


def _fill(client):
    """The big string, appended 8 MiB at a time (the test never holds it), the big hash, the small keys."""
    sha = hashlib.sha256()
    written = 0
    seed = hashlib.sha256(b'big values').digest()
    while written < BIG_STRING:
        block = hashlib.shake_256(seed + b'%d' % written).digest(min(CHUNK, BIG_STRING - written))
        client.append(b'big:string', block)
        sha.update(block)
        written += len(block)
    client.pexpire(b'big:string', 3600 * 1000)
    for part in range(HASH_PARTS):
        client.hset(b'big:hash', mapping=dict((b'f%d-%d' % (part, i), os.urandom(1000)) for i in range(1000)))
    for n, key in enumerate(AWKWARD):
        client.set(key, b'v%d' % n)
        if n % 2:
            client.pexpire(key, 7200 * 1000)
    return sha.hexdigest()


def _sha_of(client, key):
    sha = hashlib.sha256()
    size = client.strlen(key)
    for start in range(0, size, CHUNK):
        sha.update(client.getrange(key, start, min(size, start + CHUNK) - 1))
    return sha.hexdigest()


def _assert_target_same(src, tgt, digest):
    """Every key, value and expiry (support/compare.py), and the big string byte for byte (its sha256)."""
    assert compare.differences(src, tgt) == []
    assert _sha_of(tgt, b'big:string') == digest
    for key in (b'big:string', b'big:hash') + tuple(AWKWARD[1::2]):
        assert abs(tgt.execute_command('PEXPIRETIME', key) - src.execute_command('PEXPIRETIME', key)) <= 1


def test_big_values_bounded_memory_in_every_engine(server_factory, tmp_path):
    source = server_factory('redis70')
    target = server_factory('valkey80')
    src, tgt = source.admin(), target.admin()
    digest = _fill(src)
    spool = str(tmp_path / 'tmp')
    os.mkdir(spool)
    s_ep, t_ep = source.endpoint(), target.endpoint()
    rss = {}

    copied = _run('copy', spool, source=s_ep, target=t_ep, options={})
    rss['kv_dump_restore'] = copied['rss_mib']
    assert copied['result']['totals']['copied'] == 2 + len(AWKWARD)
    _assert_target_same(src, tgt, digest)

    rerun = _run('copy', spool, source=s_ep, target=t_ep, options={})  # both sides' payloads compared
    rss['kv_dump_restore rerun'] = rerun['rss_mib']
    assert rerun['result']['changed'] is False
    assert rerun['result']['totals']['identical'] == 2 + len(AWKWARD)

    verified = _run('verify', spool, source=s_ep, target=t_ep, options={})
    rss['kv_verify'] = verified['rss_mib']
    assert verified['result']['totals']['identical'] == 2 + len(AWKWARD), verified['result']['totals']

    dest = str(tmp_path / 'big.kvtlog')
    backup = _run('backup', spool, source=s_ep, dest=dest, passphrase='big values backup')
    rss['logical backup (encrypted)'] = backup['rss_mib']
    assert backup['result']['keys'] == 2 + len(AWKWARD)

    tgt.flushall()
    restored = _run('restore', spool, target=t_ep, dest=dest, passphrase='big values backup', options={})
    rss['restore of the backup'] = restored['rss_mib']
    assert restored['result']['totals']['copied'] == 2 + len(AWKWARD)
    _assert_target_same(src, tgt, digest)

    tgt.flushall()
    migrated = _run('migrate', spool, source=s_ep, target=t_ep, options={})  # the default timeout
    rss['kv_migrate'] = migrated['rss_mib']
    assert migrated['result']['totals']['copied'] == 2 + len(AWKWARD)
    _assert_target_same(src, tgt, digest)

    print('peak RSS (MiB): %s' % ', '.join('%s %.1f' % item for item in rss.items()))
    left = glob.glob(os.path.join(spool, 'kv-big-value-*')) + glob.glob(os.path.join(spool, 'kv-rdb-object-*'))
    assert not left, 'spool files left behind: %s' % left
    over = dict((name, round(mib, 1)) for name, mib in rss.items() if mib >= LIMIT_MIB)
    assert not over, 'peak RSS over %d MiB: %s (all: %s)' % (LIMIT_MIB, over, rss)


@pytest.mark.parametrize('resume', ['exact', 'ask again'])
def test_every_spooling_path_with_small_thresholds(redis70, valkey80, tmp_path, monkeypatch, resume):
    """The same paths in-process with thresholds of a few KiB, so that hundreds of keys of mixed types and sizes
    cut the reads at every position: reading on where hiredis stopped (``exact``) and, when that is not known,
    dropping the connection and asking again; the copy, its rerun, kv_verify (MGET and DUMP reads, a difference
    found), a logical backup (encrypted) and its restore."""
    from ansible_collections.kvtools.migration.plugins.module_utils import (
        _backup_source, _logical, _type_aware, _wire)
    from ansible_collections.kvtools.migration.plugins.module_utils._backup import Backup
    from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
    from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
    from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
    from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions

    spool = tmp_path / 'spool'
    spool.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(spool))
    for module, name, value in ((_wire, 'BIG_REPLY', 2000), (_wire, 'RECV_BUDGET', 20000), (_wire, 'SMALL_BULK', 500),
                                (_logical, 'BIG_VALUE', 2000), (_logical, 'SPOOL_CHUNK', 700),
                                (_type_aware, 'BIG_VALUE', 2000), (_type_aware, 'WHOLE_ITEMS', 10),
                                (_backup_source, 'BATCH_BYTES', 5000)):
        monkeypatch.setattr(module, name, value)
    if resume != 'exact':
        monkeypatch.setattr(_wire, 'wire_size', lambda replies: None)
    seen = dict(spooled=0, resets=0)
    real_spool, real_reset = _wire.ReplySpool, _wire.Wire.reset

    def counting_spool(*args):
        seen['spooled'] += 1
        return real_spool(*args)

    def counting_reset(wire):
        seen['resets'] += 1
        return real_reset(wire)
    monkeypatch.setattr(_wire, 'ReplySpool', counting_spool)
    monkeypatch.setattr(_wire.Wire, 'reset', counting_reset)
    src, tgt = redis70.admin(), valkey80.admin()
    rnd = random.Random(7)
    pipe = src.pipeline(transaction=False)
    for n in range(400):
        key = b'k%d%s' % (n, AWKWARD[n % len(AWKWARD)])
        kind = n % 5
        if kind == 0:
            pipe.set(key, os.urandom(rnd.choice((10, 1500, 3000, 30000))))
        elif kind == 1:
            pipe.hset(key, mapping=dict((b'f%d' % i, os.urandom(rnd.choice((5, 100)))) for i in range(50)))
        elif kind == 2:
            pipe.rpush(key, *[os.urandom(60) for dummy in range(rnd.choice((3, 80)))])
        elif kind == 3:
            pipe.sadd(key, *[os.urandom(40) for dummy in range(rnd.choice((3, 80)))])
        else:
            pipe.zadd(key, dict((os.urandom(30), rnd.random()) for dummy in range(rnd.choice((3, 80)))))
        if n % 3 == 0:
            pipe.pexpire(key, 3600 * 1000 + n)
    pipe.execute()
    s_ep, t_ep = Endpoint(redis70.endpoint()), Endpoint(valkey80.endpoint())

    first = DumpRestore(s_ep, t_ep, CopyOptions(batch_size=100)).run()
    assert first['totals']['copied'] == 400
    assert compare.differences(src, tgt) == []
    again = DumpRestore(s_ep, t_ep, CopyOptions(batch_size=100)).run()
    assert again['changed'] is False and again['totals']['identical'] == 400
    assert Verifier(s_ep, t_ep, VerifyOptions()).run()['totals']['identical'] == 400

    big_string = [k for k in src.scan_iter(count=1000) if src.type(k) == b'string' and src.strlen(k) == 30000][0]
    tgt.setrange(big_string, 15000, b'!')
    some_hash = [k for k in src.scan_iter(count=1000) if src.type(k) == b'hash'][0]
    tgt.hset(some_hash, b'f7', b'changed')
    found = Verifier(s_ep, t_ep, VerifyOptions(fail_on_mismatch=False)).run()
    assert found['totals']['identical'] == 398
    assert sorted(d['kind'] for d in found['differences']) == ['value_differs', 'value_differs']

    dest = str(tmp_path / 'small.kvtlog')
    assert Backup(s_ep, dest, method='logical', passphrase='small thresholds').run()['keys'] == 400
    tgt.flushall()
    restored = _backup_source.BackupRestore(Endpoint(dict(url='file://' + dest)), t_ep, CopyOptions(),
                                            passphrase='small thresholds').run()
    assert restored['totals']['copied'] == 400
    assert compare.differences(src, tgt) == []
    tgt.flushall()  # the type-aware copy: big strings in chunks (GETRANGE, APPEND), collections as before
    typed = DumpRestore(s_ep, t_ep, CopyOptions(payload='commands')).run()
    assert typed['totals']['copied'] == 400 and typed['totals']['fallback'] == 400
    assert compare.differences(src, tgt) == []
    assert [name for name in os.listdir(str(spool)) if not name.endswith('.lock')] == []
    print(seen)
    assert seen['spooled'] > 100  # the paths ran: big replies went to files
    assert (seen['resets'] > 10) if resume != 'exact' else (seen['resets'] < seen['spooled'] // 4)
