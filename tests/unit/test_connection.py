"""Pure logic of the endpoint spec: url parsing, precedence, validation, secret handling."""

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._connection import (
    ENDPOINT_OPTIONS, Endpoint, endpoint_spec)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


def test_defaults_without_url():
    ep = Endpoint({})
    assert (ep.host, ep.port, ep.db, ep.tls, ep.username, ep.password) == ('localhost', 6379, 0, False, None, None)
    assert ep.validate_certs is True
    assert ep.address == 'localhost:6379'


@pytest.mark.parametrize('url,expect', [
    ('redis://h1:7000/3', dict(host='h1', port=7000, db=3, tls=False)),
    ('rediss://h2', dict(host='h2', port=6379, db=0, tls=True)),
    ('valkey://h3:1234', dict(host='h3', port=1234, tls=False)),
    ('valkeys://u:p%40ss@h4:6380/15', dict(host='h4', port=6380, db=15, tls=True, username='u', password='p@ss')),
    ('redis://:only-pw@h5', dict(host='h5', username=None, password='only-pw')),
])
def test_url_parsing(url, expect):
    ep = Endpoint({'url': url})
    for key, value in expect.items():
        assert getattr(ep, key) == value, key


def test_unix_url():
    ep = Endpoint({'url': 'unix:///run/redis/redis.sock?db=4'})
    assert ep.unix_socket == '/run/redis/redis.sock'
    assert ep.db == 4
    assert ep.address == 'unix:/run/redis/redis.sock'


def test_explicit_options_win_over_url():
    ep = Endpoint({'url': 'rediss://u:p@h:1/2', 'host': 'other', 'port': 9, 'db': 5, 'tls': False,
                   'username': 'x', 'password': 'y'})
    assert (ep.host, ep.port, ep.db, ep.tls, ep.username, ep.password) == ('other', 9, 5, False, 'x', 'y')


@pytest.mark.parametrize('params,word', [
    ({'url': 'http://h'}, 'scheme'),
    ({'url': 'redis://h/notadb'}, 'db number'),
    ({'db': -1}, 'db must be'),
    ({'client_cert': '/a.pem'}, 'together'),
    ({'url': 'unix:///s.sock', 'tls': True}, 'unix socket'),
])
def test_bad_config(params, word):
    with pytest.raises(KVError) as info:
        Endpoint(params, label='target')
    assert word in str(info.value)
    assert info.value.kind == 'config'


def test_password_not_in_describe_or_address():
    ep = Endpoint({'url': 'redis://u:topsecret@h:1/0'})
    assert 'topsecret' not in repr(ep.describe())
    assert 'topsecret' not in ep.address
    assert ep.secrets == ['topsecret']


def test_spec_marks_secrets_no_log():
    spec = endpoint_spec()
    assert spec['options']['password']['no_log'] is True
    assert spec['options']['url']['no_log'] is True
    # every endpoint gets its own copy of the sub-option dicts
    assert spec['options']['host'] is not ENDPOINT_OPTIONS['host']


# -- Sentinel endpoints (resolution against real sentinels: tests/integration/test_playbook_sentinel.py) --------

def _sentinel(**extra):
    spec = dict(hosts=['127.0.0.1:26379', '[::1]:26380', 'sentinel-3'], service_name='sessions',
                password='snt-pw')
    spec.update(extra)
    return spec


def test_sentinel_endpoint_is_named_by_its_service_until_resolved():
    ep = Endpoint(dict(username='u', password='data-pw', sentinel=_sentinel()), label='source')
    assert ep.sentinel['hosts'] == [('127.0.0.1', 26379), ('::1', 26380), ('sentinel-3', 26379)]
    assert ep.address == 'sentinel:sessions'
    assert ep.identity == 'sentinel:sessions@127.0.0.1:26379,::1:26380,sentinel-3:26379'
    assert sorted(ep.secrets) == ['data-pw', 'snt-pw']
    ep.set_master('10.0.0.7', 6380)
    assert ep.address == '10.0.0.7:6380' and (ep.migrate_host, ep.migrate_port) == ('10.0.0.7', 6380)
    assert ep.identity.startswith('sentinel:sessions@')  # unchanged by the master it points at
    assert ep.describe()['sentinel'] == dict(service_name='sessions', master='10.0.0.7:6380')
    ep.check_master()  # no watch yet: nothing to check


@pytest.mark.parametrize('params, words', [
    (dict(host='10.0.0.1', sentinel=_sentinel()), 'not both (got host)'),
    (dict(url='redis://10.0.0.1:6379/0', sentinel=_sentinel()), 'url host'),
    (dict(sentinel=_sentinel(hosts=[])), 'at least one sentinel'),
    (dict(sentinel=_sentinel(hosts=['a:b'])), "'a:b' is not host:port"),
    (dict(sentinel=_sentinel(hosts=['a:70000'])), 'source.sentinel.hosts'),
    (dict(sentinel=_sentinel(service_name=' ')), 'service_name'),
    (dict(sentinel=_sentinel(client_cert='/c.pem')), 'client_cert and client_key'),
])
def test_sentinel_endpoint_config_errors(params, words):
    with pytest.raises(KVError) as err:
        Endpoint(params, label='source')
    assert err.value.kind == 'config' and words in err.value.message, err.value.message
