"""The snapshot restore of kv_sync (``_sync_stream.Applier.restore_snapshot``, fed by ``SnapshotParser``) against
real servers: a source loaded with every encoding and the awkward names, split from its snapshot and restored into
a real Valkey 8.0 / 9.x target the way the follower does it (expiries held back, then settled as at the drain),
then compared key by key without kv_verify (tests/support/compare.py: types, typed values, expiries; plus
PEXPIRETIME equality everywhere)."""

import io
import os
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _replication
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import chunk_reader
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import SnapshotParser
from ansible_collections.kvtools.migration.plugins.module_utils._sync import Sync
from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import settle_expiries
from ansible_collections.kvtools.migration.plugins.module_utils._sync_stream import WINDOW, Applier
from tests.support import compare, rdb_data

EVERY_DB = ((0, 0), (3, 3), (15, 15))


def _scan_all(client):
    keys, cursor = set(), 0
    while True:
        cursor, batch = client.scan(cursor=cursor, count=1000)
        keys.update(batch)
        if int(cursor) == 0:
            return keys


def _events_from_save(server, spool_dir, big_threshold=64 * 1024, batches=True, strings=True):
    """The snapshot's events: ``batches(strings=True)`` as the follower reads them (plain strings for MSET),
    ``strings=False`` as a cluster target's follower does, ``batches=False`` one event per key."""
    server.admin().save()
    fh = open(os.path.join(server.dir, 'dump.rdb'), 'rb')
    parser = SnapshotParser(fh.read, spool_dir=spool_dir, big_threshold=big_threshold, read_size=32 * 1024)
    return parser, (parser.batches(strings=strings) if batches else parser.events())


def _counted(events, seen):
    """``events`` as they are; ``seen[kind]`` counts the keys of each kind of event."""
    for event in events:
        if event[0] in ('keys', 'strings'):
            seen[event[0]] = seen.get(event[0], 0) + len(event[2])
        yield event


def restore(target_ep, events, logs, pairs=EVERY_DB, replace=False, window=WINDOW):
    """What the follower does with a snapshot: RESTOREs with expiries held back (ttl_mode hold), then the drain's
    exact expiries.  Returns the Applier (``counts`` per source db, ``functions``)."""
    logs.mkdir(exist_ok=True)
    keys_log, held_log = KeysLogWriter(str(logs / 'keys')), KeysLogWriter(str(logs / 'held'))
    applier = Applier(target_ep, pairs, keys_log, ttl_mode='hold', replace=replace, window=window, held_log=held_log)
    try:
        applier.connect()
        applier.restore_snapshot(events)
    finally:
        applier.close()
        keys_log.close()
        held_log.close()
    settle_expiries(target_ep, str(logs / 'keys'), str(logs / 'held'))
    applier.dbs = [applier.counts[db] for db in sorted(applier.counts)]
    applier.copied = sum(d['copied'] for d in applier.dbs)
    return applier


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
    spool = tmp_path / 'spool'
    spool.mkdir()
    # per-key events through a small window (the slow path), then batches (a cluster follower's fast path), then
    # batches with the plain strings apart (MSET: the follower's fast path into one target)
    for batches, strings in ((False, False), (True, False), (True, True)):
        target.flushall()
        parser, events = _events_from_save(source, str(spool), batches=batches, strings=strings)
        seen = {}
        result = restore(Endpoint(target.endpoint()), _counted(events, seen), tmp_path / 'logs', window=7)
        if batches:     # MSET only when asked for; the other types are RESTOREd either way
            assert bool(seen.get('strings')) == strings and seen.get('keys', 0) > 0, seen
        assert [(d['db'], d['target_db']) for d in result.dbs] == list(EVERY_DB)
        for entry in result.dbs:
            assert entry['keys'] == entry['copied'] == len(_scan_all(source.admin(entry['db'])))
            assert entry['failed'] == entry['conflicts'] == entry['expired'] == 0
        assert result.copied == parser.keys and parser.spooled >= 2
        has_functions = rdb_data.version_tuple(source) >= (7, 0) or rdb_data.engine(source) == 'valkey'
        assert result.functions == int(has_functions)
        if has_functions:
            assert target.admin().fcall('kvsnap_echo', 0, b'hi') == b'hi'
        assert_exact(source, target, EVERY_DB)
        assert os.listdir(str(spool)) == []
    # again: the first key is a conflict (a RESTORE's BUSYKEY, or an MSETNX that answers 0) that stops the restore,
    # nothing is overwritten
    before = dict((db, target.admin(db).dbsize()) for db, dummy in EVERY_DB)
    for strings in (False, True):
        parser, events = _events_from_save(source, str(spool), strings=strings)
        with pytest.raises(KVError) as info:
            restore(Endpoint(target.endpoint()), events, tmp_path / 'logs')
        message = info.value.message
        assert ('BUSYKEY' in message and 'RESTORE of a snapshot key' in message
                or strings and 'MSETNX of snapshot strings' in message and 'already on the target' in message), message
        assert dict((db, target.admin(db).dbsize()) for db, dummy in EVERY_DB) == before
        assert_exact(source, target, EVERY_DB)
    # with replace, every key is written again
    parser, events = _events_from_save(source, str(spool))
    replaced = restore(Endpoint(target.endpoint()), events, tmp_path / 'logs', replace=True)
    assert replaced.copied == parser.keys
    assert_exact(source, target, EVERY_DB)


