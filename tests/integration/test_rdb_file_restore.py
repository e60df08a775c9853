"""kv_dump_restore with an RDB file as its source (``source.url: file:///path/backup.rdb``), on real servers.

The RDB files are written by the project's own kv_rdb_backup (method sync, plain and encrypted) from a Redis 7.0
source holding every type, awkward key names and TTLs in dbs 0 and 3, and restored into Valkey 8.0.
"""

import struct
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._backup import Backup
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import CRC64
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_file_source import FileRestore
from tests.conftest import assert_no_secret
from tests.support import compare, data

PHRASE = 'Rdb-Backup-Phrase-9'
LIBRARY = b"#!lua name=kvtlib\nredis.register_function('kvt_echo', function(keys, args) return args[1] end)"


def _rdb_backup(server, path, passphrase=None):
    admin = server.admin()
    delay = admin.config_get('repl-diskless-sync-delay')['repl-diskless-sync-delay']
    admin.config_set('repl-diskless-sync-delay', 0)  # the snapshot now, not after 5 s (a shared server: put back)
    try:
        result = Backup(Endpoint(server.endpoint(), 'server'), str(path), method='sync', passphrase=passphrase).run()
    finally:
        admin.config_set('repl-diskless-sync-delay', delay)
    assert result['method'] == 'sync', result
    return result


def _load(server, big=2000):
    for db in (0, 3):
        data.load_all_types(server.admin(db), prefix=b'db%d:' % db, big=big)


def _restore(path, target, passphrase=None, warnings=None, **options):
    warn = warnings.append if warnings is not None else None
    return FileRestore(Endpoint({'url': 'file://%s' % path}, 'source'), Endpoint(target.endpoint(), 'target'),
                       CopyOptions(**options), passphrase=passphrase, warn=warn).run()


@pytest.mark.parametrize('passphrase', [None, PHRASE], ids=['plain', 'encrypted'])
def test_rdb_file_restores_through_kv_dump_restore(passphrase, redis70, valkey80, run_module, tmp_path):
    """Check mode writes nothing, the real run makes the target equal to the source key by key (db_map), the
    function library is named, not dropped silently, and a second run writes nothing."""
    _load(redis70)
    admin = redis70.admin()
    admin.function_load(LIBRARY, replace=True)
    try:
        admin.set(b'db0:gone soon', b'x', px=2500)  # in the file, expired by the time it is restored
        expires = time.time() + 2.5
        path = tmp_path / ('old.rdb.enc' if passphrase else 'old.rdb')
        _rdb_backup(redis70, path, passphrase)
    finally:
        admin.function_flush()
    time.sleep(max(0, expires - time.time()) + 0.1)
    assert admin.exists(b'db0:gone soon') == 0
    args = {'source': {'url': 'file://%s' % path}, 'target': valkey80.endpoint(), 'db_map': {3: 5}}
    if passphrase:
        args['backup_passphrase'] = passphrase

    plan = run_module('kv_dump_restore', args, check=True)
    assert not plan.get('failed'), plan['msg']
    assert valkey80.admin().info('keyspace') == {}, 'check mode wrote to the target'
    assert not valkey80.admin().function_list()

    first = run_module('kv_dump_restore', args)
    assert not first.get('failed'), first['msg']
    assert first['changed']
    assert [(d['db'], d['target_db'], d['keys'], d['copied'], d['expired']) for d in first['dbs']] == \
        [(d['db'], d['target_db'], d['keys'], d['copied'], d['expired']) for d in plan['dbs']]
    assert [(d['db'], d['target_db']) for d in first['dbs']] == [(0, 0), (3, 5)]
    assert first['totals']['keys'] == 2 * 20 + 1 and first['totals']['expired'] == 1, first['totals']
    assert first['totals']['failed'] == 0, first['totals']
    assert first['totals']['copied'] == 2 * 20, first['totals']  # 16 small keys + 4 big ones per db
    source = first['source']
    assert (source['engine'], source['rdb_version'], source['content'], source['backup']) == ('redis', 10, 'rdb', True)
    assert source['version'].startswith('7.0') and source['checksum'] == 'verified'
    assert source['functions'] == {'count': 1, 'names': ['kvtlib'], 'loaded': False}
    assert any('kvtlib' in w and 'FUNCTION LOAD' in w for w in first.get('warnings', [])), first.get('warnings')
    compare.assert_same(redis70, valkey80, [(0, 0), (3, 5)])
    assert valkey80.admin().info('keyspace').keys() == {'db0', 'db5'}

    # a rerun compares payloads (a big collection may serialize in another order on the target: skip keeps it)
    second = run_module('kv_dump_restore', dict(args, on_conflict='skip'))
    assert not second.get('failed') and not second['changed'], second.get('msg')
    assert second['totals']['identical'] + second['totals']['skipped'] == first['totals']['copied']
    assert second['totals']['identical'] >= 2 * 16
    compare.assert_same(redis70, valkey80, [(0, 0), (3, 5)])
    for result in (plan, first, second):
        assert_no_secret(result, PHRASE)
    if passphrase:
        wrong = run_module('kv_dump_restore', dict(args, backup_passphrase='not it'))
        assert wrong['failed'] and wrong['error'] == 'passphrase', wrong['msg']
        assert_no_secret(wrong, PHRASE)
        missing = run_module('kv_dump_restore', dict((k, v) for k, v in args.items() if k != 'backup_passphrase'))
        assert missing['failed'] and missing['error'] == 'passphrase', missing['msg']


