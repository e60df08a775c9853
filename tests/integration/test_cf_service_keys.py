"""Endpoints from Cloud Foundry service keys (``cf_service``): the CF v3 stand-in (tests/support/cf_stub.py)
hands out service keys whose credentials point at real servers; the modules find the instance, reuse or create
the key, map its credentials with JMESPath and copy real data.  No credential may appear in any output."""

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._cf_keys import (
    DEFAULT_QUERY, ServiceKeyEndpoint, map_credentials)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from tests.conftest import assert_no_secret
from tests.support import cf_stub, compare, data
from tests.support.servers import PASSWORDS

CF_SECRETS = list(cf_stub.USERS.values()) + [v for v in cf_stub.CLIENTS.values() if v]


def a9s_credentials(server, user='migrator'):
    """The shape of an a9s KeyValue / a9s Redis service key (host, port, username, password; cacrt with TLS)."""
    creds = {'host': '127.0.0.1', 'port': server.port, 'username': user, 'password': PASSWORDS[user]}
    if server.tls:
        with open(server.certs['ca_cert']) as fh:
            creds['cacrt'] = fh.read()
    return creds


def stackit_credentials(server, user='migrator'):
    """The shape of a STACKIT Redis service key: host, hosts, port, username, password and a ready uri."""
    password = PASSWORDS[user]
    quoted = password.replace(' ', '%20').replace('"', '%22')
    return {'host': '127.0.0.1', 'hosts': ['127.0.0.1'], 'port': server.port, 'username': user,
            'password': password, 'uri': 'redis://%s:%s@127.0.0.1:%d' % (user, quoted, server.port)}


@pytest.fixture
def cf():
    stub = cf_stub.CFStub(page_size=2, job_polls=1).start()
    stub.space = stub.add_space('prod', stub.add_org('shop'))
    yield stub
    stub.stop()


def access(stub, **more):
    out = dict(api=stub.url, username='operator', password=cf_stub.USERS['operator'], org='shop', space='prod',
               poll_interval=0.05)
    out.update(more)
    return out


def test_kv_info_reads_through_a_new_key_then_reuses_it_check_mode_creates_none(cf, valkey80_tls, run_modules):
    """a9s shape with TLS (the CA comes as PEM text in cacrt): check mode says the key is missing and creates
    nothing; the first real run creates the key (changed), the second reuses it (not changed)."""
    inst = cf.add_instance('kv-old', cf.space, credentials=a9s_credentials(valkey80_tls))
    valkey80_tls.admin().set(b'probe', b'1')
    server = {'cf_service': access(cf, instance_name='kv-old')}
    check, first, second = run_modules([('kv_info', {'server': server}, True), ('kv_info', {'server': server}),
                                        ('kv_info', {'server': server})])
    assert check.get('failed') and check['error'] == 'check_mode', check
    assert "the service key 'kvtools-migration' of kv-old does not exist yet" in check['msg'], check['msg']
    assert 'cannot read the credentials' in check['msg']
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True
    assert first['cf_service_keys'] == [dict(endpoint='server', instance='kv-old', instance_guid=inst,
                                             service_key='kvtools-migration', created=True,
                                             key_guid=first['cf_service_keys'][0]['key_guid'],
                                             address='127.0.0.1:%d' % valkey80_tls.port)]
    assert first['tls'] is True and first['total_keys'] >= 1
    assert not second.get('failed') and second['changed'] is False
    assert second['cf_service_keys'][0]['created'] is False
    assert cf.keys_of(inst) == ['kvtools-migration']
    assert_no_secret(first['_output'], *CF_SECRETS)


def test_kv_migrate_between_two_instances_of_both_credential_shapes(cf, redis70, valkey80, run_modules):
    """The source has an a9s key, the target a STACKIT one (with a uri); both keys exist already (named
    differently); the copy is real and complete."""
    src_inst = cf.add_instance('redis-old', cf.space)
    cf.add_key(src_inst, 'ops-key', credentials=a9s_credentials(redis70))
    tgt_inst = cf.add_instance('valkey-new', cf.space)
    cf.add_key(tgt_inst, 'kvtools-migration', credentials=stackit_credentials(valkey80))
    loaded = len(data.load_all_types(redis70.admin(0), prefix=b'cfkey:'))
    source = {'cf_service': access(cf, instance_name='redis-old', service_key='ops-key')}
    target = {'cf_service': access(cf, instance_name='valkey-new')}
    result, = run_modules([('kv_dump_restore', {'source': source, 'target': target, 'dbs': [0]})])
    assert not result.get('failed'), result.get('msg')
    assert result['totals']['copied'] == loaded
    assert [k['created'] for k in result['cf_service_keys']] == [False, False]
    compare.assert_same(redis70, valkey80, [(0, 0)])
    assert cf.keys_of(src_inst) == ['ops-key'] and cf.keys_of(tgt_inst) == ['kvtools-migration']
    assert_no_secret(result['_output'], *CF_SECRETS)