def test_db_map_dbs_and_expired_in_transit(redis70, valkey80, tmp_path):
    """Only the mapped dbs are written, into their target dbs; a key that expires between the snapshot and its
    RESTORE is written with its expiry held back (a renewal may follow in the stream) and the drain's exact
    expiry removes it: "expired" is what the source decides."""
    rdb_data.load_every_encoding(redis70)
    soon = redis70.admin(3)
    soon.set(b'expires-soon', b'x', px=1500)
    parser, events = _events_from_save(redis70, str(tmp_path))
    deadline = time.time() + 10
    while soon.exists(b'expires-soon') and time.time() < deadline:  # expired on the source before the restore
        time.sleep(0.1)
    keys_log, held_log = KeysLogWriter(str(tmp_path / 'keys')), KeysLogWriter(str(tmp_path / 'held'))
    applier = Applier(Endpoint(valkey80.endpoint()), [(0, 5), (3, 3)], keys_log, held_log=held_log)
    try:
        applier.connect()
        applier.restore_snapshot(events)
    finally:
        applier.close()
        keys_log.close()
        held_log.close()
    by_db = applier.counts
    assert sorted(by_db) == [0, 3] and by_db[0]['target_db'] == 5
    assert by_db[0]['copied'] == by_db[0]['keys'] == len(_scan_all(redis70.admin(0)))
    assert by_db[3]['copied'] == by_db[3]['keys'] == len(_scan_all(redis70.admin(3))) + 1
    assert valkey80.admin(3).exists(b'expires-soon')          # held back, not dropped in transit
    settle_expiries(Endpoint(valkey80.endpoint()), str(tmp_path / 'keys'), str(tmp_path / 'held'))
    assert not valkey80.admin(3).exists(b'expires-soon')      # the exact expiry: gone, as on the source
    assert valkey80.admin(15).dbsize() == 0 and valkey80.admin(0).dbsize() == 0
    assert_exact(redis70, valkey80, [(0, 5), (3, 3)])


def test_refused_payload_version_stops_with_the_reason(redis74, valkey80, tmp_path):
    redis74.admin().set(b'k', b'v')
    parser, events = _events_from_save(redis74, str(tmp_path))
    with pytest.raises(KVError) as info:
        restore(Endpoint(valkey80.endpoint()), events, tmp_path / 'logs')
    assert info.value.kind == 'payload'
    assert 'payload version' in info.value.message and 'at least as new as the source' in info.value.message
    assert valkey80.admin().dbsize() == 0


