"""kv_cf_bindings against the CF v3 API stand-in (tests/support/cf_stub.py).

The main path runs through ansible-playbook; error cases call the engine in
plugins/module_utils/_cf.py directly (same code, no Ansible start-up per case).
"""

import json
import os

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._cf import Bindings, CFClient
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from tests.conftest import assert_no_secret
from tests.support import cf_stub

SECRETS = list(cf_stub.USERS.values()) + list(v for v in cf_stub.CLIENTS.values() if v)


@pytest.fixture
def cf():
    """An org ``shop``/space ``prod`` with a managed ``redis-old`` bound to three apps, an empty managed
    ``valkey-new``, a user-provided ``ups`` bound to one app, and an unbound app ``spare``.
    Five bindings in all and two per page, so every list paginates."""
    stub = cf_stub.CFStub(page_size=2, job_polls=1).start()
    org = stub.add_org('shop')
    space = stub.add_space('prod', org)
    stub.old = stub.add_instance('redis-old', space)
    stub.new = stub.add_instance('valkey-new', space)
    stub.ups = stub.add_instance('ups', space, kind='user-provided')
    apps = dict((name, stub.add_app(name, space)) for name in ('web', 'worker', 'cron', 'spare', 'api'))
    stub.add_binding(apps['web'], stub.old, name='redis', parameters={'role': 'rw'})
    stub.add_binding(apps['worker'], stub.old, name='cache', parameters={})
    stub.add_binding(apps['cron'], stub.old, name=None, parameters={'tier': 2, 'opts': {'tls': True}})
    stub.add_binding(apps['api'], stub.ups, name='ups-binding')
    stub.add_binding(apps['web'], stub.ups, name='other-service')
    stub.app_guids = apps
    yield stub
    stub.stop()


def engine(stub, token=None, **kwargs):
    if token:
        client = CFClient(stub.url, token=token, poll_interval=0.01)
    else:
        client = CFClient(stub.url, username='operator', password=cf_stub.USERS['operator'], poll_interval=0.01)
    return Bindings(client, **kwargs)


