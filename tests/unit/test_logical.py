"""The logical format of plugins/module_utils/_logical.py."""

import os

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _backup, _encryption, _logical
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


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
