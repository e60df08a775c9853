"""kv_sync ``backup``: the snapshot the follower receives is also the backup (the source forks once).

Every backup is proven as kv_rdb_backup's are: a fresh server started on the file (decrypted first when
encrypted) holds exactly the source's data; the sidecar has kv_rdb_backup's fields; ``verify_backup`` and
``decrypt_file`` read it.  The unit part feeds :class:`SnapshotBackup` good, truncated and corrupted RDB
bytes in awkward chunk sizes: only a complete, valid RDB is ever named as the backup.
"""

import json
import os
import re
import threading
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._backup import Backup, decrypt_file, verify_backup
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._sync_backup import SnapshotBackup
from tests.conftest import assert_no_secret
from tests.integration.test_kv_rdb_backup import PASSPHRASE, leftovers, load, sha256, start_on_rdb, synthetic_rdb
from tests.integration.test_kv_sync import _kill_follower, args_for, engine, fast_source
from tests.support import compare

DBS = (0, 3, 15)


def sync_full(server):
    return int(server.admin().info('stats')['sync_full'])


@pytest.fixture
def followers(tmp_path):
    """Records to stop (state=absent) at the end, with the endpoints to do it."""
    todo = []
    yield todo
    for source, target, record in todo:
        if os.path.exists(record):
            engine('kv_sync', dict(args_for(source, target, record), state='absent'))


@pytest.mark.parametrize('case', ['redis70-diskless-plain-keep', 'valkey80-disk-encrypted'])
def test_backup_is_the_snapshot_and_loads_on_a_fresh_server(case, request, server_factory, tmp_path, followers):
    if case.startswith('redis70'):
        source, target, diskless, passphrase = (request.getfixturevalue('redis70'),
                                                request.getfixturevalue('valkey80_tls'), True, None)
    else:
        source, target, diskless, passphrase = (request.getfixturevalue('valkey80_tls'),
                                                request.getfixturevalue('valkey80'), False, PASSPHRASE)
    fast_source(source, diskless=diskless)
    load(source)
    before = compare.snapshot(source)
    folder = tmp_path / 'backups'
    folder.mkdir()
    dest = str(folder / 'dump.rdb')
    keep = 1 if passphrase is None else 0
    if keep:
        with open(dest, 'wb') as fh:
            fh.write(b'older backup')
        with open(dest + '.json', 'w') as fh:
            fh.write('{}')
    record = str(tmp_path / 'sync.json')
    followers.append((source, target, record))
    forks = sync_full(source)
    args = args_for(source, target, record, backup=dest, backup_passphrase=passphrase, backup_keep=keep)
    started = engine('kv_sync', args)
    assert started.get('failed') is not True, started.get('msg')
    assert started['phase'] == 'streaming'
    assert sync_full(source) - forks == 1, 'the source forked more than once for backup and copy'
    if passphrase:  # an encrypted backup has its own suffix, as kv_rdb_backup names it
        assert not os.path.exists(dest)
        dest += '.enc'

    b = started['backup']
    assert b['dest'] == dest and b['sidecar'] == dest + '.json' and b['taken_by'] == 'kv_sync'
    assert b['format'] == 'rdb' and b['method_used'] == 'sync' and b['checksum'] == 'verified'
    assert b['transfer'] == ('eof-stream' if diskless else 'sized')
    assert b['encrypted'] is bool(passphrase)
    assert b['size'] == os.path.getsize(dest) and b['sha256'] == sha256(dest)
    assert b['replid'] == started['replid'] and b['snapshot_offset'] <= started['offset']
    assert oct(os.stat(dest).st_mode & 0o777) == '0o600'
    assert leftovers(folder) == []
    if keep:
        [(moved_from, moved_to)] = [(r['src'], r['dest']) for r in b['rotated'] if not r['src'].endswith('.json')]
        assert moved_from == dest and re.match(r'^dump\.rdb\.\d{8}T\d{6}Z$', os.path.basename(moved_to)), moved_to
        assert open(moved_to, 'rb').read() == b'older backup'
    with open(dest + '.json') as fh:
        sidecar = json.load(fh)
    for name in ('size', 'sha256', 'content_size', 'content_sha256', 'rdb_version', 'crc64', 'checksum', 'format',
                 'transfer', 'encrypted', 'replid', 'snapshot_offset', 'taken_by'):
        assert sidecar[name] == b[name], name
    # the sidecar has every field kv_rdb_backup writes (plus taken_by, replid, snapshot_offset)
    other = Backup(Endpoint(source.endpoint('migrator')), str(folder / 'other.rdb'), method='sync',
                   passphrase=passphrase).run()['dest']
    with open(other + '.json') as fh:
        assert set(json.load(fh)) | {'taken_by', 'replid', 'snapshot_offset'} == set(sidecar)
    facts = verify_backup(dest, passphrase)
    assert facts['content'] == 'rdb' and facts['checksum'] == 'verified'
    assert facts['content_sha256'] == b['content_sha256'] and facts['encrypted'] is bool(passphrase)

    plain = dest
    if passphrase:
        with open(dest, 'rb') as fh:
            assert fh.read(8) == b'KVTENC1\n'
        plain = str(tmp_path / 'plain.rdb')
        dec = decrypt_file(dest, plain, passphrase)
        assert dec['checksum'] == 'verified' and dec['sha256'] == b['content_sha256']
    restored = start_on_rdb(server_factory, source.flavour, plain, tmp_path)
    compare.assert_same(source, restored, [(db, db) for db in DBS])
    assert compare.snapshot(source) == before, 'the source changed'
    for blob in (json.dumps(started), json.dumps(sidecar), open(record).read()):
        assert_no_secret(blob, *([passphrase] if passphrase else []))

    again = engine('kv_sync', args)  # the follower lives: its status, the same backup
    assert again['changed'] is False and again['backup']['sha256'] == b['sha256']
    gone = engine('kv_sync', dict(args, state='absent'))
    assert gone['changed'] is True and not os.path.exists(record)
    assert sha256(dest) == b['sha256'], 'state=absent must leave the backup alone'


