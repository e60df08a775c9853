"""kv_sync pieces that need no server: RESP parsing of the stream, expiry rewriting, the spool."""

import os
import stat
import threading
import types

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import (
    HOLD_OFFSET, absolute_expiry, hold_expiry, server_words)
from ansible_collections.kvtools.migration.plugins.module_utils._sync_link import Spool
from ansible_collections.kvtools.migration.plugins.module_utils._sync_commands import parse_commands
from ansible_collections.kvtools.migration.plugins.module_utils._wire import pack

NOW = 1700000000000


def test_parse_commands_binary_and_partial():
    cmds = [[b'SELECT', b'0'], [b'SET', b'new\r\nline\x00', b'\xff' * 3], [b'PING']]
    data = pack(cmds)
    for cut in range(len(data) + 1):
        first, pos = parse_commands(data[:cut])
        rest, end = parse_commands(data[pos:])
        assert [a for a, _e in first] + [a for a, _e in rest] == cmds
        assert pos + end == len(data)
    out, pos = parse_commands(data)
    assert [e for _a, e in out] == [len(pack(cmds[:i + 1])) for i in range(3)]


def test_parse_commands_refuses_what_is_not_resp():
    with pytest.raises(KVError, match='not RESP'):
        parse_commands(b'+OK\r\n')


@pytest.mark.parametrize('args,expected', [
    ([b'EXPIRE', b'k', b'10'], [b'PEXPIREAT', b'k', b'%d' % (NOW + 10000)]),
    ([b'EXPIRE', b'k', b'10', b'NX'], [b'PEXPIREAT', b'k', b'%d' % (NOW + 10000), b'NX']),
    ([b'pexpire', b'k', b'250'], [b'PEXPIREAT', b'k', b'%d' % (NOW + 250)]),
    ([b'EXPIREAT', b'k', b'1800000000'], [b'PEXPIREAT', b'k', b'1800000000000']),
    ([b'SETEX', b'k', b'5', b'v'], [b'SET', b'k', b'v', b'PXAT', b'%d' % (NOW + 5000)]),
    ([b'PSETEX', b'k', b'5', b'v'], [b'SET', b'k', b'v', b'PXAT', b'%d' % (NOW + 5)]),
    ([b'SET', b'k', b'v', b'EX', b'7', b'NX'], [b'SET', b'k', b'v', b'PXAT', b'%d' % (NOW + 7000), b'NX']),
    ([b'SET', b'k', b'v', b'px', b'7'], [b'SET', b'k', b'v', b'PXAT', b'%d' % (NOW + 7)]),
    ([b'GETEX', b'k', b'EX', b'3'], [b'PEXPIREAT', b'k', b'%d' % (NOW + 3000)]),
    ([b'GETEX', b'k', b'PERSIST'], [b'PERSIST', b'k']),
    ([b'GETEX', b'k'], []),
    ([b'RESTORE', b'k', b'100', b'P', b'REPLACE'],
     [b'RESTORE', b'k', b'%d' % (NOW + 100), b'P', b'REPLACE', b'ABSTTL']),
    ([b'RESTORE', b'k', b'0', b'P'], None),
    ([b'PEXPIREAT', b'k', b'5'], None),
    ([b'SET', b'k', b'v'], None),
    ([b'INCR', b'k'], None),
])
def test_relative_expiries_become_absolute(args, expected):
    assert absolute_expiry(args, NOW) == expected


def test_hold_moves_every_absolute_expiry():
    assert hold_expiry([b'PEXPIREAT', b'k', b'5', b'GT']) == [b'PEXPIREAT', b'k', b'%d' % (5 + HOLD_OFFSET), b'GT']
    assert hold_expiry([b'SET', b'k', b'v', b'PXAT', b'9']) == [b'SET', b'k', b'v', b'PXAT', b'%d' % (9 + HOLD_OFFSET)]
    held = [b'RESTORE', b'k', b'%d' % (9 + HOLD_OFFSET), b'P', b'ABSTTL']
    assert hold_expiry([b'RESTORE', b'k', b'9', b'P', b'ABSTTL']) == held
    assert hold_expiry([b'SET', b'pxat', b'v']) == [b'SET', b'pxat', b'v']
    assert hold_expiry([b'HSET', b'k', b'f', b'v']) == [b'HSET', b'k', b'f', b'v']


