"""The snapshot splitter against real servers: every payload it builds is byte-identical to the server's DUMP
of the same key, every expiry equals PEXPIRETIME, every key and function library of the snapshot is found.

For each version startable here (Redis 6.2, 7.0, 7.2, 7.4, Valkey 8.0, 9.0, 9.1), from the server's own
dump.rdb after SAVE and from the replication protocol (disk-based and diskless transfers).
"""

import io
import os
import random
import struct

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _replication
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_encoding import chunk_reader
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import SnapshotParser, SpooledPayload
from tests.support import rdb_data

FLAVOURS = ['redis62', 'redis70', 'redis72', 'redis74', 'valkey80', 'valkey90', 'valkey9']


def _scan_all(client):
    keys, cursor = set(), 0
    while True:
        cursor, batch = client.scan(cursor=cursor, count=1000)
        keys.update(batch)
        if int(cursor) == 0:
            return keys


def _payload_bytes(payload):
    if isinstance(payload, SpooledPayload):
        data = payload.read_all()
        assert len(data) == payload.length
        assert oct(os.stat(payload.path).st_mode & 0o777) == oct(0o600)
        payload.close()
        return data
    return payload


def check_snapshot(server, events, expected_types=()):
    """Compare every event with what the server says now; returns the facts seen."""
    ver = rdb_data.version_tuple(server)
    has_pexpiretime = ver >= (7, 0) or rdb_data.engine(server) == 'valkey'
    seen = {}
    types = set()
    functions = []
    aux = {}
    end = None
    spooled = 0
    clients = {}
    for event in events:
        kind = event[0]
        if kind == 'key':
            dummy, db, key, payload, expire = event
            spooled += isinstance(payload, SpooledPayload)
            payload = _payload_bytes(payload)
            client = clients.setdefault(db, server.admin(db))
            assert payload == client.dump(key), 'payload of %r in db %d differs from DUMP' % (key, db)
            types.add(payload[0])
            if has_pexpiretime:
                server_expire = client.execute_command('PEXPIRETIME', key)
                assert (None if server_expire == -1 else server_expire) == expire, key
            else:
                pttl = client.pttl(key)
                assert (pttl == -1) == (expire is None), key
            assert key not in seen.setdefault(db, set()), 'key %r of db %d seen twice' % (key, db)
            seen[db].add(key)
        elif kind == 'function':
            functions.append(event[1])
        elif kind == 'aux':
            aux[event[1]] = event[2]
        elif kind == 'end':
            end = event
        else:
            assert kind == 'db'
    assert end == ('end', True)
    for db in range(16):
        assert seen.get(db, set()) == _scan_all(server.admin(db)), 'db %d: the snapshot and SCAN disagree' % db
    missing = set(expected_types) - types
    assert not missing, 'the snapshot held no object of type(s) %s' % sorted(missing)
    if ver >= (7, 0) or rdb_data.engine(server) == 'valkey':
        libraries = server.admin().execute_command('FUNCTION', 'LIST', 'WITHCODE')
        codes = sorted(_library_code(lib) for lib in libraries)
        assert sorted(functions) == codes and codes
    assert b'redis-ver' in aux or b'valkey-ver' in aux
    return dict(keys=sum(len(v) for v in seen.values()), types=types, spooled=spooled, dbs=sorted(seen))


def _library_code(lib):
    if isinstance(lib, dict):  # redis-py parses the reply of some servers into a dict
        return lib.get(b'library_code', lib.get('library_code'))
    return lib[lib.index(b'library_code') + 1]


def _save_and_open(server):
    server.admin().save()
    return open(os.path.join(server.dir, 'dump.rdb'), 'rb')


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_dump_rdb_payloads_equal_dump(request, flavour, tmp_path):
    server = request.getfixturevalue(flavour)
    expected = rdb_data.load_every_encoding(server)
    # an LFU or LRU policy makes the server write FREQ (249) or IDLE (248) before each key
    lfu = FLAVOURS.index(flavour) % 2 == 0
    server.admin().config_set('maxmemory-policy', 'allkeys-lfu' if lfu else 'allkeys-lru')
    try:
        with _save_and_open(server) as fh:
            # a small buffer and threshold, so objects straddle refills and the big ones are spooled
            parser = SnapshotParser(fh.read, spool_dir=str(tmp_path), big_threshold=64 * 1024, read_size=16 * 1024)
            facts = check_snapshot(server, parser.events(), expected)
    finally:
        server.admin().config_set('maxmemory-policy', 'noeviction')
    assert parser.opcodes[249 if lfu else 248] == facts['keys']
    assert parser.opcodes[252] >= 5 and parser.opcodes[254] == 3 and parser.opcodes[251] == 3
    assert facts['dbs'] == [0, 3, 15]
    assert facts['spooled'] >= 2  # str:big and hash:bigvalues at least
    assert parser.checksum == 'verified'
    assert parser.lzf_strings >= 1  # the long key name was LZF-compressed in the RDB
    assert parser.facts()['keys'] == facts['keys']
    assert os.listdir(str(tmp_path)) == []  # every spool file was closed


