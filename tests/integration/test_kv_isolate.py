"""kv_isolate against real servers: CLIENT PAUSE with its renewer, ACL switch-off, the write check.

Every test leaves the shared servers as it found them: pauses are ended, renewers stopped and the
ACL users it created deleted, also when an assertion fails.
"""

import json
import os
import signal
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._isolate import Isolation, renewer_alive
from tests.conftest import assert_no_secret
from tests.support import compare
from tests.support.pause_probe import WriteProbe, write_blocked

APP_PASSWORD = 'app-Secret-9'
OTHER_PASSWORD = 'oth-Secret-8'


@pytest.fixture
def cleanup():
    """Collects (server, record path, users, *write probes) and undoes pauses, renewers, ACL users and probes."""
    todo = []
    yield todo
    for server, record, users, *probes in todo:
        if record and os.path.exists(record):
            with open(record) as fh:
                pause = json.load(fh).get('pause') or {}
            if renewer_alive(pause):
                os.kill(pause['pid'], signal.SIGKILL)
        admin = server.admin()
        admin.execute_command('CLIENT', 'UNPAUSE')
        for user in users:
            admin.execute_command('ACL', 'DELUSER', user)
        for probe in probes:
            probe.finished(30)
            probe.close()


def app_client(server, user, password, timeout=5.0):
    """An application's client: no retries (redis-py would resend a timed-out write)."""
    return redis.Redis(host='127.0.0.1', port=server.port, username=user, password=password,
                       socket_timeout=timeout, decode_responses=False, retry=Retry(NoBackoff(), 0))


def write_blocks(server):
    """True when the server holds back a SET by an ordinary client (asked of the server: see pause_probe)."""
    return write_blocked(server)


def pause_calls(server):
    """How many CLIENT PAUSE the server has run (INFO commandstats)."""
    stats = server.admin().info('commandstats')
    return stats.get('cmdstat_client|pause', {}).get('calls', 0)


def compare_password(user):
    from tests.support.servers import PASSWORDS
    return PASSWORDS[user]


class Writer(threading.Thread):
    """Keeps writing as ``user`` until stopped; counts what got through."""

    def __init__(self, server, user, password):
        super(Writer, self).__init__(daemon=True)
        self.client = app_client(server, user, password, timeout=2)
        self.stop_event = threading.Event()
        self.written = 0
        self.errors = 0

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.client.incr(b'kvtools:test:counter')
                self.written += 1
            except redis.RedisError:
                self.errors += 1
            time.sleep(0.01)

    def stop(self):
        self.stop_event.set()
        self.join(5)
        self.client.close()


# --- mode pause --------------------------------------------------------------------------------

