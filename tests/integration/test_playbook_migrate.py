"""playbooks/migrate.yml end to end with ansible-playbook against real servers.

One inventory host per source -> target pair, connection local, endpoints as kv_source/kv_target.
"""

import json
import os
import re
import threading
import time

import yaml

from tests.support import compare, data
from tests.support.ansible import ansible_playbook
from tests.support.pause_probe import write_blocked
from tests.support.servers import PASSWORDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, 'playbooks', 'migrate.yml')


def write_inventory(tmp_path, pairs, **common):
    """``pairs``: {host: (source endpoint, target endpoint)}; returns the inventory path."""
    hosts = {}
    for host, (source, target) in pairs.items():
        hosts[host] = dict(kv_source=source, kv_target=target)
    common_vars = dict(kv_work_dir=str(tmp_path / 'work'), kv_report_dir=str(tmp_path / 'reports'))
    common_vars.update(common)
    inventory = {'all': {'hosts': hosts, 'vars': common_vars}}
    (tmp_path / 'work').mkdir(exist_ok=True)
    path = tmp_path / 'inventory.yml'
    path.write_text(yaml.safe_dump(inventory))
    os.chmod(str(path), 0o600)
    return str(path)


def recap(output):
    """{host: {'ok': n, 'changed': n, 'failed': n, ...}} from the PLAY RECAP."""
    out = {}
    for match in re.finditer(r'^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$', output, re.M):
        out[match.group(1)] = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', match.group(2)))
    return out


def no_secret(output):
    for name, password in PASSWORDS.items():
        assert password not in output, 'the password of %s appeared in the output' % name


def load(server, dbs):
    return dict((db, len(data.load_all_types(server.admin(db), prefix=b'db%d:' % db))) for db in dbs)


def test_tls_to_tls_with_acl_users_check_migrate_verify_rerun(server_factory, tmp_path):
    """Redis 7.0 TLS -> Valkey 8.0 TLS, ACL users: --check writes nothing, the run migrates and verifies
    every db and writes the reports, the second run changes nothing."""
    source = server_factory('redis70', tls=True)
    target = server_factory('valkey80', tls=True)
    loaded = load(source, [0, 2, 7])
    inventory = write_inventory(tmp_path, {'pair-tls': (source.endpoint(), target.endpoint())},
                                kv_strategy='offline')  # the offline procedure's method choice
    writes = compare.source_writes(source)

    dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert 'Plan (check mode, nothing written)' in dry.stdout
    assert target.admin().info('keyspace') == {}, 'check mode wrote to the target'
    assert not (tmp_path / 'reports').exists(), 'check mode wrote a report'

    first = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap(first.stdout)['pair-tls']['failed'] == 0
    assert 'method: dump_restore (the target uses TLS but the source does not open TLS connections' in first.stdout
    for db in loaded:
        compare.assert_same(source, target, [(db, db)])
    report = json.loads((tmp_path / 'reports' / 'pair-tls-latest.json').read_text())
    assert report['status'] == 'ok' and report['method'] == 'dump_restore'
    assert report['verification']['consistent'] is True
    assert [(d['db'], d['copied']) for d in report['copy']['dbs']] == sorted(loaded.items())
    markdown = (tmp_path / 'reports' / 'pair-tls-latest.md').read_text()
    assert '| 7 | 7 | %d | %d |' % (loaded[7], loaded[7]) in markdown

    second = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)['pair-tls']['changed'] == 0, second.stdout[-3000:]
    assert compare.source_writes(source) == writes, 'the source was written to'
    for out in (dry.stdout, first.stdout, second.stdout):
        no_secret(out)


