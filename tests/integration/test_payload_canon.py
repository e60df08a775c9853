"""Unordered collections compared from their DUMP payloads (plugins/module_utils/_payload_canon.py), on real servers:
a big set, hash and sorted set restored into another server may serialize in another order, and a file restore's
rerun or verification must still see them as identical - and must see a changed element as a difference."""

from ansible_collections.kvtools.migration.plugins.module_utils._payload import same_body
from ansible_collections.kvtools.migration.plugins.module_utils._payload_canon import elements, same_unordered


def test_big_collections_compare_by_their_elements(redis70, valkey80):
    src, tgt = redis70.admin(), valkey80.admin()
    pipe = src.pipeline(transaction=False)
    pipe.sadd(b'set', *[b's%d' % i for i in range(1500)] + [b'7', b'-300', b'70000', b'\xff\n'])
    pipe.hset(b'hash', mapping=dict((b'f%d' % i, b'v' * (i % 90)) for i in range(1500)))
    pipe.zadd(b'zset', dict((b'm%d' % i, i / 7.0) for i in range(1500)))
    pipe.execute()
    reordered = 0
    for key, kind in ((b'set', 2), (b'hash', 4), (b'zset', 5)):
        payload = src.dump(key)
        assert elements(payload)[0] == kind
        tgt.restore(key, 0, payload)
        again = tgt.dump(key)
        reordered += not same_body(payload, again)
        assert same_unordered(payload, again), key
    assert reordered >= 1, 'no collection came back in another order: this test proves nothing here'
    tgt.sadd(b'set', b'one more')
    tgt.hset(b'hash', b'f7', b'changed')
    tgt.zadd(b'zset', {b'm7': 99})
    for key in (b'set', b'hash', b'zset'):
        assert not same_unordered(src.dump(key), tgt.dump(key)), key
    src.set(b'str', b'x')
    assert elements(src.dump(b'str')) is None and not same_unordered(src.dump(b'str'), src.dump(b'str'))