@pytest.mark.parametrize('dbs', [[0, 1], None])
def test_db_map_collision_is_a_config_error(redis70, valkey80, tmp_path, dbs):
    """kv_sync's plan refuses a db_map that sends two source dbs into one target db, before anything starts."""
    params = dict(state='started', record=str(tmp_path / 'rec.json'), spool_dir=None, dbs=dbs, db_map={0: 1},
                  on_conflict='fail', max_lag=1048576, started_timeout=60, drain_timeout=30, max_seconds=600,
                  spool_passphrase=None, backup=None, backup_passphrase=None)
    with pytest.raises(KVError) as info:
        Sync(Endpoint(redis70.endpoint(), 'source'), Endpoint(valkey80.endpoint(), 'target'), params).run()
    assert info.value.kind == 'config' and 'db_map sends' in info.value.message and 'target db 1' in info.value.message
    assert not os.path.exists(str(tmp_path / 'rec.json')) and valkey80.admin(1).dbsize() == 0


def test_end_to_end_over_replication(redis70, valkey9, tmp_path):
    """A diskless transfer from Redis 7.0 parsed as it arrives and restored into Valkey 9.1 at once."""
    rdb_data.load_every_encoding(redis70)
    admin = redis70.admin()
    # a shared server: other tests switch it to disk-based transfers, so say which transfer this test needs
    before = admin.config_get('repl-diskless-sync*')
    admin.config_set('repl-diskless-sync', 'yes')
    admin.config_set('repl-diskless-sync-delay', 0)
    stream = _replication.ReplicationStream(Endpoint(redis70.endpoint()), '7.0.15')
    try:
        stream.open()
        parser = SnapshotParser(chunk_reader(stream.payload()), spool_dir=str(tmp_path), big_threshold=100000)
        result = restore(Endpoint(valkey9.endpoint(user='migrator')), parser.batches(), tmp_path / 'logs')
    finally:
        stream.close()
        for name in ('repl-diskless-sync', 'repl-diskless-sync-delay'):
            admin.config_set(name, before[name])
    assert stream.transfer == 'eof-stream' and parser.checksum == 'verified'
    assert result.copied == parser.keys
    assert_exact(redis70, valkey9, [(0, 0), (3, 3), (15, 15)])


def test_a_corrupted_snapshot_stops_at_its_end(valkey80, tmp_path):
    from tests.unit.test_rdb_snapshot import enc_str, rdb
    data = rdb(b'\xfe\x00\x00' + enc_str(b'k') + enc_str(b'v'))
    data = data[:-1] + bytes([data[-1] ^ 0x55])
    parser = SnapshotParser(io.BytesIO(data).read)
    with pytest.raises(KVError) as info:
        restore(Endpoint(valkey80.endpoint()), parser.batches(), tmp_path / 'logs', pairs=[(0, 0)])
    assert info.value.kind == 'corrupt' and 'CRC-64' in info.value.message


def test_restore_into_a_tls_target_with_spooled_payloads(redis70, valkey80_tls, tmp_path):
    rdb_data.load_every_encoding(redis70)
    valkey80_tls.admin().function_flush()
    parser, events = _events_from_save(redis70, str(tmp_path), big_threshold=16 * 1024)
    result = restore(Endpoint(valkey80_tls.endpoint()), events, tmp_path / 'logs', window=50)
    assert parser.spooled >= 2 and result.copied == parser.keys
    assert_exact(redis70, valkey80_tls, [(0, 0), (3, 3), (15, 15)])


def _replicate_as(source, version, target, tmp_path):
    stream = _replication.ReplicationStream(Endpoint(source.endpoint()), version)
    stream.open()
    try:
        parser = SnapshotParser(chunk_reader(stream.payload()), spool_dir=str(tmp_path))
        return parser, restore(Endpoint(target.endpoint()), parser.batches(), tmp_path / 'logs')
    finally:
        stream.close()


def test_valkey91_writes_rdb_11_for_a_replica_announcing_8_0(valkey9, valkey80, tmp_path):
    """``REPLCONF version 8.0.1`` makes Valkey 9.1 write its snapshot as RDB 11 (REDIS0011), whose payloads a
    Valkey 8.0 target restores exactly - as long as no hash has field TTLs (next test)."""
    rdb_data.load_every_encoding(valkey9)
    valkey9.admin().delete(b'hfe:small', b'hfe:big')
    valkey80.admin().function_flush()
    parser, result = _replicate_as(valkey9, '8.0.1', valkey80, tmp_path)
    assert parser.magic == 'REDIS0011' and result.copied == parser.keys
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
