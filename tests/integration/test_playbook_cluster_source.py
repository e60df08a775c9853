"""playbooks/migrate.yml with a cluster as kv_source (offline: preflight, isolate, backup, copy, verify, cut over),
through ansible-playbook against real servers; compared with tests/support/compare.py."""

import json
import os

import pytest

from tests.integration.test_cluster import copy, load, masters
from tests.integration.test_cluster_isolate import key_on
from tests.integration.test_playbook_migrate import PLAYBOOK, no_secret, recap, write_inventory
from tests.support import compare
from tests.support.ansible import ansible_playbook
from tests.support.app_writer import AppWriter
from tests.support.pause_probe import WriteProbe

pytestmark = pytest.mark.xdist_group('cluster')


def test_cluster_into_standalone_check_migrate_verify_rerun(cluster_of, flavour_server, tmp_path):
    """A 3-master Valkey 8.0 cluster -> a standalone Valkey 8.0, kv_strategy offline, every master paused and
    backed up: --check writes nothing, the run copies and
    verifies, the second run changes nothing."""
    source = cluster_of('valkey80')
    target = flavour_server('valkey80', role='from-cluster-playbook')
    load(source.client())
    loaded = sum(int(node.admin().dbsize()) for node in source.nodes)
    inventory = write_inventory(tmp_path, {'from-cluster': (source.endpoint(node=1), target.endpoint())},
                                kv_isolation='pause', kv_backup=True, kv_strategy='offline')
    writes = [compare.source_writes(node) for node in source.nodes]

    dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert 'the source is a cluster: kv_dump_restore reads every master' in dry.stdout
    assert 'strategy: offline' in dry.stdout
    assert dry.stdout.count('source master 127.0.0.1:') >= 3
    assert int(target.admin().dbsize()) == 0, 'check mode wrote to the target'
    work = tmp_path / 'work'
    assert not [n for n in os.listdir(str(work)) if 'backup' in n or 'isolat' in n], os.listdir(str(work))

    first = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first.stdout)['from-cluster']['failed'] == 0
    no_secret(first.stdout)
    assert compare.differences(masters(source), target.admin(), deep=True) == []
    report = json.loads((tmp_path / 'reports' / 'from-cluster-latest.json').read_text())
    assert report['status'] == 'ok' and report['method'] == 'dump_restore'
    assert report['verification']['consistent'] is True
    assert report['copy']['totals']['copied'] == loaded
    scanned = dict((n['address'], n['keys']) for n in report['copy']['cluster']['source_nodes'])
    assert scanned == dict(('127.0.0.1:%d' % node.port, int(node.admin().dbsize())) for node in source.nodes)
    assert report['isolation']['mode'] == 'pause' and report['isolation']['seconds'] is not None
    addresses = sorted('127.0.0.1:%d' % node.port for node in source.nodes)
    assert sorted(report['isolation']['nodes']) == addresses
    parts = report['backup']['parts']
    assert sorted(p['address'] for p in parts) == addresses and sum(p['keys'] for p in parts) == loaded
    assert all(os.path.exists(os.path.join(os.path.dirname(report['backup']['dest']), p['file'])) for p in parts)
    markdown = (tmp_path / 'reports' / 'from-cluster-latest.md').read_text()
    assert 'cluster nodes isolated: ' in markdown
    for part in parts:
        assert '| %s | %s | %s |' % (part['address'], format(part['slots'], ','), part['file']) in markdown
    assert [compare.source_writes(node) for node in source.nodes] == writes, 'the source was written to'
    for node in source.nodes:  # released: a writer on every master is not held back
        probe = WriteProbe(node, key=key_on(source, node)).start()
        assert not probe.blocked() and probe.finished(30), node.name
        probe.close()
        node.admin().delete(probe.key)
    writes = [compare.source_writes(node) for node in source.nodes]

    second = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)['from-cluster']['changed'] == 0, second.stdout[-3000:]
    again = json.loads((tmp_path / 'reports' / 'from-cluster-latest.json').read_text())
    assert again['copy']['totals']['copied'] == 0 and again['copy']['totals']['identical'] == loaded
    no_secret(second.stdout)
    assert [compare.source_writes(node) for node in source.nodes] == writes, 'the source was written to'


