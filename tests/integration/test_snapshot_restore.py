"""SnapshotRestorer against real servers: a source loaded with every encoding and the awkward names, split from
its snapshot and restored into a real Valkey 8.0 / 9.x target, then compared key by key without kv_verify
(tests/support/compare.py: types, typed values, expiries; plus DUMP equality where the RDB versions match and
PEXPIRETIME equality everywhere)."""

import io
import os
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _replication
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import chunk_reader
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import SnapshotParser
from ansible_collections.kvtools.migration.plugins.module_utils._snapshot_restore import SnapshotRestorer
from tests.support import compare, rdb_data


def _scan_all(client):
    keys, cursor = set(), 0
    while True:
        cursor, batch = client.scan(cursor=cursor, count=1000)
        keys.update(batch)
        if int(cursor) == 0:
            return keys


def _events_from_save(server, spool_dir, big_threshold=64 * 1024):
    server.admin().save()
    fh = open(os.path.join(server.dir, 'dump.rdb'), 'rb')
    parser = SnapshotParser(fh.read, spool_dir=spool_dir, big_threshold=big_threshold, read_size=32 * 1024)
    return parser, parser.events()


def assert_exact(source, target, pairs):
    """compare.assert_same, plus the same PEXPIRETIME for every key and the same field TTLs of every hash
    with field TTLs.  (DUMP equality is no invariant here: a hashtable's order differs between servers.)"""
    compare.assert_same(source, target, pairs)
    hfe = rdb_data.hfe_supported(source) and rdb_data.hfe_supported(target)
    for s_db, t_db in pairs:
        src, tgt = source.admin(s_db), target.admin(t_db)
        for key in _scan_all(src):
            if rdb_data.version_tuple(source) >= (7, 0) or rdb_data.engine(source) == 'valkey':
                assert src.execute_command('PEXPIRETIME', key) == tgt.execute_command('PEXPIRETIME', key), key
            if hfe and src.type(key) == b'hash':
                fields = list(src.hkeys(key))
                args = ['HPEXPIRETIME', key, 'FIELDS', len(fields)] + fields
                assert src.execute_command(*args) == tgt.execute_command(*args), key


PAIRS = [('redis62', 'valkey80'), ('redis70', 'valkey80'), ('redis72', 'valkey80'), ('valkey80', 'valkey9'),
         ('valkey90', 'valkey9'), ('redis70', 'valkey90')]


@pytest.mark.parametrize('source_name,target_name', PAIRS)
def test_restore_every_encoding(request, source_name, target_name, tmp_path):
    source = request.getfixturevalue(source_name)
    target = request.getfixturevalue(target_name)
    rdb_data.load_every_encoding(source)
    target.admin().function_flush()
    parser, events = _events_from_save(source, str(tmp_path))
    restorer = SnapshotRestorer(Endpoint(target.endpoint()), window=7, window_bytes=100000)
    result = restorer.run(events)
    pairs = [(0, 0), (3, 3), (15, 15)]
    assert [(d['db'], d['target_db']) for d in result['dbs']] == pairs
    for entry in result['dbs']:
        assert entry['keys'] == entry['copied'] == len(_scan_all(source.admin(entry['db'])))
        assert entry['failed'] == entry['conflicts'] == entry['expired'] == 0
    assert result['totals']['copied'] == parser.keys and parser.spooled >= 2
    has_functions = rdb_data.version_tuple(source) >= (7, 0) or rdb_data.engine(source) == 'valkey'
    assert result['functions'] == dict(found=int(has_functions), loaded=int(has_functions), conflicts=0)
    if has_functions:
        assert target.admin().fcall('kvsnap_echo', 0, b'hi') == b'hi'
    assert_exact(source, target, pairs)
    assert os.listdir(str(tmp_path)) == []
    # again: every key is now a conflict, nothing is written
    parser, events = _events_from_save(source, str(tmp_path))
    again = SnapshotRestorer(Endpoint(target.endpoint())).run(events)
    assert again['totals']['conflicts'] == parser.keys and again['totals']['copied'] == 0
    assert again['functions']['conflicts'] == int(has_functions)
    assert len(again['failures']) == 20 and 'BUSYKEY' in again['failures'][-1]['error']
    # with replace, every key is written again
    parser, events = _events_from_save(source, str(tmp_path))
    replaced = SnapshotRestorer(Endpoint(target.endpoint()), replace=True).run(events)
    assert replaced['totals']['copied'] == parser.keys
    assert_exact(source, target, pairs)


def test_db_map_dbs_and_expired_at_parse_time(redis70, valkey80, tmp_path):
    rdb_data.load_every_encoding(redis70)
    soon = redis70.admin(3)
    soon.set(b'expires-soon', b'x', px=20 * 60 * 1000)
    parser, events = _events_from_save(redis70, str(tmp_path))
    later = int(time.time() * 1000) + 30 * 60 * 1000

    def now_ms():  # the keys are parsed 30 minutes "later": the 20-minute key has expired by then
        return later
    restorer = SnapshotRestorer(Endpoint(valkey80.endpoint()), dbs=[0, 3], db_map={0: 5, 3: 3}, now_ms=now_ms)
    result = restorer.run(events)
    by_db = dict((d['db'], d) for d in result['dbs'])
    assert sorted(by_db) == [0, 3] and by_db[0]['target_db'] == 5
    assert result['keys_not_selected'] == len(_scan_all(redis70.admin(15)))
    assert by_db[3]['expired'] == 1 and by_db[3]['copied'] == by_db[3]['keys'] - 1
    assert not valkey80.admin(3).exists(b'expires-soon')
    assert valkey80.admin(15).dbsize() == 0 and valkey80.admin(0).dbsize() == 0
    soon.delete(b'expires-soon')
    assert_exact(redis70, valkey80, [(0, 5), (3, 3)])


