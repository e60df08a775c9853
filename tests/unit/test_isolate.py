"""Pure logic of kv_isolate's renewer (plugins/module_utils/_isolate.py; no server)."""

import json
import os

from ansible_collections.kvtools.migration.plugins.module_utils import _isolate


class FakeClient:
    def __init__(self, log, fail_first=0):
        self.log = log
        self.fail = fail_first

    def execute_command(self, *args):
        if self.fail:
            self.fail -= 1
            raise ConnectionError('lost')
        self.log.append(args)

    def close(self):
        pass


class FakeEndpoint:
    def __init__(self, log, fail_first=0):
        self.log = log
        self.fail_first = fail_first
        self.clients = 0

    def client(self, check=True):
        self.clients += 1
        return FakeClient(self.log, self.fail_first if self.clients == 1 else 0)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def write(path, token, state='isolated'):
    with open(path, 'w') as fh:
        json.dump({'format': _isolate.RECORD_FORMAT, 'state': state, 'pause': {'token': token}}, fh)


def test_renewer_cuts_the_last_lease_at_the_deadline(tmp_path):
    record = str(tmp_path / 'r.json')
    write(record, 'tok')
    log, clock = [], Clock()
    _isolate.renew_loop(FakeEndpoint(log), 3000, clock() + 4.5, record, 'tok', clock=clock, sleep=clock.sleep)
    leases = [args[2] for args in log]
    assert all(args[:2] == ('CLIENT', 'PAUSE') and args[3] == 'WRITE' for args in log)
    assert leases == [3000, 3000, 2500, 1500, 500]  # each lease ends by the deadline at the latest
    assert clock.now >= 1004.5  # renewed every lease/3 until the deadline, then stopped


def test_renewer_stops_when_the_record_no_longer_names_it_and_survives_errors(tmp_path):
    record = str(tmp_path / 'r.json')
    write(record, 'tok')
    log, clock = [], Clock()

    def sleep(seconds):
        clock.sleep(seconds)
        if len(log) == 3:
            write(record, 'tok', state='released')
    endpoint = FakeEndpoint(log, fail_first=1)
    _isolate.renew_loop(endpoint, 300, clock() + 3600, record, 'tok', clock=clock, sleep=sleep)
    assert len(log) == 3 and endpoint.clients == 2  # reconnected after the error, stopped on release
    os.unlink(record)
    _isolate.renew_loop(FakeEndpoint(log), 300, clock() + 3600, record, 'tok', clock=clock, sleep=sleep)
    assert len(log) == 3  # no record: nothing renewed


def test_renewer_identity():
    assert _isolate.process_start_time(os.getpid()) is not None
    assert _isolate.renewer_alive({'pid': os.getpid()})
    assert not _isolate.renewer_alive({'pid': os.getpid(), 'pid_start_time': -1})  # a recycled pid
    assert not _isolate.renewer_alive({'pid': None})
