"""kv_isolate on a cluster, against a real 3-master cluster: every master paused (or every node's application
users switched off), a writer held back or refused on each, released again; a node that cannot be isolated
undoes what was done on the others."""

import json
import os
import signal
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ansible_collections.kvtools.migration.plugins.module_utils._isolate import renewer_alive
from tests.conftest import assert_no_secret
from tests.support import cluster as kv_cluster
from tests.support.pause_probe import WriteProbe

pytestmark = pytest.mark.xdist_group('cluster')

APP_PASSWORD = 'app-Cluster-7'


def key_on(found, node):
    """A key whose slot ``node`` serves (asked from the servers)."""
    for n in range(100000):
        key = b'kvtools:probe:%d' % n
        if found.node_for(key) is node:
            return key
    raise AssertionError('no key for %s' % node.name)


def app_client(node, timeout=5.0):
    return redis.Redis(host='127.0.0.1', port=node.port, username='app', password=APP_PASSWORD,
                       socket_timeout=timeout, decode_responses=False, retry=Retry(NoBackoff(), 0))


def addresses(found):
    return sorted('127.0.0.1:%d' % node.port for node in found.nodes)


@pytest.fixture
def cluster_cleanup():
    """(cluster, record, users, probes): renewers killed, every master unpaused, users deleted, probes ended."""
    todo = []
    yield todo
    for found, record, users, probes in todo:
        directory = os.path.dirname(record)
        for name in os.listdir(directory):
            if name.startswith(os.path.basename(record) + '.node-'):
                with open(os.path.join(directory, name)) as fh:
                    pause = json.load(fh).get('pause') or {}
                if renewer_alive(pause):
                    os.kill(pause['pid'], signal.SIGKILL)
        for node in found.nodes:
            admin = node.admin()
            admin.execute_command('CLIENT', 'UNPAUSE')
            for user in users:
                admin.execute_command('ACL', 'DELUSER', user)
        for probe in probes:
            probe.finished(30)
            probe.close()


def test_pause_every_master_check_isolate_rerun_release(cluster_of, run_module, tmp_path, cluster_cleanup):
    found = cluster_of('valkey80')
    record = str(tmp_path / 'isolation.json')
    probes = []
    cluster_cleanup.append((found, record, [], probes))
    args = {'server': found.endpoint('admin', node=1), 'mode': 'pause', 'record': record, 'pause_ms': 3000,
            'verify_window_ms': 300}
    keys = dict((node.port, key_on(found, node)) for node in found.nodes)

    plan = run_module('kv_isolate', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and plan['cluster'] is True
    assert sorted(n['address'] for n in plan['nodes']) == addresses(found)
    assert sorted(c.split(': ')[0] for c in plan['executed_commands'] if c.endswith('CLIENT PAUSE 3000 WRITE')) \
        == addresses(found)
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith('isolation')], 'check mode wrote'
    for node in found.nodes:  # nothing paused
        node.admin().set(keys[node.port], b'free')

    first = run_module('kv_isolate', args)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['migrate_allowed'] is False
    assert sorted(n['address'] for n in first['nodes']) == addresses(found)
    assert sorted(r['address'] for r in first['renewers']) == addresses(found)
    assert all(renewer_alive(r) for r in first['renewers'])
    assert first['verify']['stopped'] is True and len(first['verify']['nodes']) == 3
    assert isinstance(first['isolated_at'], float)
    assert_no_secret(first)
    for node in found.nodes:  # a writer on every master is held back
        probe = WriteProbe(node, key=keys[node.port]).start()
        probes.append(probe)
        assert probe.blocked(), node.name
    with open(record) as fh:
        saved = json.load(fh)
    assert sorted(n['address'] for n in saved['nodes']) == addresses(found) and saved['state'] == 'isolated'

    again = run_module('kv_isolate', args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False, again

    released = run_module('kv_isolate', dict(args, state='released'))
    assert not released.get('failed'), released.get('msg')
    assert released['changed'] is True and all(n['renewer_stopped'] for n in released['nodes'])
    assert released['released_at'] >= first['isolated_at']
    for probe in probes:
        assert probe.finished(30), 'a writer stayed blocked after the release'
    assert not any(renewer_alive(r) for r in first['renewers'])
    assert run_module('kv_isolate', dict(args, state='released'))['changed'] is False


def test_acl_every_node_refuses_the_app_then_restores(cluster_of, run_module, tmp_path, cluster_cleanup):
    found = cluster_of('valkey80')
    record = str(tmp_path / 'acl.json')
    cluster_cleanup.append((found, record, ['app'], []))
    for node in found.nodes:
        node.admin().execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PASSWORD, '~*', '+@all')
    sessions = [app_client(node) for node in found.nodes]
    for session in sessions:
        session.ping()
    args = {'server': found.endpoint('admin'), 'mode': 'acl', 'users': ['app'], 'record': record,
            'verify_window_ms': 300}

    plan = run_module('kv_isolate', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and not os.path.exists(record)
    assert sorted(c.split(': ')[0] for c in plan['executed_commands'] if c.endswith('ACL SETUSER app off')) \
        == addresses(found)
    for node in found.nodes:
        app_client(node).ping()

    first = run_module('kv_isolate', args)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['connections_killed'] >= 3
    assert sorted(n['address'] for n in first['nodes']) == addresses(found)
    assert_no_secret(first, APP_PASSWORD)
    for session, node in zip(sessions, found.nodes):
        with pytest.raises(redis.ConnectionError):  # the live session was dropped ...
            session.set(key_on(found, node), b'x')
        with pytest.raises(redis.AuthenticationError):  # ... and cannot come back on any master
            app_client(node).ping()
    assert run_module('kv_isolate', args)['changed'] is False

    released = run_module('kv_isolate', dict(args, state='released'))
    assert not released.get('failed'), released.get('msg')
    assert released['changed'] is True
    for node in found.nodes:
        app_client(node).set(key_on(found, node), b'back')
    assert run_module('kv_isolate', dict(args, state='released'))['changed'] is False


def test_a_node_that_cannot_be_isolated_undoes_the_others(cluster_of, run_module, tmp_path, cluster_cleanup):
    """The user exists on the first two masters only: the third refuses, the first two are switched back on."""
    found = cluster_of('valkey80')
    record = str(tmp_path / 'acl.json')
    cluster_cleanup.append((found, record, ['app'], []))
    last = found.nodes[-1]  # the masters are isolated in slot order: it serves the last slots
    for node in found.nodes:
        if node is not last:
            node.admin().execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PASSWORD, '~*', '+@all')
    failed = run_module('kv_isolate', {'server': found.endpoint('admin'), 'mode': 'acl', 'users': ['app'],
                                       'record': record, 'verify_window_ms': 0})
    assert failed.get('failed') and failed['error'] == 'config', failed
    assert '127.0.0.1:%d' % last.port in failed['msg'] and 'Released again' in failed['msg'], failed['msg']
    for node in found.nodes:
        if node is not last:
            app_client(node).ping()  # switched on again
    with open(record) as fh:
        assert json.load(fh)['state'] == 'released'


