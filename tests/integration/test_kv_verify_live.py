"""kv_verify for the live strategy, against real servers: the keys-log scope with key counts, and rounds.

kv_sync's follower is played by the test: it writes a change to the source, applies it to the target and
logs the key with the keys_log writer, exactly as the follower does.
"""

import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter
from tests.conftest import assert_no_secret
from tests.integration.test_kv_verify import copy, load_dbs, verify
from tests.support import compare

AWKWARD = [b'live:new\nline', b'live:nul\x00', b'live:\xff\xfe', b'live: *?[']


class Follower:
    """Applies the same writes to source and target and logs each key, like kv_sync's follower."""

    def __init__(self, source, target, path, db_map=None):
        self.source, self.target = source, target
        self.log = KeysLogWriter(path)
        self.db_map = db_map or {}

    def size(self):
        return self.log.flush()

    def apply(self, db, action, key, *args, **kwargs):
        t_db = self.db_map.get(db, db)
        for client in (self.source.admin(db), self.target.admin(t_db)):
            getattr(client, action)(key, *args, **kwargs)
        self.log.add(t_db, key)


@pytest.fixture
def live_pair(redis70, valkey80, tmp_path):
    keys = load_dbs(redis70, [0, 2])
    copy(redis70, valkey80)
    follower = Follower(redis70, valkey80, str(tmp_path / 'keys.log'))
    full = verify(redis70, valkey80)
    assert full['consistent'], full['summary']
    return redis70, valkey80, follower, sum(len(v) for v in keys.values())


def test_keys_scope_compares_exactly_the_logged_keys_and_the_counts(live_pair):
    src, tgt, follower, n = live_pair
    offset = follower.size()
    for key in AWKWARD:
        follower.apply(0, 'set', key, b'v\x00' + key, px=600000)
    follower.apply(0, 'delete', b'db0:hash')      # deleted on both sides: listed, absent
    follower.apply(2, 'rpush', b'db2:list', b'more')
    follower.apply(0, 'set', AWKWARD[0], b'again')  # logged twice: compared once
    follower.size()
    writes = compare.source_writes(src), compare.source_writes(tgt)
    result = verify(src, tgt, keys_file=follower.log.path, keys_file_offset=offset)
    assert result['consistent'], result['summary']
    assert result['scope'] == 'keys' and result['keys_file']['keys'] == len(AWKWARD) + 2
    assert result['keys_file']['records'] == len(AWKWARD) + 3 and result['keys_file']['end'] == follower.size()
    by_db = dict((d['db'], d) for d in result['dbs'])
    assert by_db[0]['scope'] == by_db[2]['scope'] == 'keys'
    assert by_db[0]['listed'] == len(AWKWARD) + 1 and by_db[0]['absent'] == 1
    assert by_db[0]['identical'] == by_db[0]['keys'] == len(AWKWARD)
    assert by_db[2]['listed'] == by_db[2]['identical'] == 1
    assert by_db[0]['source_count'] == by_db[0]['target_count'] == src.admin(0).dbsize()
    assert result['totals']['keys'] == len(AWKWARD) + 1, 'only the logged keys were compared'
    assert 'keys log names from offset %d' % offset in result['summary']
    assert (compare.source_writes(src), compare.source_writes(tgt)) == writes, 'kv_verify wrote'
    assert_no_secret(result)

    # a logged key that differs is found, with its awkward name
    tgt.admin(0).set(AWKWARD[1], b'not the same')
    result = verify(src, tgt, keys_file=follower.log.path, keys_file_offset=offset)
    assert not result['consistent'] and result['totals']['value_differs'] == 1
    assert result['differences'][0]['key'] == sample_key(AWKWARD[1])
    # a logged key that only the target holds is extra
    tgt.admin(0).set(AWKWARD[1], b'v\x00' + AWKWARD[1], px=600000)
    tgt.admin(0).set(b'db0:hash', b'resurrected')
    result = verify(src, tgt, keys_file=follower.log.path, keys_file_offset=offset)
    assert result['totals']['extra'] == 1 and result['differences'][0]['kind'] == 'extra'
    assert [d['scope'] for d in result['dbs']] == ['full (key counts differed)', 'keys']


