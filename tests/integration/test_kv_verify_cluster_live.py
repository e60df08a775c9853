"""kv_verify's rounds and keys scope with a cluster on either side, against real clusters on loopback.

As in tests/integration/test_kv_verify_live.py, kv_sync's follower is first played by the test (it writes a change
to both sides and logs the key with the keys-log writer); with a cluster source it keeps one log per source master,
as kv_sync's followers do.  Then a real cluster follow (kv_sync's engine, one follower per master) and kv_cutover's
engine read the logs kv_sync wrote.
"""

import os
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _verify_scope
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._cutover import Cutover, CutoverOptions
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from tests.conftest import assert_no_secret
from tests.integration.test_cluster import TAGGED_KEYS, copy, load, masters
from tests.integration.test_kv_verify import verify
from tests.integration.test_sync_cluster import engine, unpause
from tests.support import compare

pytestmark = pytest.mark.xdist_group('cluster')

LATE = [b'late:%d' % n for n in range(40)] + [b'{late}\n\x00\xff', b'late: *?[']


def is_cluster(found):
    return getattr(found, 'nodes', None) is not None


def writer(found):
    """A client that writes any key where it lives: the cluster's own client, or the server's admin client."""
    return found.client() if is_cluster(found) else found.admin()


@pytest.fixture(params=['into', 'out of'])
def pair(request, redis70, cluster_of):
    """``(source, target, keys)`` - a standalone Redis 7.0 copied into a 3-master cluster, or the other way round;
    verified equal by a comparison that does not use kv_verify."""
    cluster = cluster_of('redis70')
    source, target = (redis70, cluster) if request.param == 'into' else (cluster, redis70)
    load(writer(source))
    copy(source.endpoint(), target.endpoint())
    assert compare.differences(data_of(source), data_of(target), deep=True) == []
    return source, target, key_count(source)


def servers_of(found):
    """The test Servers of one side: the masters of a cluster, or the server."""
    return found.nodes if is_cluster(found) else [found]


def data_of(found):
    return masters(found) if is_cluster(found) else found.admin()


def key_count(found):
    return sum(int(server.admin().dbsize()) for server in servers_of(found))


def writes_of(source, target):
    return [compare.source_writes(server) for server in servers_of(source) + servers_of(target)]


def admin_for(found, key):
    """The admin client of the server (or the master) that holds ``key``."""
    return found.admin_for(key) if is_cluster(found) else found.admin()


class Follower:
    """Writes to both sides and logs each key like kv_sync's followers: with a cluster source, in the log of the
    source master that holds the key (one log per master)."""

    def __init__(self, source, target, folder):
        self.source, self.target = source, target
        self.logs = dict((node.port, KeysLogWriter(os.path.join(folder, 'part%d.keys' % n)))
                         for n, node in enumerate(servers_of(source)))
        self.writers = (writer(source), writer(target))

    def log_of(self, key):
        return self.logs[self.source.node_for(key).port if is_cluster(self.source) else self.source.port]

    @property
    def paths(self):
        return [log.path for log in self.logs.values()]

    def sizes(self):
        return [log.flush() for log in self.logs.values()]

    def apply(self, action, key, *args, **kwargs):
        for client in self.writers:
            getattr(client, action)(key, *args, **kwargs)
        self.log_of(key).add(0, key)


def test_rounds_recheck_what_differed_until_the_follower_caught_up(pair, monkeypatch):
    """Keys the follower has not applied yet differ in round 1 and are rechecked on the master that serves them;
    they are applied before the second recheck, which finds them equal."""
    source, target, n = pair
    pipe = writer(source).pipeline(transaction=False)
    for key in LATE:
        pipe.set(key, b'value')
    pipe.execute()

    class LaggingFollower:
        """The verifier's clock: the follower applies the late writes during the second recheck delay."""
        time = staticmethod(time.time)

        def __init__(self):
            self.delays = []

        def sleep(self, seconds):
            self.delays.append(seconds)
            if len(self.delays) == 2:
                client = writer(target)
                for key in LATE:
                    client.set(key, b'value')

    clock = LaggingFollower()
    monkeypatch.setattr(_verify_scope, 'time', clock)
    result = verify(source.endpoint(), target.endpoint(), rounds=5, recheck_delay=1)
    assert clock.delays == [1.0, 1.0]
    assert result['consistent'], result['summary']
    rounds = result['rounds']
    assert [r['scope'] for r in rounds] == ['full', 'recheck', 'recheck']
    assert [r['differing'] for r in rounds] == [len(LATE), len(LATE), 0]
    assert all(r['compared'] == len(LATE) for r in rounds[1:])
    assert result['totals']['keys'] == result['totals']['identical'] == n + len(LATE)
    assert result['totals']['missing'] == 0 and result['differences'] == []
    side = 'target' if is_cluster(target) else 'source'
    per_master = dict((m['address'], m['counts']['keys']) for m in result[side]['cluster']['masters'])
    assert sum(per_master.values()) >= n + len(LATE)  # every look, per master