def test_continue_keeps_the_backup_and_a_new_snapshot_does_not_replace_it(redis70, valkey80_tls, tmp_path, followers):
    admin = fast_source(redis70)
    admin.config_set('repl-backlog-size', 64 << 20)
    load(redis70)
    dest = str(tmp_path / 'dump.rdb')
    record = str(tmp_path / 'sync.json')
    followers.append((redis70, valkey80_tls, record))
    args = args_for(redis70, valkey80_tls, record, dbs=[0], backup=dest)
    first = engine('kv_sync', args)
    assert first.get('failed') is not True, first.get('msg')
    facts = first['backup']
    mtime = os.stat(dest).st_mtime
    forks = sync_full(redis70)
    # a stream write after the snapshot puts the follower's offset marker on the target: what a resume starts from
    redis70.admin(0).set(b'after-snapshot', b'1')
    wanted = int(redis70.admin().info('replication')['master_repl_offset'])
    deadline = time.time() + 20
    while (json.load(open(record)).get('offset') or 0) < wanted and time.time() < deadline:
        time.sleep(0.05)
    assert valkey80_tls.admin(0).get(b'after-snapshot') == b'1'

    _kill_follower(record)
    redis70.admin(0).set(b'while-away', b'1')
    resumed = engine('kv_sync', args)  # PSYNC continue: no snapshot, the backup stays as it is
    assert resumed.get('failed') is not True, resumed.get('msg')
    assert (resumed['continued'], resumed['full_resyncs']) == (1, 0), resumed
    assert resumed['backup'] == facts and os.stat(dest).st_mtime == mtime and sync_full(redis70) == forks

    admin.config_set('repl-backlog-size', 16384)
    try:
        _kill_follower(record)
        pipe = redis70.admin(0).pipeline(transaction=False)
        for i in range(300):
            pipe.set(b'gap:%d' % i, b'x' * 200)  # far more than the 16 KiB backlog
        pipe.execute()
        again = engine('kv_sync', args)
    finally:
        admin.config_set('repl-backlog-size', 1 << 20)
    assert again.get('failed') is not True, again.get('msg')
    assert again['full_resyncs'] == 1, again
    assert again['backup'] == facts and sha256(dest) == facts['sha256']  # the first complete backup is kept
    assert 'kept the backup of the first snapshot' in again['backup_note']
    assert [n for n in os.listdir(str(tmp_path)) if n.endswith('.tmp')] == []


def test_check_mode_says_a_backup_would_be_written(redis70, valkey80_tls, tmp_path):
    load(redis70)
    dest = str(tmp_path / 'dump.rdb')
    record = str(tmp_path / 'sync.json')
    result = engine('kv_sync', args_for(redis70, valkey80_tls, record, backup=dest, backup_passphrase=PASSPHRASE),
                    check=True)
    assert result.get('failed') is not True, result.get('msg')
    assert result['backup']['would'] == 'write' and result['backup']['encrypted'] is True
    assert any(line.startswith('backup: would write') and dest in line for line in result['plan'])
    assert sorted(os.listdir(str(tmp_path))) == []
    assert int(redis70.admin().info('replication')['connected_slaves']) == 0
    assert_no_secret(json.dumps(result), PASSPHRASE)


