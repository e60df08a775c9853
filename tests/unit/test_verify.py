"""kv_verify's pure logic: expiry replies, TTL tolerance, write counters, options, the Markdown report."""

import socket
import threading

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._verify import (
    VerifyOptions, counter_delta, expire_at, render_markdown, strip_footer, ttl_difference)
from ansible_collections.kvtools.migration.plugins.module_utils._wire import (
    ReplyError, pack, pack_expiry_mget, pack_key_commands, pack_mget, parse_lines, read_lines)

NOW = 1700000000000


@pytest.mark.parametrize('reply,absolute,expected', [
    (-2, True, (False, None)),
    (-1, True, (True, None)),
    (NOW + 5000, True, (True, NOW + 5000)),
    (-2, False, (False, None)),
    (-1, False, (True, None)),
    (5000, False, (True, NOW + 5000)),
    (b'5000', False, (True, NOW + 5000)),
])
def test_expire_at(reply, absolute, expected):
    assert expire_at(reply, absolute, NOW) == expected


def test_ttl_difference():
    assert ttl_difference(None, None, 2000, NOW) is None
    assert ttl_difference(NOW + 10000, NOW + 12000, 2000, NOW) is None          # exactly the tolerance
    assert ttl_difference(NOW + 10000, NOW + 12001, 2000, NOW) == \
        'expires 2.0 s later on the target than on the source (tolerance 2.0 s)'
    assert ttl_difference(NOW + 10000, NOW + 5000, 2000, NOW) == \
        'expires 5.0 s earlier on the target than on the source (tolerance 2.0 s)'
    assert ttl_difference(NOW + 10000, NOW + 10001, 0, NOW) is not None
    assert ttl_difference(NOW + 3600000, None, 2000, NOW) == 'expires in 3600.0 s on the source, no TTL on the target'
    assert ttl_difference(None, NOW + 1500, 2000, NOW) == 'no TTL on the source, expires in 1.5 s on the target'


def _counters(changes=0, last_save=100, expired=0, evicted=0):
    return dict(changes=changes, last_save=last_save, expired=expired, evicted=evicted)


def test_counter_delta():
    assert counter_delta(_counters(5), _counters(5)) == dict(writes=0, expiries=0, changed=False)
    assert counter_delta(_counters(5), _counters(9)) == dict(writes=4, expiries=0, changed=True)
    assert counter_delta(_counters(5, expired=3), _counters(5, expired=4, evicted=2)) == \
        dict(writes=0, expiries=3, changed=True)
    # a save in between reset the counter: the writes since the save are a lower bound
    assert counter_delta(_counters(50, last_save=100), _counters(2, last_save=160)) == \
        dict(writes=2, expiries=0, changed=True)
    assert counter_delta(_counters(50, last_save=100), _counters(0, last_save=160))['changed'] is False


def test_strip_footer():
    payload = b'\x00\x03abc' + b'\x0a\x00' + b'12345678'
    assert strip_footer(payload) == b'\x00\x03abc'
    assert strip_footer(b'\x00\x03abc\x50\x00' + b'87654321') == strip_footer(payload)


@pytest.mark.parametrize('kwargs,word', [
    (dict(values='some'), 'values'),
    (dict(sample_rate=0), 'sample_rate'),
    (dict(sample_rate=1.5), 'sample_rate'),
    (dict(ttl_tolerance=-1), 'ttl_tolerance'),
    (dict(memory_tolerance=-0.1), 'memory_tolerance'),
    (dict(ttl_tolerance='soon'), 'ttl_tolerance'),
])
def test_options_refused(kwargs, word):
    with pytest.raises(KVError) as info:
        VerifyOptions(**kwargs)
    assert info.value.kind == 'config' and word in str(info.value)


def test_options_defaults():
    opts = VerifyOptions()
    assert (opts.values, opts.ttl_tolerance_ms, opts.memory_tolerance, opts.fail_on_mismatch) == \
        ('full', 2000, None, True)
    assert VerifyOptions(ttl_tolerance=0.5).ttl_tolerance_ms == 500


