"""kv_migrate out of and into clusters, and the type-aware copy into a cluster, against real clusters on loopback.

Every copy is checked by tests/support/compare.py (type-aware reads on the master that holds each key), never by
kv_verify; the source's data and write counter are checked unchanged (MIGRATE always carries COPY).
"""

import threading

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyJob, CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._migrate import Migrate, MigrateOptions
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import TMP_PREFIX
from tests.conftest import assert_no_secret
from tests.support import compare, data
from tests.support import cluster as kv_cluster

# the clusters of these tests start once per worker (session_clusters): keep them on one worker
pytestmark = pytest.mark.xdist_group('clusters')

TAGGED_KEYS = [b'{user:1}:profile', b'{user:1}:cart', b'{}empty-tag', b'a{\n}b', b'{\xff\x00}bin', b'x{y}{z}',
               b'{unclosed', b'}{closed-first}']


def masters(found):
    return [node.admin() for node in found.nodes]


def key_count(found):
    return sum(int(client.dbsize()) for client in masters(found))


def per_node(found):
    return dict(('127.0.0.1:%d' % node.port, int(node.admin().dbsize())) for node in found.nodes)


def load(client, prefix=b'', keys=1500):
    """Every type (big ones too), streams with groups, awkward and hash-tagged names, TTLs."""
    data.load_all_types(client, prefix=prefix, big=1500)
    data.load_streams(client, prefix=prefix)
    for n, name in enumerate(TAGGED_KEYS):
        client.set(prefix + name, b'tagged %d \x00\n' % n, px=3600 * 1000 if n % 2 else None)
    pipe = client.pipeline(transaction=False)
    for n in range(keys):  # enough keys for every slot range, some with a TTL
        pipe.set(prefix + b'k:%d' % n, b'v%d' % n, ex=7200 if n % 3 == 0 else None)
    pipe.execute()


def copy_dump_restore(source, target, **options):
    return DumpRestore(Endpoint(source, 'source'), Endpoint(target, 'target'), CopyOptions(**options)).run()


def migrate(source, target, **options):
    return Migrate(Endpoint(source, 'source'), Endpoint(target, 'target'), MigrateOptions(**options)).run()


def snapshot(found):
    """The data of every master (for never-touch-the-source checks)."""
    if isinstance(found, kv_cluster.Cluster):
        return [compare.snapshot(node, dbs=[0]) for node in found.nodes]
    return compare.snapshot(found, dbs=[0])


def writes(found):
    nodes = found.nodes if isinstance(found, kv_cluster.Cluster) else [found]
    return [compare.source_writes(node) for node in nodes]


def no_tmp_keys(found):
    return all(not list(client.scan_iter(match=TMP_PREFIX + b'*')) for client in masters(found))