def test_server_words_drop_echoed_arguments():
    text = "ERR unknown command 'FOO', with args beginning with: 'secret-value' "
    assert server_words(text) == "ERR unknown command 'FOO'"


@pytest.mark.parametrize('passphrase', [None, 'spool-Secret'])
def test_spool_files_are_0600_and_sealed_with_a_passphrase(tmp_path, passphrase):
    spool = Spool(str(tmp_path), 'test', passphrase=passphrase, segment_bytes=1000)
    chunks = [os.urandom(10) + b'PLAINTEXT-%d' % i for i in range(300)]
    for chunk in chunks:
        spool.append(chunk)
    spool.finish()
    names = os.listdir(str(tmp_path))
    assert len(names) > 5
    blob = b''
    for name in names:
        path = os.path.join(str(tmp_path), name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path, 'rb') as fh:
            blob += fh.read()
    assert (b'PLAINTEXT' in blob) is (passphrase is None)
    got = []
    while True:
        ts, data = spool.next_chunk(timeout=5)
        if ts is None and not data:
            break
        got.append(data)
    assert got == chunks
    assert len(os.listdir(str(tmp_path))) <= 1  # consumed segments are removed as they are read
    spool.close()
    assert os.listdir(str(tmp_path)) == []


def test_spool_streams_between_threads(tmp_path):
    spool = Spool(str(tmp_path), 'test', passphrase='spool-Secret', segment_bytes=1000)
    chunks = [os.urandom(10) + b'%d' % i for i in range(300)]

    def write():
        for chunk in chunks:
            spool.append(chunk)
        spool.finish()

    thread = threading.Thread(target=write)
    thread.start()
    got = []
    while True:
        ts, data = spool.next_chunk(timeout=5)
        if ts is None and not data:
            break
        got.append(data)
    thread.join()
    assert got == chunks
    spool.close()
    assert os.listdir(str(tmp_path)) == []


def test_spool_read_is_file_like_and_reports_a_cut_transfer(tmp_path):
    spool = Spool(str(tmp_path), 'rdb')
    spool.append(b'abcdef')
    spool.finish(KVError('cut off', kind='truncated'))
    assert spool.read(4) == b'abcd' and spool.read(4) == b'ef'
    with pytest.raises(KVError, match='cut off'):
        spool.read(1)


def _socket_applier(tmp_path):
    """An Applier whose target connection is one end of a socket pair (the test plays the target)."""
    import socket
    import hiredis
    from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter
    from ansible_collections.kvtools.migration.plugins.module_utils._sync_stream import Applier, TargetError
    ours, theirs = socket.socketpair()
    target = types.SimpleNamespace(address='target:1')   # only named in errors: the test plays the server
    applier = Applier(target, [(0, 0)], KeysLogWriter(str(tmp_path / 'keys')), held_log=KeysLogWriter(str(tmp_path / 'h')))
    applier.sock, applier.target_db = ours, 0
    applier.reader = hiredis.Reader(replyError=TargetError)
    applier.has_data = getattr(applier.reader, 'has_data', None)
    return applier, theirs


def _commands_received(theirs, count):
    buf = b''
    while True:
        cmds, dummy = parse_commands(buf)
        if len(cmds) >= count:
            return [c[0] for c in cmds]
        buf += theirs.recv(1 << 16)