def test_rounds_stop_at_the_limit_with_what_still_differs(pair):
    source, target, n = pair
    gone, extra, changed = b'k:7', b'{user:1}:extra', TAGGED_KEYS[0]
    admin_for(target, gone).delete(gone)
    admin_for(target, extra).set(extra, b'x')
    admin_for(target, changed).set(changed, b'other')
    result = verify(source.endpoint(), target.endpoint(), rounds=3, recheck_delay=0)
    assert not result['consistent']
    assert [r['differing'] for r in result['rounds']] == [3, 3, 3]
    assert [r['compared'] for r in result['rounds'][1:]] == [3, 3]
    kinds = sorted((d['kind'], d['key']) for d in result['differences'])
    assert kinds == [('extra', sample_key(extra)), ('missing', sample_key(gone)),
                     ('value_differs', sample_key(changed))]
    assert result['totals']['identical'] == n - 2, 'identical keys are counted once, not once per round'


def test_keys_scope_reads_every_log_and_routes_each_key(pair, tmp_path):
    """The keys of every follower's log are compared on the masters that serve them, plus the key counts: a
    differing key a log names is found; one no log names (same counts) is not compared, as between two servers."""
    source, target, n = pair
    follower = Follower(source, target, str(tmp_path))
    offsets = follower.sizes()
    for name in TAGGED_KEYS + LATE:
        follower.apply('set', name, b'new \x00' + name, px=600000)
    follower.apply('delete', b'k:3')  # deleted on both sides: listed, absent
    follower.apply('set', LATE[0], b'again')  # logged twice: compared once
    follower.sizes()
    if is_cluster(source):
        assert sum(1 for size, start in zip(follower.sizes(), offsets) if size > start) >= 2, 'keys of several masters'
    writes = writes_of(source, target)
    result = verify(source.endpoint(), target.endpoint(), keys_file=follower.paths, keys_file_offset=offsets)
    assert result['consistent'], result['summary']
    listed = len(TAGGED_KEYS) + len(LATE) + 1
    assert result['scope'] == 'keys' and result['keys_file']['keys'] == listed
    assert result['keys_file']['records'] == listed + 1
    many = len(follower.paths) > 1
    assert result['keys_file']['start'] == (offsets if many else offsets[0])
    assert result['keys_file']['end'] == (follower.sizes() if many else follower.sizes()[0])
    db = result['dbs'][0]
    assert db['scope'] == 'keys' and db['listed'] == listed and db['absent'] == 1
    assert db['identical'] == db['keys'] == listed - 1
    assert db['source_count'] == db['target_count'] == key_count(source) == n + len(LATE) - 1
    assert result['totals']['keys'] == listed - 1, 'only the logged keys were compared'
    assert ('%d keys logs name from offsets' % len(follower.paths) if many else 'keys log names from offset') \
        in result['summary']
    assert writes_of(source, target) == writes, 'kv_verify wrote'
    assert_no_secret(result)

    admin_for(target, TAGGED_KEYS[4]).set(TAGGED_KEYS[4], b'not the same', keepttl=True)  # named by a log: found
    admin_for(target, b'k:11').set(b'k:11', b'changed, unlogged')  # named by none, same counts: not compared
    result = verify(source.endpoint(), target.endpoint(), keys_file=follower.paths, keys_file_offset=offsets)
    assert not result['consistent'] and result['totals']['value_differs'] == 1
    assert [(d['kind'], d['key']) for d in result['differences']] == [('value_differs', sample_key(TAGGED_KEYS[4]))]
    assert result['dbs'][0]['scope'] == 'keys'
    # a full comparison sees both
    full = verify(source.endpoint(), target.endpoint())
    assert full['totals']['value_differs'] == 2