def test_unbind_record_first_rerun_restore_and_cutover(cf, run_module, tmp_path):
    record = str(tmp_path / 'bindings.json')
    before = cf.bindings_of(cf.old)
    assert len(before) == 3
    auth = {'api': cf.url, 'username': 'operator', 'password': cf_stub.USERS['operator'], 'poll_interval': 0.05}
    args = dict(auth, instance_name='redis-old', org='shop', space='prod', state='absent', record=record)

    plan = run_module('kv_cf_bindings', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and len(plan['actions']) == 3
    assert not os.path.exists(record) and cf.bindings_of(cf.old) == before
    assert not any(method == 'DELETE' for method, path, query in cf.log)

    seen_at_delete = []

    def on_request(method, path):
        if method == 'DELETE':
            with open(record) as fh:  # raises if the record is not there yet
                seen_at_delete.append(len(json.load(fh)['bindings']))
    cf.on_request = on_request
    first = run_module('kv_cf_bindings', args)
    cf.on_request = None
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True
    assert seen_at_delete == [3, 3, 3]  # the whole record was on disk before the first delete
    assert cf.bindings_of(cf.old) == {}
    assert len(cf.bindings_of(cf.ups)) == 2  # other instances untouched
    assert sum(1 for method, path, query in cf.log if path.startswith('/v3/jobs/')) >= 6  # PROCESSING, COMPLETE
    with open(record) as fh:
        saved = json.load(fh)
    assert oct(os.stat(record).st_mode & 0o777) == '0o600'
    assert sorted((b['app']['name'], b['name']) for b in saved['bindings']) == sorted(before)
    assert all(b['unbound_at'] and b['created_at'] and b['app']['guid'] for b in saved['bindings'])
    assert {b['app']['name']: b['parameters'] for b in saved['bindings']}['cron'] == {'tier': 2, 'opts': {'tls': True}}
    for result in (plan, first):
        assert_no_secret(result, *SECRETS)
    assert not any(token in json.dumps(first) for token in cf.tokens)

    again = run_module('kv_cf_bindings', args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False
    with open(record) as fh:
        assert json.load(fh) == saved  # a rerun keeps the record as it was

    restore = dict(auth, instance_guid=cf.old, state='present', record=record)
    restored = run_module('kv_cf_bindings', restore)
    assert not restored.get('failed'), restored.get('msg')
    assert restored['changed'] is True and restored['restarted'] == []
    assert cf.bindings_of(cf.old) == before  # the same apps, binding names and parameters
    assert run_module('kv_cf_bindings', restore)['changed'] is False

    # cutover: unbind the source again, then bind the same apps to the new instance and restart them
    engine(cf, instance_guid=cf.old, state='absent', record=record).run()
    cutover = dict(auth, instance_name='valkey-new', org='shop', space='prod', state='present', record=record,
                   restart=True)
    plan = run_module('kv_cf_bindings', cutover, check=True)
    assert plan['changed'] is True and cf.bindings_of(cf.new) == {} and cf.restarts == []
    assert sorted(plan['restarted']) == ['cron', 'web', 'worker']
    done = run_module('kv_cf_bindings', cutover)
    assert not done.get('failed'), done.get('msg')
    assert cf.bindings_of(cf.new) == before and cf.bindings_of(cf.old) == {}
    assert sorted(cf.restarts) == ['cron', 'web', 'worker']
    assert_no_secret(done, *SECRETS)


def test_only_listed_apps_and_user_provided_instance(cf, tmp_path):
    """Unbinding only ``api`` from a user-provided instance: 204 without a job, then bound again (201)."""
    record = str(tmp_path / 'ups.json')
    result = engine(cf, instance_guid=cf.ups, state='absent', apps=['api'], record=record).run()
    assert result['changed'] is True
    assert cf.bindings_of(cf.ups) == {('web', 'other-service'): {}}
    assert not any(path.startswith('/v3/jobs/') for method, path, query in cf.log)
    result = engine(cf, instance_guid=cf.ups, state='present', record=record).run()
    assert result['changed'] is True and ('api', 'ups-binding') in cf.bindings_of(cf.ups)
    # binding by app name, without a record
    result = engine(cf, instance_guid=cf.new, state='present', apps=['spare'], binding_name='kv',
                    parameters={'x': 1}).run()
    assert result['changed'] is True and cf.bindings_of(cf.new) == {('spare', 'kv'): {'x': 1}}


def test_failed_job_names_the_cf_error_and_keeps_the_record(cf, tmp_path):
    record = str(tmp_path / 'bindings.json')
    cf.fail_jobs = 1
    with pytest.raises(KVError) as err:
        engine(cf, instance_guid=cf.old, state='absent', record=record).run()
    assert err.value.kind == 'job_failed'
    assert 'FAILED' in err.value.message and 'Service broker error: instance is being updated' in err.value.message
    assert err.value.partial['service_instance']['name'] == 'redis-old'
    with open(record) as fh:
        assert len(json.load(fh)['bindings']) == 3
    assert len(cf.bindings_of(cf.old)) == 3  # the failed unbind left the binding in place
    # the rerun finishes the job; the record still holds all three
    assert engine(cf, instance_guid=cf.old, state='absent', record=record).run()['changed'] is True
    assert cf.bindings_of(cf.old) == {}


def test_expired_token_is_a_clear_error(cf, run_module, tmp_path):
    token = cf.issue_token('operator')
    cf.expire_tokens()
    result = run_module('kv_cf_bindings', {'api': cf.url, 'token': token, 'instance_guid': cf.old,
                                           'state': 'absent', 'record': str(tmp_path / 'r.json')})
    assert result.get('failed')
    assert result['error'] == 'auth'
    assert '401' in result['msg'] and 'expired' in result['msg'] and 'CF-InvalidAuthToken' in result['msg']
    assert_no_secret(result, token, *SECRETS)
    assert len(cf.bindings_of(cf.old)) == 3


def test_own_token_is_renewed_once_when_it_expires(cf, tmp_path):
    """With credentials the module gets a new token itself when CF says 401 mid-run."""
    def expire_on_delete(method, path):
        if method == 'DELETE':
            cf.on_request = None
            cf.expire_tokens()
    cf.on_request = expire_on_delete
    client = CFClient(cf.url, client_id='migrator-client', client_secret=cf_stub.CLIENTS['migrator-client'],
                      poll_interval=0.01)
    Bindings(client, instance_guid=cf.old, state='absent', record=str(tmp_path / 'r.json')).run()
    assert cf.bindings_of(cf.old) == {}


@pytest.mark.parametrize('case, kind, words', [
    ('forbidden', 'noperm', ['403', 'CF-NotAuthorized', 'SpaceDeveloper']),
    ('bad_password', 'auth', ['UAA', 'Bad credentials', "'operator'"]),
    ('unknown_instance', 'not_found', ['unknown service instance', 'nothing-here']),
    ('unknown_guid', 'not_found', ['unknown service instance guid']),
    ('unknown_app', 'not_found', ['unknown app(s) ghost']),
    ('no_record', 'config', ['does not exist']),
])
def test_clear_errors(cf, tmp_path, case, kind, words):
    record = str(tmp_path / 'r.json')
    if case == 'forbidden':
        client = CFClient(cf.url, username='auditor', password=cf_stub.USERS['auditor'], poll_interval=0.01)
        run = Bindings(client, instance_guid=cf.old, state='absent', record=record)
    elif case == 'bad_password':
        client = CFClient(cf.url, username='operator', password='wrong-Pa55', poll_interval=0.01)
        run = Bindings(client, instance_guid=cf.old, state='absent', record=record)
    elif case == 'unknown_instance':
        run = engine(cf, instance_name='nothing-here', org='shop', space='prod', state='absent', record=record)
    elif case == 'unknown_guid':
        run = engine(cf, instance_guid='6f1d6ad2-0000-4000-8000-000000000000', state='absent', record=record)
    elif case == 'unknown_app':
        run = engine(cf, instance_guid=cf.new, state='present', apps=['web', 'ghost'])
    else:
        run = engine(cf, instance_guid=cf.new, state='present', record=record)
    with pytest.raises(KVError) as err:
        run.run()
    assert err.value.kind == kind, err.value.message
    for word in words:
        assert word in err.value.message, err.value.message
    assert_no_secret(err.value.message, 'wrong-Pa55', *SECRETS)
    assert len(cf.bindings_of(cf.old)) == 3
