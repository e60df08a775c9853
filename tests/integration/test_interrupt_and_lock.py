"""Ctrl-C on ansible-playbook stops the async copy it waits for; a target takes one copy at a time.

A slow copy (batch_size 1, one worker) is started with async and watched with kv_wait, as the roles do.  While it
runs a second copy into the same target fails with ``error: locked`` naming the first one's pid.  SIGINT to the
playbook's process group (what a terminal's Ctrl-C sends) ends the playbook and the renewals of kv_wait's watch
file; once that file is older than its silence the copy stops, keeping its checkpoint (the test ages the file
rather than waiting, so that no machine is fast enough to finish the copy first); a rerun with that checkpoint
takes the lock and finishes the copy.
"""

import json
import os
import signal
import subprocess
import sys
import time

import yaml

from tests.support.ansible import ansible_env

KEYS = 200000


def _load(server):
    client = server.admin()
    for start in range(0, KEYS, 10000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, start + 10000):
            pipe.set(b'key:%d' % i, b'value-%d' % i)
        pipe.execute()


def _read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (IOError, OSError, ValueError):
        return None


def _wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError('timed out waiting for %s' % what)


def test_ctrl_c_stops_the_copy_and_the_target_is_locked_meanwhile(server_factory, run_module, tmp_path):
    source = server_factory('redis70')
    target = server_factory('valkey80')
    _load(source)
    progress = str(tmp_path / 'copy.progress')
    checkpoint = str(tmp_path / 'copy.ckpt')
    args = {'source': source.endpoint(), 'target': target.endpoint(), 'batch_size': 1, 'workers': 1,
            'progress': progress, 'checkpoint': checkpoint}
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'copy', 'kvtools.migration.kv_dump_restore': args, 'async': 3600, 'poll': 0, 'register': 'job'},
        {'name': 'wait', 'kvtools.migration.kv_wait': {'jid': '{{ job.ansible_job_id }}', 'progress': progress,
                                                       'interval': 1}},
    ]}]
    path = tmp_path / 'play.yml'
    path.write_text(yaml.safe_dump(play))
    log = open(str(tmp_path / 'play.log'), 'w')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), str(path), '-i', 'localhost,',
           '-c', 'local']
    playbook = subprocess.Popen(cmd, env=ansible_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(lambda: os.path.exists(progress + '.watch') and (_read_json(progress) or {}).get('done', 0) > 0,
                  120, 'the copy to run under kv_wait')
        owner_pid = _read_json(progress)['pid']

        second = run_module('kv_dump_restore', {'source': source.endpoint(), 'target': target.endpoint()})
        assert second.get('failed') is True and second.get('error') == 'locked', second
        assert 'pid %d' % owner_pid in second['msg'] and progress in second['msg'], second['msg']

        os.killpg(playbook.pid, signal.SIGINT)  # a terminal's Ctrl-C goes to the foreground process group
        playbook.wait(60)
    finally:
        if playbook.poll() is None:
            os.killpg(playbook.pid, signal.SIGKILL)
            playbook.wait(10)
        log.close()
    output = (tmp_path / 'play.log').read_text()
    assert 'runs as pid %d' % owner_pid in output and 'kill %d' % owner_pid in output, output[-2000:]
    # kv_wait polled every second: the copy takes it for gone once the watch file is 3 * 1 + 10 s old
    watch = progress + '.watch'
    assert _read_json(watch)['silence'] == 13, _read_json(watch)
    renewed = os.stat(watch).st_mtime
    time.sleep(2.5)  # more than two polls of kv_wait: nobody renews the watch file any more
    assert os.stat(watch).st_mtime == renewed, 'the watch file is still renewed after Ctrl-C'
    # Instead of waiting 13 s (while a fast machine could finish the copy), age the watch file past its silence:
    # the copy notices at its next progress tick.  No later than now - 1 s: the copy ignores a watch file that was
    # already stale when it started (a leftover of an earlier run).
    stale = time.time() - 13 - 1
    os.utime(watch, (stale, stale))
    final = _wait_for(lambda: (_read_json(progress) or {}).get('phase') == 'failed' and _read_json(progress),
                      120, 'the copy to stop')
    copied = target.admin().dbsize()
    assert 0 < copied < KEYS, copied
    assert final['done'] < KEYS
    _wait_for(lambda: not os.path.exists('/proc/%d' % owner_pid), 30, 'the copy process to end')
    assert os.path.exists(checkpoint), 'the interrupted copy kept no checkpoint'

    # the lock went with its owner: the rerun resumes from the checkpoint and completes
    rerun = run_module('kv_dump_restore', dict(args, batch_size=1000, workers=3))
    assert not rerun.get('failed'), rerun.get('msg')
    assert rerun['resumed'] is True
    assert target.admin().dbsize() == KEYS
