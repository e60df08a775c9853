"""kv_cutover against real servers: a kv_sync follower runs while an app writes; one call pauses the writers,
drains, verifies the keys the follower wrote and releases.  Every write acknowledged before the pause is on
the target; the pause the engine reports matches the app's longest blocked write; a failure releases.
"""

import json
import os
import signal
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._cutover import Cutover, CutoverOptions
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._sync import Sync
from tests.conftest import assert_no_secret
from tests.support import compare
from tests.support.app_writer import AppWriter, assert_app_saw_the_pause

SYNC_DEFAULTS = dict(state='started', spool_dir=None, dbs=None, db_map=None, on_conflict='fail', max_lag=65536,
                     started_timeout=120, drain_timeout=30, max_seconds=600, spool_passphrase=None, backup=None,
                     backup_passphrase=None)


def ep(server, label):
    return Endpoint(server.endpoint(), label)


@pytest.fixture
def follower(redis70, valkey80, tmp_path):
    """A running kv_sync follower from redis70 (dbs 0 and 2 loaded) to valkey80; killed and unpaused at the end."""
    for db in (0, 2):
        pipe = redis70.admin(db).pipeline(transaction=False)
        for i in range(5000):
            pipe.set(b'k:%d' % i, b'v' * 30, px=600000 if i % 10 == 0 else None)
        pipe.set(b'awkward\n\x00\xff', b'x')
        pipe.execute()
    record = str(tmp_path / 'sync.json')
    params = dict(SYNC_DEFAULTS, record=record)
    started = Sync(ep(redis70, 'source'), ep(valkey80, 'target'), params).run()
    assert started['phase'] == 'streaming', started
    yield redis70, valkey80, record, started
    redis70.admin().execute_command('CLIENT', 'UNPAUSE')
    if os.path.exists(record):
        with open(record) as fh:
            pid = json.load(fh).get('pid')
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _wait_for_writes(app, count, timeout=120):
    deadline = time.time() + timeout
    while len(app.acked) < count and not app.errors and time.time() < deadline:
        time.sleep(0.01)
    assert len(app.acked) >= count, (len(app.acked), app.errors)


def cutover(source, target, record, **options):
    return Cutover(ep(source, 'source'), ep(target, 'target'), CutoverOptions(record, **options)).run()


def test_pause_drain_verify_release_with_an_app_writing(follower):
    source, target, record, started = follower
    with AppWriter(source.admin(5), rate=500) as app:
        _wait_for_writes(app, 50)  # the app writes while the follower follows
        result = cutover(source, target, record, keys_file_offset=started['keys_log_size'])
        _wait_for_writes(app, len(app.acked) + 20)  # and after the release
    assert not app.errors, app.errors
    assert result['changed'] is True
    paused = result['writes_paused_s']
    assert paused == round(result['released_at'] - result['isolated_at'], 3) and paused > 0
    # what the app saw of the pause agrees with what the engine measured (see assert_app_saw_the_pause)
    assert_app_saw_the_pause(app, result['isolated_at'], paused)
    verification = result['verification']
    assert verification['consistent'] and verification['scope'] == 'keys', verification['summary']
    assert verification['keys_file']['keys'] >= 1
    assert result['drain']['final_offset'] >= started['offset']
    before = app.acked_before(result['isolated_at'])
    values = target.admin(5).mget([b'app:%d' % n for n in before])
    assert values == [b'%d' % n for n in before], 'acknowledged writes are missing on the target'
    # the loaded dbs are identical, and the source accepts writes again
    compare.assert_same(source, target, [(0, 0), (2, 2)])
    source.admin(9).set(b'released', b'1', px=1000)
    assert_no_secret(result)


def test_a_difference_fails_and_still_releases(follower):
    source, target, record, started = follower
    target.admin(0).set(b'k:7', b'changed on the target by someone else')
    with pytest.raises(KVError) as err:
        cutover(source, target, record, verify='full')
    assert err.value.kind == 'mismatch' and 'final verification found differences' in err.value.message
    partial = err.value.partial
    assert partial['released'] is True and partial['writes_paused_s'] > 0
    source.admin(9).set(b'released', b'1', px=1000)  # would block if the pause were still on


def test_check_mode_plans_and_pauses_nothing(follower):
    source, target, record, started = follower
    writes = compare.source_writes(source)
    result = Cutover(ep(source, 'source'), ep(target, 'target'), CutoverOptions(record), check_mode=True).run()
    assert result['plan'][0] == 'isolate the source (pause)' and result['isolated_at'] is None
    assert compare.source_writes(source) == writes
    with open(record) as fh:
        assert json.load(fh)['phase'] == 'streaming', 'check mode touched the follower'


@pytest.mark.parametrize('options, words', [
    (dict(isolation='cf'), 'isolation must be one of pause, acl, none'),
    (dict(verify='some'), 'verify must be keys or full'),
    (dict(isolation='acl'), 'isolation acl needs users and isolate_record'),
    (dict(drain_timeout=0), 'drain_timeout must be at least 1 second'),
    (dict(drain_timeout=30, pause_ms=35000), 'pause_ms (35000) must exceed drain_timeout by at least 10 s'),
    (dict(keys_file_offset=-1), 'keys_file_offset must be 0 or more'),
])
def test_bad_options_are_named(options, words):
    with pytest.raises(KVError) as err:
        CutoverOptions('/tmp/record.json', **options)
    assert err.value.kind == 'config' and words in err.value.message