def test_pause_blocks_writers_while_reads_and_dump_restore_proceed(redis70, valkey80, run_module, tmp_path, cleanup):
    record = str(tmp_path / 'isolation.json')
    cleanup.append((redis70, record, []))
    admin = redis70.admin()
    for i in range(50):
        admin.set(b'key:%d' % i, b'\x00\xffvalue%d' % i)
    admin.hset(b'h', mapping={b'f': b'v'})
    args = {'server': redis70.endpoint('migrator'), 'mode': 'pause', 'record': record, 'pause_ms': 1200,
            'verify_window_ms': 300}

    plan = run_module('kv_isolate', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and plan['migrate_allowed'] is False
    assert plan['executed_commands'] == ['CLIENT PAUSE 1200 WRITE']
    assert not os.path.exists(record) and not write_blocks(redis70)

    first = run_module('kv_isolate', args)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['migrate_allowed'] is False
    assert 'kv_dump_restore' in first['migrate_note']
    assert first['verify'] == {'window_ms': 300, 'writes': 0, 'stopped': True}
    assert_no_secret(first)
    with open(record) as fh:
        saved = json.load(fh)
    assert saved['state'] == 'isolated' and saved['pause']['pid'] == first['renewer']['pid']
    assert 'password' not in json.dumps(saved) and compare_password('migrator') not in json.dumps(saved)
    assert renewer_alive(saved['pause'])

    # The module's own CLIENT PAUSE ran before it returned: its 1.2 s lease is over 1.5 s later.  A write held
    # back from before until after that moment was held by the renewer's pauses.
    returned, calls = time.time(), pause_calls(redis70)
    probe = WriteProbe(redis70).start()
    cleanup.append((redis70, None, [], probe))
    assert probe.blocked()
    while time.time() < returned + 1.5 or pause_calls(redis70) < calls + 1:
        time.sleep(0.05)
    assert not probe.done.is_set() and probe.blocked(), 'the pause ended although the renewer runs'
    reader = app_client(redis70, 'reader', compare_password('reader'), timeout=2)
    assert reader.get(b'key:7') == b'\x00\xffvalue7'
    reader.close()
    writes = compare.source_writes(redis70)
    copied = DumpRestore(Endpoint(redis70.endpoint(), 'source'), Endpoint(valkey80.endpoint(), 'target'),
                         CopyOptions()).run()
    assert copied['totals']['copied'] == admin.dbsize() >= 51
    compare.assert_same(redis70, valkey80, [(0, 0)])
    assert compare.source_writes(redis70) == writes

    again = run_module('kv_isolate', args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False and again['renewer']['pid'] == first['renewer']['pid']

    release = dict(args, state='released')
    released = run_module('kv_isolate', release)
    assert not released.get('failed'), released.get('msg')
    assert released['changed'] is True and released['renewer_stopped'] is True
    assert not renewer_alive(saved['pause'])
    assert probe.finished(), 'the held-back write did not go through after the release'
    assert not write_blocks(redis70)
    with open(record) as fh:
        assert json.load(fh)['state'] == 'released'
    assert run_module('kv_isolate', release)['changed'] is False


def test_pause_ends_by_itself_when_the_renewer_dies_or_runs_out(valkey9, tmp_path, cleanup):
    """Time-bounded: a killed renewer lets writers go after one lease; renew_max_seconds ends renewal.

    Asked of the server in order (a write held back, then let through), never against a clock: a loaded machine
    only makes it slower."""
    record = str(tmp_path / 'isolation.json')
    cleanup.append((valkey9, record, []))
    endpoint = Endpoint(valkey9.endpoint('migrator'), 'server')
    result = Isolation(endpoint, mode='pause', record=record, pause_ms=600, verify_window_ms=0).run()
    returned, calls = time.time(), pause_calls(valkey9)
    pid = result['renewer']['pid']
    probe = WriteProbe(valkey9).start()
    cleanup.append((valkey9, None, [], probe))
    assert probe.blocked()
    while time.time() < returned + 0.8 or pause_calls(valkey9) < calls + 1:  # past the module's own lease
        time.sleep(0.05)
    assert not probe.done.is_set() and probe.blocked(), 'the pause ended although the renewer runs'
    os.kill(pid, signal.SIGKILL)
    # nobody renews: the last lease (600 ms) runs out and the held-back write goes through
    assert probe.finished(30), 'writes stayed blocked after the renewer died'
    assert not write_blocks(valkey9)

    result = Isolation(endpoint, mode='pause', record=record, pause_ms=400, renew_max_seconds=2,
                       verify_window_ms=0).run()
    assert result['changed'] is True  # the recorded renewer is dead: isolate again
    probe = WriteProbe(valkey9).start()
    cleanup.append((valkey9, None, [], probe))
    assert probe.blocked()
    # the renewer ends by itself after renew_max_seconds (nobody releases, nobody kills it), and so does the pause
    deadline = time.time() + 60
    while renewer_alive({'pid': result['renewer']['pid']}) and time.time() < deadline:
        time.sleep(0.05)
    assert not renewer_alive({'pid': result['renewer']['pid']}), 'the renewer outlived renew_max_seconds'
    assert probe.finished(30), 'writes stayed blocked after renew_max_seconds'
    assert not write_blocks(valkey9)


def test_pause_without_admin_names_the_permission(redis70, run_module, tmp_path, cleanup):
    cleanup.append((redis70, None, []))
    result = run_module('kv_isolate', {'server': redis70.endpoint('reader'), 'mode': 'pause', 'renew': False,
                                       'verify_window_ms': 0})
    assert result.get('failed')
    assert result['error'] == 'noperm'
    assert 'client|pause' in result['msg'].lower() and '@admin' in result['msg']
    assert_no_secret(result)
    assert not write_blocks(redis70)


# --- mode acl ----------------------------------------------------------------------------------

def test_acl_drops_a_connected_app_session_and_restores_it(redis70, run_module, tmp_path, cleanup):
    record = str(tmp_path / 'acl.json')
    cleanup.append((redis70, record, ['app', 'app_off']))
    admin = redis70.admin()
    admin.execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PASSWORD, '~*', '+@all')
    admin.execute_command('ACL', 'SETUSER', 'app_off', 'off', '>' + OTHER_PASSWORD, '~*', '+@all')
    app = app_client(redis70, 'app', APP_PASSWORD)
    app.set(b'app:key', b'v')
    args = {'server': redis70.endpoint('admin'), 'mode': 'acl', 'users': ['app', 'app_off'], 'record': record,
            'verify_window_ms': 300}

    plan = run_module('kv_isolate', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and not os.path.exists(record)
    assert 'ACL SETUSER app off' in plan['executed_commands']
    assert app.get(b'app:key') == b'v'  # nothing happened to the session

    first = run_module('kv_isolate', args)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['migrate_allowed'] is True
    assert first['connections_killed'] >= 1
    assert {u['name']: u['was_enabled'] for u in first['users']} == {'app': True, 'app_off': False}
    assert_no_secret(first, APP_PASSWORD, OTHER_PASSWORD)
    with open(record) as fh:
        saved = json.load(fh)
    assert [(u['name'], u['enabled']) for u in saved['users']] == [('app', True), ('app_off', False)]
    assert APP_PASSWORD not in json.dumps(saved)
    with pytest.raises(redis.ConnectionError):  # the live session was dropped ...
        app.get(b'app:key')
    with pytest.raises(redis.AuthenticationError):  # ... and cannot come back
        app_client(redis70, 'app', APP_PASSWORD).ping()

    again = run_module('kv_isolate', args)
    assert again['changed'] is False, again
    with open(record) as fh:
        assert [u['enabled'] for u in json.load(fh)['users']] == [True, False]  # prior state kept

    release = dict(args, state='released')
    released = run_module('kv_isolate', release)
    assert not released.get('failed'), released.get('msg')
    assert released['changed'] is True
    assert app_client(redis70, 'app', APP_PASSWORD).get(b'app:key') == b'v'
    assert b'off' in admin.execute_command('ACL', 'GETUSER', 'app_off')[b'flags']  # restored exactly: it was off before
    assert run_module('kv_isolate', release)['changed'] is False


def test_write_check_fails_when_a_writer_still_gets_through(redis70, tmp_path, cleanup):
    record = str(tmp_path / 'acl.json')
    cleanup.append((redis70, record, ['app', 'other']))
    admin = redis70.admin()
    admin.execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PASSWORD, '~*', '+@all')
    admin.execute_command('ACL', 'SETUSER', 'other', 'on', '>' + OTHER_PASSWORD, '~*', '+@all')
    writer = Writer(redis70, 'other', OTHER_PASSWORD)  # not in users: it keeps writing
    writer.start()
    try:
        endpoint = Endpoint(redis70.endpoint('admin'), 'server')
        with pytest.raises(KVError) as err:
            Isolation(endpoint, mode='acl', users=['app'], record=record, verify_window_ms=300).run()
        assert err.value.kind == 'writes'
        assert 'writes did not stop' in err.value.message and 'other (1)' in err.value.message
        assert err.value.details['writes'] > 0
        assert_no_secret(err.value.message, APP_PASSWORD, OTHER_PASSWORD)
        with pytest.raises(KVError) as err:
            Isolation(endpoint, mode='none', verify_window_ms=300).run()
        assert err.value.kind == 'writes' and 'not isolated' in err.value.message
        # and the release still restores what the failed run changed
        released = Isolation(endpoint, mode='acl', state='released', record=record).run()
        assert released['changed'] is True
    finally:
        writer.stop()
    assert writer.written > 0
    assert Isolation(endpoint, mode='none', verify_window_ms=300).run()['verify']['stopped'] is True


def test_acl_refuses_unknown_or_own_user(redis70, tmp_path, cleanup):
    cleanup.append((redis70, None, []))
    endpoint = Endpoint(redis70.endpoint('admin'), 'server')
    record = str(tmp_path / 'acl.json')
    with pytest.raises(KVError) as err:
        Isolation(endpoint, mode='acl', users=['nobody'], record=record, verify_window_ms=0).run()
    assert 'does not exist' in err.value.message
    assert redis70.admin().execute_command('ACL', 'GETUSER', 'nobody') is None  # never created
    with pytest.raises(KVError) as err:
        Isolation(endpoint, mode='acl', users=['admin'], record=record, verify_window_ms=0).run()
    assert 'lock the migration out' in err.value.message
