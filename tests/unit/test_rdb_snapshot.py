"""Pure logic of plugins/module_utils/_rdb_snapshot.py and _rdb_encoding.py on hand-made RDB streams: every
opcode and skip rule, the magic/version branches, refusals with the number and offset, truncation, CRC,
spooling, LZF.
(Payloads compared with real servers' DUMP are in tests/integration/test_rdb_snapshot.py.)"""

import io
import os
import random
import struct

import lzf
import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _rdb_encoding as enc
from ansible_collections.kvtools.migration.plugins.module_utils import _rdb_snapshot as snap
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._crc64 import crc64 as py_crc64


# --- a small RDB writer for the tests ------------------------------------------------------------------------

def enc_len(n):
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xff])
    if n < 2 ** 32:
        return b'\x80' + struct.pack('>I', n)
    return b'\x81' + struct.pack('>Q', n)


def enc_str(data):
    return enc_len(len(data)) + data


def rdb(body, magic=b'REDIS0009', crc=True):
    data = magic + body + b'\xff'
    return data + struct.pack('<Q', py_crc64(data) if crc else 0)


def parse(data, **kwargs):
    kwargs.setdefault('read_size', 7)
    parser = snap.SnapshotParser(io.BytesIO(data).read, **kwargs)
    return parser, list(parser.events())


def payload_of(rdb_type, obj, version):
    body = bytes([rdb_type]) + obj + struct.pack('<H', version)
    return body + struct.pack('<Q', py_crc64(body))


# --- LZF ----------------------------------------------------------------------------------------------------

def test_lzf_literal_backref_and_overlap():
    # "abc" literal, then a back reference of 6 bytes at distance 3 (overlapping: abcabc), then "Z"
    data = bytes([2]) + b'abc' + bytes([(4 << 5) | 0, 2]) + bytes([0]) + b'Z'
    assert enc.lzf_decompress(data, 10) == b'abcabcabcZ'
    # a long back reference (length byte follows): 7 + 3 + 2 = 12 bytes of "x"
    data = bytes([0]) + b'x' + bytes([(7 << 5) | 0, 3, 0])
    assert enc.lzf_decompress(data, 13) == b'x' * 13
    with pytest.raises(ValueError):
        enc.lzf_decompress(bytes([5]) + b'ab', 6)
    with pytest.raises(ValueError):
        enc.lzf_decompress(bytes([(1 << 5), 9]), 3)


# --- events and skip rules ---------------------------------------------------------------------------------

OLD_OBJECTS = [
    # (type, object bytes) of the old and plain encodings no server here writes any more
    (1, enc_len(3) + enc_str(b'a') + enc_str(b'') + b'\xc0\x07'),                           # LIST, int8 element
    (2, enc_len(2) + enc_str(b'x') + b'\xc1\x10\x27'),                                       # SET, int16 member
    (3, enc_len(4) + enc_str(b'a') + b'\x031.5' + enc_str(b'b') + b'\xfe' + enc_str(b'c') + b'\xff'
     + enc_str(b'd') + b'\xfd'),                                                            # ZSET text scores, inf/nan
    (4, enc_len(1) + enc_str(b'f') + b'\xc2' + struct.pack('<i', -5)),                       # HASH, int32 value
    (5, enc_len(1) + enc_str(b'm') + struct.pack('<d', 2.5)),                                # ZSET_2
    (9, enc_str(b'\x00zipmap-blob')),                                                        # HASH_ZIPMAP
    (10, enc_str(b'ziplist-blob')),
    (14, enc_len(2) + enc_str(b'zl1') + enc_str(b'zl2')),                                    # LIST_QUICKLIST
    (18, enc_len(2) + enc_len(2) + enc_str(b'lp') + enc_len(1) + enc_str(b'plain')),         # QUICKLIST_2
    (0, b'\xc3' + enc_len(5) + enc_len(5) + b'\x01ab\x20\x01'),                              # LZF value, raw
]


