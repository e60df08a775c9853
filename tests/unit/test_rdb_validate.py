"""RDB validation of plugins/module_utils/_rdb_validate.py."""

import struct

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _crc64, _rdb_validate
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


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