def test_fleet_of_three_pairs_in_one_play(redis70, valkey9, valkey80, redis72, server_factory, tmp_path):
    """Three pairs at once (forks): Redis 7.0 -> Valkey 9 with MIGRATE, Valkey 9.0 -> Valkey 8.0 (downgrade,
    through the fallback), Redis 7.2 -> Valkey 8.0 with db_map."""
    valkey90 = server_factory('valkey90')
    second_target = server_factory('valkey80')
    load(redis70, [0, 1])
    load(valkey90, [0])
    load(redis72, [3])
    inventory = write_inventory(tmp_path, {
        'pair-a': (redis70.endpoint(), valkey9.endpoint()),
        'pair-b': (valkey90.endpoint(), valkey80.endpoint()),
        'pair-c': (redis72.endpoint(), second_target.endpoint()),
    }, kv_strategy='offline')  # the offline procedure's method choice per pair
    with open(inventory) as fh:
        inv = yaml.safe_load(fh)
    inv['all']['hosts']['pair-c']['kv_db_map'] = {3: 4}
    with open(inventory, 'w') as fh:
        yaml.safe_dump(inv, fh)
    result = ansible_playbook(PLAYBOOK, inventory=inventory, args=['--forks', '3'])
    assert result.returncode == 0, result.stdout[-4000:]
    summary = recap(result.stdout)
    assert sorted(summary) == ['pair-a', 'pair-b', 'pair-c'] and all(v['failed'] == 0 for v in summary.values())
    compare.assert_same(redis70, valkey9, [(0, 0), (1, 1)])
    compare.assert_same(valkey90, valkey80, [(0, 0)])
    compare.assert_same(redis72, second_target, [(3, 4)])
    methods = dict((host, json.loads((tmp_path / 'reports' / ('%s-latest.json' % host)).read_text())['method'])
                   for host in summary)
    assert methods == {'pair-a': 'migrate', 'pair-b': 'dump_restore', 'pair-c': 'migrate'}, methods
    no_secret(result.stdout)


def test_progress_is_shown_while_a_long_copy_runs(redis70, valkey80, tmp_path):
    a = redis70.admin()
    for db in (0, 1):
        pipe = a.pipeline(transaction=False) if db == 0 else redis70.admin(1).pipeline(transaction=False)
        for i in range(150000):
            pipe.set(b'key:%d' % i, b'x' * 20)
        pipe.execute()
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_method='dump_restore', migrate_poll_interval=0.3, migrate_workers=1,
                                kv_strategy='offline')
    # the copy is what shows progress: the other steps (isolate, backup, verify of 300,000 keys, cutover) are
    # covered by the other tests of this file
    result = ansible_playbook(PLAYBOOK, inventory=inventory, args=['--tags', 'preflight,migrate'])
    assert result.returncode == 0, result.stdout[-3000:]
    lines = re.findall(r'^pair: kv_dump_restore: copying .*$', result.stdout, re.M)
    assert lines, result.stdout[-3000:]
    assert re.search(r'keys/s', lines[0]) and re.search(r'db0 \d+/150000', lines[0]), lines


def test_target_killed_midway_fails_cleanly_and_leaves_the_source_untouched(redis70, server_factory, tmp_path):
    target = server_factory('valkey80')
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(60000):  # a copy with one worker that runs long enough to be killed midway
        pipe.set(b'key:%d' % i, b'v' * 30)
    pipe.execute()
    before = compare.snapshot(redis70, dbs=[1])
    writes = compare.source_writes(redis70)
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), target.endpoint())},
                                kv_method='dump_restore', migrate_poll_interval=0.2, migrate_workers=1,
                                kv_isolation='pause', kv_strategy='offline')  # the offline copy is what is killed

    killed_while_copying = []

    def kill_when_copying():
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                if target.admin().dbsize() > 1000:
                    killed_while_copying.append(True)
                    break
            except Exception:  # pylint: disable=broad-except
                pass
            time.sleep(0.05)
        target.kill()

    killer = threading.Thread(target=kill_when_copying)
    killer.start()
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    killer.join()
    assert result.returncode != 0
    assert 'The source was not changed' in result.stdout, result.stdout[-3000:]
    report = json.loads((tmp_path / 'reports' / 'pair-latest.json').read_text())
    assert report['status'] == 'failed' and report['error'], report
    # the closing message says the isolation was released exactly when the run had isolated the source (the live
    # strategy pauses only at the cutover, which this run never reached)
    isolated = report['isolation']['writes_stopped_at'] is not None
    assert ('its isolation was released' in result.stdout) == isolated, result.stdout[-3000:]
    assert compare.source_writes(redis70) == writes and compare.snapshot(redis70, dbs=[1]) == before
    assert redis70.admin().dbsize() == 60000
    assert killed_while_copying, 'the target was killed before the copy began'
    assert os.path.exists(str(tmp_path / 'work' / 'kv-backup-pair.rdb')), 'the backup was not taken'
    # writers are back: the server runs a write at once (under CLIENT PAUSE WRITE it would hold it back)
    assert write_blocked(redis70) is False
    redis70.admin().delete(b'kvtools:test:probe')
    no_secret(result.stdout)