def test_counts_that_differ_make_the_db_whole_and_an_unlisted_difference_is_out_of_scope(live_pair):
    src, tgt, follower, n = live_pair
    offset = follower.size()
    follower.apply(2, 'set', b'db2:new', b'x')
    follower.size()
    # a key nobody logged changes on the target: the keys scope does not look at it (same counts) ...
    tgt.admin(0).set(b'db0:list', b'overwritten')
    scoped = verify(src, tgt, keys_file=follower.log.path, keys_file_offset=offset)
    assert scoped['consistent'] and scoped['totals']['keys'] == 1
    # ... a key nobody logged appears on the target: the counts differ, db 0 is compared whole and both show
    tgt.admin(0).set(b'db0:unlogged-extra', b'x')
    warnings = []
    whole = Verifier(Endpoint(src.endpoint(), 'source'), Endpoint(tgt.endpoint(), 'target'),
                     VerifyOptions(keys_file=follower.log.path, keys_file_offset=offset), warn=warnings.append).run()
    assert not whole['consistent']
    assert whole['totals']['extra'] == 1 and whole['totals']['type_differs'] == 1
    by_db = dict((d['db'], d['scope']) for d in whole['dbs'])
    assert by_db == {0: 'full (key counts differed)', 2: 'keys'}
    assert any('compared whole' in w for w in warnings), warnings


def test_whole_db_marker_and_db_map(redis70, valkey80, tmp_path):
    load_dbs(redis70, [1, 3])
    copy(redis70, valkey80, db_map={1: 5})
    follower = Follower(redis70, valkey80, str(tmp_path / 'keys.log'), db_map={1: 5})
    offset = follower.size()
    follower.apply(1, 'set', b'db1:listed', b'1')
    follower.log.whole_db(3)   # e.g. a FLUSHDB the follower applied
    follower.size()
    valkey80.admin(3).set(b'db3:list', b'differs, unlogged')
    result = verify(redis70, valkey80, db_map={1: 5}, keys_file=follower.log.path, keys_file_offset=offset)
    by_db = dict((d['db'], d) for d in result['dbs'])
    assert by_db[1]['target_db'] == 5 and by_db[1]['scope'] == 'keys' and by_db[1]['listed'] == 1
    assert by_db[3]['scope'] == 'full' and by_db[3]['type_differs'] == 1
    assert result['keys_file']['whole_dbs'] == [3]


def test_rounds_recheck_only_what_differed_until_the_follower_caught_up(live_pair, monkeypatch):
    from ansible_collections.kvtools.migration.plugins.module_utils import _verify_scope
    src, tgt, follower, n = live_pair
    late = [b'db0:late:%d' % i for i in range(50)] + AWKWARD
    pipe = src.admin(0).pipeline(transaction=False)
    for key in late:
        pipe.set(key, b'value')
    pipe.execute()

    class LaggingFollower:
        """The verifier's clock: the follower applies the late writes during the second recheck delay (a point in
        the verification, not a time: on a loaded machine the first round alone can outlast any fixed delay)."""
        time = staticmethod(time.time)

        def __init__(self):
            self.delays = []

        def sleep(self, seconds):
            self.delays.append(seconds)
            if len(self.delays) == 2:
                pipe = tgt.admin(0).pipeline(transaction=False)
                for key in late:
                    pipe.set(key, b'value')
                pipe.execute()

    clock = LaggingFollower()
    monkeypatch.setattr(_verify_scope, 'time', clock)
    result = verify(src, tgt, rounds=5, recheck_delay=1)
    assert clock.delays == [1.0, 1.0]
    assert result['consistent'], result['summary']
    rounds = result['rounds']
    assert rounds[0]['scope'] == 'full' and rounds[0]['differing'] == len(late)
    assert all(r['scope'] == 'recheck' and r['compared'] == len(late) for r in rounds[1:])
    assert rounds[-1]['differing'] == 0 and len(rounds) == 3
    assert result['totals']['keys'] == result['totals']['identical'] == n + len(late)
    assert result['totals']['missing'] == 0 and result['differences'] == []
    assert 'recheck round' in result['summary']


def test_rounds_stop_at_the_limit_with_what_still_differs(live_pair):
    src, tgt, follower, n = live_pair
    tgt.admin(0).delete(b'db0:set')
    tgt.admin(2).set(b'db2:only-here', b'x')
    result = verify(src, tgt, rounds=3, recheck_delay=0)
    assert not result['consistent']
    assert [r['differing'] for r in result['rounds']] == [2, 2, 2]
    assert [r['compared'] for r in result['rounds'][1:]] == [2, 2]
    assert result['totals']['missing'] == 1 and result['totals']['extra'] == 1
    assert sorted(d['kind'] for d in result['differences']) == ['extra', 'missing']
    # identical keys are counted once, not once per round
    assert result['totals']['identical'] == n - 1


