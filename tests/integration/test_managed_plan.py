"""Servers configured like managed plans: admin commands renamed away, disabled or denied by ACL.

The source has every admin command the issue lists renamed to "" (disabled): CONFIG, KEYS, DEBUG, FLUSHALL,
FLUSHDB, ACL, MONITOR, SYNC, PSYNC, CLIENT, MEMORY, SLOWLOG and INFO.  The target renames some to secret names
and denies the others (CONFIG, INFO, CLIENT, MEMORY, ACL, SLOWLOG) to the migration user by ACL.  Every module
the migration uses works: what cannot be read is ``unknown`` with the reason, the plan says what that costs,
and the data arrives complete.
"""

import json
import os

import pytest

from tests.conftest import assert_no_secret
from tests.support import compare, data
from tests.support.ansible import ansible_playbook
from tests.support.servers import PASSWORDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN = ['CONFIG', 'KEYS', 'DEBUG', 'FLUSHALL', 'FLUSHDB', 'ACL', 'MONITOR', 'SYNC', 'PSYNC', 'CLIENT', 'MEMORY',
         'SLOWLOG', 'INFO']
TARGET_RENAMED = ['KEYS', 'DEBUG', 'FLUSHALL', 'MONITOR', 'SYNC', 'PSYNC']
TARGET_DENIED = ['config', 'info', 'client', 'memory', 'acl', 'slowlog', 'flushdb']
MANAGED_PW = 'mgd-Secret-5 "q"'


def _quoted(text):
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


@pytest.fixture
def managed(server_factory):
    """(source, target, source endpoint, target endpoint): both configured like managed plans."""
    source = server_factory('redis70', name='managed-src', extra=['rename-command %s ""' % c for c in ADMIN])
    denied = ' '.join('-%s' % c for c in TARGET_DENIED)
    target = server_factory('valkey80', name='managed-tgt',
                            extra=['rename-command %s "%s-x9"' % (c, c.lower()) for c in TARGET_RENAMED] +
                            ['user managed on %s ~* &* +@all %s' % (_quoted('>' + MANAGED_PW), denied)])
    target_ep = target.endpoint(user=None, username='managed', password=MANAGED_PW)
    return source, target, source.endpoint('migrator'), target_ep


def _load(source):
    loaded = {}
    for db in (0, 3):
        loaded[db] = len(data.load_all_types(source.admin(db), prefix=b'db%d:' % db, ttl_ms=3600000))
    return loaded


def _target_size(target, db):
    return target.admin(db).dbsize()  # the admin user may run DBSIZE; INFO is not needed


def test_every_module_works_against_managed_plans(managed, run_module, run_modules, tmp_path):
    source, target, src_ep, tgt_ep = managed
    loaded = _load(source)

    # what only reads, in one ansible-playbook run
    info, tinfo, plan, paused = run_modules([
        ('kv_info', {'server': src_ep}),
        ('kv_info', {'server': tgt_ep}),
        ('kv_preflight', {'source': src_ep, 'target': tgt_ep}),
        ('kv_preflight', {'source': src_ep, 'target': tgt_ep, 'isolation': 'pause', 'fail_on_problems': False})])
    assert not info.get('failed'), info.get('msg')
    assert info['engine'] == 'redis' and info['version'].startswith('7.0')
    assert 'INFO is not available on the server' in info['unknown']['info']
    assert 'CONFIG is not available' in info['unknown']['config']
    assert info['used_memory'] is None and info['maxmemory'] is None
    assert dict((d['db'], d['keys']) for d in info['dbs']) == loaded
    assert info['commands']['scan'] == 'yes' and info['commands']['dump'] == 'yes'
    assert info['commands']['config_get'] == 'no' and 'not available' in info['command_reasons']['config_get']
    assert not tinfo.get('failed'), tinfo.get('msg')
    assert tinfo['engine'] == 'valkey' and 'denied to this user' in tinfo['unknown']['info']
    assert tinfo['commands']['restore'] == 'yes' and tinfo['commands']['config_get'] == 'no'

    assert not plan.get('failed'), plan.get('msg')
    assert plan['ok'] is True and plan['problems'] == []
    assert any(c.startswith('capacity') for c in plan['not_checked']), plan['not_checked']
    assert any(line.startswith('not checked: capacity') for line in plan['plan']), plan['plan']
    assert [(d['db'], d['keys']) for d in plan['dbs']] == sorted(loaded.items())
    assert not paused.get('failed'), paused.get('msg')
    assert paused['ok'] is False and len(paused['problems']) == 1, paused['problems']
    assert 'cannot run CLIENT PAUSE' in paused['problems'][0] and 'CLIENT is not available' in paused['problems'][0]

    copy = run_module('kv_dump_restore', {'source': src_ep, 'target': tgt_ep})
    assert not copy.get('failed'), copy.get('msg')
    assert [(d['db'], d['copied']) for d in copy['dbs']] == sorted(loaded.items())
    for db in loaded:
        assert _target_size(target, db) == loaded[db]
        compare.assert_same(source, target, [(db, db)])

    verify = run_module('kv_verify', {'source': src_ep, 'target': tgt_ep})
    assert not verify.get('failed'), verify.get('msg')
    assert verify['consistent'] is True
    assert verify['source_changed'] is None and verify['target_changed'] is None  # unknown, not "no"
    assert all(d['extra_check'] == 'scan' for d in verify['dbs'])

    rerun = run_module('kv_migrate', {'source': src_ep, 'target': dict(tgt_ep)})
    assert not rerun.get('failed'), rerun.get('msg')
    assert rerun['changed'] is False and rerun['totals']['identical'] == sum(loaded.values())

    backup = run_module('kv_rdb_backup', {'server': src_ep, 'dest': str(tmp_path / 'src.kvtlog')})
    assert not backup.get('failed'), backup.get('msg')
    assert backup['method_used'] == 'logical' and backup['keys'] == sum(loaded.values())
    for result in (info, tinfo, plan, copy, verify, rerun, backup):
        assert_no_secret(result, MANAGED_PW)


def test_kv_migrate_and_the_playbook_against_managed_plans(managed, tmp_path):
    """kv_migrate into an empty target (MEMORY disabled on the source), then the whole playbook rerun."""
    import yaml
    source, target, src_ep, tgt_ep = managed
    loaded = _load(source)
    hosts = {'managed': dict(kv_source=src_ep, kv_target=tgt_ep, kv_isolation='none', kv_method='migrate')}
    work = dict(kv_work_dir=str(tmp_path / 'work'), kv_report_dir=str(tmp_path / 'reports'))
    inventory = {'all': {'hosts': hosts, 'vars': work}}
    (tmp_path / 'work').mkdir()
    path = tmp_path / 'inventory.yml'
    path.write_text(yaml.safe_dump(inventory))
    os.chmod(str(path), 0o600)
    result = ansible_playbook(os.path.join(ROOT, 'playbooks', 'migrate.yml'), inventory=str(path))
    assert result.returncode == 0, result.stdout[-4000:]
    assert 'not checked: capacity' in result.stdout
    for db in loaded:
        compare.assert_same(source, target, [(db, db)])
    report = json.loads((tmp_path / 'reports' / 'managed-latest.json').read_text())
    assert report['status'] == 'ok' and report['verification']['consistent'] is True
    for secret in list(PASSWORDS.values()) + [MANAGED_PW]:
        assert secret not in result.stdout
