"""playbooks/migrate.yml with endpoints that name Cloud Foundry service instances: the inventory holds no Redis
password; the service keys (CF v3 stand-in) point at real servers."""

import os

from tests.integration.test_cf_service_keys import a9s_credentials, stackit_credentials
from tests.integration.test_playbook_migrate import PLAYBOOK, load, no_secret, recap, write_inventory
from tests.support import cf_stub, compare
from tests.support.ansible import ansible_playbook


def test_migrate_playbook_reads_both_endpoints_from_service_keys(redis70, valkey80, tmp_path):
    """--check says the keys would be created and stops the host with nothing changed; the real run creates
    both keys, copies and verifies, unbinds the apps from the old instance and binds them to the new one; the
    rerun reuses the keys and, with kv_cf_delete_service_keys, deletes them at the end."""
    stub = cf_stub.CFStub(page_size=2, job_polls=1).start()
    try:
        space = stub.add_space('prod', stub.add_org('shop'))
        old = stub.add_instance('redis-old', space, credentials=a9s_credentials(redis70))
        new = stub.add_instance('valkey-new', space, credentials=stackit_credentials(valkey80))
        web = stub.add_app('web', space)
        stub.add_binding(web, old, name='cache')
        load(redis70, [0, 3])
        cf = dict(api=stub.url, username='operator', password=cf_stub.USERS['operator'], org='shop', space='prod',
                  source_instance='redis-old', target_instance='valkey-new', poll_interval=0.05)
        inventory = write_inventory(
            tmp_path, {'cf-keys': ({'cf_service': {'instance_name': 'redis-old'}},
                                   {'cf_service': {'instance_name': 'valkey-new'}})},
            kv_isolation='cf', kv_cf=cf)
        inventory_text = open(inventory).read()
        assert 'password: ' + cf_stub.USERS['operator'] in inventory_text  # the CF login only
        assert 'migrator' not in inventory_text

        check = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
        assert check.returncode == 0, check.stdout[-4000:]
        assert 'Check mode: the service key kvtools-migration of redis-old and the service key kvtools-migration of ' \
            'valkey-new would be created by a real run' in check.stdout, check.stdout[-4000:]
        assert 'fatal:' not in check.stdout and 'Preflight' not in check.stdout
        assert stub.keys_of(old) == [] and stub.keys_of(new) == []
        assert valkey80.admin().info('keyspace') == {}

        run = ansible_playbook(PLAYBOOK, inventory=inventory)
        assert run.returncode == 0, run.stdout[-4000:]
        assert recap(run.stdout)['cf-keys']['failed'] == 0
        compare.assert_same(redis70, valkey80, [(0, 0), (3, 3)])
        assert stub.keys_of(old) == ['kvtools-migration'] and stub.keys_of(new) == ['kvtools-migration']
        assert stub.bindings_of(old) == {} and stub.bindings_of(new) == {('web', 'cache'): {}}
        report = open(os.path.join(str(tmp_path), 'reports', 'cf-keys-latest.md')).read()
        assert 'cf:redis-old' in report or '127.0.0.1:%d' % redis70.port in report

        again = ansible_playbook(PLAYBOOK, inventory=inventory, extra_vars={'kv_cf_delete_service_keys': True})
        assert again.returncode == 0, again.stdout[-4000:]
        assert stub.keys_of(old) == [] and stub.keys_of(new) == []
        for out in (check.stdout, run.stdout, again.stdout):
            no_secret(out)
            assert cf_stub.USERS['operator'] not in out
    finally:
        stub.stop()