def test_keys_scope_options_for_several_logs(redis70, cluster_of, tmp_path):
    cluster = cluster_of('redis70')
    follower = Follower(cluster, redis70, str(tmp_path))
    paths = follower.paths
    for options, words in (
            (dict(keys_file=paths, keys_file_offset=[0, 9]), 'keys_file_offset gives 2 offsets ([0, 9]) for 3 keys logs'),
            (dict(keys_file=paths, keys_file_offset=9), 'gives 1 offset (9) for 3 keys logs'),
            (dict(keys_file=[paths[0], paths[0]]), 'keys_file names a keys log twice'),
            (dict(keys_file=[paths[0], 7]), 'keys_file must be a path or a list of paths'),
            (dict(keys_file_offset=[0, 3]), 'was given without keys_file'),
            (dict(keys_file=paths, keys_file_offset=[0, -1, 0]), 'keys_file_offset must be 0 or more, got -1')):
        with pytest.raises(KVError) as err:
            verify(cluster.endpoint(), redis70.endpoint(), **options)
        assert err.value.kind == 'config' and words in err.value.message, err.value.message
    # one 0 (the default) reads every log whole
    result = verify(cluster.endpoint(), redis70.endpoint(), keys_file=paths, keys_file_offset=0)
    assert result['consistent'] and result['keys_file']['start'] == [0, 0, 0]


def test_a_cluster_follow_verified_by_its_keys_logs_and_cut_over(cluster_of, valkey80, tmp_path):
    """kv_sync follows a 3-master cluster into a standalone server: its markers are what the rounds ignore while it
    runs, and kv_cutover (pause every master, drain, verify, release) compares exactly the keys the followers logged
    since the offsets kv_sync returned - the keys scope, not every key."""
    source = cluster_of('redis70')
    load(source.client())
    pipe = source.client().pipeline(transaction=False)
    for n in range(2000):
        pipe.set(b'many:%d' % n, b'v')
    pipe.execute()
    args = dict(source=source.endpoint(), target=valkey80.endpoint(), record=str(tmp_path / 'sync.json'),
                started_timeout=180, max_lag=65536)
    try:
        follow_and_cut_over(source, valkey80, args, tmp_path)
    finally:
        unpause(source)
        engine(dict(args, state='absent'))


def follow_and_cut_over(source, valkey80, args, tmp_path):
    started = engine(args)
    assert not started.get('failed'), started.get('msg')
    logs, sizes = started['keys_logs'], started['keys_log_sizes']
    assert len(logs) == len(sizes) == 3 and logs == [p['keys_log'] for p in started['parts']]
    markers = sorted(m['key'] for m in started['markers'])
    assert len(set(markers)) == 3
    writes = 0
    client = source.client()
    for n in range(60):  # writes on every master, after the offsets
        client.set(b'after:%d' % n, b'%d' % n)
        writes += 1
    client.delete(b'many:5')
    target = valkey80.admin()
    deadline = time.time() + 120  # the followers apply them (a condition, not a fixed sleep)
    expected = [b'after:%d' % n for n in range(writes)]

    def applied():  # by every follower: each master's writes and its marker
        found = sorted(k.decode() for k in target.scan_iter(match=b'kvtools:sync:offset:*'))
        return target.exists(*expected) == writes and not target.exists(b'many:5') and found == markers

    while time.time() < deadline and not applied():
        time.sleep(0.05)
    # every master took writes: each follower's marker is on the target (written with its stream batches)
    assert markers == sorted(k.decode() for k in target.scan_iter(match=b'kvtools:sync:offset:*'))
    rounds = verify(source.endpoint(), valkey80.endpoint(), rounds=5, recheck_delay=0.5,
                    ignore_target_keys=started['markers'], target_expiry_offset=100 * 365 * 86400 * 1000)
    assert rounds['consistent'], rounds['summary']
    assert rounds['totals']['extra'] == 0, 'the followers\' markers are not data'

    with pytest.raises(KVError) as err:  # one offset for three logs: refused before anything is paused
        Cutover(Endpoint(source.endpoint(), 'source'), Endpoint(valkey80.endpoint(), 'target'),
                CutoverOptions(args['record'], keys_file_offset=[sizes[0]])).run()
    assert err.value.kind == 'config' and 'for 3 keys logs' in err.value.message
    done = Cutover(Endpoint(source.endpoint(), 'source'), Endpoint(valkey80.endpoint(), 'target'),
                   CutoverOptions(args['record'], keys_file_offset=sizes,
                                  verify_report=str(tmp_path / 'final.json'))).run()
    verification = done['verification']
    assert verification['consistent'] and verification['scope'] == 'keys', verification['summary']
    assert verification['keys_file']['start'] == sizes and verification['keys_file']['keys'] == writes + 1
    assert verification['totals']['keys'] == writes, 'only the keys written since the offsets were compared'
    assert verification['dbs'][0]['source_count'] == verification['dbs'][0]['target_count']
    assert done['writes_paused_s'] is not None and len(done['isolated_nodes']) == 3
    assert compare.differences(masters(source), valkey80.admin(), deep=True) == []
    assert_no_secret(done)