def test_cluster_into_a_cluster_of_two_masters(cluster_of, tmp_path):
    """A 3-master Redis 7.0 cluster -> a 2-master Valkey 8.0 cluster through the playbook (acl isolation on every
    node, backup per master, copy, verify); identical by an independent comparison."""
    source = cluster_of('redis70')
    target = cluster_of('valkey80', masters=2)
    load(source.client())
    loaded = sum(int(node.admin().dbsize()) for node in source.nodes)
    for node in source.nodes:
        node.admin().execute_command('ACL', 'SETUSER', 'shop-app', 'on', '>Shop-App-Pass-2', '~*', '+@all')
    try:
        inventory = write_inventory(tmp_path, {'c2c': (source.endpoint(), target.endpoint(node=1))},
                                    kv_isolation='acl', kv_isolate_users=['shop-app'], kv_strategy='auto')
        result = ansible_playbook(PLAYBOOK, inventory=inventory)
        assert result.returncode == 0, result.stdout[-4000:]
        no_secret(result.stdout)
        assert compare.differences(masters(source), masters(target), deep=True) == []
        report = json.loads((tmp_path / 'reports' / 'c2c-latest.json').read_text())
        assert report['status'] == 'ok' and report['strategy'] == 'offline'
        assert report['copy']['totals']['copied'] == loaded
        assert len(report['copy']['cluster']['source_nodes']) == 3 and len(report['copy']['cluster']['target_nodes']) == 2
        assert len(report['backup']['parts']) == 3 and len(report['isolation']['nodes']) == 3
        assert report['isolation']['seconds'] is not None  # released at the cutover
        for node in source.nodes:
            flags = node.admin().execute_command('ACL', 'GETUSER', 'shop-app')[b'flags']
            assert b'on' in flags, node.name
    finally:
        for node in source.nodes:
            node.admin().execute_command('ACL', 'DELUSER', 'shop-app')


def test_info_and_preflight_read_every_master_of_a_cluster_source(cluster_of, flavour_server, run_modules):
    """kv_info lists the masters; kv_preflight sums the keys of every master, plans per master, compares a sample of
    the target with the master that serves each key (an earlier copy is recognised, other data is a problem)."""
    source = cluster_of('redis70')
    target = flavour_server('redis70', role='preflight-from-cluster')
    load(source.client())
    loaded = sum(int(node.admin().dbsize()) for node in source.nodes)
    copied = copy(source.endpoint(), target.endpoint())
    assert copied['totals']['copied'] == loaded
    pair = {'source': source.endpoint(node=2), 'target': target.endpoint(), 'allow_nonempty_target': False}
    info, earlier = run_modules([('kv_info', {'server': source.endpoint()}), ('kv_preflight', pair)])
    assert not info.get('failed'), info.get('msg')
    assert sorted(m['address'] for m in info['cluster']['masters']) \
        == sorted('127.0.0.1:%d' % node.port for node in source.nodes)
    assert info['cluster']['problems'] == [] and info['cluster']['state'] == 'ok'
    assert not earlier.get('failed'), earlier.get('msg')
    assert earlier['problems'] == [] and earlier['previous_copy_complete'] is True, earlier['problems']
    assert earlier['keys'] == loaded and earlier['method'] == 'dump_restore'
    assert earlier['live_possible'] is True, earlier['live_reason']  # the live strategy takes a cluster source
    per_master = dict((n['address'], n['keys']) for n in earlier['cluster']['source_nodes'])
    assert per_master == dict(('127.0.0.1:%d' % node.port, int(node.admin().dbsize())) for node in source.nodes)
    assert earlier['cluster']['target'] is None
    target.admin().flushall()  # the sample (the first keys SCAN returns) then holds the foreign key
    target.admin().set(b'not-from-this-source', b'x')
    other, = run_modules([('kv_preflight', pair)])
    assert any('not (or not equal) on the source' in p for p in other['problems']), other['problems']