def test_recheck_overflow_compares_the_db_whole(live_pair, monkeypatch):
    from ansible_collections.kvtools.migration.plugins.module_utils import _verify_scope
    src, tgt, follower, n = live_pair
    monkeypatch.setattr(_verify_scope, 'RECHECK_LIMIT', 2)
    monkeypatch.setattr(_verify_scope.DiffingKeys.__init__, '__defaults__', (2,))
    for i in range(5):
        tgt.admin(0).set(b'db0:extra:%d' % i, b'x')
    result = verify(src, tgt, rounds=2, recheck_delay=0)
    assert [r['differing'] for r in result['rounds']] == [5, 5]
    assert result['totals']['extra'] == 5 and len(result['differences']) == 5


@pytest.mark.parametrize('options, words', [
    (dict(rounds=0), 'rounds must be between 1 and 100, got 0'),
    (dict(rounds=101), 'rounds must be between 1 and 100'),
    (dict(recheck_delay=-1), 'recheck_delay must be between 0 and 3600'),
    (dict(keys_file_offset=8), 'keys_file_offset 8 was given without keys_file'),
    (dict(keys_file='/x', match='a*'), 'keys_file cannot be combined with match'),
    (dict(keys_file='/x', keys_file_offset=-1), 'keys_file_offset must be 0 or more'),
])
def test_bad_options_are_named(options, words):
    with pytest.raises(KVError) as err:
        verify({'host': '127.0.0.1', 'port': 1}, {'host': '127.0.0.1', 'port': 1}, **options)
    assert err.value.kind == 'config' and words in err.value.message


def test_module_keys_file_offset_beyond_the_end(redis70, valkey80, tmp_path, run_module):
    follower = Follower(redis70, valkey80, str(tmp_path / 'keys.log'))
    size = follower.size()
    result = run_module('kv_verify', dict(source=redis70.endpoint(), target=valkey80.endpoint(),
                                          keys_file=follower.log.path, keys_file_offset=size + 9))
    assert result.get('failed') and result['error'] == 'keys_log' and 'beyond its end' in result['msg']
    ok = run_module('kv_verify', dict(source=redis70.endpoint(), target=valkey80.endpoint(),
                                      keys_file=follower.log.path, keys_file_offset=size, rounds=2))
    assert ok['consistent'] and ok['scope'] == 'keys' and ok['keys_file']['end'] == size
    assert_no_secret(ok)


def test_the_followers_marker_and_held_expiries_are_not_differences(live_pair):
    """While kv_sync runs, its offset marker sits on the target and expiries are held back by a fixed offset."""
    src, tgt, follower, n = live_pair
    held = 100 * 365 * 86400 * 1000
    tgt.admin(0).set(b'kvtools:sync:offset:abc', b'replid 42 0')
    at = src.admin(0).pexpiretime(b'db0:str:ttl')
    tgt.admin(0).pexpireat(b'db0:str:ttl', at + held)
    plain = verify(src, tgt)
    assert plain['totals']['extra'] == 1 and plain['totals']['ttl_differs'] == 1
    ignoring = verify(src, tgt, ignore_target_keys=[dict(db=0, key='kvtools:sync:offset:abc')],
                      target_expiry_offset=held, rounds=2, recheck_delay=0)
    assert ignoring['consistent'], ignoring['summary']
    # a real TTL difference still shows with the offset, and a marker in another db is still extra
    tgt.admin(0).pexpireat(b'db0:str:ttl', at + held + 60000)
    tgt.admin(2).set(b'kvtools:sync:offset:abc', b'x')
    still = verify(src, tgt, ignore_target_keys=[dict(db=0, key='kvtools:sync:offset:abc')],
                   target_expiry_offset=held)
    assert still['totals']['ttl_differs'] == 1 and still['totals']['extra'] == 1
    with pytest.raises(KVError) as err:
        verify(src, tgt, ignore_target_keys=[dict(name='x')])
    assert err.value.kind == 'config' and 'ignore_target_keys' in err.value.message


def test_keys_scope_refuses_a_db_merge(redis70, valkey80, tmp_path):
    """One log record per target key cannot say which source db a merged key came from (kv_sync does not merge)."""
    redis70.admin(0).set(b'a', b'1')
    redis70.admin(1).set(b'b', b'2')
    log = KeysLogWriter(str(tmp_path / 'keys.log'))
    log.add(0, b'a')
    log.flush()
    with pytest.raises(KVError) as err:
        verify(redis70, valkey80, db_map={1: 0}, allow_db_merge=True, keys_file=log.path)
    assert err.value.kind == 'config' and 'several source dbs go into one target db (db 0)' in err.value.message
