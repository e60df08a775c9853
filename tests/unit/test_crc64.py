"""CRC-64 of plugins/module_utils/_crc64.py against the textbook bitwise reference."""

import os
import random

from ansible_collections.kvtools.migration.plugins.module_utils import _crc64


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