def test_kv_cf_service_key_present_absent_and_check_mode(cf, redis70, run_modules):
    inst = cf.add_instance('redis-old', cf.space, credentials=a9s_credentials(redis70))
    server = {'cf_service': access(cf, instance_name='redis-old')}
    check, made, again, drop_check, dropped, gone = run_modules([
        ('kv_cf_service_key', {'server': server}, True),
        ('kv_cf_service_key', {'server': server}),
        ('kv_cf_service_key', {'server': server}),
        ('kv_cf_service_key', {'server': server, 'state': 'absent'}, True),
        ('kv_cf_service_key', {'server': server, 'state': 'absent'}),
        ('kv_cf_service_key', {'server': server, 'state': 'absent'}),
    ])
    assert check['changed'] and check['service_key']['exists'] is False and check['service_key']['created']
    assert 'would create' in check['msg']
    assert made['changed'] and made['service_key']['created'] and made['service_key']['exists']
    assert made['service_key']['address'] == '127.0.0.1:%d' % redis70.port
    assert again['changed'] is False and again['service_key']['created'] is False
    assert drop_check['changed'] and 'would delete' in drop_check['msg']
    assert dropped['changed'] and dropped['service_key']['deleted'] and gone['changed'] is False
    assert cf.keys_of(inst) == []
    assert_no_secret(made['_output'], *CF_SECRETS)


def test_clear_failures_without_secrets(cf, redis70, run_modules):
    """A query that does not parse, one that names an unknown option, a key without host, an auditor who may
    not read credentials, a user-provided instance: one clear message each, no secret."""
    cf.add_instance('redis-old', cf.space, credentials=a9s_credentials(redis70))
    cf.add_instance('nohost', cf.space, credentials={'password': 'only-a-Passw0rd'})
    cf.add_instance('ups', cf.space, kind='user-provided')
    results = run_modules([
        ('kv_info', {'server': {'cf_service': access(cf, instance_name='redis-old', credentials_query='{host: ')}}),
        ('kv_info', {'server': {'cf_service': access(cf, instance_name='redis-old',
                                                     credentials_query='{hostname: host, pass: password}')}}),
        ('kv_info', {'server': {'cf_service': access(cf, instance_name='nohost')}}),
        ('kv_info', {'server': {'cf_service': access(cf, instance_name='redis-old', username='auditor',
                                                     password=cf_stub.USERS['auditor'],
                                                     service_key='kvtools-migration')}}),
        ('kv_info', {'server': {'cf_service': access(cf, instance_name='ups')}}),
        ('kv_info', {'server': {'cf_service': access(cf, instance_name='gone')}}),
    ])
    bad_syntax, unknown, nohost, auditor, ups, gone = results
    assert bad_syntax['error'] == 'config' and 'credentials_query is not a valid JMESPath' in bad_syntax['msg']
    assert unknown['error'] == 'config' and 'gives hostname, pass; allowed: url, host' in unknown['msg'], unknown['msg']
    assert nohost['error'] == 'config' and 'give no host (fields: password)' in nohost['msg'], nohost['msg']
    assert auditor['error'] == 'noperm', auditor
    assert ups['error'] == 'config' and 'user-provided' in ups['msg']
    assert gone['error'] == 'not_found' and "unknown service instance 'gone'" in gone['msg']
    for result in results:
        assert result['failed'] and '\n' not in result['msg']
        assert 'argument_spec' not in result['msg']
    assert_no_secret(results[0]['_output'], 'only-a-Passw0rd', *CF_SECRETS)


# -- the mapping itself (no server) -------------------------------------------------------------------------

def test_default_query_maps_both_credential_shapes():
    a9s = {'host': 'd6a5.service.dc1.a9s-keyvalue-consul', 'port': 6379, 'username': 'a9s-brk-usr',
           'password': 'pw', 'cacrt': '-----BEGIN CERTIFICATE-----\n...'}
    assert map_credentials(a9s, DEFAULT_QUERY, 'source') == {
        'host': 'd6a5.service.dc1.a9s-keyvalue-consul', 'port': 6379, 'username': 'a9s-brk-usr', 'password': 'pw',
        'ca_cert_pem': '-----BEGIN CERTIFICATE-----\n...'}
    stackit = {'host': 'red1.service.dc1.a9ssvc', 'hosts': ['red1-0.service.dc1.a9ssvc'], 'port': '6379',
               'username': 'a9s1', 'password': 'pw', 'uri': 'rediss://a9s1:pw@red1.service.dc1.a9ssvc:6379'}
    assert map_credentials(stackit, DEFAULT_QUERY, 'target') == {
        'host': 'red1.service.dc1.a9ssvc', 'port': 6379, 'username': 'a9s1', 'password': 'pw',
        'url': 'rediss://a9s1:pw@red1.service.dc1.a9ssvc:6379'}
    with pytest.raises(KVError) as err:
        map_credentials({'host': 'h', 'port': 'six'}, DEFAULT_QUERY, 'source')
    assert 'port as a str, not a number' in err.value.message


def test_a_tunnel_keeps_the_keys_address_for_migrate_and_the_certificate(monkeypatch):
    """host/port set next to cf_service (an SSH tunnel) are used to connect; the key's host and port become
    migrate_host/migrate_port (the source server reaches the target there) and server_name (the certificate)."""
    resolver = ServiceKeyEndpoint({'host': '127.0.0.1', 'port': 6391, 'cf_service': {'instance_guid': 'g'}}, 'target')
    params = resolver._merge({'host': 'vk.service.internal', 'port': 6379, 'password': 'pw', 'ca_cert_pem': 'PEM'})
    assert params == {'host': '127.0.0.1', 'port': 6391, 'password': 'pw', 'tls': True, 'migrate_host':
                      'vk.service.internal', 'migrate_port': 6379, 'server_name': 'vk.service.internal'}
    assert resolver.ca_data == 'PEM'
    plain = ServiceKeyEndpoint({'cf_service': {'instance_guid': 'g'}}, 'source')._merge(
        {'url': 'redis://u:p@h:1', 'host': 'h2'})
    assert plain == {'url': 'redis://u:p@h:1', 'host': 'h2'}