def test_refused_payload_version_stops_with_the_reason(redis74, valkey80, tmp_path):
    redis74.admin().set(b'k', b'v')
    parser, events = _events_from_save(redis74, str(tmp_path))
    with pytest.raises(KVError) as info:
        SnapshotRestorer(Endpoint(valkey80.endpoint())).run(events)
    assert info.value.kind == 'payload'
    assert 'payload version' in info.value.message and 'at least as new as the source' in info.value.message
    assert valkey80.admin().dbsize() == 0


def test_db_map_collision_is_a_config_error(valkey80):
    with pytest.raises(KVError) as info:
        SnapshotRestorer(Endpoint(valkey80.endpoint()), dbs=[0, 1], db_map={0: 1})
    assert info.value.kind == 'config'
    restorer = SnapshotRestorer(Endpoint(valkey80.endpoint()), db_map={0: 1})
    restorer.feed(('key', 1, b'a', b'\x00\x01v\x0b\x00' + b'\x00' * 8, None))
    with pytest.raises(KVError) as info:
        restorer.feed(('key', 0, b'b', b'\x00\x01v\x0b\x00' + b'\x00' * 8, None))
    assert 'source dbs 1 and 0' in info.value.message
    restorer.close()


def test_end_to_end_over_replication(redis70, valkey9, tmp_path):
    """A diskless transfer from Redis 7.0 parsed as it arrives and restored into Valkey 9.1 at once."""
    rdb_data.load_every_encoding(redis70)
    stream = _replication.ReplicationStream(Endpoint(redis70.endpoint()), '7.0.15')
    stream.open()
    try:
        parser = SnapshotParser(chunk_reader(stream.payload()), spool_dir=str(tmp_path), big_threshold=100000)
        result = SnapshotRestorer(Endpoint(valkey9.endpoint(user='migrator'))).run(parser.events())
    finally:
        stream.close()
    assert stream.transfer == 'eof-stream' and parser.checksum == 'verified'
    assert result['totals']['copied'] == parser.keys
    assert_exact(redis70, valkey9, [(0, 0), (3, 3), (15, 15)])


def test_a_corrupted_snapshot_stops_at_its_end(valkey80):
    from tests.unit.test_rdb_snapshot import enc_str, rdb
    data = rdb(b'\xfe\x00\x00' + enc_str(b'k') + enc_str(b'v'))
    data = data[:-1] + bytes([data[-1] ^ 0x55])
    parser = SnapshotParser(io.BytesIO(data).read)
    with pytest.raises(KVError) as info:
        SnapshotRestorer(Endpoint(valkey80.endpoint())).run(parser.events())
    assert info.value.kind == 'corrupt' and 'CRC-64' in info.value.message


def test_restore_into_a_tls_target_with_spooled_payloads(redis70, valkey80_tls, tmp_path):
    rdb_data.load_every_encoding(redis70)
    valkey80_tls.admin().function_flush()
    parser, events = _events_from_save(redis70, str(tmp_path), big_threshold=16 * 1024)
    result = SnapshotRestorer(Endpoint(valkey80_tls.endpoint()), window=50).run(events)
    assert parser.spooled >= 2 and result['totals']['copied'] == parser.keys
    assert_exact(redis70, valkey80_tls, [(0, 0), (3, 3), (15, 15)])


def _replicate_as(source, version, target, tmp_path):
    stream = _replication.ReplicationStream(Endpoint(source.endpoint()), version)
    stream.open()
    try:
        parser = SnapshotParser(chunk_reader(stream.payload()), spool_dir=str(tmp_path))
        return parser, SnapshotRestorer(Endpoint(target.endpoint())).run(parser.events())
    finally:
        stream.close()


def test_valkey91_writes_rdb_11_for_a_replica_announcing_8_0(valkey9, valkey80, tmp_path):
    """``REPLCONF version 8.0.1`` makes Valkey 9.1 write its snapshot as RDB 11 (REDIS0011), whose payloads a
    Valkey 8.0 target restores exactly - as long as no hash has field TTLs (next test)."""
    rdb_data.load_every_encoding(valkey9)
    valkey9.admin().delete(b'hfe:small', b'hfe:big')
    valkey80.admin().function_flush()
    parser, result = _replicate_as(valkey9, '8.0.1', valkey80, tmp_path)
    assert parser.magic == 'REDIS0011' and result['totals']['copied'] == parser.keys
    assert_exact(valkey9, valkey80, [(0, 0), (3, 3), (15, 15)])


def test_valkey91_cuts_the_transfer_when_rdb_11_cannot_hold_field_ttls(valkey9, valkey80, tmp_path):
    """With a hash that has field TTLs the source's fork fails ("Can't store key (db 0) in RDB version 11") and
    the diskless transfer ends without its mark: a clear truncation, nothing half-restored is called done."""
    rdb_data.load_every_encoding(valkey9)
    with pytest.raises(KVError) as info:
        _replicate_as(valkey9, '8.0.1', valkey80, tmp_path)
    assert info.value.kind == 'truncated'
    assert "in RDB version 11" in valkey9.log_tail(50)


def test_valkey90_ignores_the_announced_version(valkey90, valkey80, tmp_path):
    """Valkey 9.0.0 writes VALKEY080 whatever the replica announces: Valkey 8.0 refuses its payloads, and the
    restore stops on the first one with the reason."""
    valkey90.admin().set(b'k', b'v')
    with pytest.raises(KVError) as info:
        _replicate_as(valkey90, '8.0.1', valkey80, tmp_path)
    assert info.value.kind == 'payload'
    assert valkey80.admin().dbsize() == 0