def test_every_opcode_and_old_types():
    key_lzf = bytes([2]) + b'key' + bytes([(1 << 5) | 0, 2])    # "key" + back ref of 3 -> "keykey"
    body = (b'\xfa' + enc_str(b'redis-ver') + enc_str(b'6.2.0')
            + b'\xfa' + enc_str(b'redis-bits') + b'\xc0\x40'
            + b'\xfe' + enc_len(0) + b'\xfb' + enc_len(10) + enc_len(2))
    for n, (rdb_type, obj) in enumerate(OLD_OBJECTS):
        body += bytes([rdb_type]) + enc_str(b'k%d' % n) + obj
    body += b'\xfc' + struct.pack('<q', 1700000000123) + b'\xf8' + enc_len(500) + b'\x00' + enc_str(b'ttl') \
        + enc_str(b'v')
    body += b'\xfd' + struct.pack('<i', 1700000000) + b'\xf9\x05\x00' + b'\xc3' + enc_len(len(key_lzf)) \
        + enc_len(6) + key_lzf + enc_str(b'old-expire')
    body += b'\xfe' + enc_len(300) + b'\x00' + enc_str(b'') + enc_str(b'')
    body += b'\xf5' + enc_str(b'#!lua name=x\n')
    data = rdb(body)
    parser, events = parse(data)
    assert events[0] == ('aux', b'redis-ver', b'6.2.0')
    assert events[1] == ('aux', b'redis-bits', b'64')
    assert events[2] == ('db', 0)
    keys = [e for e in events if e[0] == 'key']
    for n, (rdb_type, obj) in enumerate(OLD_OBJECTS):
        assert keys[n] == ('key', 0, b'k%d' % n, payload_of(rdb_type, obj, 9), None)
    assert keys[-3][2:] == (b'ttl', payload_of(0, enc_str(b'v'), 9), 1700000000123)
    assert keys[-2][2:] == (b'keykey', payload_of(0, enc_str(b'old-expire'), 9), 1700000000000)
    assert keys[-1][1:] == (300, b'', payload_of(0, enc_str(b''), 9), None)
    assert ('db', 300) in events
    assert events[-2] == ('function', b'#!lua name=x\n')
    assert events[-1] == ('end', True)
    assert parser.checksum == 'verified' and parser.offset == len(data) and parser.rest == b''
    assert parser.facts()['keys'] == len(OLD_OBJECTS) + 3


def _stream(version):
    groups = 2
    out = enc_len(1) + enc_str(b'\x00' * 16) + enc_str(b'listpack-bytes')
    out += enc_len(5) + enc_len(7) + enc_len(1)
    if version >= 2:
        out += enc_len(1) + enc_len(0) + enc_len(3) + enc_len(0) + enc_len(9)
    out += enc_len(groups)
    for g in range(groups):
        out += enc_str(b'g%d' % g) + enc_len(4) + enc_len(0)
        if version >= 2:
            out += enc_len(2)
        out += enc_len(2) + (b'I' * 16 + b'T' * 8 + enc_len(1)) * 2
        out += enc_len(2)
        for c in range(2):
            out += enc_str(b'c%d' % c) + b'S' * 8 + (b'A' * 8 if version >= 3 else b'') + enc_len(1) + b'I' * 16
    return out


@pytest.mark.parametrize('rdb_type,version', [(15, 1), (19, 2), (21, 3)])
def test_stream_layouts(rdb_type, version):
    obj = _stream(version)
    parser, events = parse(rdb(b'\xfe\x00' + bytes([rdb_type]) + enc_str(b's') + obj + b'\x00' + enc_str(b'after')
                               + enc_str(b'x'), magic=b'REDIS0011'))
    keys = [e for e in events if e[0] == 'key']
    assert keys[0][3] == payload_of(rdb_type, obj, 11)
    assert keys[1][2] == b'after'


HASH_FIELD_TTL = [
    # (magic, type, object)
    (b'REDIS0012', 24, struct.pack('<Q', 1700000000000) + enc_len(2) + enc_len(0) + enc_str(b'f') + enc_str(b'v')
     + enc_len(5) + enc_str(b'g') + enc_str(b'w')),
    (b'REDIS0012', 25, struct.pack('<Q', 1700000000000) + enc_str(b'listpack-ex')),
    (b'REDIS0012', 22, enc_len(1) + enc_len(1700000000000) + enc_str(b'f') + enc_str(b'v')),
    (b'REDIS0012', 23, enc_str(b'listpack-ex-pre-ga')),
    (b'VALKEY080', 22, enc_len(2) + enc_str(b'f') + enc_str(b'v') + struct.pack('<q', -1) + enc_str(b'g')
     + enc_str(b'w') + struct.pack('<q', 1700000000000)),
]


