"""DUMP payloads and RDB versions of plugins/module_utils/_payload.py."""

import struct

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _payload


def _payload_with_version(v):
    return b'\x00\x03abc' + struct.pack('<H', v) + b'\x00' * 8


def test_payload_rdb_version():
    assert _payload.payload_rdb_version(_payload_with_version(10)) == 10
    assert _payload.payload_rdb_version(_payload_with_version(80)) == 80
    assert _payload.payload_rdb_version(b'short') is None


@pytest.mark.parametrize('engine,version,rdb', [
    ('redis', (6, 2, 14), 9), ('redis', (7, 0, 15), 10), ('redis', (7, 2, 4), 11), ('redis', (7, 4, 1), 12),
    ('valkey', (8, 0, 1), 11), ('valkey', (9, 0, 0), 80), ('valkey', (9, 1, 2), 80), ('valkey', (9, 2, 0), 81),
])
def test_rdb_table(engine, version, rdb):
    assert _payload.rdb_version_for(engine, version) == rdb


@pytest.mark.parametrize('engine,target_rdb,payload_rdb,check,accepts', [
    ('redis', 10, 9, None, True),       # 6.2 -> 7.0
    ('redis', 10, 11, None, False),     # 7.2 -> 7.0 (downgrade)
    ('redis', 10, 80, None, False),     # valkey 9 -> redis 7.0
    ('valkey', 11, 10, 'strict', True),  # redis 7.0 -> valkey 8
    ('valkey', 11, 12, None, False),    # redis 7.4 -> valkey 8 (foreign)
    ('valkey', 80, 12, 'strict', False),
    ('valkey', 80, 12, 'relaxed', None),  # relaxed: only RESTORE can tell
    ('valkey', 11, 80, 'strict', False),  # valkey 9 -> valkey 8
    ('valkey', 80, 11, 'strict', True),
])
def test_target_accepts(engine, target_rdb, payload_rdb, check, accepts):
    assert _payload.target_accepts(engine, target_rdb, payload_rdb, check) is accepts