@pytest.mark.parametrize('extra,words', [
    (dict(backup_passphrase='x'), 'backup_passphrase is set but backup is not'),
    (dict(backup='/nonexistent-dir/dump.rdb'), 'the directory of backup does not exist'),
    (dict(backup='{tmp}'), 'is a directory'),
    (dict(backup='{tmp}/dump.rdb', backup_passphrase=''), 'backup_passphrase must not be empty'),
    (dict(backup='{tmp}/dump.rdb', backup_keep=-1), 'backup_keep must be 0 or more, got -1'),
    (dict(backup='{tmp}/dump.rdb', backup_mode='0999'), "backup_mode must be an octal file mode from 0000 to 0777"),
    (dict(backup='{tmp}/sync.json'), 'is the record'),
])
def test_bad_backup_options_are_refused_before_anything(extra, words, redis70, valkey80_tls, tmp_path):
    extra = dict((k, v.format(tmp=tmp_path) if isinstance(v, str) else v) for k, v in extra.items())
    forks = sync_full(redis70)
    result = engine('kv_sync', args_for(redis70, valkey80_tls, tmp_path / 'sync.json', **extra))
    assert result.get('failed') is True and result['error'] == 'config', result
    assert words in result['msg'], result['msg']
    assert os.listdir(str(tmp_path)) == [] and sync_full(redis70) == forks


# -- SnapshotBackup on its own: only a complete, valid RDB becomes the backup ------------------------------

def _feed(backup, data, sizes=(1, 7, 8, 9, 3, 64, 5)):
    pos = i = 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        backup.write(data[pos:pos + step])
        pos += step
        i += 1


@pytest.mark.parametrize('passphrase', [None, PASSPHRASE])
def test_snapshot_backup_installs_a_valid_rdb_fed_in_odd_pieces(passphrase, tmp_path):
    rdb = synthetic_rdb()
    dest = str(tmp_path / 'dump.rdb')
    spec = dict(dest=dest, keep=0, mode=0o640, source='127.0.0.1:1', engine='redis', version='7.0.15')
    backup = SnapshotBackup(spec, passphrase).begin('a' * 40, 1234, 'diskless')
    _feed(backup, rdb)
    facts = backup.install()
    assert facts['checksum'] == 'verified' and facts['content_size'] == len(rdb)
    assert facts['transfer'] == 'eof-stream' and facts['snapshot_offset'] == 1234
    assert oct(os.stat(dest).st_mode & 0o777) == '0o640'
    assert verify_backup(dest, passphrase)['checksum'] == 'verified'
    if not passphrase:
        assert open(dest, 'rb').read() == rdb
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize('damage,words', [
    ('truncated', 'the end opcode 0xFF is not where the checksum trailer starts'),
    ('flipped', 'CRC64 mismatch'),
    ('magic', 'not REDISnnnn or VALKEYnnn'),
])
def test_snapshot_backup_never_names_a_damaged_rdb_as_the_backup(damage, words, tmp_path):
    rdb = bytearray(synthetic_rdb())
    if damage == 'truncated':
        rdb = rdb[:-20]
    elif damage == 'flipped':
        rdb[40] ^= 0x01
    else:
        rdb[0:5] = b'XEDIS'
    dest = str(tmp_path / 'dump.rdb')
    backup = SnapshotBackup(dict(dest=dest, keep=0, source='127.0.0.1:1'), None).begin('b' * 40, 1, 'disk')
    with pytest.raises(KVError) as info:
        _feed(backup, bytes(rdb))
        backup.install()
    backup.abort()
    assert words in info.value.message
    assert os.listdir(str(tmp_path)) == []


def test_abort_mid_transfer_leaves_nothing(tmp_path):
    dest = str(tmp_path / 'dump.rdb')
    backup = SnapshotBackup(dict(dest=dest, keep=0, source='127.0.0.1:1'), PASSPHRASE).begin('c' * 40, 1, 'disk')
    backup.write(synthetic_rdb()[:30])
    time.sleep(0.01)
    backup.abort()
    assert os.listdir(str(tmp_path)) == []


