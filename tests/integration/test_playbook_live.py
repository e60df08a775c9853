"""playbooks/migrate.yml with kv_strategy (auto | live | offline) against real servers, an app writing all along.

The app (a thread) writes unique keys to its own db of the source and remembers when each write was
acknowledged and how long it waited.  After the play: every write acknowledged before the pause began is on
the target, the target holds no app key the source does not hold, the loaded dbs are identical, and the
report's writes_paused_s agrees with the app's longest blocked write.

Tests marked ``needs_kv_sync`` run once kv_sync (issue #13, branch sync-follow) is on this branch.
"""

import hashlib
import json
import os
import threading
import time

import pytest

from tests.integration.test_playbook_migrate import PLAYBOOK, ROOT, load, no_secret, recap, write_inventory
from tests.support import compare
from tests.support.app_writer import AppWriter, assert_app_saw_the_pause
from tests.support.ansible import ansible_playbook

APP_DB = 5
HAS_KV_SYNC = os.path.exists(os.path.join(ROOT, 'plugins', 'modules', 'kv_sync.py'))
needs_kv_sync = pytest.mark.skipif(not HAS_KV_SYNC and not os.environ.get('KV_REQUIRE_SYNC'),
                                   reason='kv_sync (branch sync-follow) is not on this branch yet')


def App(server, rate=1000):
    return AppWriter(server.admin(APP_DB), rate=rate)


def assert_app_writes_on_target(app, target, paused_at):
    """Every app write acknowledged before ``paused_at`` is on the target with its value."""
    before = [n for n, t in app.acked if t < paused_at]
    assert before, 'the app wrote nothing before the pause'
    client = target.admin(APP_DB)
    values = []
    for i in range(0, len(before), 1000):
        values += client.mget([b'app:%d' % n for n in before[i:i + 1000]])
    lost = [n for n, v in zip(before, values) if v != b'%d' % n]
    assert not lost, '%d acknowledged writes are not on the target, e.g. %r' % (len(lost), lost[:5])
    return len(before)


def assert_target_app_keys_on_source(source, target):
    src = source.admin(APP_DB)
    tgt_keys = list(target.admin(APP_DB).scan_iter(count=1000))
    if tgt_keys:
        exists = src.exists(*tgt_keys[:10000])
        assert exists == min(len(tgt_keys), 10000), 'the target holds app keys the source never had'


def report_of(tmp_path, host):
    data = json.loads((tmp_path / 'reports' / ('%s-latest.json' % host)).read_text())
    markdown = (tmp_path / 'reports' / ('%s-latest.md' % host)).read_text()
    return data, markdown


def test_offline_strategy_reports_the_pause_and_keeps_acknowledged_writes(redis70, valkey80, tmp_path):
    """kv_strategy offline, kv_isolation pause: the whole copy sits inside the pause, and the report says how long."""
    load(redis70, [0, 2])
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause', kv_strategy='offline')
    with App(redis70, rate=500) as app:
        result = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert result.returncode == 0, result.stdout[-4000:]
    assert not app.errors, app.errors
    report, markdown = report_of(tmp_path, 'pair')
    assert report['strategy'] == 'offline' and report['strategy_reason'] == 'kv_strategy is offline'
    paused = report['writes_paused_s']
    assert isinstance(paused, float) and paused > 0
    # the app's longest blocked write is the pause, seen from the app
    assert_app_saw_the_pause(app, report['writes_paused_from'], paused)
    first_lines = markdown.splitlines()[:3]
    assert any('Writes paused: %.2f s' % paused in line for line in first_lines), first_lines
    assert report['live']['snapshot_seconds'] is None
    compare.assert_same(redis70, valkey80, [(0, 0), (2, 2)])
    paused_at = report['writes_paused_from']
    assert_app_writes_on_target(app, valkey80, paused_at)
    assert_target_app_keys_on_source(redis70, valkey80)
    no_secret(result.stdout)


def test_live_when_not_possible_fails_in_preflight_and_auto_takes_offline(redis70, valkey80, tmp_path):
    """A match filter cannot be followed live: kv_strategy live stops in preflight with the reason, before anything
    is written; auto takes offline and says why in the plan and the report."""
    load(redis70, [0])
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause', kv_strategy='live', kv_match='db0:*')
    writes = compare.source_writes(redis70)
    refused = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert refused.returncode != 0
    assert 'kv_strategy is live, but live is not possible: a match filter is set' in refused.stdout
    assert valkey80.admin().info('keyspace') == {}, 'the target was written to'
    assert compare.source_writes(redis70) == writes
    report, markdown = report_of(tmp_path, 'pair')
    assert report['status'] == 'failed' and report['writes_paused_s'] is None
    assert 'not measured' in markdown.splitlines()[2]

    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause', kv_strategy='auto', kv_match='db0:*')
    chosen = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert chosen.returncode == 0, chosen.stdout[-4000:]
    assert 'strategy: offline (live is not possible: a match filter is set' in chosen.stdout
    report, markdown = report_of(tmp_path, 'pair')
    assert report['strategy'] == 'offline' and report['strategy_reason'].startswith('live is not possible: a match')
    assert '- strategy: offline (live is not possible: a match filter is set' in markdown
    no_secret(refused.stdout + chosen.stdout)


