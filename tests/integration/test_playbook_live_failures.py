"""The live strategy's failure paths and ACL isolation through the playbooks, on real servers.

* ``playbooks/rollback.yml`` after a completed live migration, and after a live run that died mid-way (the play
  killed while the follower streams, the application user switched off as if the play had died inside the cutover):
  no follower left running, its record gone, the isolation released, the source unchanged, and the output says
  what the target holds.
* ``kv_isolation: acl`` with ``kv_strategy: live``: an application writing as its own ACL user all along is refused
  only inside the cutover (between the report's ``writes_paused_from`` and the release) and writes again after it;
  every write acknowledged before the pause is on the target.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._isolate import Isolation
from tests.integration.test_playbook_live import APP_DB, _bulk, assert_app_writes_on_target, report_of
from tests.integration.test_playbook_migrate import PLAYBOOK, ROOT, load, no_secret, write_inventory
from tests.support import compare
from tests.support.ansible import ansible_env, ansible_playbook

ROLLBACK = os.path.join(ROOT, 'playbooks', 'rollback.yml')
APP_USER, APP_PASS = 'orders-app', 'Orders-App-Pass-3'


def alive(pid):
    return bool(pid) and os.path.exists('/proc/%d' % pid)


def user_on(server, name):
    flags = server.admin().acl_getuser(name)['flags']
    return 'on' in [f.decode() if isinstance(f, bytes) else f for f in flags]


class AclApp:
    """An application writing ``app:<n>`` as its own ACL user; a refused write is remembered (time sent, error) and
    retried on a new connection, as a real client's reconnect loop would."""

    def __init__(self, server):
        self.server = server
        self.acked = []          # (n, time acknowledged)
        self.failures = []       # (time sent, error)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name='acl-app')

    def _client(self):
        # no silent retries (redis-py retries a lost connection, and a refused AUTH, with a backoff by default):
        # every refusal is seen here
        return redis.Redis(host='127.0.0.1', port=self.server.port, username=APP_USER, password=APP_PASS, db=APP_DB,
                           socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def run(self):
        client = self._client()
        n = 0
        while not self.stopping.is_set():
            sent = time.time()
            try:
                client.set(b'app:%d' % n, b'%d' % n)
            except Exception as exc:  # refused (user off, connection killed): retry on a new connection
                self.failures.append((sent, type(exc).__name__))
                time.sleep(0.02)
                try:
                    client.close()
                except Exception:
                    pass
                client = self._client()
                continue
            self.acked.append((n, time.time()))
            n += 1
            time.sleep(0.002)

    def __enter__(self):
        self.thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(30)


def add_app_user(server):
    server.admin().execute_command('ACL', 'SETUSER', APP_USER, 'on', '>' + APP_PASS, '~*', '&*', '+@all')


def test_rollback_after_a_completed_live_migration(redis70, valkey80, tmp_path):
    load(redis70, [0, 2])
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause', kv_strategy='live', kv_backup=False)
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert result.returncode == 0, result.stdout[-4000:]
    record = tmp_path / 'work' / 'kv-sync-pair.json'
    assert json.loads(record.read_text())['state'] == 'stopped'  # drained at the cutover; the record stays
    before = compare.snapshot(redis70)
    copy = compare.snapshot(valkey80)

    back = ansible_playbook(ROLLBACK, inventory=inventory)
    assert back.returncode == 0, back.stdout[-4000:]
    assert not record.exists()
    assert 'the target holds the complete copy of that moment' in back.stdout, back.stdout[-3000:]
    redis70.admin().set(b'released?', b'yes', px=1000)  # would block under CLIENT PAUSE WRITE
    redis70.admin().delete(b'released?')
    assert compare.snapshot(redis70) == before
    assert compare.snapshot(valkey80) == copy, 'rollback left the target as it is'
    assert int(redis70.admin().info('replication')['connected_slaves']) == 0
    again = ansible_playbook(ROLLBACK, inventory=inventory)  # nothing left to undo
    assert again.returncode == 0, again.stdout[-3000:]
    assert 'Target:' not in again.stdout
    no_secret(back.stdout)


def test_rollback_after_a_live_run_that_died_mid_way(redis70, valkey80, tmp_path):
    """The play is killed while the follower streams and the app user is off (as if it died inside the cutover):
    rollback.yml stops the follower, switches the user back on, leaves the source as it was and names the target's
    state."""
    add_app_user(redis70)
    try:
        load(redis70, [0])
        _bulk(redis70, 1, 20000)
        before = compare.snapshot(redis70)
        inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                    kv_isolation='acl', kv_isolate_users=[APP_USER], kv_strategy='live',
                                    kv_verify_rounds=50, kv_verify_recheck_delay=5, kv_backup=False)
        record = tmp_path / 'work' / 'kv-sync-pair.json'
        cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), PLAYBOOK, '-i', inventory,
               '-c', 'local']
        play = subprocess.Popen(cmd, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, start_new_session=True)
        state = {}
        try:
            deadline = time.time() + 300
            while time.time() < deadline and play.poll() is None:
                try:
                    state = json.loads(record.read_text())
                except (OSError, ValueError):
                    state = {}
                if state.get('phase') == 'streaming':
                    break
                time.sleep(0.05)
        finally:
            os.killpg(play.pid, signal.SIGKILL)  # the play dies; the follower (its own session) lives on
            output = play.communicate()[0]
        assert state.get('phase') == 'streaming', output[-3000:]
        pid = state['pid']
        assert alive(pid), 'the follower should outlive the killed play'
        # what kv_cutover does first, had the play died inside it: the application user is switched off
        isolation = Isolation(Endpoint(redis70.endpoint()), mode='acl', state='isolated', users=[APP_USER],
                              record=str(tmp_path / 'work' / 'kv-isolation-pair.json')).run()
        assert isolation['changed'] is True and not user_on(redis70, APP_USER)

        back = ansible_playbook(ROLLBACK, inventory=inventory)
        assert back.returncode == 0, back.stdout[-4000:]
        deadline = time.time() + 10
        while alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(pid), 'rollback left the follower running'
        assert not record.exists()
        assert user_on(redis70, APP_USER), 'rollback did not switch the application user back on'
        assert int(redis70.admin().info('replication')['connected_slaves']) == 0
        # every key as it was (rdb_changes_since_last_save cannot tell: a disk-based sync's BGSAVE resets it)
        assert compare.snapshot(redis70) == before
        assert 'Target: holds an incomplete copy' in back.stdout and 'phase streaming' in back.stdout, back.stdout[-3000:]
        for out in (output, back.stdout):
            no_secret(out)
            assert APP_PASS not in out
    finally:
        redis70.admin().execute_command('ACL', 'DELUSER', APP_USER)