def add_replica(found, master):
    """A replica of ``master`` joins the cluster (a node of its own, not in ``found.nodes``); returned once the
    cluster lists it as a replica (it need not have synced: kv_isolate's ACL changes do not depend on its data)."""
    replica = found._node(len(found.nodes) + 1).start()
    try:
        seed = found.nodes[0].admin()
        seed.execute_command('CLUSTER', 'MEET', '127.0.0.1', replica.port, kv_cluster.Cluster.bus_port(replica))
        master_id = master.admin().execute_command('CLUSTER', 'MYID').decode()
        deadline = time.time() + 60
        while time.time() < deadline:
            known = replica.admin().execute_command('CLUSTER', 'NODES').decode()
            if master_id in known:
                try:
                    replica.admin().execute_command('CLUSTER', 'REPLICATE', master_id)
                except redis.ResponseError:
                    pass  # not known as a master here yet
                else:
                    break
            time.sleep(0.1)
        while time.time() < deadline:
            shards = seed.execute_command('CLUSTER', 'SHARDS')
            listed = [n for shard in shards for n in shard_nodes(shard)
                      if n.get(b'port') == replica.port and n.get(b'role') == b'replica'
                      and n.get(b'health') != b'fail']
            if listed:
                return replica
            time.sleep(0.1)
        raise AssertionError('the replica did not join the cluster')
    except Exception:
        replica.cleanup()
        raise


def shard_nodes(shard):
    shard = shard if isinstance(shard, dict) else dict(zip(shard[::2], shard[1::2]))
    for node in shard.get(b'nodes') or []:
        yield node if isinstance(node, dict) else dict(zip(node[::2], node[1::2]))


def test_acl_reaches_the_replicas_too(cluster_factory, run_module, tmp_path):
    """ACL users are per node: a replica (where apps may write after a failover) has its users switched off too."""
    found = cluster_factory('valkey80')
    replica = add_replica(found, found.nodes[0])
    record = str(tmp_path / 'acl.json')
    try:
        for node in found.nodes + [replica]:
            node.admin().execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PASSWORD, '~*', '+@all')
        args = {'server': found.endpoint('admin', node=2), 'mode': 'acl', 'users': ['app'], 'record': record,
                'verify_window_ms': 200}
        first = run_module('kv_isolate', args)
        assert not first.get('failed'), first.get('msg')
        roles = dict((n['address'], n['role']) for n in first['nodes'])
        assert roles.pop('127.0.0.1:%d' % replica.port) == 'replica'
        assert sorted(roles) == addresses(found) and set(roles.values()) == {'master'}
        assert len(first['verify']['nodes']) == 3  # the write check watches the masters
        with pytest.raises(redis.AuthenticationError):
            app_client(replica).ping()
        released = run_module('kv_isolate', dict(args, state='released'))
        assert not released.get('failed'), released.get('msg')
        assert '127.0.0.1:%d' % replica.port in [n['address'] for n in released['nodes']]
        app_client(replica).ping()
        for node in found.nodes:
            app_client(node).ping()
    finally:
        replica.cleanup()
