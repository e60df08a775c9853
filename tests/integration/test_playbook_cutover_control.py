"""Cut-over under the operator's control: kv_release_after_cutover false keeps the source isolated until
playbooks/release.yml; the preflight warns about a source that takes writes with kv_isolation none and about an
empty source; rollback.yml and release.yml say when there is nothing to do.  Real servers, ansible-playbook."""

import json
import os

import pytest
import redis

from tests.integration.test_playbook_migrate import PLAYBOOK, ROOT, load, no_secret, write_inventory
from tests.support import compare
from tests.support.ansible import ansible_playbook
from tests.support.app_writer import AppWriter

RELEASE = os.path.join(ROOT, 'playbooks', 'release.yml')
ROLLBACK = os.path.join(ROOT, 'playbooks', 'rollback.yml')


def latest(tmp_path, host='pair'):
    return json.loads((tmp_path / 'reports' / ('%s-latest.json' % host)).read_text())


def user_on(admin, name):
    flags = admin.acl_getuser(name)['flags']
    return 'on' in [f.decode() if isinstance(f, bytes) else f for f in flags]


def test_acl_users_stay_off_until_release_yml(redis70, valkey80, tmp_path):
    admin = redis70.admin()
    admin.execute_command('ACL', 'SETUSER', 'shop-app', 'on', '>Shop-App-Pass-1', '~*', '+@all')
    try:
        load(redis70, [0])
        inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                    kv_isolation='acl', kv_isolate_users=['shop-app'], kv_strategy='offline',
                                    kv_release_after_cutover=False)
        result = ansible_playbook(PLAYBOOK, inventory=inventory)
        assert result.returncode == 0, result.stdout[-4000:]
        compare.assert_same(redis70, valkey80, [(0, 0)])
        assert not user_on(admin, 'shop-app'), 'the application user was switched on again'
        assert 'The source stays isolated (kv_release_after_cutover is false)' in result.stdout
        report = latest(tmp_path)
        assert report['isolation']['still_isolated'] is True and report['isolation']['writes_resumed_at'] is None
        assert report['writes_paused_s'] is None and 'still isolated at the end of the run' in report['writes_paused_measured']
        assert 'release' not in [s['step'] for s in report['steps']]

        released = ansible_playbook(RELEASE, inventory=inventory)
        assert released.returncode == 0, released.stdout[-4000:]
        assert user_on(admin, 'shop-app'), 'release.yml did not switch the user on'
        report = latest(tmp_path)
        assert report['playbook'] == 'release' and report['status'] == 'ok'
        assert report['isolation']['writes_stopped_at'] and report['isolation']['writes_resumed_at']
        assert report['isolation']['seconds'] > 0 and report['isolation']['still_isolated'] is False

        again = ansible_playbook(RELEASE, inventory=inventory)
        assert again.returncode == 0, again.stdout[-4000:]
        assert 'Nothing to release on pair: the source was released at' in again.stdout, again.stdout[-3000:]
        assert user_on(admin, 'shop-app')
        back = ansible_playbook(ROLLBACK, inventory=inventory)
        assert back.returncode == 0, back.stdout[-4000:]
        assert 'Nothing to roll back on pair' in back.stdout, back.stdout[-3000:]
        assert latest(tmp_path)['note'].startswith('Nothing to roll back on pair')
        for out in (result.stdout, released.stdout, again.stdout, back.stdout):
            no_secret(out)
            assert 'Shop-App-Pass-1' not in out
    finally:
        admin.execute_command('ACL', 'DELUSER', 'shop-app')


def test_pause_continues_after_the_migration_until_release_yml(redis70, valkey80, tmp_path):
    load(redis70, [0])
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause', kv_strategy='offline', kv_release_after_cutover=False,
                                isolate_pause_ms=2000)
    try:
        result = ansible_playbook(PLAYBOOK, inventory=inventory)
        assert result.returncode == 0, result.stdout[-4000:]
        # several leases later the writers are still paused: the renewer keeps the pause
        client = redis70.admin(3)
        client.connection_pool.connection_kwargs['socket_timeout'] = 3
        with pytest.raises(redis.exceptions.TimeoutError):
            client.set(b'while-kept', b'1')
        client.connection_pool.disconnect()
        released = ansible_playbook(RELEASE, inventory=inventory)
        assert released.returncode == 0, released.stdout[-4000:]
        client.set(b'after-release', b'1')  # returns at once
    finally:
        ansible_playbook(ROLLBACK, inventory=inventory)
        redis70.admin(3).delete(b'after-release', b'while-kept')


def test_preflight_warns_about_writes_without_isolation_and_about_an_empty_source(redis70, valkey80, tmp_path):
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_strategy='offline')
    empty = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert empty.returncode == 0, empty.stdout[-3000:]
    assert 'holds no key: check that kv_source points at the instance you mean to migrate' in empty.stdout
    assert 'kv_isolation is none, but the source' not in empty.stdout

    load(redis70, [0])
    with AppWriter(redis70.admin(5), rate=200) as app:
        busy = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert not app.errors, app.errors
    assert busy.returncode == 0, busy.stdout[-3000:]
    assert 'kv_isolation is none, but the source %s:%d took' % (redis70.endpoint()['host'], redis70.endpoint()['port']) \
        in busy.stdout, busy.stdout[-3000:]
    assert 'holds no key' not in busy.stdout

    quiet = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert 'kv_isolation is none, but the source' not in quiet.stdout and 'holds no key' not in quiet.stdout


def test_rollback_without_any_record_says_there_is_nothing_to_roll_back(redis70, valkey80, tmp_path):
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())})
    back = ansible_playbook(ROLLBACK, inventory=inventory)
    assert back.returncode == 0, back.stdout[-3000:]
    assert 'Nothing to roll back on pair: no kv_sync follower record, no isolation record' in back.stdout
    assert 'changed=0' in back.stdout


def test_live_cutover_keeps_the_pause_until_release_yml(redis70, valkey80, tmp_path):
    """kv_strategy live: kv_cutover pauses, drains and verifies without releasing; the isolate role's renewer
    continues the pause after the play (writes stay blocked for longer than the 2 s lease) until release.yml."""
    load(redis70, [0])
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause', kv_strategy='live', kv_release_after_cutover=False,
                                isolate_pause_ms=2000, kv_verify_rounds=1)
    try:
        with AppWriter(redis70.admin(5), rate=200) as app:
            result = ansible_playbook(PLAYBOOK, inventory=inventory)
            assert result.returncode == 0, result.stdout[-4000:]
            acked = len(app.acked)
            client = redis70.admin(3)
            client.connection_pool.connection_kwargs['socket_timeout'] = 3
            with pytest.raises(redis.exceptions.TimeoutError):
                client.set(b'while-kept', b'1')
            client.connection_pool.disconnect()
            assert len(app.acked) == acked, 'the app wrote while the source was kept isolated'
            report = latest(tmp_path)
            assert report['strategy'] == 'live' and report['status'] == 'ok', report['strategy_reason']
            assert report['isolation']['still_isolated'] is True and report['writes_paused_s'] is None
            released = ansible_playbook(RELEASE, inventory=inventory)
            assert released.returncode == 0, released.stdout[-4000:]
            client.set(b'after-release', b'1')  # returns at once
        assert not app.errors, app.errors
        assert latest(tmp_path)['isolation']['seconds'] > 3
    finally:
        ansible_playbook(ROLLBACK, inventory=inventory)
        redis70.admin(3).delete(b'after-release', b'while-kept')