@pytest.mark.parametrize('magic,rdb_type,obj', HASH_FIELD_TTL)
def test_types_22_to_25_by_magic(magic, rdb_type, obj):
    version = int(magic[-4:] if magic.startswith(b'REDIS') else magic[-3:])
    parser, events = parse(rdb(b'\xfe\x00' + bytes([rdb_type]) + enc_str(b'h') + obj + b'\x00' + enc_str(b'n')
                               + enc_str(b'1'), magic=magic))
    keys = [e for e in events if e[0] == 'key']
    assert keys[0][3] == payload_of(rdb_type, obj, version)
    assert parser.engine == ('redis' if magic.startswith(b'REDIS') else 'valkey')


# --- refusals -----------------------------------------------------------------------------------------------

def _refusal(data, *words):
    with pytest.raises(KVError) as info:
        parse(data)
    for word in words:
        assert word in info.value.message, info.value.message
    return info.value


@pytest.mark.parametrize('magic,code,words', [
    (b'REDIS0011', 22, ['unknown object type 22', 'Redis snapshot (RDB version 11)', 'offset 11']),
    (b'REDIS0012', 26, ['unknown object type 26', 'offset 11']),
    (b'VALKEY080', 23, ['unknown object type 23', 'Valkey']),
    (b'VALKEY080', 24, ['unknown object type 24']),
    (b'REDIS0011', 8, ['unknown object type 8']),
    (b'REDIS0012', 243, ['unknown opcode 243']),
    (b'REDIS0011', 242, ['unknown opcode 242']),
    (b'VALKEY080', 243, ['opcode 243', 'cluster']),
    (b'REDIS0011', 247, ['opcode 247 (MODULE_AUX)', 'module']),
    (b'REDIS0011', 246, ['opcode 246']),
    (b'REDIS0011', 244, ['unknown opcode 244']),   # SLOT_INFO came with RDB 12
])
def test_unknown_or_refused_numbers_stop_with_number_and_offset(magic, code, words):
    err = _refusal(rdb(b'\xfe\x00' + bytes([code]) + enc_str(b'k') + enc_str(b'v'), magic=magic), *words)
    assert err.kind == 'unsupported'
    assert err.details['offset'] == 11


def test_module_value_is_refused():
    err = _refusal(rdb(b'\x00' + enc_str(b'ok') + enc_str(b'v') + b'\x07' + enc_str(b'k') + enc_len(12345)),
                   'type 7 is a module value', 'module')
    assert err.kind == 'unsupported'


def test_slot_info_is_skipped_on_rdb_12():
    parser, events = parse(rdb(b'\xf4' + enc_len(5) + enc_len(1) + enc_len(0) + b'\x00' + enc_str(b'k')
                               + enc_str(b'v'), magic=b'REDIS0012'))
    assert [e[2] for e in events if e[0] == 'key'] == [b'k']


@pytest.mark.parametrize('head,words', [
    (b'REDIS0013', ['RDB version 13', 'redis: 1 to 12']),
    (b'VALKEY082', ['RDB version 82']),
    (b'RUBBISH00', ['not an RDB snapshot']),
])
def test_bad_magic_or_version(head, words):
    err = _refusal(rdb(b'', magic=head), *words)
    assert err.details['offset'] == 0


@pytest.mark.parametrize('cut', [3, 12, 20, -9, -1])
def test_truncated_stream(cut):
    data = rdb(b'\xfe\x00\x00' + enc_str(b'key') + enc_str(b'value' * 10))
    err = _refusal(data[:cut], 'ended early', 'truncated')
    assert err.kind == 'truncated'


def test_bad_length_and_string_encodings():
    _refusal(rdb(b'\xfe\x00\x00' + enc_str(b'k') + b'\xc5'), 'unknown string encoding 5')
    _refusal(rdb(b'\xfe\xc0\x01'), 'a length was expected')
    _refusal(rdb(b'\xfe\x00\x00\xc3\x05\x09' + bytes([4]) + b'abcde' + enc_str(b'v')), 'LZF', 'does not decompress')


# --- CRC, trailer, rest ---------------------------------------------------------------------------------------