def test_dbs_and_match_select_keys_of_the_file(redis70, valkey80, tmp_path):
    _load(redis70, big=0)
    path = tmp_path / 'old.rdb'
    _rdb_backup(redis70, path)
    result = _restore(path, valkey80, dbs=[3], match='db3:str*')
    assert [(d['db'], d['target_db'], d['keys'], d['copied']) for d in result['dbs']] == [(3, 3, 2, 2)]
    assert sorted(valkey80.admin(3).scan_iter(count=100)) == [b'db3:str:ttl', b'db3:stream']
    assert valkey80.admin().info('keyspace').keys() == {'db3'}
    problems = compare.differences(redis70.admin(3), valkey80.admin(3), limit=100)  # the two keys are equal
    assert len(problems) == 16 - 2 and all(p.startswith('missing on target') for p in problems), problems


def _hand_made_rdb(entries):
    """A small RDB 10 file written here: ``entries`` are ``(db, key, value, expire_ms or None)`` strings."""
    def string(text):
        assert len(text) < 64
        return bytes([len(text)]) + text

    out = bytearray(b'REDIS0010') + b'\xfa' + string(b'redis-ver') + string(b'7.0.15')
    current = None
    for db, key, value, expire in entries:
        if db != current:
            out += b'\xfe' + bytes([db])
            current = db
        if expire is not None:
            out += b'\xfc' + struct.pack('<q', expire)
        out += b'\x00' + string(key) + string(value)
    out += b'\xff'
    return bytes(out) + struct.pack('<Q', CRC64(bytes(out), 0))


def test_dbs_out_of_order_and_keys_expired_in_the_file(valkey80, tmp_path):
    """A file whose dbs are not in ascending order is still read whole for each db; a key whose expiry time
    has passed is counted as expired and not written, one that has not keeps its absolute expiry."""
    now = int(time.time() * 1000)
    path = tmp_path / 'handmade.rdb'
    path.write_bytes(_hand_made_rdb([(3, b'k3', b'v3', None), (0, b'k0', b'v0', now + 3600 * 1000),
                                     (0, b'old', b'x', now - 1000), (3, b'k3b', b'v3b', None)]))
    result = _restore(path, valkey80, db_map={3: 1})
    assert [(d['db'], d['target_db'], d['keys'], d['copied'], d['expired']) for d in result['dbs']] == \
        [(0, 0, 2, 1, 1), (3, 1, 2, 2, 0)]
    assert valkey80.admin(1).mget(b'k3', b'k3b') == [b'v3', b'v3b']
    assert valkey80.admin(0).get(b'k0') == b'v0' and not valkey80.admin(0).exists(b'old')
    assert abs(valkey80.admin(0).pexpiretime(b'k0') - (now + 3600 * 1000)) <= 1
    assert result['source']['version'] == '7.0.15' and result['source']['functions']['count'] == 0


