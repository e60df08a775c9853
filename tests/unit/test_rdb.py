"""Pure logic of plugins/module_utils/_backup.py and the files it uses: CRC64, RDB validation, the encrypted and logical formats,
rotation.  (Everything that talks to a server is in tests/integration/test_kv_rdb_backup.py.)"""

import io
import os
import random
import struct

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _backup, _crc64, _encryption, _logical, _rdb_validate
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


def crc64_bitwise(data, crc=0):
    """The textbook reflected CRC, bit by bit, as the reference."""
    for byte in data:
        crc ^= byte
        for dummy in range(8):
            crc = (crc >> 1) ^ _crc64.CRC64_POLY if crc & 1 else crc >> 1
    return crc


# --- CRC64 -------------------------------------------------------------------------------------------

def test_crc64_known_vector():
    # the check value of Redis's crc64.c self-test (crc64 Jones, "123456789")
    assert _crc64.crc64(b'123456789') == 0xe9c6d914c4b8d9ca
    assert _crc64.crc64(b'') == 0


def test_crc64_block_algorithm_matches_the_reference():
    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for dummy in range(_crc64.CRC_BLOCK * 2 + 12345))
    expected = _crc64._crc64_small(data, 0)
    assert _crc64.crc64(data) == expected
    assert _crc64._crc64_small(data[:4000], 0) == crc64_bitwise(data[:4000])
    # continuing from a running value, across block boundaries
    assert _crc64.crc64(data[1000:], _crc64.crc64(data[:1000])) == expected


def test_crc64_streaming_with_any_split():
    rng = random.Random(3)
    data = os.urandom(_crc64.CRC_BLOCK + 777)
    crc = _crc64.Crc64()
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 7, 4096, 300000, _crc64.CRC_BLOCK])
        crc.update(data[pos:pos + step])
        pos += step
    assert crc.value == _crc64.crc64(data)


# --- RDB validation -------------------------------------------------------------------------------

def rdb(magic=b'REDIS0011', body=b'\xfe\x00\x00\x01k\x01v', crc=True):
    content = magic + body + b'\xff'
    return content + struct.pack('<Q', _crc64.crc64(content) if crc else 0)


