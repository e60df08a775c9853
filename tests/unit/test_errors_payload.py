"""Reply classification, secret scrubbing and payload version rules (pure logic)."""

import struct

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _errors, _payload
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint


@pytest.mark.parametrize('reply,kind', [
    ("NOPERM this user has no permissions to run the 'restore' command", 'noperm'),
    ("this user has no permissions to run the 'restore' command", 'noperm'),
    ('BUSYKEY Target key name already exists.', 'busykey'),
    ('ERR DUMP payload version or checksum are wrong', 'payload'),
    ('ERR Bad data format', 'payload'),
    ('ERR Unsupported foreign data type', 'payload'),
    ("OOM command not allowed when used memory > 'maxmemory'.", 'oom'),
    ("command not allowed when used memory > 'maxmemory'.", 'oom'),
    ('ERR DB index is out of range', 'db'),
    ('IOERR error or timeout connecting to the client', 'ioerr'),
    ('NOKEY', 'nokey'),
    ('ERR something else', 'error'),
])
def test_reply_kind(reply, kind):
    assert _errors.reply_kind(reply) == kind


def test_noperm_command():
    assert _errors.noperm_command("this user has no permissions to run the 'config|get' command") == 'config|get'


def test_scrub():
    assert _errors.scrub('pw is s3cr3t!', ['s3cr3t']) == 'pw is ********!'
    assert _errors.scrub(b'\xffs3cr3t', ['s3cr3t']).endswith('********')


def test_classify_never_leaks_password():
    ep = Endpoint({'host': 'h', 'port': 1, 'password': 'p4ss'})
    err = _errors.classify(RuntimeError('boom p4ss'), ep, 'doing X')
    assert 'p4ss' not in err.message and 'p4ss' not in repr(err.to_result())
    assert 'h:1' in err.message and err.message.startswith('doing X')


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
