"""kv_preflight against real servers: problems found, method chosen, plan."""

from tests.conftest import assert_no_secret
from tests.support import data


def _load(server, dbs=(0, 1)):
    return sum(len(data.load_all_types(server.admin(db), prefix=b'db%d:' % db)) for db in dbs)


def test_plain_pair_chooses_migrate_and_plans_every_db(redis70, valkey80, run_module):
    keys = _load(redis70)
    result = run_module('kv_preflight', {'source': redis70.endpoint(), 'target': valkey80.endpoint(),
                                         'db_map': {1: 3}})
    assert not result.get('failed'), result['msg']
    assert result['ok'] and result['problems'] == [] and result['method'] == 'migrate'
    assert [(d['db'], d['target_db'], d['target_keys']) for d in result['dbs']] == [(0, 0, 0), (1, 3, 0)]
    assert result['keys'] == keys and result['payload']['accepts'] is True
    assert result['target_empty'] and result['estimate_seconds'] >= 0
    assert any(line.startswith('method: migrate') for line in result['plan'])
    assert_no_secret(result)


def test_tls_target_without_tls_cluster_chooses_dump_restore(redis70, valkey80_tls, run_modules):
    _load(redis70, [0])
    result, forced = run_modules([
        ('kv_preflight', {'source': redis70.endpoint(), 'target': valkey80_tls.endpoint()}),
        ('kv_preflight', {'source': redis70.endpoint(), 'target': valkey80_tls.endpoint(), 'method': 'migrate'})])
    assert result['ok'] and result['method'] == 'dump_restore' and not result['migrate_possible']
    assert any('tls-cluster' in reason for reason in result['method_reasons']), result['method_reasons']
    assert forced['failed'] and forced['error'] == 'config' and 'tls-cluster' in forced['msg']


def test_downgrade_chooses_dump_restore(valkey9, redis70, run_module):
    _load(valkey9, [0])
    result = run_module('kv_preflight', {'source': valkey9.endpoint(), 'target': redis70.endpoint()})
    assert result['ok'] and result['method'] == 'dump_restore'
    assert result['payload'] == {'source_rdb': 80, 'target_rdb': 10, 'accepts': False}


def test_pause_isolation_rules_out_migrate(redis70, valkey80, run_module):
    _load(redis70, [0])
    result = run_module('kv_preflight', {'source': redis70.endpoint(), 'target': valkey80.endpoint(),
                                         'isolation': 'pause'})
    assert result['method'] == 'dump_restore'
    assert any('CLIENT PAUSE' in reason for reason in result['method_reasons'])


def test_nonempty_target_is_a_problem_unless_allowed(redis70, valkey80, run_modules):
    _load(redis70, [0])
    valkey80.admin(0).set(b'already', b'here')
    args = {'source': redis70.endpoint(), 'target': valkey80.endpoint()}
    result, allowed, listed = run_modules([('kv_preflight', args),
                                           ('kv_preflight', dict(args, allow_nonempty_target=True)),
                                           ('kv_preflight', dict(args, fail_on_problems=False))])
    assert result['failed'] and 'the target holds keys that are not (or not equal) on the source (db 0: 1 of 1 ' \
        'sampled key(s) differ, 1 key(s) in the db; for example' in result['msg'], result['msg']
    assert "example 'already'" in result['msg'], result['msg']
    assert result['problems'] and not result['ok']
    assert not allowed.get('failed') and allowed['ok']
    assert not listed.get('failed') and not listed['ok'] and len(listed['problems']) == 1


def test_target_too_small(redis70, server_factory, run_module):
    target = server_factory('valkey80', extra=['maxmemory 2mb'])
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(b'k%d' % i, b'x' * 2000)
    pipe.execute()
    result = run_module('kv_preflight', {'source': redis70.endpoint(), 'target': target.endpoint()})
    assert result['failed'] and 'the target is too small' in result['msg'], result['msg']
    assert result['memory']['target_maxmemory'] == 2 * 1024 * 1024


def test_missing_target_db_and_user_without_restore(redis70, valkey80, run_modules):
    _load(redis70, [0])
    result, reader = run_modules([
        ('kv_preflight', {'source': redis70.endpoint(), 'target': valkey80.endpoint(), 'db_map': {0: 20}}),
        ('kv_preflight', {'source': redis70.endpoint(), 'target': valkey80.endpoint('reader'),
                          'fail_on_problems': False})])
    assert result['failed'] and 'target db 20 does not exist' in result['msg'], result['msg']
    result = reader
    assert result['problems'] == ['the target user may not run restore: grant it with ACL SETUSER'], result['problems']


def test_earlier_copy_on_the_target_is_not_a_problem(redis70, valkey80, run_module):
    """A rerun finds its own earlier copy on the target: no problem, a warning."""
    _load(redis70, [0])
    a, t = redis70.admin(), valkey80.admin()
    for key in list(a.scan_iter(count=100))[:5]:
        t.restore(key, 0, a.dump(key))
    result = run_module('kv_preflight', {'source': redis70.endpoint(), 'target': valkey80.endpoint()})
    assert not result.get('failed') and result['ok'], result.get('msg')
    assert result['dbs'][0]['target_keys'] == 5 and result['dbs'][0]['target_sample_foreign'] == []
    t.set(b'db0:hash', b'changed on the target')
    result = run_module('kv_preflight', {'source': redis70.endpoint(), 'target': valkey80.endpoint(),
                                         'fail_on_problems': False})
    assert not result['ok'] and result['dbs'][0]['target_sample_foreign'] == ['db0:hash']