def validate(data, pieces=3):
    validator = _rdb_validate.RdbValidator()
    step = max(1, len(data) // pieces)
    for pos in range(0, len(data), step):
        validator.feed(data[pos:pos + step])
    return validator.finish()


def test_validator_accepts_redis_and_valkey_files():
    facts = validate(rdb())
    assert facts['rdb_version'] == 11 and facts['checksum'] == 'verified' and facts['magic'] == 'REDIS0011'
    assert validate(rdb(b'VALKEY080'), pieces=50)['rdb_version'] == 80
    assert validate(rdb(crc=False))['checksum'] == 'disabled'


@pytest.mark.parametrize('data,words', [
    (rdb()[:-1], 'not where'),
    (rdb()[:5], 'only 5 bytes'),
    (rdb(magic=b'RDB000011'), 'REDISnnnn'),
    (rdb()[:12] + b'\x00' + rdb()[13:], 'CRC64 mismatch'),
    (b'', 'only 0 bytes'),
])
def test_validator_rejects(data, words):
    with pytest.raises(KVError) as err:
        validate(data)
    assert err.value.kind == 'corrupt' and words in err.value.message


# --- encryption --------------------------------------------------------------------------------------

def encrypt(plain, passphrase='pw', chunk=64):
    buf = io.BytesIO()
    writer = _encryption.EncryptWriter(buf, passphrase, 'rdb', chunk_size=chunk)
    for pos in range(0, len(plain), 50):
        writer.write(plain[pos:pos + 50])
    writer.close()
    return buf.getvalue()


def decrypt(blob, passphrase='pw'):
    return b''.join(_encryption.DecryptReader(io.BytesIO(blob), passphrase).chunks())


def split_chunks(blob):
    """(lead, [chunk records]) of an encrypted blob."""
    size = struct.unpack('>I', blob[8:12])[0]
    lead, rest = blob[:12 + size], blob[12 + size:]
    chunks = []
    while rest:
        length = struct.unpack('>I', rest[:4])[0]
        chunks.append(rest[:4 + length])
        rest = rest[4 + length:]
    return lead, chunks


@pytest.mark.parametrize('size', [0, 1, 63, 64, 65, 1000])
def test_encryption_round_trip(size):
    plain = os.urandom(size)
    blob = encrypt(plain)
    assert blob.startswith(b'KVTENC1\n')
    assert decrypt(blob) == plain
    lead, chunks = split_chunks(blob)
    assert len(chunks) == max(1, -(-size // 64))
    reader = _encryption.DecryptReader(io.BytesIO(blob), 'pw')
    assert reader.content == 'rdb' and reader.header['kdf'] == 'scrypt' and reader.header['n'] == 1 << 15
    assert b''.join(iter(lambda: reader.read(7), b'')) == plain


def test_encryption_uses_fresh_salt_and_hides_the_content():
    plain = b'REDIS0011' + b'secret value' * 10
    one, two = encrypt(plain), encrypt(plain)
    assert one != two
    assert b'secret value' not in one


def test_wrong_passphrase_is_named():
    with pytest.raises(KVError) as err:
        decrypt(encrypt(b'data'), 'other')
    assert err.value.kind == 'passphrase' and 'passphrase is wrong' in err.value.message


@pytest.mark.parametrize('damage', ['drop last', 'drop middle', 'swap', 'flip', 'header', 'append', 'cut'])
def test_encryption_detects_damage(damage):
    blob = encrypt(os.urandom(300))
    lead, chunks = split_chunks(blob)
    assert len(chunks) == 5
    if damage == 'drop last':
        blob = lead + b''.join(chunks[:-1])
    elif damage == 'drop middle':
        blob = lead + b''.join(chunks[:2] + chunks[3:])
    elif damage == 'swap':
        blob = lead + b''.join([chunks[1], chunks[0]] + chunks[2:])
    elif damage == 'flip':
        raw = bytearray(blob)
        raw[len(lead) + 30] ^= 1
        blob = bytes(raw)
    elif damage == 'header':
        blob = lead.replace(b'"content": "rdb"', b'"content": "xyz"') + b''.join(chunks)
    elif damage == 'append':
        blob = blob + chunks[-1]
    elif damage == 'cut':
        blob = blob[:-5]
    with pytest.raises(KVError) as err:
        decrypt(blob)
    assert err.value.kind == 'corrupt', err.value.message


def test_kdf_parameters_are_bounded():
    blob = encrypt(b'x')
    evil = blob.replace(b'"n": 32768', b'"n": 1073741824')
    # keep the header length right: same number of characters is not needed, rebuild it
    size = struct.unpack('>I', blob[8:12])[0]
    header = blob[12:12 + size].replace(b'"n": 32768', b'"n": 1073741824')
    evil = blob[:8] + struct.pack('>I', len(header)) + header + blob[12 + size:]
    with pytest.raises(KVError) as err:
        decrypt(evil)
    assert 'refused' in err.value.message


# --- the logical format ---------------------------------------------------------------------------

RECORDS = ((0, b'', b'\x00payload', None), (0, b'with\nnewline', b'p' * 1000, 1893456000000),
           (3, b'\xff\x00', b'', None), (15, b'k' * 300, os.urandom(5000), 1))


def write_logical(path, records=RECORDS, passphrase=None):
    with open(path, 'wb') as fh:
        out = _encryption.EncryptWriter(fh, passphrase, 'logical', chunk_size=512) if passphrase else fh
        writer = _logical.LogicalWriter(out, dict(format=1, engine='redis', version='7.0.15', rdb_version=10))
        db = None
        for rec_db, key, payload, expire in records:
            if rec_db != db:
                writer.select(rec_db)
                db = rec_db
            writer.add([(key, payload, expire)])
        trailer = writer.finish()
        if passphrase:
            out.close()
    return trailer


@pytest.mark.parametrize('passphrase', [None, 'pp'])
def test_logical_round_trip(tmp_path, passphrase):
    path = str(tmp_path / 'l.kvt')
    trailer = write_logical(path, passphrase=passphrase)
    assert trailer['keys'] == 4 and trailer['dbs'] == {'0': 2, '3': 1, '15': 1}
    stats = {}
    assert list(_logical.iter_logical(path, passphrase, stats)) == list(RECORDS)
    assert stats['keys'] == 4
    assert _logical.logical_header(path, passphrase)['rdb_version'] == 10
    facts = _backup.verify_backup(path, passphrase)
    assert facts['content'] == 'logical' and facts['keys'] == 4 and facts['encrypted'] is bool(passphrase)


@pytest.mark.parametrize('cut', [1, 20, 33, 100])
def test_logical_truncated_or_damaged(tmp_path, cut):
    path = str(tmp_path / 'l.kvt')
    write_logical(path)
    with open(path, 'rb') as fh:
        raw = fh.read()
    with open(path, 'wb') as fh:
        fh.write(raw[:-cut])
    with pytest.raises(KVError) as err:
        list(_logical.iter_logical(path))
    assert err.value.kind == 'corrupt'
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 1
    with open(path, 'wb') as fh:
        fh.write(bytes(damaged))
    with pytest.raises(KVError) as err:
        list(_logical.iter_logical(path))
    assert err.value.kind == 'corrupt'


def test_not_a_logical_backup(tmp_path):
    path = str(tmp_path / 'x')
    with open(path, 'wb') as fh:
        fh.write(b'REDIS0011...')
    with pytest.raises(KVError) as err:
        _logical.logical_header(path)
    assert 'KVTLOG1' in err.value.message


# --- rotation --------------------------------------------------------------------------------------

def test_rotation_plan(tmp_path):
    dest = str(tmp_path / 'b.rdb')
    for name in ('b.rdb', 'b.rdb.json', 'b.rdb.1', 'b.rdb.1.json', 'b.rdb.2', 'b.rdb.7', 'other.1', 'b.rdb.x'):
        (tmp_path / name).write_bytes(b'')
    moves, removals = _backup.rotation_plan(dest, 2)
    names = [(os.path.basename(a), os.path.basename(b)) for a, b in moves]
    assert names == [('b.rdb.1', 'b.rdb.2'), ('b.rdb.1.json', 'b.rdb.2.json'), ('b.rdb', 'b.rdb.1'),
                     ('b.rdb.json', 'b.rdb.1.json')]
    assert sorted(os.path.basename(p) for p in removals) == ['b.rdb.2', 'b.rdb.7']
    moves, removals = _backup.rotation_plan(dest, 0)
    assert moves == []
    assert sorted(os.path.basename(p) for p in removals) == ['b.rdb.1', 'b.rdb.1.json', 'b.rdb.2', 'b.rdb.7',
                                                             'b.rdb.json']
