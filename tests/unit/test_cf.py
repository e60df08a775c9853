"""kv_cf_bindings' error messages (plugins/module_utils/_cf.py; no HTTP)."""

from ansible_collections.kvtools.migration.plugins.module_utils._cf import CFClient


def test_cf_error_messages_name_the_cause_and_no_secret():
    given = CFClient('https://api.example', token='bearer tok-SECRET')
    assert given.given_token == 'tok-SECRET'
    body = {'errors': [{'code': 1000, 'title': 'CF-InvalidAuthToken', 'detail': 'Invalid Auth Token tok-SECRET'}]}
    err = given.http_error(401, body, 'listing bindings')
    assert err.kind == 'auth' and 'expired' in err.message and 'tok-SECRET' not in err.message
    err = CFClient('https://api.example', username='u', password='pw-SECRET').http_error(
        403, {'errors': [{'code': 10003, 'title': 'CF-NotAuthorized', 'detail': 'no'}]}, 'unbinding app web')
    assert err.kind == 'noperm' and 'SpaceDeveloper' in err.message and err.message.startswith('unbinding app web')
    err = given.http_error(502, None, 'binding app web')
    assert err.kind == 'cf' and 'HTTP 502' in err.message