def test_any_read_sizes(redis74, tmp_path):
    """A reader that returns 1..9 bytes at a time gives the same payloads."""
    expected = rdb_data.load_every_encoding(redis74)
    rng = random.Random(5)
    with _save_and_open(redis74) as fh:
        def read(n):
            return fh.read(min(n, rng.randint(1, 9)))
        parser = SnapshotParser(read, spool_dir=str(tmp_path), big_threshold=4096, read_size=64)
        check_snapshot(redis74, parser.events(), expected)


def _stream_events(server, tmp_path, capabilities):
    info = server.admin().info('server')
    version = str(info.get('valkey_version') or info['redis_version'])
    stream = _replication.ReplicationStream(Endpoint(server.endpoint()), version, capabilities)
    stream.open()
    try:
        parser = SnapshotParser(chunk_reader(stream.payload()), spool_dir=str(tmp_path), big_threshold=100000)
        events = list(parser.events())  # payloads are checked after the transfer (the fork waits for us)
        return stream.transfer, parser, events
    finally:
        stream.close()


@pytest.mark.parametrize('flavour,diskless', [('redis70', True), ('redis70', False), ('valkey80', True),
                                              ('valkey9', True), ('valkey9', False), ('redis62', False),
                                              ('redis74', True)])
def test_replication_transfer_payloads_equal_dump(request, flavour, diskless, tmp_path):
    server = request.getfixturevalue(flavour)
    expected = rdb_data.load_every_encoding(server)
    admin = server.admin()
    admin.config_set('repl-diskless-sync', 'yes' if diskless else 'no')
    admin.config_set('repl-diskless-sync-delay', 0)
    try:
        transfer, parser, events = _stream_events(server, tmp_path, ('eof', 'rdb-only', 'version'))
    finally:
        admin.config_set('repl-diskless-sync', 'yes')
    assert transfer == ('eof-stream' if diskless else 'sized')
    check_snapshot(server, events, expected)
    assert parser.rest == b''


@pytest.mark.parametrize('flavour', ['redis70', 'valkey80'])
def test_old_encodings_restore_as_the_right_objects(request, flavour):
    """Payloads split from a hand-made RDB 9 stream holding the plain/old encodings no server here writes any
    more (plain LIST and SET, ZSET with text scores, plain HASH, old EXPIRETIME in seconds, an LZF key name)
    are accepted by a real server and read back as the objects they encode."""
    from tests.unit.test_rdb_snapshot import enc_len, enc_str, rdb
    server = request.getfixturevalue(flavour)
    key_lzf = bytes([2]) + b'key' + bytes([(1 << 5) | 0, 2])   # "keykey"
    body = (b'\xfe\x00'
            + b'\x01' + enc_str(b'list') + enc_len(3) + enc_str(b'a') + b'\xc0\x07' + enc_str(b'\xff\x00')
            + b'\x02' + enc_str(b'set') + enc_len(2) + enc_str(b'm') + b'\xc1\x10\x27'
            + b'\x03' + enc_str(b'zset') + enc_len(3) + enc_str(b'a') + b'\x031.5' + enc_str(b'b') + b'\xfe'
            + enc_str(b'c') + b'\xff'
            + b'\x04' + enc_str(b'hash') + enc_len(2) + enc_str(b'f') + b'\xc2' + struct.pack('<i', -5)
            + enc_str(b'g') + enc_str(b'')
            + b'\x05' + enc_str(b'zset2') + enc_len(1) + enc_str(b'm') + struct.pack('<d', 2.5)
            + b'\xfd' + struct.pack('<i', 2000000000) + b'\x00\xc3' + enc_len(len(key_lzf)) + enc_len(6) + key_lzf
            + b'\xc0\x2a')
    parser = SnapshotParser(io.BytesIO(rdb(body)).read)
    client = server.admin()
    for event in parser.events():
        if event[0] == 'key':
            dummy, db, key, payload, expire = event
            if expire is None:
                client.restore(key, 0, payload)
            else:
                client.restore(key, expire, payload, absttl=True)
    assert client.lrange(b'list', 0, -1) == [b'a', b'7', b'\xff\x00']
    assert client.smembers(b'set') == {b'm', b'10000'}
    scores = [(b'c', float('-inf')), (b'a', 1.5), (b'b', float('inf'))]
    assert client.zrange(b'zset', 0, -1, withscores=True) == scores
    assert client.hgetall(b'hash') == {b'f': b'-5', b'g': b''}
    assert client.zrange(b'zset2', 0, -1, withscores=True) == [(b'm', 2.5)]
    assert client.get(b'keykey') == b'42'
    assert client.execute_command('PEXPIRETIME', b'keykey') == 2000000000000


def test_pure_python_crc_payloads_equal_dump(valkey9, tmp_path, monkeypatch):
    """Without anycrc (the project's pure-Python CRC-64), the payloads are the same bytes as DUMP."""
    from ansible_collections.kvtools.migration.plugins.module_utils import _rdb_snapshot
    from ansible_collections.kvtools.migration.plugins.module_utils._crc64 import crc64
    monkeypatch.setattr(_rdb_snapshot, 'CRC64', crc64)
    expected = rdb_data.load_every_encoding(valkey9)
    with _save_and_open(valkey9) as fh:
        parser = SnapshotParser(fh.read, spool_dir=str(tmp_path), big_threshold=64 * 1024, read_size=16 * 1024)
        facts = check_snapshot(valkey9, parser.events(), expected)
    assert facts['spooled'] >= 2 and parser.checksum == 'verified'
