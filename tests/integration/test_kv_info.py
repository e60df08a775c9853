"""kv_info through ansible-playbook against real servers: facts, and each bad input's message."""

import socket
import threading

from tests.conftest import assert_no_secret
from tests.support.servers import PASSWORDS


def _load(server):
    a = server.admin(0)
    a.set(b'plain', b'v')
    a.set(b'with\nnewline "quoted" \xff', b'', px=600000)
    server.admin(2).rpush(b'list', b'a', b'b')
    server.admin(15).hset(b'h', mapping={b'f': b'v'})


def _check_facts(result, server, engine, version_prefix, rdb):
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is False
    assert result['engine'] == engine
    assert result['version'].startswith(version_prefix)
    assert result['rdb_version'] == rdb
    assert result['rdb_version_source'] == 'payload'
    assert result['dbs'] == [dict(db=0, keys=2, expires=1), dict(db=2, keys=1, expires=0),
                             dict(db=15, keys=1, expires=0)]
    assert result['total_keys'] == 4
    assert result['role'] == 'master'
    assert result['cluster_enabled'] is False
    assert result['used_memory'] > 0
    assert result['maxmemory_policy'] == 'noeviction'
    assert_no_secret(result)


def test_redis70_acl_user(redis70, run_module):
    _load(redis70)
    result = run_module('kv_info', {'server': redis70.endpoint('migrator')})
    _check_facts(result, redis70, 'redis', '7.0', 10)
    assert result['tls'] is False
    assert result['rdb_version_check'] == {'supported': False, 'value': None}
    assert result['permissions_method'] == 'acl dryrun'
    assert set(result['commands'].values()) == {'yes'}
    assert result['capabilities']['pexpiretime'] is True


def test_valkey80_tls(valkey80_tls, run_module):
    _load(valkey80_tls)
    result = run_module('kv_info', {'server': valkey80_tls.endpoint('migrator')})
    _check_facts(result, valkey80_tls, 'valkey', '8.0', 11)
    assert result['tls'] is True
    assert result['rdb_version_check']['supported'] is False


def test_valkey9_url_and_check_mode(valkey9, run_module):
    _load(valkey9)
    url = 'valkey://migrator:%s@127.0.0.1:%d/0' % (PASSWORDS['migrator'].replace(' ', '%20').replace('"', '%22'),
                                                   valkey9.port)
    result = run_module('kv_info', {'server': {'url': url}}, check=True)
    _check_facts(result, valkey9, 'valkey', '9.', 80)
    assert result['rdb_version_check'] == {'supported': True, 'value': 'strict'}
    assert result['capabilities']['hash_field_ttl'] is True
    assert_no_secret(result['_output'])


def test_redis62_password_only(redis62, run_module):
    _load(redis62)
    result = run_module('kv_info', {'server': redis62.endpoint()})
    _check_facts(result, redis62, 'redis', '6.2', 9)
    # Redis 6.2 has no ACL DRYRUN: the password-only default user is +@all, read via ACL GETUSER
    assert result['permissions_method'] == 'acl getuser'
    assert set(result['commands'].values()) == {'yes'}


def test_least_privilege_user_permissions(redis70, run_module):
    result = run_module('kv_info', {'server': redis70.endpoint('restorer')})
    assert not result.get('failed'), result.get('msg')
    assert result['permissions_method'] == 'probe'
    cmds = result['commands']
    assert cmds['restore'] == 'yes' and cmds['scan'] == 'yes' and cmds['dump'] == 'yes'
    assert cmds['pexpiretime'] == 'no' and cmds['pttl'] == 'yes'  # what a rerun would need: the preflight says so
    assert cmds['migrate'] == 'no' and cmds['config_get'] == 'no'
    assert cmds['sync'] == 'unknown' and cmds['client_pause'] == 'unknown'
    assert result['databases'] is None  # CONFIG GET not permitted: said, not guessed
    reader = run_module('kv_info', {'server': redis70.endpoint('reader')})
    assert reader['commands']['restore'] == 'no'
    assert redis70.admin().dbsize() == 0  # the probes wrote nothing


def test_empty_server_uses_version_table(valkey80, run_module):
    result = run_module('kv_info', {'server': valkey80.endpoint()})
    assert result['rdb_version'] == 11 and result['rdb_version_source'] == 'version table'
    assert result['dbs'] == [] and result['total_keys'] == 0


# --- bad input: one clear message each, naming host:port, never the password -----------------