def test_payload_commands_needs_a_live_source(valkey80, tmp_path):
    path = tmp_path / 'handmade.rdb'
    path.write_bytes(_hand_made_rdb([(0, b'k', b'v', None)]))
    with pytest.raises(KVError) as err:
        _restore(path, valkey80, payload='commands')
    assert err.value.kind == 'config' and 'payload=commands' in str(err.value) and 'the RDB file' in str(err.value)
    assert valkey80.admin().info('keyspace') == {}


def _flip_in_value(raw):
    at = raw.index(b'expiring')  # the value of db0:str:ttl, stored as it is (short strings are not compressed)
    raw[at + 3] ^= 0x01
    return 'CRC-64'


def _flip_in_trailer(raw):
    raw[-1] ^= 0xFF
    return 'CRC-64'


def _cut_off(raw):
    del raw[-100:]
    return 'ended early'


def _flip_type(raw):
    at = raw.index(b'db0:hash')  # the hash's type byte comes right before its name's length byte
    raw[at - 2] = 0x3F
    return 'unknown object type 63'


DAMAGES = [('value_byte', _flip_in_value, 'corrupt'), ('crc_trailer', _flip_in_trailer, 'corrupt'),
           ('truncated', _cut_off, 'truncated'), ('object_type', _flip_type, 'unsupported')]


@pytest.mark.parametrize('name, damage, kind', DAMAGES, ids=[d[0] for d in DAMAGES])
def test_damaged_rdb_file_writes_nothing(name, damage, kind, redis70, valkey80, tmp_path):
    """One damaged byte or a cut-off file: the error names the problem, and not one key is written."""
    _load(redis70, big=0)
    path = tmp_path / 'old.rdb'
    _rdb_backup(redis70, path)
    raw = bytearray(path.read_bytes())
    words = damage(raw)
    path.write_bytes(bytes(raw))
    with pytest.raises(KVError) as err:
        _restore(path, valkey80)
    assert err.value.kind == kind, str(err.value)
    assert words in str(err.value) and str(path) in str(err.value), str(err.value)
    if kind == 'unsupported':  # the way out fits a file: no "offline copy" of a file that is already offline
        assert 'Load the file into a server' in str(err.value) and 'offline copy' not in str(err.value)
    assert valkey80.admin().info('keyspace') == {}


def test_damaged_encrypted_rdb_file_writes_nothing(redis70, valkey80, tmp_path):
    _load(redis70, big=0)
    path = tmp_path / 'old.rdb.enc'
    _rdb_backup(redis70, path, PHRASE)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(KVError) as err:
        _restore(path, valkey80, passphrase=PHRASE)
    assert err.value.kind in ('corrupt', 'passphrase'), str(err.value)
    assert PHRASE not in str(err.value)
    assert valkey80.admin().info('keyspace') == {}


def test_redis74_rdb_into_valkey8_is_refused_before_writing(redis74, valkey80, run_module, tmp_path):
    data.load_all_types(redis74.admin(0))
    path = tmp_path / 'new.rdb'
    _rdb_backup(redis74, path)
    result = run_module('kv_dump_restore', {'source': {'url': 'file://%s' % path}, 'target': valkey80.endpoint()})
    assert result['failed'] and result['error'] == 'payload', result['msg']
    assert 'RDB 12' in result['msg'] and 'cannot take the DUMP payloads' in result['msg'], result['msg']
    assert valkey80.admin().info('keyspace') == {}


def test_a_file_that_is_no_backup_is_named(valkey80, tmp_path, run_module):
    path = tmp_path / 'notes.txt'
    path.write_bytes(b'hello, this is no backup\n')
    result = run_module('kv_dump_restore', {'source': {'url': 'file://%s' % path}, 'target': valkey80.endpoint()})
    assert result['failed'] and result['error'] == 'corrupt', result['msg']
    assert 'neither a logical backup' in result['msg'] and str(path) in result['msg']