@pytest.mark.parametrize('cut', range(0, 26, 3))
def test_snapshot_block_replies_counted_across_any_cut(tmp_path, cut):
    """A block of RESTOREs (one per key, expiries held back) and its +OK replies, cut anywhere by the network."""
    from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import HOLD_OFFSET
    applier, theirs = _socket_applier(tmp_path)
    applier.snapshot_keys(0, [b'a', b'b\r\n', b'c'], [b'P1', b'P2', b'P3'], [None, 7, None])
    applier.snapshot_event(('function', b'#!lua name=lib\nreturn 1'))
    applier.flush()
    assert _commands_received(theirs, 4) == [
        [b'RESTORE', b'a', b'0', b'P1'], [b'RESTORE', b'b\r\n', b'%d' % (7 + HOLD_OFFSET), b'P2', b'ABSTTL'],
        [b'RESTORE', b'c', b'0', b'P3'], [b'FUNCTION', b'LOAD', b'REPLACE', b'#!lua name=lib\nreturn 1']]
    assert applier.in_flight == 4 and applier.counts[0]['copied'] == 3 and applier.counts[0]['bytes'] == 6
    replies = b'+OK\r\n' * 3 + b'$3\r\nlib\r\n'
    theirs.sendall(replies[:cut])
    if cut:
        applier._read(block=True)
    theirs.sendall(replies[cut:])
    applier.wait_all()
    assert applier.in_flight == 0 and not applier.pending and applier.functions == 1
    assert applier.rbuf == b'' and not applier.reader.has_data()


@pytest.mark.parametrize('reply,kind,words', [
    (b'-BUSYKEY Target key name already exists.\r\n', 'target', 'BUSYKEY'),
    (b'-ERR DUMP payload version or checksum are wrong\r\n', 'payload', 'at least as new as the source')])
def test_snapshot_block_error_reply_names_the_refusal(tmp_path, reply, kind, words):
    applier, theirs = _socket_applier(tmp_path)
    applier.snapshot_keys(0, [b'a', b'b'], [b'P1', b'P2'], [None, None])
    _commands_received(theirs, 2)
    theirs.sendall(b'+OK\r\n' + reply)
    with pytest.raises(KVError) as info:
        applier.wait_all()
    assert info.value.kind == kind and 'RESTORE of a snapshot key' in info.value.message and words in info.value.message


@pytest.mark.parametrize('replace', [False, True])
def test_plain_strings_go_as_one_mset(tmp_path, replace):
    """A ``strings`` event is one MSET (MSETNX unless replace) with the names and values as they are; its bytes are
    counted as their DUMP payloads; MSETNX answering 1 or MSET +OK is one reply."""
    applier, theirs = _socket_applier(tmp_path)
    applier.replace = replace
    values = [b'', b'v\r\n', b'x' * 64]
    applier.snapshot_event(('strings', 0, [b'a', b'b c', b'\x00\xff'], values))
    applier.snapshot_event(('strings', 5, [b'other db'], [b'v']))     # not migrated: nothing sent
    applier.flush()
    name = b'MSET' if replace else b'MSETNX'
    assert _commands_received(theirs, 1) == [[name, b'a', b'', b'b c', b'v\r\n', b'\x00\xff', b'x' * 64]]
    assert applier.in_flight == 1 and applier.counts[0]['copied'] == applier.counts[0]['keys'] == 3
    assert applier.counts[0]['bytes'] == sum(len(v) + (13 if len(v) >= 64 else 12) for v in values)
    theirs.sendall(b'+OK\r\n' if replace else b':1\r\n')
    applier.wait_all()
    assert applier.in_flight == 0 and not applier.pending


def test_mset_nx_that_answers_0_stops_the_copy(tmp_path):
    """MSETNX answers 0 when one of its keys is on the target already (nothing of it written): the copy stops, as a
    RESTORE's BUSYKEY would stop it."""
    applier, theirs = _socket_applier(tmp_path)
    applier.snapshot_event(('strings', 0, [b'a'], [b'1']))
    applier.snapshot_event(('strings', 0, [b'b'], [b'2']))
    _commands_received(theirs, 2)
    theirs.sendall(b':1\r\n:0\r\n')
    with pytest.raises(KVError) as info:
        applier.wait_all()
    assert info.value.kind == 'target' and 'MSETNX of snapshot strings' in info.value.message
    assert 'already on the target' in info.value.message and 'on_conflict=replace' in info.value.message