def test_crc_mismatch_disabled_and_rest():
    data = rdb(b'\x00' + enc_str(b'k') + enc_str(b'v'))
    bad = data[:-1] + bytes([data[-1] ^ 1])
    parser, events = parse(bad)
    assert events[-1] == ('end', False) and parser.checksum == 'mismatch'
    tail = b'*1\r\n$4\r\nPING\r\n'
    parser, events = parse(rdb(b'\x00' + enc_str(b'k') + enc_str(b'v'), crc=False) + tail, read_size=1 << 16)
    assert events[-1] == ('end', True) and parser.checksum == 'disabled'
    assert parser.rest == tail
    # what was not read yet stays in the source: rest + the source's remainder is the command stream
    for size in (1, 5, 7, 11):
        source = io.BytesIO(data + tail)
        parser = snap.SnapshotParser(source.read, read_size=size)
        assert list(parser.events())[-1] == ('end', True)
        assert parser.rest + source.read() == tail
    parser, events = parse(data, verify_crc=False)
    assert parser.checksum == 'not checked'
    parser, events = parse(b'REDIS0004' + b'\x00' + enc_str(b'k') + enc_str(b'v') + b'\xff' + b'tail',
                           read_size=100)
    assert parser.checksum == 'none' and parser.rest == b'tail'


def test_pure_python_crc_gives_the_same(monkeypatch):
    data = rdb(b'\x00' + enc_str(b'k') + enc_str(b'v' * 300) + b'\x02' + enc_str(b's') + enc_len(1) + enc_str(b'm'))
    expected = parse(data)[1]
    monkeypatch.setattr(snap, 'CRC64', py_crc64)
    assert parse(data)[1] == expected
    assert enc.CRC64_IMPLEMENTATION in ('anycrc', 'python')


# --- spooling -------------------------------------------------------------------------------------------------

def test_big_objects_are_spooled_and_equal(tmp_path):
    big = os.urandom(100000)
    body = (b'\x00' + enc_str(b'big') + enc_str(big)
            + b'\x0e' + enc_str(b'list') + enc_len(40) + b''.join(enc_str(os.urandom(3000)) for dummy in range(40))
            + b'\x00' + enc_str(b'small') + enc_str(b'v'))
    data = rdb(body)
    in_memory = parse(data, big_threshold=1 << 30, read_size=1 << 20)[1]
    parser, events = parse(data, big_threshold=5000, read_size=1000, spool_dir=str(tmp_path))
    assert parser.spooled == 2
    for mem, ev in zip(in_memory, events):
        if ev[0] == 'key' and isinstance(ev[3], snap.SpooledPayload):
            spooled = ev[3]
            assert oct(os.stat(spooled.path).st_mode & 0o777) == oct(0o600)
            assert os.path.dirname(spooled.path) == str(tmp_path)
            assert spooled.length == len(mem[3]) and spooled.read_all() == mem[3]
            assert b''.join(spooled.chunks(size=333)) == mem[3]
            spooled.close()
            spooled.close()
        else:
            assert ev == mem
    assert os.listdir(str(tmp_path)) == []


def test_abandoned_parse_leaves_no_spool_file(tmp_path):
    data = rdb(b'\x00' + enc_str(b'big') + enc_str(os.urandom(50000)))
    parser = snap.SnapshotParser(io.BytesIO(data[:30000]).read, spool_dir=str(tmp_path), big_threshold=1000,
                                 read_size=500)
    with pytest.raises(KVError):
        list(parser.events())
    assert os.listdir(str(tmp_path)) == []


def test_spool_dir_that_cannot_take_the_object(tmp_path):
    data = rdb(b'\x00' + enc_str(b'big') + enc_str(os.urandom(50000)))
    missing = str(tmp_path / 'missing')
    with pytest.raises(KVError) as info:
        parse(data, big_threshold=1000, read_size=500, spool_dir=missing)
    assert info.value.kind == 'io' and missing in info.value.message and 'spool_dir' in info.value.message


