"""playbooks/migrate.yml with kv_strategy live into a cluster, through ansible-playbook against real servers: the
follower routes the snapshot and the stream per slot, kv_verify compares in rounds while the app writes and inside
the pause compares the keys the follower logged (each read on the master that serves it) and the counts, check
mode writes nothing and a second run changes nothing.  An app writes to the source all along and moves to the
cluster at the pause."""

import json

from tests.integration.test_cluster import load
from tests.integration.test_playbook_migrate import PLAYBOOK, no_secret, recap, write_inventory
from tests.support import compare
from tests.support.ansible import ansible_playbook
from tests.support.app_writer import AppWriter


def test_live_into_a_cluster_check_run_rerun(server_factory, cluster_of, tmp_path):
    """Redis 7.0 -> a 3-master Valkey 9.1 cluster with kv_strategy live and kv_isolation pause."""
    source = server_factory('redis70')
    target = cluster_of('valkey91')
    load(source.admin())
    pipe = source.admin().pipeline(transaction=False)
    for n in range(2000):
        pipe.set(b'many:%d' % n, b'v', ex=3600 if n % 7 == 0 else None)
    pipe.execute()
    # the target user switches import mode on, on every master (a live copy into a cluster needs it)
    inventory = write_inventory(tmp_path, {'live-cluster': (source.endpoint(), target.endpoint(user='admin', node=1))},
                                kv_strategy='live', kv_isolation='pause')
    masters = [node.admin() for node in target.nodes]

    dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert 'strategy: live' in dry.stdout and 'Plan (check mode, nothing written)' in dry.stdout
    assert sum(int(m.dbsize()) for m in masters) == 0, 'check mode wrote to the cluster'

    sync_record = tmp_path / 'work' / 'kv-sync-live-cluster.json'

    def drained():
        try:
            return json.loads(sync_record.read_text()).get('phase') == 'stopped'
        except (OSError, ValueError):
            return not sync_record.exists()

    with AppWriter(source.admin(0), rate=300, switch_client=target.client(), drained=drained) as app:
        first = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert first.returncode == 0, first.stdout[-5000:]
    assert not app.errors, app.errors
    assert recap(first.stdout)['live-cluster']['failed'] == 0
    report = json.loads((tmp_path / 'reports' / 'live-cluster-latest.json').read_text())
    assert report['status'] == 'ok' and report['strategy'] == 'live', report.get('error')
    assert report['verification']['consistent'] is True
    # rounds into the cluster while the app wrote, then inside the pause the keys scope (keys routed per master)
    assert report['live']['final_verification_scope'] == 'keys', report['live']['final_verification_why']
    assert report['live']['rounds'] and report['verification']['scope'] == 'keys'
    assert app.switched is not None, 'the app never met the pause'
    # the source as the pause left it, plus the one write the app repeated on the target, equals the cluster
    switched = b'app:%d' % app.switched
    problems = [p for p in compare.differences(source.admin(), masters, deep=True) if repr(switched) not in p]
    assert problems == []
    no_secret(first.stdout)

    second = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)['live-cluster']['changed'] == 0, second.stdout[-4000:]
