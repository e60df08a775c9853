"""Big values in temp files: the spooling RESP reader, RESTORE of a spooled payload, payload comparison and
big records of the logical format (plugins/module_utils/_wire.py, _payload.py, _logical.py), with small
thresholds so that every path runs."""

import os

import pytest

from tests.support.sockets import receiving
from ansible_collections.kvtools.migration.plugins.module_utils import _logical, _wire
from ansible_collections.kvtools.migration.plugins.module_utils._encryption import EncryptWriter
from ansible_collections.kvtools.migration.plugins.module_utils._payload import first_byte, same_body
from ansible_collections.kvtools.migration.plugins.module_utils._spooled_payload import SpooledPayload
from ansible_collections.kvtools.migration.plugins.module_utils._wire import (
    ReplyError, SpoolingReader, pack_restores, restore_head)


def spooled(tmp_path, data, name='p'):
    path = str(tmp_path / name)
    with open(path, 'wb') as fh:
        fh.write(data)
    return SpooledPayload(path, len(data), bytearray(data[:1])[0])


def parse(stream, count, step, tmp_path, monkeypatch, big=100):
    """``count`` replies of ``stream`` sent in pieces of ``step`` bytes, read by a SpoolingReader."""
    monkeypatch.setattr(_wire, 'BIG_REPLY', big)
    with receiving(stream, step) as right:
        reader = SpoolingReader(right, str(tmp_path))
        return reader.replies(count), reader.take_rest()


@pytest.mark.parametrize('step', [1, 3, 64, 1 << 16])
def test_spooling_reader_spools_big_bulks_and_parses_the_rest_like_hiredis(step, tmp_path, monkeypatch):
    big = os.urandom(1000) + b'\r\n$3\r\n' + os.urandom(500)  # CRLFs inside a value are data
    stream = (b'$%d\r\n%s\r\n' % (len(big), big) + b':-1\r\n$-1\r\n-BUSYKEY Target key name already exists.\r\n'
              + b'+OK\r\n*3\r\n$2\r\nab\r\n$-1\r\n$%d\r\n%s\r\n' % (len(big), big) + b'$0\r\n\r\n:7\r\n')
    replies, rest = parse(stream, 7, step, tmp_path, monkeypatch)
    first = replies[0]
    assert isinstance(first, SpooledPayload) and len(first) == len(big) and first.read_all() == big
    assert replies[1:3] == [-1, None]
    assert isinstance(replies[3], ReplyError) and str(replies[3]).startswith('BUSYKEY')
    assert replies[4] == b'OK'
    assert replies[5][:2] == [b'ab', None] and replies[5][2].read_all() == big
    assert replies[6] == b''
    assert rest == b'' or b':7\r\n'.startswith(rest)  # what came after the replies asked for is handed back
    path = first.path
    del first, replies
    assert not os.path.exists(path)  # a payload dropped takes its file with it
    assert os.listdir(str(tmp_path)) == []


def test_spooling_reader_spools_middle_sized_bulks_past_the_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(_wire, 'RECV_BUDGET', 250)
    monkeypatch.setattr(_wire, 'SMALL_BULK', 50)
    values = [os.urandom(80) for dummy in range(6)]
    stream = b''.join(b'$80\r\n%s\r\n' % v for v in values)
    replies, dummy = parse(stream, 6, 4096, tmp_path, monkeypatch)
    assert [r if r.__class__ is bytes else r.read_all() for r in replies] == values
    assert [r.__class__ is bytes for r in replies] == [True, True, True, True, False, False]


def test_restore_of_a_spooled_payload_is_the_packed_restore(tmp_path):
    payload = b'\x00' + os.urandom(300)
    for expire_at, raw, absolute, replace in ((None, -1, True, False), (1893456000000, 1893456000000, True, True),
                                              (1893456000000, 5000, False, False), (None, -1, False, True)):
        item = (b'k\r\ney', payload, expire_at, raw)
        head, tail = restore_head(item[0], len(payload), expire_at, raw, absolute, replace)
        keys = {item[0]} if replace else set()
        assert head + payload + tail == pack_restores([item], absolute, keys)
    with pytest.raises(TypeError):  # a spooled payload cannot be packed: Wire.call_restores streams it
        pack_restores([(b'k', spooled(tmp_path, payload), None, -1)], True)


def test_same_body_compares_bytes_and_spooled_payloads_block_by_block(tmp_path, monkeypatch):
    from ansible_collections.kvtools.migration.plugins.module_utils import _payload
    monkeypatch.setattr(_payload, '_BLOCK', 7)
    body = os.urandom(100)
    one = body + b'\x0a\x00' + b'C' * 8
    other = body + b'\x0b\x00' + b'D' * 8  # another RDB version and CRC: the same value
    changed = body[:-1] + b'!' + b'\x0a\x00' + b'C' * 8
    assert same_body(one, other) and not same_body(one, changed)
    assert same_body(spooled(tmp_path, one, 'a'), other)
    assert same_body(spooled(tmp_path, one, 'b'), spooled(tmp_path, other, 'c'))
    assert not same_body(spooled(tmp_path, one, 'd'), changed)
    assert not same_body(spooled(tmp_path, one, 'e'), one + b'x')
    assert not same_body(one, None) and not same_body(None, spooled(tmp_path, one, 'f'))
    assert first_byte(spooled(tmp_path, one, 'g')) == one[:1] and first_byte(one) == one[:1]


@pytest.mark.parametrize('passphrase', [None, 'big record'])
def test_big_records_are_written_and_read_in_chunks(passphrase, tmp_path, monkeypatch):
    monkeypatch.setattr(_logical, 'BIG_VALUE', 1000)
    monkeypatch.setattr(_logical, 'SPOOL_CHUNK', 300)
    big = b'\x00' + os.urandom(5000)
    path = str(tmp_path / 'backup')
    with open(path, 'wb') as fh:
        out = EncryptWriter(fh, passphrase, 'logical', chunk_size=512) if passphrase else fh
        writer = _logical.LogicalWriter(out, dict(format=1, engine='redis', version='7.0.15', rdb_version=10))
        writer.select(0)
        writer.add([(b'small', b'\x00s', None), (b'big', spooled(tmp_path, big, 'in'), 1893456000000),
                    (b'after', b'\x00a', 5)])
        trailer = writer.finish()
        if passphrase:
            out.close()
    assert trailer['keys'] == 3 and trailer['payload_bytes'] == len(big) + 4
    spool = tmp_path / 'spool'
    spool.mkdir()
    records = list(_logical.iter_logical(path, passphrase, spool_dir=str(spool)))
    expected = [(0, b'small', None), (0, b'big', 1893456000000), (0, b'after', 5)]
    assert [(r[0], r[1], r[3]) for r in records] == expected
    assert records[0][2] == b'\x00s' and records[2][2] == b'\x00a'
    assert isinstance(records[1][2], SpooledPayload) and records[1][2].read_all() == big
    del records
    assert os.listdir(str(spool)) == []
    stats = {}
    checked = list(_logical.iter_logical(path, passphrase, stats, payloads=False))
    assert [r[2] for r in checked] == [None, None, None] and stats['keys'] == 3


def test_a_spool_folder_that_cannot_take_the_value_is_an_io_error_naming_it(tmp_path, monkeypatch):
    from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
    missing = str(tmp_path / 'no such folder')
    stream = b'$300\r\n' + b'x' * 300 + b'\r\n'
    with pytest.raises(KVError) as info:
        parse(stream, 1, 4096, tmp_path / 'no such folder', monkeypatch)
    assert info.value.kind == 'io' and missing in info.value.message
