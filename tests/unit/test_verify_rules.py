"""The options and pure rules of kv_verify (plugins/module_utils/_verify_rules.py)."""

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import (
    VerifyOptions, counter_delta, expire_at, strip_footer, ttl_difference)


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