def test_corrupt_streams_end_in_a_kverror_never_a_crash():
    """Every prefix of a stream, and 400 streams with one byte changed, end in a KVError or in the end event
    (with the CRC mismatch saying so): never another exception, never a hang."""
    rng = random.Random(17)
    body = b'\xfa' + enc_str(b'redis-ver') + enc_str(b'7.0.0') + b'\xfe\x00\xfb\x02\x01'
    for n, (rdb_type, obj) in enumerate(OLD_OBJECTS):
        body += b'\xfc' + struct.pack('<q', 1700000000000 + n) + bytes([rdb_type]) + enc_str(b'k%d' % n) + obj
    body += b'\x15' + enc_str(b'stream') + _stream(3)
    data = rdb(body, magic=b'REDIS0011')
    outcomes = set()
    for cut in range(len(data)):
        with pytest.raises(KVError) as info:
            parse(data[:cut])
        outcomes.add(info.value.kind)
    assert outcomes == {'truncated'}
    outcomes = set()
    for dummy in range(400):
        pos = rng.randrange(9, len(data) - 9)
        bad = data[:pos] + bytes([rng.randrange(256)]) + data[pos + 1:]
        try:
            parser, events = parse(bad)
            outcomes.add('end %s' % parser.checksum)
            assert parser.checksum == ('verified' if bad == data else 'mismatch')
        except KVError as exc:
            outcomes.add(exc.kind)
            assert 'offset' in exc.message
    assert 'end mismatch' in outcomes and outcomes - {'end mismatch', 'end verified'}


def test_impossible_string_lengths_are_refused():
    err = _refusal(rdb(b'\xfe\x00\x00\x81' + struct.pack('>Q', 1 << 40)), '1099511627776 bytes', 'corrupt')
    assert err.kind == 'corrupt' and err.details['offset'] == 12


def test_chunk_reader():
    read = enc.chunk_reader(iter([b'abc', b'', b'defg']))
    assert [read(2), read(5), read(1), read(9), read(1)] == [b'ab', b'c', b'd', b'efg', b'']


def test_config_errors():
    with pytest.raises(KVError) as info:
        snap.SnapshotParser(io.BytesIO(b'').read, big_threshold=0)
    assert info.value.kind == 'config' and 'big_threshold' in info.value.message