def test_cluster_source_live_strategy(cluster_of, flavour_server, tmp_path):
    """A 3-master Redis 7.0 cluster -> a standalone Valkey 8.0 with kv_strategy auto, which is live: kv_rdb_backup
    writes one RDB per master, kv_sync follows every master while an app writes to the cluster, kv_verify compares
    in rounds meanwhile (the followers' markers ignored), every master is paused for the drain and the final
    verification of the keys scope (the keys every follower logged since the rounds began, and the counts), the app
    moves to the target at the pause; --check writes nothing and the second run changes nothing."""
    source = cluster_of('redis70')
    target = flavour_server('valkey80', role='live-from-cluster')
    load(source.client())
    inventory = write_inventory(tmp_path, {'live-from-cluster': (source.endpoint(node=1), target.endpoint())},
                                kv_isolation='pause', kv_backup=True)
    writes = [compare.source_writes(node) for node in source.nodes]

    dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert 'strategy: live' in dry.stdout, dry.stdout[-3000:]
    assert int(target.admin().dbsize()) == 0, 'check mode wrote to the target'

    sync_record = tmp_path / 'work' / 'kv-sync-live-from-cluster.json'

    def drained():
        try:
            return json.loads(sync_record.read_text()).get('phase') == 'stopped'
        except (OSError, ValueError):
            return not sync_record.exists()

    with AppWriter(source.client(), rate=200, switch_client=target.admin(0), drained=drained) as app:
        first = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert first.returncode == 0, first.stdout[-5000:]
    assert not app.errors, app.errors
    assert recap(first.stdout)['live-from-cluster']['failed'] == 0
    no_secret(first.stdout)
    report = json.loads((tmp_path / 'reports' / 'live-from-cluster-latest.json').read_text())
    assert report['status'] == 'ok' and report['strategy'] == 'live', report.get('error')
    assert report['verification']['consistent'] is True
    # inside the pause only the keys the followers wrote since the rounds began were compared, in every master's log
    live = report['live']
    assert live['final_verification_scope'] == 'keys', live['final_verification_why']
    assert live['rounds'] and live['rounds'][-1]['differing'] == 0
    verification = report['verification']
    assert verification['scope'] == 'keys' and '3 keys logs name from offsets' in verification['summary'], \
        verification['summary']
    assert verification['totals']['keys'] < sum(int(node.admin().dbsize()) for node in source.nodes)
    # under 1 s is make bench-live's figure on a quiet machine; here a generous bound, and the figure printed
    print('writes_paused_s %.3f, final verification %.3f s (%s keys)'
          % (report['writes_paused_s'], live['final_verification_seconds'], verification['totals']['keys']))
    assert 0 < report['writes_paused_s'] < 5.0
    addresses = sorted('127.0.0.1:%d' % node.port for node in source.nodes)
    assert sorted(report['isolation']['nodes']) == addresses
    assert sorted(p['address'] for p in report['backup']['parts']) == addresses
    assert app.switched is not None, 'the app never met the pause'
    # the cluster as the pause left it, plus the one write the app repeated on the target, equals the target
    switched = b'app:%d' % app.switched
    problems = [p for p in compare.differences(masters(source), target.admin(), deep=True) if repr(switched) not in p]
    assert problems == []
    # the app's writes are the only writes the source took (the one it repeated on the target was acknowledged by
    # the source too, after the pause)
    assert sum(compare.source_writes(node) for node in source.nodes) - sum(writes) == len(app.acked)

    second = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)['live-from-cluster']['changed'] == 0, second.stdout[-4000:]
