"""Packers and raw line reads of plugins/module_utils/_wire.py."""

import pytest

from tests.support.sockets import receiving
from ansible_collections.kvtools.migration.plugins.module_utils._wire import (
    ReplyError, pack, pack_expiry_mget, pack_key_commands, pack_mget, parse_lines, read_lines)


def test_packing_matches_the_generic_packer():
    keys = [b'k:%d' % i for i in range(50)] + [b'', b'\r\n*3\r\n$3\r\nSET', b'\xff\x00']
    assert pack_mget(keys) == pack([[b'MGET'] + keys])
    assert pack_expiry_mget(b'PEXPIRETIME', keys) == pack_key_commands((b'PEXPIRETIME',), keys) + \
        pack([[b'MGET'] + keys])


@pytest.mark.parametrize('step', [1, 2, 3, 7, 4096])
def test_read_lines_splits_one_line_replies_from_what_follows(step):
    """Integer and error lines, then an MGET reply whose values hold CRLFs, sent in pieces of ``step`` bytes."""
    stream = b':1795464736579\r\n:-1\r\n-NOPERM no\r\n:-2\r\n' + b'*2\r\n$4\r\na\r\nb\r\n$-1\r\n'
    with receiving(stream, step) as right:
        lines, rest = read_lines(right, 4)
        # what arrived after the fourth line belongs to the MGET reply; the rest is still in the socket
        tail = rest
        while len(tail) < len(stream) - 38:
            tail += right.recv(100)
        assert b':1795464736579\r\n:-1\r\n-NOPERM no\r\n:-2\r\n' + tail == stream
    replies = parse_lines(lines)
    assert replies[0] == 1795464736579 and replies[1] == -1 and replies[3] == -2
    assert isinstance(replies[2], ReplyError) and str(replies[2]) == 'NOPERM no'
