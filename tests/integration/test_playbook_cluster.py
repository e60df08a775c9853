"""playbooks/migrate.yml from a standalone server into a cluster, through ansible-playbook against real servers."""

import json

from tests.integration.test_playbook_migrate import PLAYBOOK, no_secret, recap, write_inventory
from tests.support import compare, data
from tests.support.ansible import ansible_playbook


def test_standalone_into_a_cluster_check_migrate_verify_rerun(server_factory, cluster_of, tmp_path):
    """Redis 7.0 -> a 3-master Valkey 8.0 cluster: --check writes nothing and plans per node, the run copies with
    kv_dump_restore (routed per slot) and verifies per node, the second run changes nothing."""
    source = server_factory('redis70')
    target = cluster_of('valkey80')
    client = source.admin()
    keys = data.load_all_types(client)
    for n in range(500):
        client.set(b'{user:%d}:name' % (n % 50), b'n%d' % n, ex=3600 if n % 2 else None)
        client.set(b'k\n%d' % n, b'v')
    loaded = int(client.dbsize())
    assert loaded > len(keys)
    inventory = write_inventory(tmp_path, {'to-cluster': (source.endpoint(), target.endpoint(node=2))},
                                kv_strategy='offline')
    writes = compare.source_writes(source)

    dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert 'method: dump_restore (the target is a cluster' in dry.stdout
    assert dry.stdout.count('target master 127.0.0.1:') >= 3
    assert sum(int(node.admin().dbsize()) for node in target.nodes) == 0, 'check mode wrote to the cluster'

    first = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap(first.stdout)['to-cluster']['failed'] == 0
    no_secret(first.stdout)
    masters = [node.admin() for node in target.nodes]
    assert compare.differences(source.admin(), masters, deep=True) == []
    report = json.loads((tmp_path / 'reports' / 'to-cluster-latest.json').read_text())
    assert report['status'] == 'ok' and report['method'] == 'dump_restore'
    assert report['verification']['consistent'] is True
    assert report['copy']['totals']['copied'] == loaded
    written = dict((n['address'], n['written']) for n in report['copy']['cluster']['target_nodes'])
    assert written == dict(('127.0.0.1:%d' % node.port, int(node.admin().dbsize())) for node in target.nodes)
    verified = dict((n['address'], n['counts']['identical']) for n in report['verification']['target_nodes'])
    assert verified == written
    markdown = (tmp_path / 'reports' / 'to-cluster-latest.md').read_text()
    for node in report['copy']['cluster']['target_nodes']:
        row = '| %s | target | %s | %s |' % (node['address'], format(node['slots'], ','), format(node['written'], ','))
        assert row in markdown, row

    second = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)['to-cluster']['changed'] == 0, second.stdout[-3000:]
    again = json.loads((tmp_path / 'reports' / 'to-cluster-latest.json').read_text())
    assert again['copy']['totals']['copied'] == 0 and again['copy']['totals']['identical'] == loaded
    assert compare.source_writes(source) == writes, 'the source was written to'
    for out in (dry.stdout, second.stdout):
        no_secret(out)
