# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The end of a live migration in one process: pause the writers, drain kv_sync, verify, release.

Everything the writers wait for happens here, so the pause holds no Ansible task start-up (about a
second per task on a busy control node, several times the work itself):

1. isolate the source (``CLIENT PAUSE WRITE`` with a lease, or the application users off) - the pause
   begins (``isolated_at``, taken just before the command);
2. drain the follower (kv_sync ``stopped``): the source's offset stands still and the target has applied
   and acknowledged everything up to it;
3. the final verification: the keys the follower wrote since ``keys_file_offset`` and the key counts of
   every db pair (``verify: keys``), or every key (``full``);
4. release the isolation (``released_at``, taken after the reply) - also when a step failed, so the
   source is never left paused by us.

The pause is a lease without a renewer: if this process dies, the server ends it by itself
``pause_ms`` after it began.  A run that took longer than the lease fails (writes may have resumed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import discover
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._isolate import Isolation
from ansible_collections.kvtools.migration.plugins.module_utils._sync_parts import live_sync, written_count
from ansible_collections.kvtools.migration.plugins.module_utils._sync_follow import read_record
from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions
from ansible_collections.kvtools.migration.plugins.module_utils._verify_scope import keys_offsets

ISOLATIONS = ('pause', 'acl', 'none')
SCOPES = ('keys', 'full')
LEASE_MARGIN_MS = 2000


class CutoverOptions:
    """The options of kv_cutover, validated (ranges, not clamps)."""

    def __init__(self, sync_record, isolation='pause', users=None, isolate_record=None, verify='keys',
                 keys_file_offset=0, dbs=None, db_map=None, ttl_tolerance=2, drain_timeout=30, pause_ms=None,
                 release=True, verify_report=None):
        if isolation not in ISOLATIONS:
            raise KVError('isolation must be one of %s, got %r' % (', '.join(ISOLATIONS), isolation), kind='config')
        if verify not in SCOPES:
            raise KVError('verify must be keys or full, got %r' % (verify,), kind='config')
        if not sync_record:
            raise KVError('sync_record is required: the record of the kv_sync follower to drain', kind='config')
        if isolation == 'acl' and not (users and isolate_record):
            raise KVError('isolation acl needs users and isolate_record', kind='config')
        if int(drain_timeout) < 1:
            raise KVError('drain_timeout must be at least 1 second, got %s' % drain_timeout, kind='config')
        if pause_ms is None:
            pause_ms = (int(drain_timeout) + 60) * 1000
        if int(pause_ms) < (int(drain_timeout) * 1000 + 10000):
            raise KVError('pause_ms (%s) must exceed drain_timeout by at least 10 s (%d ms or more): the pause is a '
                          'lease that must outlast the drain and the verification'
                          % (pause_ms, int(drain_timeout) * 1000 + 10000), kind='config')
        # one offset, or one per follower of a cluster source (their number is checked against the record's parts)
        if keys_file_offset is None or keys_file_offset == []:
            keys_file_offset = 0  # not given: the whole log
        offsets = list(keys_file_offset) if isinstance(keys_file_offset, (list, tuple)) else [keys_file_offset]
        offsets = keys_offsets(offsets, [None] * max(1, len(offsets)))
        self.sync_record = sync_record
        self.isolation = isolation
        self.users = list(users or [])
        self.isolate_record = isolate_record
        self.verify = verify
        self.keys_file_offset = offsets
        self.dbs = dbs
        self.db_map = db_map
        self.ttl_tolerance = ttl_tolerance
        self.drain_timeout = int(drain_timeout)
        self.pause_ms = int(pause_ms)
        self.release = bool(release)
        self.verify_report = verify_report


class Cutover:
    """``Cutover(source_ep, target_ep, options, check_mode, warn).run()`` -> the module result."""

    def __init__(self, source_ep, target_ep, options, check_mode=False, warn=None):
        self.source_ep = source_ep
        self.target_ep = target_ep
        self.opts = options
        self.check_mode = check_mode
        self.warn = warn or (lambda msg: None)

    def _isolation(self, state):
        opts = self.opts
        return Isolation(self.source_ep, mode=opts.isolation, state=state, users=opts.users,
                         record=opts.isolate_record if opts.isolation == 'acl' else None, pause_ms=opts.pause_ms,
                         renew=False, verify_window_ms=0, check_mode=self.check_mode, warn=self.warn)

    def _drain(self):
        params = dict(state='stopped', record=self.opts.sync_record, spool_dir=None, dbs=self.opts.dbs,
                      db_map=self.opts.db_map, on_conflict='fail', max_lag=0, started_timeout=1,
                      drain_timeout=self.opts.drain_timeout, max_seconds=1, spool_passphrase=None, backup=None,
                      backup_passphrase=None, count_written=False)
        return live_sync(self.source_ep, self.target_ep, params, check_mode=self.check_mode)

    def _check_offsets(self):
        """Before anything is paused: with verify keys, one keys_file_offset per follower (a cluster source has one
        per master, listed in the record's parts), or a single 0."""
        if self.opts.verify != 'keys':
            return
        rec = read_record(self.opts.sync_record) or {}
        logs = len(rec['parts']) if rec.get('parts') is not None else 1
        keys_offsets(self.opts.keys_file_offset, [None] * logs)

    def _verify(self, drain):
        opts = self.opts
        # a cluster source's drain names the log of every follower (keys_logs), a server's its one keys_log
        keys_file = (drain.get('keys_logs') or drain.get('keys_log')) if opts.verify == 'keys' else None
        if opts.verify == 'keys' and not keys_file:
            raise KVError('the follower reported no touched-keys log: cannot verify by keys; use verify: full',
                          kind='config')
        options = VerifyOptions(dbs=opts.dbs, db_map=opts.db_map, ttl_tolerance=opts.ttl_tolerance,
                                fail_on_mismatch=False, report=opts.verify_report, keys_file=keys_file,
                                keys_file_offset=opts.keys_file_offset if keys_file else 0)
        result = Verifier(self.source_ep, self.target_ep, options, warn=self.warn).run()
        result.pop('warnings_list', None)
        return result

    def _unpause_clients(self):
        """Connections for the release, opened before the pause: the source's, or one per master of a cluster
        source (every master is paused).  None when one cannot be opened: the release then goes through kv_isolate's
        engine."""
        clients = []
        try:
            client = self.source_ep.client(db=0)
            clients.append(client)
            client.ping()
            try:
                cluster = int(client.info('cluster').get('cluster_enabled', 0))
            except Exception:  # INFO denied: the engine's release below covers what this does not
                cluster = 0
            if cluster:
                topology = discover(self.source_ep, client)
                client.close()
                clients = []
                for master in topology.masters:
                    node = master.endpoint.client(db=0)
                    clients.append(node)
                    node.ping()
            return clients
        except Exception:
            for client in clients:
                client.close()
            return None

    @staticmethod
    def _unpause(clients):
        """CLIENT UNPAUSE on the prepared connections; the time after the last reply, or None when one failed."""
        if clients is None:
            return None
        done = True
        for client in clients:
            try:
                client.execute_command('CLIENT', 'UNPAUSE')
            except Exception:
                done = False
            finally:
                client.close()
        return time.time() if done else None

    @staticmethod
    def _covered(isolated, clients):
        """Every node the isolation paused has a prepared connection (a cluster's masters: its result lists them)."""
        nodes = (isolated or {}).get('nodes') or []
        return len(nodes) <= len(clients or [])

    def run(self):
        opts = self.opts
        result = dict(changed=False, isolation=opts.isolation, verify_scope=opts.verify, isolated_at=None,
                      released_at=None, writes_paused_s=None, drain=None, verification=None)
        if self.check_mode:
            result['plan'] = ['isolate the source (%s)' % opts.isolation, 'drain the follower (%s)' % opts.sync_record,
                              'verify (%s)' % opts.verify] + (['release the isolation'] if opts.release else [])
            result['changed'] = True
            return result
        self._check_offsets()
        # with pause, the release is one command on a connection opened before the pause: no set-up inside it
        unpause_clients = self._unpause_clients() if opts.isolation == 'pause' else None
        isolated = self._isolation('isolated').run() if opts.isolation != 'none' else None
        if isolated is not None:
            result['isolated_at'] = isolated.get('isolated_at')
            result['isolated_on'] = isolated.get('endpoint')  # behind Sentinel: the master of that moment
            result['isolated_nodes'] = [n['address'] for n in isolated.get('nodes') or []] or None  # a cluster
            result['changed'] = True
        began = time.time()
        failure = None
        try:
            drain = self._drain()
            result['drain'] = drain
            result['changed'] = True
            verification = self._verify(drain)
            result['verification'] = verification
            if isolated is not None and opts.isolation == 'pause' \
                    and (time.time() - began) * 1000 > opts.pause_ms - LEASE_MARGIN_MS:
                took = time.time() - began
                raise KVError('the drain and the verification took %.1f s, close to or past the pause lease of %d ms: '
                              'writes may have resumed before the end. Raise pause_ms' % (took, opts.pause_ms),
                              kind='timeout')
            if not verification['consistent']:
                raise KVError('the final verification found differences: %s' % verification['summary'],
                              kind='mismatch')
        except KVError as exc:
            failure = exc
        except Exception as exc:  # released below, then reported
            failure = KVError('unexpected error during the cutover: %s: %s' % (type(exc).__name__, exc))
        if isolated is not None and (opts.release or failure is not None):
            try:
                result['released_at'] = self._unpause(unpause_clients)
                if result['released_at'] is None or not self._covered(isolated, unpause_clients):
                    released = self._isolation('released').run()
                    result['released_at'] = released.get('released_at')
            except KVError as exc:
                if failure is None:
                    failure = exc
                else:
                    failure.message += ' Releasing the isolation failed too: %s' % exc.message
        elif unpause_clients is not None:
            for client in unpause_clients:
                client.close()
        if result['isolated_at'] is not None and result['released_at'] is not None:
            result['writes_paused_s'] = round(result['released_at'] - result['isolated_at'], 3)
        if result['drain'] is not None and result['drain'].get('keys_written_since_snapshot') is None:
            try:  # counted after the release: it reads the whole touched-keys log
                result['drain']['keys_written_since_snapshot'] = written_count(self.opts.sync_record)
            except (KVError, OSError, ValueError):
                pass
        if failure is not None:
            failure.partial = dict((k, v) for k, v in result.items() if k != 'msg')
            failure.partial['released'] = result['released_at'] is not None
            raise failure
        return result