def test_snapshot_cut_off_leaves_no_backup_and_the_next_start_writes_one(redis70, valkey80_tls, tmp_path, followers):
    """The source drops the link in the middle of the RDB transfer: the follower fails, nothing is named as the
    backup (no file at the path, no temp file); the next start takes a new snapshot and writes a complete backup."""
    admin = fast_source(redis70, diskless=True)  # diskless: the server streams the RDB as it writes it (slowly here)
    pipe = redis70.admin(0).pipeline(transaction=False)
    for i in range(20000):
        pipe.set(b'k:%d' % i, b'v' * 50)
    pipe.execute()
    folder = tmp_path / 'backups'
    folder.mkdir()
    dest = str(folder / 'dump.rdb.enc')  # an encrypted backup's own suffix, given in full
    record = str(tmp_path / 'sync.json')
    followers.append((redis70, valkey80_tls, record))
    args = args_for(redis70, valkey80_tls, record, dbs=[0], backup=dest, backup_passphrase=PASSPHRASE)
    admin.config_set('rdb-key-save-delay', 200)  # 20000 keys: about 4 s of transfer (a debugging knob of the server)
    cut = {}

    def cut_mid_transfer():
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                phase = json.load(open(record)).get('phase')
            except (OSError, ValueError):
                phase = None
            if phase == 'snapshot' and any(n.endswith('.tmp') for n in os.listdir(str(folder))):
                time.sleep(0.5)
                cut['temp'] = [n for n in os.listdir(str(folder)) if n.endswith('.tmp')]
                cut['killed'] = admin.execute_command('CLIENT', 'KILL', 'TYPE', 'replica')
                return
            time.sleep(0.02)

    killer = threading.Thread(target=cut_mid_transfer)
    try:
        killer.start()
        first = engine('kv_sync', args)
        killer.join()
    finally:
        admin.config_set('rdb-key-save-delay', 0)
    assert cut.get('killed') == 1 and cut.get('temp'), cut
    assert first.get('failed') is True, first
    deadline = time.time() + 10
    while os.listdir(str(folder)) and time.time() < deadline:  # the failing follower removes its temp file
        time.sleep(0.05)
    assert os.listdir(str(folder)) == [], 'a cut-off snapshot left a file behind'

    again = engine('kv_sync', args)
    assert again.get('failed') is not True, again.get('msg')
    b = again['backup']
    assert b['checksum'] == 'verified' and b['sha256'] == sha256(dest) and b['replid'] == again['replid']
    assert sorted(os.listdir(str(folder))) == ['dump.rdb.enc', 'dump.rdb.enc.json']
    assert verify_backup(dest, PASSPHRASE)['content_sha256'] == b['content_sha256']


def test_target_failing_during_the_restore_does_not_cost_the_backup(redis70, server_factory, tmp_path, followers):
    """The backup depends on the source's transfer only: the target dies in the middle of the restore, the follower
    lets the transfer end (or had installed the backup already), fails, and the backup is there, valid, and named in
    the result."""
    target = server_factory('valkey80')
    fast_source(redis70, diskless=False)
    pipe = redis70.admin(0).pipeline(transaction=False)
    for i in range(300000):
        pipe.set(b'key:%d' % i, b'v' * 30)
    pipe.execute()
    dest = str(tmp_path / 'dump.rdb')
    record = str(tmp_path / 'sync.json')
    followers.append((redis70, target, record))
    seen = {}

    def kill_target_mid_restore():
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                phase = json.load(open(record)).get('phase')
            except (OSError, ValueError):
                phase = None
            try:
                restored = target.admin().dbsize()
            except Exception:
                restored = 0
            if phase == 'snapshot' and restored > 1000:
                seen['phase'] = phase
                target.kill()
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_target_mid_restore)
    killer.start()
    result = engine('kv_sync', args_for(redis70, target, record, dbs=[0], backup=dest))
    killer.join()
    assert seen.get('phase') == 'snapshot', seen  # killed during the restore
    assert result.get('failed') is True, result
    b = result['backup']
    assert b and b['dest'] == dest and b['checksum'] == 'verified' and b['sha256'] == sha256(dest)
    assert verify_backup(dest)['content_sha256'] == b['content_sha256']
    assert [n for n in os.listdir(str(tmp_path)) if n.endswith('.tmp')] == []
    assert not alive_follower(record)


def alive_follower(record, wait=10):
    try:
        pid = json.load(open(record)).get('pid')
    except (OSError, ValueError):
        return False
    deadline = time.time() + wait
    while pid and os.path.exists('/proc/%d' % pid) and time.time() < deadline:
        time.sleep(0.05)
    return bool(pid) and os.path.exists('/proc/%d' % pid)
