"""Clusters as source and target of kv_dump_restore, against real clusters on loopback.

Every copy is checked by tests/support/compare.py (type-aware reads on the master that holds each key), never
by kv_verify.  The clusters come from tests/support/cluster.py: 3 masters (2 for the 3 -> 2 copy), no replicas.
"""

import threading

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyJob, CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from tests.conftest import assert_no_secret
from tests.support import cluster as kv_cluster
from tests.support import compare, data

# awkward names that also exercise hash tags: the slot comes from the tag, not from the whole name
TAGGED_KEYS = [b'{user:1}:profile', b'{user:1}:cart', b'{}empty-tag', b'a{\n}b', b'{\xff\x00}bin', b'x{y}{z}',
               b'{unclosed', b'}{closed-first}']


def masters(found):
    return [node.admin() for node in found.nodes]


def load(client, prefix=b''):
    """Every type, awkward names, TTLs and hash-tagged names through ``client`` (a server or a cluster client)."""
    keys = data.load_all_types(client, prefix=prefix, big=1500)
    data.load_streams(client, prefix=prefix)
    for n, name in enumerate(TAGGED_KEYS):
        client.set(prefix + name, b'tagged %d \x00\n' % n, px=3600 * 1000 if n % 2 else None)
    for n in range(300):  # enough keys for every master, some with a TTL
        client.set(prefix + b'k:%d' % n, b'v%d' % n, ex=7200 if n % 3 == 0 else None)
    return keys


def copy(source, target, **options):
    return DumpRestore(Endpoint(source, 'source'), Endpoint(target, 'target'), CopyOptions(**options)).run()


def key_count(found):
    return sum(int(client.dbsize()) for client in masters(found))


def test_key_slot_matches_the_servers(cluster_of):
    found = cluster_of('redis70')
    admin = found.nodes[0].admin()
    names = data.AWKWARD_KEYS + TAGGED_KEYS + [b'foo', b'{foo}bar', b'123456789']
    for name in names:
        assert key_slot(name) == int(admin.execute_command('CLUSTER', 'KEYSLOT', name)), name
    assert key_slot(b'123456789') == 0x31C3 % 16384  # the CRC16-XMODEM check value