def test_bad_strategy_is_a_config_error(redis70, valkey80, tmp_path):
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())}, kv_strategy='fast')
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert result.returncode != 0
    # named as the user set it, not as the role calls it (preflight_strategy), before anything is written
    assert '- kv_strategy is fast; allowed: auto, live, offline' in result.stdout, result.stdout[-3000:]
    assert 'preflight_strategy' not in result.stdout
    assert valkey80.admin().info('keyspace') == {}


# --- with kv_sync ------------------------------------------------------------------------------------

def _bulk(server, db, count, prefix=b'k:'):
    client = server.admin(db)
    for start in range(0, count, 10000):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(count, start + 10000)):
            pipe.set(prefix + b'%d' % n, b'v%d' % n)
        pipe.execute()


@needs_kv_sync
def test_live_strategy_with_an_app_writing_all_along(redis70, valkey80, tmp_path):
    """The issue's Done-when: live + pause, an app writing all along; acknowledged writes on the target,
    everything else identical, writes_paused_s short (under 1 s is make bench-live's figure), --check and the second
    run as today, no secret."""
    load(redis70, [0, 2])
    # 30,000 keys: a snapshot that takes a while with the app writing; the 100k (and 1M) keys and the pause
    # they cost are make bench-live's
    _bulk(redis70, 3, 30000)
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause', kv_strategy='live', kv_backup_passphrase='backup secret 1')
    dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert 'strategy: live' in dry.stdout and 'Plan (check mode, nothing written)' in dry.stdout
    assert 'backup: would write the snapshot the follower receives to' in dry.stdout, dry.stdout[-4000:]
    assert not os.path.exists(str(tmp_path / 'work' / 'kv-backup-pair.rdb'))
    assert valkey80.admin().info('keyspace') == {} and not (tmp_path / 'reports').exists()
    assert not os.path.exists(str(tmp_path / 'work' / 'kv-sync-pair.json'))

    rounds_done = tmp_path / 'work' / 'kv-verify-rounds-pair.json'
    forks = int(redis70.admin().info('stats')['sync_full'])
    # the app moves to the target at the pause, as a real one would (then the source stays as the copy left it);
    # armed once the verification rounds are over, so that a slow write earlier is not taken for the pause
    sync_record = tmp_path / 'work' / 'kv-sync-pair.json'

    def drained():  # the follower was stopped (its record says so, or is gone): that is inside the pause
        try:
            return json.loads(sync_record.read_text()).get('phase') == 'stopped'
        except (OSError, ValueError):
            return not sync_record.exists()

    with AppWriter(redis70.admin(APP_DB), rate=1000, switch_client=valkey80.admin(APP_DB),
                   armed=rounds_done.exists, drained=drained) as app:
        result = ansible_playbook(PLAYBOOK, inventory=inventory)
        time.sleep(0.2)
    assert result.returncode == 0, result.stdout[-5000:]
    assert app.switched is not None, 'the app never waited for the pause'
    assert not app.errors, app.errors
    report, markdown = report_of(tmp_path, 'pair')
    assert report['strategy'] == 'live' and report['status'] == 'ok'
    paused = report['writes_paused_s']
    # The issue's target is under 1 s (measured 0.68-0.89 s here with other agents' tests running); that figure is
    # make bench-live's, on a quiet machine.  Here the bound is generous (the pause is the drain and the final
    # verification, CPU-bound: an overloaded machine stretches it), and the figure is printed.
    print('writes_paused_s %.3f (load %.1f), app longest blocked write %.3f s'
          % (paused, os.getloadavg()[0], app.longest))
    assert 0 < paused < 5.0, paused
    # what the app saw agrees with what the module measured
    assert_app_saw_the_pause(app, report['writes_paused_from'], paused)
    assert 'Writes paused: %.2f s' % paused in markdown.splitlines()[2]
    live = report['live']
    for name in ('snapshot_seconds', 'catchup_seconds', 'drain_seconds', 'final_verification_seconds', 'offset'):
        assert live[name] is not None, name
    assert live['final_verification_scope'] == 'keys' and live['rounds']
    assert report['verification']['consistent'] is True and report['verification']['scope'] == 'keys'
    assert report['backup']['dest'] and report['backup']['taken_by'] == 'this run'
    # the backup is kv_sync's snapshot: one fork of the source for backup and copy, the file kv_rdb_backup writes
    assert int(redis70.admin().info('stats')['sync_full']) - forks == 1
    backup = report['backup']
    assert backup['written_by'].startswith('kv_sync') and backup['checksum'] == 'verified' and backup['encrypted']
    assert backup['size'] == os.path.getsize(backup['dest'])
    assert backup['sha256'] == hashlib.sha256(open(backup['dest'], 'rb').read()).hexdigest()
    assert 'sha256: %s' % backup['sha256'] in markdown
    with open(backup['dest'] + '.json') as fh:
        assert json.load(fh)['taken_by'] == 'kv_sync'
    compare.assert_same(redis70, valkey80, [(0, 0), (2, 2), (3, 3)])
    paused_at = report['writes_paused_from']
    n = assert_app_writes_on_target(app, valkey80, paused_at)
    assert n > 100
    assert_target_app_keys_on_source(redis70, valkey80)

    writes = compare.source_writes(redis70)
    second = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)['pair']['changed'] == 0, second.stdout[-4000:]
    assert compare.source_writes(redis70) == writes
    for out in (dry.stdout, result.stdout, second.stdout):
        no_secret(out)
        assert 'backup secret 1' not in out


