"""Detached helpers (plugins/module_utils/_process.py): what the grandchild inherits cannot hurt what it opens."""

import gc
import os
import socket
import time

from ansible_collections.kvtools.migration.plugins.module_utils import _process


def _wait_for(path, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as fh:
                text = fh.read()
            if text.endswith('\n'):
                return text
        time.sleep(0.05)
    raise AssertionError('the helper wrote no result to %s' % path)


def test_objects_inherited_from_the_parent_cannot_close_the_helpers_own_files(tmp_path):
    """The parent's sockets live on in the helper's memory; collected there, each closes its descriptor
    number.  Had the helper been given those numbers closed, its own log file would reuse one and be cut off
    by that late close (the kv_sync follower died this way, silently, under a write load)."""
    inherited = [socket.socket() for dummy in range(8)]
    log_path = str(tmp_path / 'log')
    result_path = str(tmp_path / 'result')

    highest = max(sock.fileno() for sock in inherited)

    def helper():
        try:
            # open the log until it holds a number at least as high as every inherited socket's: freed numbers
            # are reused lowest first, so one of these would take a socket's number had it been closed
            fds = [os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)]
            while fds[-1] < highest:
                fds.append(os.open(log_path, os.O_WRONLY | os.O_APPEND))
            del inherited[:]  # the parent's objects go away in the helper, as any garbage does
            gc.collect()
            for fd in fds:
                os.write(fd, b'.')
                os.close(fd)
            outcome = 'ok'
        except OSError as exc:
            outcome = 'failed: %s' % exc
        with open(result_path + '.tmp', 'w') as fh:
            fh.write(outcome + '\n')
        os.rename(result_path + '.tmp', result_path)

    pid = _process.start_detached('test helper', helper)
    assert pid and pid != os.getpid()
    assert _wait_for(result_path) == 'ok\n'
    for sock in inherited:  # the parent's own sockets were not touched by the helper's collection
        assert sock.fileno() >= 0
        sock.close()


def test_the_helper_holds_nothing_that_leads_back_to_the_parents_pipes(tmp_path):
    """Ansible waits for EOF on the module's pipes: the helper must keep none of their descriptors."""
    read_fd, write_fd = os.pipe()
    result_path = str(tmp_path / 'result')

    def helper():
        time.sleep(0.5)
        with open(result_path + '.tmp', 'w') as fh:
            fh.write('done\n')
        os.rename(result_path + '.tmp', result_path)

    _process.start_detached('test helper', helper)
    os.close(write_fd)
    started = time.time()
    assert os.read(read_fd, 1) == b''  # EOF at once: no copy of the write end lives in the helper
    assert time.time() - started < 0.4
    os.close(read_fd)
    assert _wait_for(result_path) == 'done\n'