def test_markdown_escapes_key_names_and_never_holds_values():
    result = dict(
        consistent=False, summary='db 0: 1 key missing (for example: missing a|b*c in db 0)', values='full',
        ttl_tolerance=2, seconds=0.5,
        source=dict(address='127.0.0.1:1', engine='redis', version='7.0.15'),
        target=dict(address='127.0.0.1:2', engine='valkey', version='9.1.0'),
        dbs=[dict(db=0, target_db=0, keys=3, identical=2, missing=1)], totals=dict(keys=3, identical=2, missing=1),
        differences=[dict(db=0, target_db=0, key='a|b*c', kind='missing', detail='on the source, not on the target'),
                     dict(db=0, target_db=0, key='x`y', kind='extra', detail='on the target only'),
                     dict(db=0, target_db=0, key='', kind='extra', detail='on the target only'),
                     dict(db=0, target_db=0, key='with\\nnewline', kind='ttl_differs', detail='d')],
        memory=dict(source_used_memory=10, target_used_memory=12, ratio=1.2, tolerance=None, within_tolerance=None),
        warnings=['the source changed'])
    text = render_markdown(result)
    assert text.startswith('# kv_verify report\n')
    assert '**NOT consistent**' in text
    assert 'missing a\\|b\\*c in db 0' in text                  # summary: Markdown characters escaped
    assert '| 0 | 0 | missing | `a\\|b*c` | on the source, not on the target |' in text
    assert '| ``x`y`` |' in text                               # a backtick in the name: a longer fence
    assert '*(the empty name)*' in text
    assert '`with\\nnewline`' in text                           # escapes stay visible as typed
    assert '- the source changed' in text
    # every row of the databases table has as many cells as its header
    section = text.split('## Databases')[1].split('## Differences')[0]
    rows = [line for line in section.splitlines() if line.startswith('|')]
    assert len(rows) == 4 and len(set(row.count('|') for row in rows)) == 1


def test_packing_matches_the_generic_packer():
    keys = [b'k:%d' % i for i in range(50)] + [b'', b'\r\n*3\r\n$3\r\nSET', b'\xff\x00']
    assert pack_mget(keys) == pack([[b'MGET'] + keys])
    assert pack_expiry_mget(b'PEXPIRETIME', keys) == pack_key_commands((b'PEXPIRETIME',), keys) + \
        pack([[b'MGET'] + keys])


@pytest.mark.parametrize('step', [1, 2, 3, 7, 4096])
def test_read_lines_splits_one_line_replies_from_what_follows(step):
    """Integer and error lines, then an MGET reply whose values hold CRLFs, sent in pieces of ``step`` bytes."""
    stream = b':1795464736579\r\n:-1\r\n-NOPERM no\r\n:-2\r\n' + b'*2\r\n$4\r\na\r\nb\r\n$-1\r\n'
    left, right = socket.socketpair()
    try:
        def feed():
            for pos in range(0, len(stream), step):
                left.sendall(stream[pos:pos + step])

        thread = threading.Thread(target=feed)
        thread.start()
        lines, rest = read_lines(right, 4)
        thread.join()
        assert lines == [b':1795464736579', b':-1', b'-NOPERM no', b':-2']
        # what arrived after the fourth line belongs to the MGET reply; the rest is still in the socket
        tail = rest
        while len(tail) < len(stream) - 38:
            tail += right.recv(100)
        assert b':1795464736579\r\n:-1\r\n-NOPERM no\r\n:-2\r\n' + tail == stream
    finally:
        left.close()
        right.close()
    replies = parse_lines(lines)
    assert replies[0] == 1795464736579 and replies[1] == -1 and replies[3] == -2
    assert isinstance(replies[2], ReplyError) and str(replies[2]) == 'NOPERM no'