def _random_keys(rng, count):
    """A stream body of ``count`` random keys (the shapes of the hot loop and the shapes it leaves to the general
    loop: long key names, 14/32-bit lengths, other types, expiries in ms and s, IDLE/FREQ, SELECTDB) and the
    ``key`` events it must give, and the number of EXPIRETIME_MS opcodes."""
    body, expected, db, in_ms = b'\xfe\x00', [], 0, 0
    for n in range(count):
        if rng.random() < 0.02:
            db = rng.randrange(3)
            body += b'\xfe' + enc_len(db)
        key = b'%d:' % n + rng.randbytes(rng.choice([0, 1, 5, 55, 70, 300]))[:rng.choice([0, 3, 61, 300])]
        shape = rng.randrange(10)
        if shape == 0:
            obj = enc_str(rng.randbytes(rng.randrange(64)))
        elif shape == 1:
            obj = enc_str(rng.randbytes(rng.choice([64, 500, 16383, 16384])))
        elif shape == 2:
            obj = rng.choice([b'\xc0\x05', b'\xc1\x01\x02', b'\xc2\x01\x02\x03\x04'])
        elif shape in (3, 4, 5):
            clen = rng.choice([1, 20, 63, 64, 700])
            ulen = rng.choice([clen + 1, 100, 16383, 70000])
            obj = b'\xc3' + enc_len(clen) + enc_len(ulen) + rng.randbytes(clen)
        elif shape == 6:
            obj = enc_str(b'listpack' * rng.randrange(1, 30))
        elif shape == 9:                   # a string LZF-compressed as Redis writes it
            value = (b'%d,' % n) * rng.choice([10, 40, 3000])
            packed = lzf.compress(value)
            obj = b'\xc3' + enc_len(len(packed)) + enc_len(len(value)) + packed
        else:
            obj = enc_len(2) + enc_str(b'a') + enc_str(rng.randbytes(rng.randrange(100)))
        rdb_type = {6: 16, 7: 2, 8: 2}.get(shape, 0)
        expire = None
        if rng.random() < 0.3:
            expire = rng.randrange(1 << 62)
            body += b'\xfc' + struct.pack('<q', expire)
            in_ms += 1
        elif rng.random() < 0.05:
            expire = rng.randrange(1 << 31) * 1000
            body += b'\xfd' + struct.pack('<i', expire // 1000)
        if rng.random() < 0.05:
            body += b'\xf8' + enc_len(rng.randrange(1000)) if rng.random() < 0.5 else b'\xf9\x07'
        body += bytes([rdb_type]) + enc_str(key) + obj
        expected.append(('key', db, key, payload_of(rdb_type, obj, 9), expire))
    return body, expected, in_ms


@pytest.mark.parametrize('seed,batch_bytes', [(0, 100), (1, 1000), (2, 64 << 10), (3, 1 << 30)])
def test_hot_loop_and_general_loop_give_the_same_keys(seed, batch_bytes):
    """Every read size (a record cut at any place between two reads, the hot loop's margin at every end of the
    buffer) and both event paths give exactly the keys written, with their expiries."""
    body, expected, in_ms = _random_keys(random.Random(seed), 600)
    data = rdb(body)
    for read_size in (7, 64, 333, 4096, 1 << 20):
        parser, events = parse(data, read_size=read_size)
        assert [e for e in events if e[0] == 'key'] == expected
        assert parser.keys == len(expected) and parser.checksum == 'verified'
        assert parser.opcodes.get(252, 0) == in_ms
        batched = snap.SnapshotParser(io.BytesIO(data).read, read_size=read_size)
        flat = []
        for event in batched.batches(batch_bytes=batch_bytes):
            if event[0] == 'keys':
                assert len(event[2]) == len(event[3]) == len(event[4]) > 0
                flat.extend(('key', event[1]) + item for item in zip(event[2], event[3], event[4]))
            elif event[0] == 'key':
                flat.append(event)
        assert flat == expected and batched.opcodes == parser.opcodes
        # strings=True: the plain strings without an expiry come apart, as (key, value), the rest as before
        split = snap.SnapshotParser(io.BytesIO(data).read, read_size=read_size)
        plain, rest, by_key, unpacked = [], [], dict((e[2], e) for e in expected), 0
        for event in split.batches(batch_bytes=batch_bytes, strings=True):
            if event[0] == 'strings':
                assert len(event[2]) == len(event[3]) > 0
                for key, value in zip(event[2], event[3]):
                    entry = by_key[key]
                    assert entry[1] == event[1] and entry[4] is None and entry[3][0] == 0   # type 0, no expiry
                    unpacked += _value_of(entry[3][1:-10]) != entry[3][1:-10]
                    assert _value_of(entry[3][1:-10]) == bytes(value)
                    plain.append(entry)
            elif event[0] == 'keys':
                rest.extend(('key', event[1]) + item for item in zip(event[2], event[3], event[4]))
            elif event[0] == 'key':
                rest.append(event)
        assert sorted(plain + rest) == sorted(expected) and split.keys == len(expected)
        assert split.opcodes == parser.opcodes
        if read_size >= 4096 and batch_bytes >= 1000:
            assert len(plain) > len(expected) // 20     # shapes 0, 1 and 9, short names, no expiry
            assert unpacked > 0                         # LZF strings decompressed (python-lzf)
        assert all(e[3][1] < 0x80 or e[3][1] == 0xc3 for e in plain)   # integers stay payloads


def test_without_python_lzf_lzf_strings_stay_payloads(monkeypatch):
    """Without python-lzf, an LZF-compressed string is a DUMP payload (RESTORE) even with ``strings=True``."""
    monkeypatch.setattr(enc, 'LZF_DECOMPRESS', None)
    body, expected, dummy = _random_keys(random.Random(4), 300)
    parser = snap.SnapshotParser(io.BytesIO(rdb(body)).read, read_size=1 << 20)
    got, plain = [], 0
    for event in parser.batches(strings=True):
        if event[0] == 'strings':
            plain += len(event[2])
            entries = [e for e in expected if e[2] in set(event[2])]
            assert all(e[3][1] < 0x80 for e in entries)
            got.extend(entries)
        elif event[0] == 'keys':
            got.extend(('key', event[1]) + item for item in zip(event[2], event[3], event[4]))
        elif event[0] == 'key':
            got.append(event)
    assert plain and sorted(got) == sorted(expected)
    assert any(e[3][0] == 0 and e[3][1] == 0xc3 and e[4] is None for e in got)   # LZF strings came as payloads


def _value_of(obj):
    """The value of a string object as the RDB holds it (raw, or LZF: decompressed in pure Python)."""
    if obj[0] != 0xc3:
        return obj[2:] if obj[0] & 0x40 else obj[1:]
    clen, pos = enc.length_at(obj, 1)
    ulen, pos = enc.length_at(obj, pos)
    return bytes(enc.lzf_decompress(obj[pos:pos + clen], ulen))
