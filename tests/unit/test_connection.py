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