def test_cloud_foundry_isolation_cutover_and_rollback(redis70, valkey80, tmp_path):
    """kv_isolation=cf against the CF API stand-in: the apps are unbound from the old instance (record first),
    the data is copied and verified, the apps are bound to the new instance and restarted; rollback.yml binds
    them to the old instance again."""
    from tests.support import cf_stub
    stub = cf_stub.CFStub(page_size=2, job_polls=1).start()
    try:
        space = stub.add_space('prod', stub.add_org('shop'))
        old, new = stub.add_instance('redis-old', space), stub.add_instance('valkey-new', space)
        apps = dict((name, stub.add_app(name, space)) for name in ('web', 'worker'))
        stub.add_binding(apps['web'], old, name='cache', parameters={'role': 'rw'})
        stub.add_binding(apps['worker'], old, name='cache', parameters={})
        load(redis70, [0, 4])
        cf = dict(api=stub.url, username='operator', password=cf_stub.USERS['operator'], org='shop', space='prod',
                  source_instance='redis-old', target_instance='valkey-new', restart=True, poll_interval=0.05)
        inventory = write_inventory(tmp_path, {'cf-pair': (redis70.endpoint(), valkey80.endpoint())},
                                    kv_isolation='cf', kv_cf=cf)
        result = ansible_playbook(PLAYBOOK, inventory=inventory)
        assert result.returncode == 0, result.stdout[-4000:]
        compare.assert_same(redis70, valkey80, [(0, 0), (4, 4)])
        assert stub.bindings_of(old) == {}
        assert stub.bindings_of(new) == {('web', 'cache'): {'role': 'rw'}, ('worker', 'cache'): {}}
        assert sorted(stub.restarts) == ['web', 'worker'], stub.restarts
        record = json.loads((tmp_path / 'work' / 'kv-bindings-cf-pair.json').read_text())
        assert len(record['bindings']) == 2
        back = ansible_playbook(os.path.join(ROOT, 'playbooks', 'rollback.yml'), inventory=inventory)
        assert back.returncode == 0, back.stdout[-3000:]
        assert stub.bindings_of(old) == {('web', 'cache'): {'role': 'rw'}, ('worker', 'cache'): {}}
        for out in (result.stdout, back.stdout):
            no_secret(out)
            assert cf_stub.USERS['operator'] not in out
    finally:
        stub.stop()


def test_acl_isolation_switches_the_app_user_off_and_back_on(redis70, valkey80, tmp_path):
    admin = redis70.admin()
    admin.execute_command('ACL', 'SETUSER', 'shop-app', 'on', '>Shop-App-Pass-1', '~*', '+@all')
    try:
        load(redis70, [0])
        inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                    kv_isolation='acl', kv_isolate_users=['shop-app'])
        result = ansible_playbook(PLAYBOOK, inventory=inventory)
        assert result.returncode == 0, result.stdout[-4000:]
        assert 'Isolate | Pause writers or switch the application users off' in result.stdout
        compare.assert_same(redis70, valkey80, [(0, 0)])
        user = admin.acl_getuser('shop-app')
        assert 'on' in [f.decode() if isinstance(f, bytes) else f for f in user['flags']], user
        no_secret(result.stdout)
    finally:
        admin.execute_command('ACL', 'DELUSER', 'shop-app')