def test_standalone_to_cluster_check_copy_rerun_then_back(redis70, cluster_of, flavour_server, run_module):
    """Redis 7.0 -> a Valkey 8.0 cluster through Ansible (check mode, copy, second run), then the cluster back
    into a standalone Valkey 8.0: each identical by an independent comparison."""
    target = cluster_of('valkey80')
    load(redis70.admin())
    loaded = int(redis70.admin().dbsize())
    writes = compare.source_writes(redis70)
    args = {'source': redis70.endpoint(), 'target': target.endpoint(node=1)}

    plan = run_module('kv_dump_restore', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and plan['totals']['copied'] == loaded
    assert key_count(target) == 0, 'check mode wrote to the cluster'
    assert [n['slots'] for n in plan['cluster']['target_nodes']] == [5461, 5461, 5462]

    first = run_module('kv_dump_restore', args)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['totals']['copied'] == loaded and first['totals']['failed'] == 0
    written = dict((n['address'], n['written']) for n in first['cluster']['target_nodes'])
    assert sum(written.values()) == loaded and all(written.values()), written
    assert written == dict(('127.0.0.1:%d' % node.port, int(node.admin().dbsize())) for node in target.nodes)
    assert first['target']['cluster']['discovered_with'] == 'CLUSTER SHARDS'
    assert compare.differences(redis70.admin(), masters(target), deep=True) == []
    assert_no_secret(first)

    second = run_module('kv_dump_restore', args)
    assert not second.get('failed'), second.get('msg')
    assert second['changed'] is False and second['totals']['identical'] == loaded
    assert compare.source_writes(redis70) == writes, 'the source was written to'

    back = flavour_server('valkey80', role='from-cluster')
    result = copy(target.endpoint(node=2), back.endpoint())
    assert result['totals']['copied'] == loaded and result['totals']['failed'] == 0
    per_node = dict((n['address'], n['keys']) for n in result['cluster']['source_nodes'])
    assert per_node == written
    assert compare.differences(masters(target), back.admin(), deep=True) == []
    assert compare.differences(redis70.admin(), back.admin(), deep=True) == []


@pytest.mark.parametrize('flavour', ['redis70', 'valkey91'])
def test_cluster_3_to_2_masters(cluster_of, flavour):
    """Three masters into two (other slot ranges), every type; the second run writes nothing."""
    source = cluster_of(flavour, masters=3)
    target = cluster_of(flavour, masters=2)
    load(source.client())
    loaded = key_count(source)
    result = copy(source.endpoint(), target.endpoint())
    assert result['totals']['copied'] == loaded and result['totals']['failed'] == 0
    assert len(result['cluster']['source_nodes']) == 3 and len(result['cluster']['target_nodes']) == 2
    assert sum(n['keys'] for n in result['cluster']['source_nodes']) == loaded
    assert compare.differences(masters(source), masters(target), deep=True) == []
    again = copy(source.endpoint(), target.endpoint())
    assert again['changed'] is False and again['totals']['identical'] == loaded


def test_dbs_other_than_0_into_a_cluster(redis70, cluster_of):
    """A source db other than 0 into a cluster is refused before anything is written, unless db_map sends it
    (or several dbs) to 0; then on_conflict decides between keys of the same name."""
    target = cluster_of('redis70')
    redis70.admin(0).set(b'same', b'from db 0')
    redis70.admin(3).set(b'same', b'from db 3')
    redis70.admin(3).set(b'only3', b'x')
    with pytest.raises(KVError) as err:
        copy(redis70.endpoint(), target.endpoint())
    assert err.value.kind == 'config'
    assert 'holds db 0 only' in err.value.message and 'db_map: {3: 0}' in err.value.message
    assert key_count(target) == 0
    result = copy(redis70.endpoint(), target.endpoint(), dbs=[3], db_map={3: 0})
    assert result['totals']['copied'] == 2
    skipped = copy(redis70.endpoint(), target.endpoint(), db_map={3: 0}, on_conflict='skip')
    assert skipped['totals']['skipped'] == 1 and skipped['totals']['identical'] == 2
    assert target.admin_for(b'same').get(b'same') == b'from db 3'


def test_unassigned_slot_is_refused(cluster_factory, redis70):
    found = cluster_factory('redis70')
    redis70.admin().set(b'k', b'v')
    for node in found.nodes:  # DELSLOTS is local to a node: every node forgets the slot
        node.admin().execute_command('CLUSTER', 'DELSLOTS', 5)
    with pytest.raises(KVError) as err:
        copy(redis70.endpoint(), found.endpoint(node=1))
    assert 'does not serve every slot' in err.value.message and '(5)' in err.value.message
    assert key_count(found) == 0


def test_reshard_during_the_copy_loses_nothing(cluster_factory, redis70, monkeypatch):
    """Slots move while the copy writes: one slot moved after the writers learnt the slots (MOVED), one slot
    half-way in a move while its keys are written (ASK), and slots with keys already copied moved by MIGRATE
    in a thread while the copy goes on.  Every key arrives, on the master that owns its slot."""
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
    stop = threading.Event()
    errors = []

    def reshard_while_copying():
        try:
            for slot in busy_slots:
                if stop.is_set():
                    return
                here = next(n for n in nodes if n is target.node_for_slot(slot))
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
        result = copy(redis70.endpoint(), target.endpoint(), batch_size=100)
    finally:
        stop.set()
        if thread.ident is not None:
            thread.join()
    assert not errors, errors
    # finish the half-way move; nothing may be left behind on the migrating node
    assert not owner[asked_slot].admin().execute_command('CLUSTER', 'GETKEYSINSLOT', asked_slot, 10)
    target.end_move(asked_slot, other[asked_slot])
    target.wait_ok()
    assert result['totals']['copied'] == loaded and result['totals']['failed'] == 0
    assert result['cluster']['redirects']['moved'] >= 1 and result['cluster']['redirects']['ask'] >= 200
    assert key_count(target) == loaded
    assert compare.differences(source, masters(target)) == []
    for key in (b'{moved}:1', b'{asked}:1', b'k:1', b'k:399'):
        assert target.admin_for(key).exists(key), key


def verify(source, target, **options):
    from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
    from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions
    return Verifier(Endpoint(source, 'source'), Endpoint(target, 'target'), VerifyOptions(**options)).run()


def test_verify_per_node_both_directions(redis70, cluster_of, run_modules):
    """kv_verify with a cluster on either side (and on both, 3 against 2 masters): the same checks and report
    shape as between two servers, with counts per master; differences are found on the master that holds them."""
    source_cluster = cluster_of('redis70')
    target_cluster = cluster_of('redis70', masters=2)
    load(redis70.admin())
    loaded = int(redis70.admin().dbsize())
    copy(redis70.endpoint(), source_cluster.endpoint())
    copy(source_cluster.endpoint(), target_cluster.endpoint())
    pairs = [(redis70, source_cluster), (source_cluster, redis70), (source_cluster, target_cluster),
             (target_cluster, source_cluster)]
    calls = [('kv_verify', {'source': a.endpoint(), 'target': b.endpoint()}) for a, b in pairs]
    for (a, b), result in zip(pairs, run_modules(calls)):
        assert not result.get('failed'), result.get('msg')
        assert result['consistent'] is True and result['totals']['keys'] == loaded, result['summary']
        assert result['totals']['identical'] == loaded and result['differences'] == []
        for side, found in (('source', a), ('target', b)):
            nodes = result[side].get('cluster')
            if isinstance(found, kv_cluster.Cluster):
                counts = dict((n['address'], n['counts']['keys']) for n in nodes['masters'])
                assert counts == dict(('127.0.0.1:%d' % node.port, int(node.admin().dbsize()))
                                      for node in found.nodes), (side, counts)
            else:
                assert nodes is None

    extra, changed, gone = b'{user:1}:extra', b'{user:1}:profile', b'k:7'
    target_cluster.admin_for(extra).set(extra, b'x')
    target_cluster.admin_for(changed).set(changed, b'other')
    target_cluster.admin_for(gone).delete(gone)
    for a, b, reverse in ((source_cluster, target_cluster, False), (target_cluster, source_cluster, True)):
        result = verify(a.endpoint(), b.endpoint())
        kinds = sorted((d['kind'], d['key']) for d in result['differences'])
        if reverse:
            assert kinds == [('extra', 'k:7'), ('missing', '{user:1}:extra'), ('value_differs', '{user:1}:profile')]
        else:
            assert kinds == [('extra', '{user:1}:extra'), ('missing', 'k:7'), ('value_differs', '{user:1}:profile')]
        assert result['consistent'] is False
        holder = dict((n['address'], n['counts']) for n in result['target' if not reverse else 'source']['cluster']
                      ['masters'])
        node = target_cluster.node_for(changed)
        assert holder['127.0.0.1:%d' % node.port]['conflicts'] == 1


def test_tls_cluster_as_target_and_source(redis70, cluster_factory, flavour_server):
    """A TLS-only Valkey 8.0 cluster (bus over TLS too): its masters' TLS ports are found (CLUSTER SHARDS
    tls-port) and reached with the node's CA; a copy in, a verify both ways, a copy back out."""
    target = cluster_factory('valkey80', tls=True)
    load(redis70.admin())
    loaded = int(redis70.admin().dbsize())
    endpoint = target.endpoint(node=1)
    assert endpoint['tls'] is True
    result = copy(redis70.endpoint(), endpoint)
    assert result['totals']['copied'] == loaded and result['totals']['failed'] == 0
    assert sorted(n['address'] for n in result['cluster']['target_nodes']) == \
        sorted('127.0.0.1:%d' % node.port for node in target.nodes)
    assert compare.differences(redis70.admin(), masters(target), deep=True) == []
    for a, b in ((redis70.endpoint(), endpoint), (endpoint, redis70.endpoint())):
        checked = verify(a, b)
        assert checked['consistent'] is True and checked['totals']['keys'] == loaded, checked['summary']
    back = flavour_server('valkey80', role='from-tls-cluster')
    out = copy(endpoint, back.endpoint())
    assert out['totals']['copied'] == loaded
    assert compare.differences(masters(target), back.admin(), deep=True) == []


def test_resume_a_cluster_source_from_its_checkpoint(cluster_of, flavour_server, tmp_path, monkeypatch):
    """A copy out of a cluster stops midway (a fault injected after 8 checkpoints); the checkpoint holds every
    master's SCAN cursor, and the rerun continues from them and completes, nothing lost."""
    import json
    import os
    from ansible_collections.kvtools.migration.plugins.module_utils import _copy
    source = cluster_of('redis70')
    client = source.client()
    pipe = client.pipeline(transaction=False)
    for n in range(6000):
        pipe.set(b'k:%d' % n, b'v%d' % n)
    pipe.execute()
    target = flavour_server('redis70', role='resume-target')
    ckpt = str(tmp_path / 'cluster.ckpt')
    original = _copy.CopyJob._save_checkpoint
    saves = []

    def save(self, db, cursor, recheck):
        original(self, db, cursor, recheck)
        if cursor != 0:
            saves.append(cursor)
            if len(saves) == 8:
                raise KVError('interrupted for the test', kind='interrupted')
    monkeypatch.setattr(_copy.CopyJob, '_save_checkpoint', save)
    with pytest.raises(KVError) as err:
        copy(source.endpoint(), target.endpoint(), checkpoint=ckpt, batch_size=200, workers=1)
    monkeypatch.undo()
    assert err.value.kind == 'interrupted'
    cursor = json.load(open(ckpt))['dbs']['0']['cursor']
    assert isinstance(cursor, list) and len(cursor) == 3 and any(c > 0 for c in cursor), cursor
    done = int(target.admin().dbsize())
    assert 0 < done < 6000
    result = copy(source.endpoint(), target.endpoint(), checkpoint=ckpt, batch_size=200)
    assert result['resumed'] is True and result['totals']['copied'] == 6000 - done
    assert not os.path.exists(ckpt)
    assert compare.differences(masters(source), target.admin()) == []


def test_room_is_checked_per_master(redis70, cluster_factory):
    """Into a cluster the room under maxmemory is judged per master, for the share of the data its slots take:
    a warning names each master that is too small (check mode: the plan, nothing written)."""
    target = cluster_factory('redis70', extra=['maxmemory 3mb', 'maxmemory-policy noeviction'])
    pipe = redis70.admin().pipeline(transaction=False)
    for n in range(12000):
        pipe.set(b'k:%d' % n, b'x' * 1000)
    pipe.execute()
    warnings = []
    options = CopyOptions(check_mode=True)
    result = DumpRestore(Endpoint(redis70.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'), options,
                         warn=warnings.append).run()
    assert result['totals']['copied'] == 12000 and key_count(target) == 0
    too_small = [w for w in warnings if 'is too small' in w]
    assert sorted(w.split()[3] for w in too_small) == sorted('127.0.0.1:%d' % n.port for n in target.nodes), warnings