def test_standalone_to_cluster_check_copy_rerun(redis70, cluster_of, run_module):
    """Redis 7.0 -> a Valkey 8.0 cluster through Ansible: check mode plans the MIGRATE calls and writes nothing,
    the copy writes every key on the master of its slot (one MIGRATE per target master), the rerun changes
    nothing; the source is untouched."""
    target = cluster_of('valkey80')
    load(redis70.admin())
    loaded = int(redis70.admin().dbsize())
    before, written_before = snapshot(redis70), writes(redis70)
    args = {'source': redis70.endpoint(), 'target': target.endpoint(node=1), 'batch_size': 500}

    plan = run_module('kv_migrate', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and plan['totals']['copied'] == loaded
    assert key_count(target) == 0, 'check mode wrote to the cluster'
    assert [n['slots'] for n in plan['cluster']['target_nodes']] == [5461, 5461, 5462]
    assert plan['batches'] >= 3 * (loaded // 500), 'the plan counts one MIGRATE call per target master'
    assert all(n['written'] == 0 and n['planned'] > 0 for n in plan['cluster']['target_nodes'])
    assert sum(n['planned'] for n in plan['cluster']['target_nodes']) == loaded

    first = run_module('kv_migrate', args)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['totals']['copied'] == loaded and first['totals']['failed'] == 0
    assert first['batches'] == plan['batches']
    written = dict((n['address'], n['written']) for n in first['cluster']['target_nodes'])
    assert written == per_node(target) and all(written.values()), written
    assert written == dict((n['address'], n['planned']) for n in plan['cluster']['target_nodes'])
    assert 'planned' not in first['cluster']['target_nodes'][0]
    assert compare.differences(redis70.admin(), masters(target), deep=True) == []
    assert_no_secret(first)

    second = run_module('kv_migrate', args)
    assert not second.get('failed'), second.get('msg')
    assert second['changed'] is False and second['totals']['identical'] == loaded
    assert snapshot(redis70) == before and writes(redis70) == written_before, 'the source changed'


def test_cluster_to_standalone(cluster_of, flavour_server):
    """A 3-master Valkey 8.0 cluster into a standalone Valkey 8.0: one MIGRATE per slot (a cluster node refuses
    keys of several slots in one call), every master read; the keys per source master are counted."""
    source = cluster_of('valkey80')
    target = flavour_server('valkey80', role='from-cluster-migrate')
    load(source.client())
    loaded = key_count(source)
    before, written_before = snapshot(source), writes(source)
    result = migrate(source.endpoint(node=2), target.endpoint())
    assert result['totals']['copied'] == loaded and result['totals']['failed'] == 0
    assert dict((n['address'], n['keys']) for n in result['cluster']['source_nodes']) == per_node(source)
    assert result['cluster']['target_nodes'] is None
    assert compare.differences(masters(source), target.admin(), deep=True) == []
    assert snapshot(source) == before and writes(source) == written_before, 'the source changed'
    again = migrate(source.endpoint(), target.endpoint())
    assert again['changed'] is False and again['totals']['identical'] == loaded


@pytest.mark.parametrize('flavour', ['redis70', 'valkey91'])
def test_cluster_3_to_2_masters_with_check_mode(cluster_of, flavour):
    """Three masters into two (other slot ranges): check mode writes nothing, the copy is identical, keys per
    node on both sides add up, the second run writes nothing."""
    source = cluster_of(flavour, masters=3)
    target = cluster_of(flavour, masters=2)
    load(source.client())
    loaded = key_count(source)
    plan = migrate(source.endpoint(), target.endpoint(), check_mode=True)
    assert plan['changed'] is True and plan['totals']['copied'] == loaded and key_count(target) == 0
    warnings = []
    result = Migrate(Endpoint(source.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'), MigrateOptions(),
                     warn=warnings.append).run()
    assert result['totals']['copied'] == loaded and result['totals']['failed'] == 0
    assert result['batches'] == plan['batches']
    slow = [w for w in warnings if 'scans across the slots' in w]
    assert len(slow) == (1 if flavour == 'redis70' else 0), warnings
    assert [n['written'] for n in result['cluster']['target_nodes']] == \
        [n['planned'] for n in plan['cluster']['target_nodes']]
    assert dict((n['address'], n['keys']) for n in result['cluster']['source_nodes']) == per_node(source)
    assert dict((n['address'], n['written']) for n in result['cluster']['target_nodes']) == per_node(target)
    assert compare.differences(masters(source), masters(target), deep=True) == []
    again = migrate(source.endpoint(), target.endpoint())
    assert again['changed'] is False and again['totals']['identical'] == loaded


def test_dbs_other_than_0_into_a_cluster_are_refused(redis70, cluster_of):
    target = cluster_of('redis70')
    redis70.admin(0).set(b'a', b'1')
    redis70.admin(2).set(b'b', b'2')
    with pytest.raises(KVError) as err:
        migrate(redis70.endpoint(), target.endpoint())
    assert err.value.kind == 'config' and 'holds db 0 only' in err.value.message
    assert key_count(target) == 0
    result = migrate(redis70.endpoint(), target.endpoint(), db_map={2: 0})
    assert result['totals']['copied'] == 2 and key_count(target) == 2


def test_counts_are_exact_when_a_target_master_runs_out_of_memory(redis70, cluster_factory):
    """A target master full half-way: MIGRATE stops there after writing part of a call, the other masters' calls
    of the same pipeline ran; copied is exactly what the cluster holds."""
    target = cluster_factory('valkey80', extra=['maxmemory 3mb', 'maxmemory-policy noeviction'])
    pipe = redis70.admin().pipeline(transaction=False)
    for n in range(6000):
        pipe.set(b'big:%d' % n, b'x' * 2000)
    pipe.execute()
    with pytest.raises(KVError) as err:
        migrate(redis70.endpoint(), target.endpoint(), batch_size=200, workers=1)
    assert err.value.kind == 'oom', str(err.value)
    totals = err.value.partial['totals']
    assert 0 < totals['copied'] == key_count(target) < 6000, totals


def test_reshard_during_kv_migrate_loses_nothing(cluster_factory, redis70, monkeypatch):
    """Slots of the target move while kv_migrate writes: one slot moved after the writers learnt the slots
    (MOVED), one slot half-way in a move while its keys are written (ASK: they go to the importing master), and
    slots with keys already copied moved in a thread while the copy goes on.  Every key arrives, on the master
    that owns its slot, and the counts are exact."""
    target = cluster_factory('redis70')
    source = redis70.admin()
    pipe = source.pipeline(transaction=False)
    for n in range(6000):
        pipe.set(b'k:%d' % n, b'v%d' % n)
    for n in range(200):
        pipe.set(b'{moved}:%d' % n, b'm')
        pipe.set(b'{asked}:%d' % n, b'a')
    pipe.execute()
    loaded = int(source.dbsize())
    moved_slot, asked_slot = key_slot(b'{moved}'), key_slot(b'{asked}')
    nodes = target.nodes
    owner = dict((slot, target.node_for(b'{%s}' % name))
                 for slot, name in ((moved_slot, b'moved'), (asked_slot, b'asked')))
    other = dict((slot, next(n for n in nodes if n is not owner[slot])) for slot in owner)
    busy_slots = sorted(set(key_slot(b'k:%d' % n) for n in range(0, 400)) - set(owner))[:6]
    errors = []

    def reshard_while_copying():
        try:
            for slot in busy_slots:
                here = target.node_for_slot(slot)
                there = nodes[(nodes.index(here) + 1) % len(nodes)]
                target.move_slot(slot, here, there)
        except Exception as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=reshard_while_copying)
    discover_clusters = CopyJob._discover_clusters

    def discover_then_reshard(job):
        discover_clusters(job)  # the writers route with what was true here ...
        target.move_slot(moved_slot, owner[moved_slot], other[moved_slot])  # ... MOVED
        target.start_move(asked_slot, owner[asked_slot], other[asked_slot])  # ASK
        thread.start()

    monkeypatch.setattr(CopyJob, '_discover_clusters', discover_then_reshard)
    try:
        result = migrate(redis70.endpoint(), target.endpoint(), batch_size=100)
    finally:
        if thread.ident is not None:
            thread.join()
    assert not errors, errors
    # finish the half-way move; nothing may be left behind on the migrating master
    assert not owner[asked_slot].admin().execute_command('CLUSTER', 'GETKEYSINSLOT', asked_slot, 10)
    target.end_move(asked_slot, other[asked_slot])
    target.wait_ok()
    assert result['totals']['copied'] == loaded and result['totals']['failed'] == 0, \
        (result['totals'], result['failures'][:3], result['cluster'])
    assert result['cluster']['redirects']['moved'] >= 1 and result['cluster']['redirects']['ask'] >= 1
    assert sum(n['written'] for n in result['cluster']['target_nodes']) == loaded
    assert key_count(target) == loaded
    assert compare.differences(source, masters(target)) == []
    for key in (b'{moved}:1', b'{asked}:1', b'k:1', b'k:399'):
        assert target.admin_for(key).exists(key), key


def test_type_aware_fallback_into_a_cluster(valkey9, cluster_of, run_module):
    """Valkey 9.1 -> a Valkey 8.0 cluster, which refuses every payload of the newer RDB version: each key is
    rebuilt with commands on the master of its slot, under a temporary name in the same slot; nothing is left
    behind, the copy is identical, the rerun changes nothing.  kv_migrate refuses the pair before writing."""
    target = cluster_of('valkey80')
    load(valkey9.admin(), keys=300)
    loaded = int(valkey9.admin().dbsize())
    args = {'source': valkey9.endpoint(), 'target': target.endpoint()}
    refused = run_module('kv_migrate', args)
    assert refused['failed'] and refused['error'] == 'payload' and 'kv_dump_restore' in refused['msg']
    assert key_count(target) == 0

    plan = run_module('kv_dump_restore', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['payload_path'] == 'commands' and plan['totals']['fallback'] == loaded and key_count(target) == 0
    assert sum(n['planned'] for n in plan['cluster']['target_nodes']) == loaded

    result = run_module('kv_dump_restore', args)
    assert not result.get('failed'), result.get('msg')
    assert result['payload_path'] == 'commands'
    assert result['totals']['fallback'] == result['totals']['copied'] == loaded and result['totals']['failed'] == 0
    written = dict((n['address'], n['written']) for n in result['cluster']['target_nodes'])
    assert sum(written.values()) == 0  # no RESTORE: every key went the type-aware way
    assert compare.differences(valkey9.admin(), masters(target), deep=True) == []
    assert no_tmp_keys(target)
    again = run_module('kv_dump_restore', args)
    assert again['changed'] is False and again['totals']['identical'] == loaded

    # out of a Valkey 9.1 cluster too: each key read on its source master, built on its target master
    source = cluster_of('valkey91')
    target.flushall()
    load(source.client(), keys=300)
    loaded = key_count(source)
    result = DumpRestore(Endpoint(source.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'),
                         CopyOptions()).run()
    assert result['payload_path'] == 'commands' and result['totals']['fallback'] == loaded
    assert result['totals']['copied'] == loaded and result['totals']['failed'] == 0
    assert compare.differences(masters(source), masters(target), deep=True) == []
    assert no_tmp_keys(target)


def test_type_aware_copy_into_a_cluster_follows_a_moved_slot(redis70, cluster_factory, monkeypatch):
    """payload=commands into a cluster whose slots moved after the writers learnt them: the keys are built on the
    master that answers (MOVED followed and counted), their temporary keys in their slot, nothing left behind."""
    target = cluster_factory('redis70')
    source = redis70.admin()
    data.load_all_types(source, prefix=b'{moved}', big=1500)
    for n in range(200):
        source.rpush(b'{moved}list:%d' % n, b'a', b'b', b'c')
    loaded = int(source.dbsize())
    slot = key_slot(b'{moved}')
    here = target.node_for_slot(slot)
    there = next(n for n in target.nodes if n is not here)
    discover_clusters = CopyJob._discover_clusters

    def discover_then_move(job):
        discover_clusters(job)
        target.move_slot(slot, here, there)

    monkeypatch.setattr(CopyJob, '_discover_clusters', discover_then_move)
    result = DumpRestore(Endpoint(redis70.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'),
                         CopyOptions(payload='commands')).run()
    assert result['totals']['fallback'] == result['totals']['copied'] == loaded, result['totals']
    assert result['cluster']['redirects']['moved'] >= 1
    assert int(there.admin().dbsize()) == loaded and int(here.admin().dbsize()) == 0
    assert compare.differences(source, masters(target), deep=True) == []
    assert no_tmp_keys(target)


def test_a_slow_call_into_a_cluster_sets_the_expiries_again_on_each_master(redis70, cluster_of, monkeypatch):
    """MIGRATE carries relative TTLs: after a slow call the keys' expiry is set again from the source's, with
    PEXPIREAT routed to the master of each key."""
    from ansible_collections.kvtools.migration.plugins.module_utils import _migrate
    from ansible_collections.kvtools.migration.plugins.module_utils._cluster_target import ClusterTargetSide
    monkeypatch.setattr(_migrate, 'EXPIRY_DRIFT_S', -1.0)  # every call counts as slow
    sent = []
    original = ClusterTargetSide.call

    def call(side, commands):
        sent.extend(command[1] for command in commands if command[0] == b'PEXPIREAT')
        return original(side, commands)

    monkeypatch.setattr(ClusterTargetSide, 'call', call)
    target = cluster_of('redis70')
    pipe = redis70.admin().pipeline(transaction=False)
    for n in range(900):
        pipe.set(b'k:%d' % n, b'v', px=3600 * 1000 + n if n % 3 == 0 else None)
    pipe.execute()
    result = migrate(redis70.endpoint(), target.endpoint(), batch_size=100)
    assert result['totals']['copied'] == 900
    assert sorted(sent) == sorted(b'k:%d' % n for n in range(0, 900, 3))
    assert compare.differences(redis70.admin(), masters(target), ttl_tolerance_ms=50) == []


def test_a_reshard_of_the_source_stops_clearly_and_the_rerun_completes(cluster_factory, flavour_server, monkeypatch):
    """A slot of the source moves between the SCAN and the MIGRATE of its keys: the old master answers MOVED
    (MIGRATE from there cannot follow); the run stops with that said, copied counts what arrived, and a rerun
    after the reshard copies the rest."""
    from ansible_collections.kvtools.migration.plugins.module_utils._migrate_route import MigrateRoutes
    source = cluster_factory('valkey80')
    target = flavour_server('valkey80', role='source-reshard')
    pipe = source.client().pipeline(transaction=False)
    for n in range(2000):
        pipe.set(b'k:%d' % n, b'v%d' % n)
    pipe.execute()
    loaded = key_count(source)
    original = MigrateRoutes.calls
    moved = []
    once = threading.Lock()  # the masters are copied in parallel: exactly one slot moves (moves racing each other
    #                          on SETSLOT NODE can make a node drop the keys of a slot it believes it lost)

    def calls(routes, keys, slots=None):
        out = original(routes, keys, slots)
        with once:
            if out and not moved:
                slot = key_slot(out[0][1][0])
                here = source.node_for_slot(slot)
                source.move_slot(slot, here, next(n for n in source.nodes if n is not here))
                moved.append(slot)
        return out

    monkeypatch.setattr(MigrateRoutes, 'calls', calls)
    with pytest.raises(KVError) as err:
        migrate(source.endpoint(), target.endpoint(), workers=1)
    assert err.value.kind == 'moved' and 'being resharded' in err.value.message, err.value.message
    assert err.value.partial['totals']['copied'] == int(target.admin().dbsize()) < loaded
    monkeypatch.setattr(MigrateRoutes, 'calls', original)
    assert key_count(source) == loaded and len(moved) == 1  # the reshard itself lost nothing
    result = migrate(source.endpoint(), target.endpoint())
    assert result['totals']['failed'] == 0 and int(target.admin().dbsize()) == loaded
    assert compare.differences(masters(source), target.admin()) == []


def test_preflight_plans_migrate_into_a_cluster_when_asked(redis70, cluster_of):
    """kv_preflight: into a cluster method auto chooses dump_restore and says whether MIGRATE could work; method
    migrate is planned (no longer refused), with the plan per node."""
    from ansible_collections.kvtools.migration.plugins.module_utils._preflight import preflight
    target = cluster_of('valkey80')
    redis70.admin().set(b'k', b'v')
    source_ep, target_ep = Endpoint(redis70.endpoint(), 'source'), Endpoint(target.endpoint(), 'target')
    auto = preflight(source_ep, target_ep)
    assert auto['ok'] and auto['method'] == 'dump_restore' and auto['migrate_possible'] is True, auto['problems']
    asked = preflight(source_ep, target_ep, method='migrate')
    assert asked['ok'] and asked['method'] == 'migrate' and asked['migrate_possible'] is True, asked['problems']
    assert any('one MIGRATE call per target master' in reason for reason in asked['method_reasons'])
    assert len(asked['cluster']['target_nodes']) == 3


def test_type_aware_copy_into_a_slot_being_moved_waits_then_fails(redis70, cluster_factory, monkeypatch):
    """payload=commands into a cluster with a slot stuck half-way in a move (ASK): its keys wait for the move, then
    fail (counted, named), every other key is copied; once the move is over the rerun copies them."""
    from ansible_collections.kvtools.migration.plugins.module_utils import _type_aware_cluster
    monkeypatch.setattr(_type_aware_cluster, 'MOVE_WAIT_S', 0.3)
    target = cluster_factory('redis70')
    source = redis70.admin()
    for n in range(5):
        source.rpush(b'{asked}:%d' % n, b'a', b'b')
    for n in range(100):
        source.sadd(b'set:%d' % n, b'x', b'y')
    slot = key_slot(b'{asked}')
    here = target.node_for_slot(slot)
    there = next(n for n in target.nodes if n is not here)
    target.start_move(slot, here, there)

    def run():
        return DumpRestore(Endpoint(redis70.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'),
                           CopyOptions(payload='commands', on_conflict='replace')).run()

    result = run()
    assert result['totals']['copied'] == 100 and result['totals']['failed'] == 5, result['totals']
    assert sorted(f['key'] for f in result['failures']) == ['{asked}:%d' % n for n in range(5)]
    assert result['cluster']['redirects']['ask'] >= 1
    assert key_count(target) == 100 and no_tmp_keys(target)
    target.end_move(slot, there)
    target.wait_ok()
    again = run()
    assert again['totals']['failed'] == 0 and again['totals']['copied'] == 5
    assert compare.differences(source, masters(target)) == []


def test_masters_that_disagree_for_a_moment_on_a_moved_slot_are_waited_for(cluster_factory, redis70, monkeypatch):
    """The end of a reshard as operators' tools do it: ``SETSLOT slot NODE new`` is sent to one master after the
    other.  Once the old owner has it and before the new one has, the old owner answers MOVED to the new one and
    the new one, still importing, MOVED back: the writers (RESTORE, then MIGRATE) wait until the masters agree,
    and no key counts as failed.  (Seen as one key of 6,400 failed on a loaded machine when the writers gave up
    after 16 quick rounds.)"""
    target = cluster_factory('redis70')
    source = redis70.admin()
    tags = (b'{pingpong}', b'{pongping}')
    for tag in tags:
        for n in range(40):
            source.set(tag + b':%d' % n, b'v%d' % n)
    for n in range(300):
        source.set(b'k:%d' % n, b'v%d' % n)
    loaded = int(source.dbsize())
    discover_clusters = CopyJob._discover_clusters
    timers = []

    def discover_then_disagree(job):
        discover_clusters(job)  # the writers route every key of the slot to its owner at this point
        slot = key_slot(tags[len(timers)])
        owner = target.node_for_slot(slot)
        new = next(node for node in target.nodes if node is not owner)
        target.start_move(slot, owner, new)
        target.end_move(slot, new, nodes=[owner])  # the old owner says MOVED new; new, still importing, says MOVED old
        timers.append(threading.Timer(0.5, target.end_move, (slot, new)))
        timers[-1].start()

    monkeypatch.setattr(CopyJob, '_discover_clusters', discover_then_disagree)
    for run in (copy_dump_restore, migrate):
        target.flushall()
        try:
            result = run(redis70.endpoint(), target.endpoint(), batch_size=50)
        finally:
            timers[-1].join()
        target.wait_ok()
        assert result['totals']['failed'] == 0 and result['totals']['copied'] == loaded, \
            (run.__name__, result['totals'], result['failures'][:3])
        assert result['cluster']['redirects']['moved'] >= 2, result['cluster']['redirects']
        assert compare.differences(source, masters(target)) == []
        assert key_count(target) == loaded