def test_live_strategy_with_acl_isolation_switches_the_app_off_only_at_the_cutover(redis70, valkey80, tmp_path):
    add_app_user(redis70)
    try:
        load(redis70, [0])
        _bulk(redis70, 3, 20000)
        inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                    kv_isolation='acl', kv_isolate_users=[APP_USER], kv_strategy='live',
                                    kv_backup=False)
        with AclApp(redis70) as app:
            started = time.time()
            result = ansible_playbook(PLAYBOOK, inventory=inventory)
            time.sleep(0.5)  # the app writes again after the release
        assert result.returncode == 0, result.stdout[-5000:]
        report, markdown = report_of(tmp_path, 'pair')
        assert report['strategy'] == 'live' and report['status'] == 'ok'
        isolated_at = report['writes_paused_from']
        released_at = isolated_at + report['writes_paused_s']
        assert 'switching the application users off' in report['writes_paused_measured']
        # the user was on through snapshot, catch-up and verification rounds: the app wrote all along
        assert len([n for n, t in app.acked if started < t < isolated_at]) > 100
        # switched off at the cutover: refused there, and only there
        assert app.failures, 'the app was never refused: its user was not switched off'
        outside = [(t, e) for t, e in app.failures if not isolated_at - 0.1 <= t <= released_at + 0.1]
        assert not outside, (outside[:5], isolated_at, released_at)
        # back on at the release
        assert [n for n, t in app.acked if t > released_at], 'the app could not write after the release'
        assert user_on(redis70, APP_USER)
        assert_app_writes_on_target(app, valkey80, isolated_at)
        compare.assert_same(redis70, valkey80, [(0, 0), (3, 3)])
        assert report['verification']['consistent'] is True
        no_secret(result.stdout)
        assert APP_PASS not in result.stdout and APP_PASS not in markdown
    finally:
        redis70.admin().execute_command('ACL', 'DELUSER', APP_USER)