def _fail(run_module, endpoint, kind, *words):
    result = run_module('kv_info', {'server': endpoint})
    assert result.get('failed') is True, result
    assert result['error'] == kind, result['msg']
    for word in words:
        assert word in result['msg'], result['msg']
    assert '%s:%s' % (endpoint.get('host', 'localhost'), endpoint['port']) in result['msg']
    assert_no_secret(result, endpoint.get('password') or 'x-no-pass-x')
    assert_no_secret(result['_output'], endpoint.get('password') or 'x-no-pass-x')
    return result


def test_wrong_password(redis70, run_module):
    _fail(run_module, redis70.endpoint('migrator', password='Wrong-Pass-123'), 'auth',
          "user 'migrator'", 'password is wrong')


def test_unknown_user(valkey80_tls, run_module):
    _fail(run_module, valkey80_tls.endpoint('migrator', username='nobody'), 'auth', "user 'nobody'")


def test_redis6_wrong_and_missing_password(redis62, run_module):
    _fail(run_module, redis62.endpoint(password='Wrong-Pass-123'), 'auth', 'password is wrong')
    ep = redis62.endpoint()
    del ep['password']
    _fail(run_module, ep, 'auth', 'authentication required')


def test_connection_refused(run_module):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    _fail(run_module, {'host': '127.0.0.1', 'port': port, 'password': 'Some-Pass-9'}, 'refused',
          'connection refused')


def test_timeout(run_module):
    # A listener that accepts TCP but never answers: the reply times out.
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(5)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        _fail(run_module, {'host': '127.0.0.1', 'port': srv.getsockname()[1], 'socket_timeout': 1,
                           'connect_timeout': 1}, 'timeout', 'timed out')
    finally:
        stop.set()
        thread.join()
        srv.close()
        for c in conns:
            c.close()


def test_tls_untrusted_ca(valkey80_tls, certs, run_module):
    _fail(run_module, valkey80_tls.endpoint(ca_cert=certs['other_ca_cert']), 'tls',
          'certificate verification failed', 'ca_cert')


def test_tls_wrong_server_name(valkey80_tls, run_module):
    _fail(run_module, valkey80_tls.endpoint(server_name='wrong.example'), 'tls', 'certificate')
    ok = run_module('kv_info', {'server': valkey80_tls.endpoint(server_name='kv.test.internal')})
    assert not ok.get('failed'), ok['msg']


def test_plain_client_to_tls_server(valkey80_tls, run_module):
    _fail(run_module, valkey80_tls.endpoint(tls=False, socket_timeout=3, connect_timeout=3), 'tls', 'tls=true')


def test_tls_client_to_plain_server(redis70, run_module):
    _fail(run_module, redis70.endpoint(tls=True, socket_timeout=2, connect_timeout=2), 'timeout', 'tls=false')


def test_client_certificate_required(server_factory, run_module):
    server = server_factory('valkey80', tls=True, tls_auth_clients=True)
    ok = run_module('kv_info', {'server': server.endpoint()})
    assert not ok.get('failed'), ok['msg']
    ep = server.endpoint()
    del ep['client_cert'], ep['client_key']
    result = run_module('kv_info', {'server': ep})
    assert result['failed'] and result['error'] == 'tls', result['msg']
    assert 'client_cert and client_key' in result['msg'], result['msg']
    assert_no_secret(result)


def test_noperm_names_the_command(redis70, run_module):
    """INFO denied is not fatal (the facts it gives are unknown); a command the module needs is named."""
    redis70.admin().execute_command('ACL', 'SETUSER', 'noinfo', 'on', '>NoInfo-Pass-1', '~*', '+ping', '+select')
    try:
        endpoint = {'host': '127.0.0.1', 'port': redis70.port, 'username': 'noinfo', 'password': 'NoInfo-Pass-1'}
        result = _fail(run_module, endpoint, 'noperm', "'dbsize'", 'ACL SETUSER noinfo +dbsize')
        assert 'NoInfo-Pass-1' not in result['_output']
        redis70.admin().execute_command('ACL', 'SETUSER', 'noinfo', '+dbsize')
        result = run_module('kv_info', {'server': endpoint})
        assert not result.get('failed'), result['msg']
        assert "denied to this user ('info')" in result['unknown']['info']
    finally:
        redis70.admin().execute_command('ACL', 'DELUSER', 'noinfo')


def test_unknown_db(redis70, run_module):
    _fail(run_module, redis70.endpoint(db=42), 'db', 'db 42 does not exist')


def test_bad_url(run_module):
    result = run_module('kv_info', {'server': {'url': 'http://u:Url-Secret-7@h:1'}})
    assert result['failed'] and result['error'] == 'config' and 'scheme' in result['msg']
    assert 'Url-Secret-7' not in result['_output']