@needs_kv_sync
def test_live_failure_after_kv_sync_started_releases_everything(redis70, server_factory, tmp_path):
    """The target dies while the verification rounds run: no follower left, isolation released, source unchanged,
    the report says what the target holds."""
    target = server_factory('valkey80')
    load(redis70, [0])
    _bulk(redis70, 1, 20000)
    before = compare.snapshot(redis70)
    record = tmp_path / 'work' / 'kv-sync-pair.json'
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), target.endpoint())},
                                kv_isolation='pause', kv_strategy='live', kv_verify_rounds=50,
                                kv_verify_recheck_delay=1)
    follower = {}

    def kill_target_once_streaming():
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                state = json.loads(record.read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            if state.get('phase') == 'streaming':
                follower['pid'] = state.get('pid')
                time.sleep(0.5)
                target.kill()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_target_once_streaming)
    killer.start()
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    killer.join()
    assert result.returncode != 0
    assert follower.get('pid'), 'the follower never reached streaming'
    with pytest.raises(OSError):
        os.kill(follower['pid'], 0)  # the follower is gone
    assert not record.exists()
    redis70.admin().set(b'released?', b'yes', px=1000)  # would block under CLIENT PAUSE WRITE
    redis70.admin().delete(b'released?')
    assert compare.snapshot(redis70) == before  # (rdb_changes_since_last_save cannot tell: kv_sync's BGSAVE resets it)
    report, markdown = report_of(tmp_path, 'pair')
    assert report['status'] == 'failed' and 'incomplete copy' in report['target_holds']
    assert 'The target holds an incomplete copy' in markdown
    assert 'the follower (kv_sync) was stopped' in result.stdout
    no_secret(result.stdout)


@needs_kv_sync
def test_auto_takes_offline_where_the_source_refuses_replication_or_the_payload(
        redis70, redis74, valkey80, tmp_path):
    """A source user without SYNC/PSYNC, and Redis 7.4 -> Valkey 8.0 (payload version refused): auto takes offline
    with kv_preflight's reason."""
    load(redis70, [0])
    # everything but the replication commands (ACL DRYRUN lets kv_preflight see that)
    redis70.admin().execute_command('ACL', 'SETUSER', 'nosync', 'on', '>nosync-secret-77', '~*', '&*', '+@all',
                                    '-sync', '-psync', '-replconf')
    no_sync = dict(redis70.endpoint(), username='nosync', password='nosync-secret-77')
    inventory = write_inventory(tmp_path, {'pair-acl': (no_sync, valkey80.endpoint())},
                                kv_isolation='none', kv_backup=False)
    result = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert 'strategy: offline (live is not possible:' in result.stdout, result.stdout[-3000:]
    assert 'sync' in result.stdout.split('strategy: offline (live is not possible:', 1)[1][:300].lower()
    assert 'nosync-secret-77' not in result.stdout

    load(redis74, [0])
    inventory = write_inventory(tmp_path, {'pair-74': (redis74.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause')
    result = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert 'strategy: offline (live is not possible:' in result.stdout, result.stdout[-3000:]
    assert 'payload' in result.stdout.split('strategy: offline (live is not possible:', 1)[1][:300].lower()
    no_secret(result.stdout)
