"""The encrypted format of plugins/module_utils/_encryption.py."""

import io
import os
import struct

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _encryption
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


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