def test_big_object_of_a_db_not_migrated_leaves_no_spool_file(tmp_path):
    import io
    from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import SnapshotParser
    from tests.unit.test_rdb_snapshot import enc_str, rdb
    spool = tmp_path / 'spool'
    spool.mkdir()
    data = rdb(b'\xfe\x01' + b'\x00' + enc_str(b'big') + enc_str(b'x' * 5000) + b'\x00' + enc_str(b'k') + enc_str(b'v'))
    parser = SnapshotParser(io.BytesIO(data).read, spool_dir=str(spool), big_threshold=1000, read_size=512)
    applier, dummy_theirs = _socket_applier(tmp_path)    # migrates db 0 only
    applier.restore_snapshot(parser.batches())
    assert parser.spooled == 1 and parser.keys == 2 and applier.counts[0]['keys'] == 0
    assert os.listdir(str(spool)) == []


def test_a_follower_that_cannot_complete_its_last_record_still_records_how_it_ended(tmp_path):
    """The follower's last record is built from live counters; when those cannot be read (its keys log gone),
    it must still say 'failed' and why, never stay 'streaming' after the process is gone."""
    from ansible_collections.kvtools.migration.plugins.module_utils import _sync_follow as follow

    path = str(tmp_path / 'sync.json')
    follow.write_record(path, dict(format=follow.RECORD_FORMAT, token='t1', phase='streaming', last_error=None))

    class BrokenLog:
        def size(self):
            raise OSError(9, 'Bad file descriptor')

    endpoint = types.SimpleNamespace(secrets=['s3cret'])
    follower = follow.Follower(dict(record=path, token='t1', deadline=4e9, ttl_mode='import'), endpoint, endpoint)
    follower.applier = types.SimpleNamespace(conn=None, keys_log=BrokenLog(), applied=10, applied_db=0, commands=1,
                                             skipped=0, dropped=0, counts={}, functions=0, log_applied=0)
    follower._final('failed', 'the target closed the connection (s3cret)')
    record = follow.read_record(path)
    assert record['phase'] == 'failed' and record['stopped_at']
    assert 'the target closed the connection' in record['last_error']
    assert 'Bad file descriptor' in record['last_error'] and 's3cret' not in record['last_error']


@pytest.mark.parametrize('replace', [False, True])
@pytest.mark.parametrize('shift', [0, HOLD_OFFSET])
def test_restore_block_is_one_restore_per_key(replace, shift):
    """The block of a ``keys`` event: exactly the RESTORE of each key, in order (awkward keys, empty and long
    payloads past the cached header lengths, expiries anywhere, a past expiry written as 1 without the hold)."""
    from ansible_collections.kvtools.migration.plugins.module_utils._restore_block import restore_block
    keys = [b'a', b'', b'b\r\nc', b'k' * 63, b'x' * 70000, b'last']
    payloads = [b'P1', b'', b'\r\n$3\r\n', b'p' * 5000, b'q' * 70000, b'z']
    for expires in ([None] * 6, [7, None, NOW, None, -5, 12], [5] * 6, [None, None, None, None, None, NOW]):
        data, timed = restore_block(keys, payloads, [len(p) for p in payloads], expires, replace, shift)
        expected = []
        for key, payload, expire in zip(keys, payloads, expires):
            ttl = b'0' if expire is None else b'%d' % (expire + shift if shift else max(1, expire))
            expected.append([b'RESTORE', key, ttl, payload] + ([b'ABSTTL'] if expire is not None else [])
                            + ([b'REPLACE'] if replace else []))
        assert data == pack(expected)
        assert timed == [k for k, e in zip(keys, expires) if e is not None]
    assert restore_block([], [], [], [], replace, shift) == (b'', [])
