"""Reply classification and secret scrubbing of plugins/module_utils/_errors.py."""

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _errors
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
