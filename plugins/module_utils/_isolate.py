# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Isolate a source server from its writers for the time of a migration, and release it again.

Three modes:

``pause``
    ``CLIENT PAUSE <pause_ms> WRITE``: writers block, readers (and DUMP based copies) go on.
    The pause is a lease: it ends by itself ``pause_ms`` after the last renewal.  A small detached
    *renewer* process (forked from the module, no secret in its argv) re-issues the pause every
    ``pause_ms / 3`` until ``state=released``, until the record file stops naming it, or until
    ``renew_max_seconds`` have passed.  If everything dies, writers resume ``pause_ms`` later.
``acl``
    ``ACL SETUSER <user> off`` then ``CLIENT KILL USER <user>`` for each named application user.
    Their prior on/off state is written to the record file *before* anything changes, and
    ``state=released`` sets exactly that state back.
``none``
    Changes nothing (the operator isolated the server otherwise, e.g. by unbinding the apps);
    only the write-stopped check runs.

The record file (JSON, mode 0600, written atomically) holds no secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import time
import uuid

from ansible_collections.kvtools.migration.plugins.module_utils._files import read_record_file, write_record_file
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._process import (
    process_alive, process_start_time, start_detached)
from ansible_collections.kvtools.migration.plugins.module_utils._isolate_cluster import ClusterIsolation, write_counters
from ansible_collections.kvtools.migration.plugins.module_utils._isolate_sentinel import (
    GroupAclIsolation, GroupPause, renew_group_loop)
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso

RECORD_FORMAT = 'kvtools.migration/isolation/1'
DEFAULT_PAUSE_MS = 30000
DEFAULT_RENEW_MAX_SECONDS = 3600
DEFAULT_VERIFY_WINDOW_MS = 1000

PERMISSIONS = {
    'pause': 'CLIENT PAUSE and CLIENT UNPAUSE (category @admin), e.g. ACL SETUSER <you> +client|pause +client|unpause',
    'acl': 'ACL GETUSER, ACL SETUSER and CLIENT KILL (category @admin), e.g. ACL SETUSER <you> +acl|getuser '
           '+acl|setuser +client|kill',
}


def _text(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return value if value is None else str(value)


# -- the record file ------------------------------------------------------------------------------

def read_record(path):
    """The record at ``path`` as a dict, or None when there is none."""
    return read_record_file(path, RECORD_FORMAT, 'kv_isolate')


def write_record(path, record):
    write_record_file(path, record, 'isolation')


# -- the renewer process --------------------------------------------------------------------------

def renewer_alive(pause):
    """Whether the renewer a record names still runs (same pid and same start time)."""
    if not pause or not pause.get('pid'):
        return False
    return process_alive(pause['pid'], pause.get('pid_start_time'))


def stop_renewer(pause, wait=5.0):
    """SIGTERM the renewer a record names (if it is still that process) and wait for it to end."""
    if not renewer_alive(pause):
        return False
    try:
        os.kill(int(pause['pid']), signal.SIGTERM)
    except OSError:
        return False
    deadline = time.time() + wait
    while time.time() < deadline and renewer_alive(pause):
        time.sleep(0.02)
    return True


def _record_names_token(path, token):
    try:
        with open(path, 'r') as fh:
            record = json.load(fh)
    except (IOError, OSError, ValueError):
        return False
    pause = record.get('pause') or {}
    return record.get('state') == 'isolated' and pause.get('token') == token


def renew_loop(endpoint, lease_ms, deadline, record_path, token, clock=time.time, sleep=time.sleep):
    """Re-issue ``CLIENT PAUSE`` until ``deadline`` or until the record stops naming ``token``.

    The last pause is cut so that it ends at ``deadline``: the pause is bounded in time even if the
    renewer is never told to stop.  Connection errors are retried at the next tick (the pause held
    by the server lasts meanwhile).
    """
    interval = max(0.05, lease_ms / 3000.0)
    client = None
    try:
        while True:
            now = clock()
            remaining_ms = int((deadline - now) * 1000)
            if remaining_ms <= 0 or not _record_names_token(record_path, token):
                return
            try:
                if client is None:
                    client = endpoint.client(check=False)
                client.execute_command('CLIENT', 'PAUSE', max(1, min(lease_ms, remaining_ms)), 'WRITE')
            except Exception:  # the next tick reconnects; the current lease still holds
                if client is not None:
                    try:
                        client.close()
                    except Exception:
                        pass
                client = None
            sleep(interval)
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


def _renewer_main(endpoint, lease_ms, deadline, record_path, token):  # pragma: no cover - the renewer process
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    if endpoint.sentinel is not None:  # follows the master the sentinels name (_isolate_sentinel)
        renew_group_loop(endpoint, lease_ms, deadline, record_path, token, _record_names_token)
        return
    renew_loop(endpoint, lease_ms, deadline, record_path, token)


def start_renewer(endpoint, lease_ms, deadline, record_path, token):
    """Start the renewer as a detached process (see _process.start_detached); returns its pid.

    The child inherits the already-parsed endpoint from memory: no secret reaches argv or the environment.
    """
    return start_detached('pause renewer', _renewer_main, endpoint, lease_ms, deadline, record_path, token)


# -- the engine -----------------------------------------------------------------------------------

class Isolation:
    """Plan and apply one ``kv_isolate`` run.  ``options`` keys mirror the module options."""

    def __init__(self, endpoint, mode='pause', state='isolated', users=None, record=None,
                 pause_ms=DEFAULT_PAUSE_MS, renew=True, renew_max_seconds=DEFAULT_RENEW_MAX_SECONDS,
                 verify_window_ms=DEFAULT_VERIFY_WINDOW_MS, check_mode=False, warn=None):
        self.endpoint = endpoint
        self.mode = mode
        self.state = state
        self.users = list(users or [])
        self.record_path = record
        self.pause_ms = int(pause_ms)
        self.renew = renew
        self.renew_max_seconds = int(renew_max_seconds)
        self.verify_window_ms = int(verify_window_ms)
        self.check_mode = check_mode
        self.warn = warn or (lambda msg: None)
        self.commands = []
        self.server = None
        self.node_of_cluster = False  # True: one node of a cluster, isolated by ClusterIsolation

    def for_node(self, endpoint, record, state, verify=False):
        """The isolation of one node of a cluster (see :mod:`._isolate_cluster`): these options, the node's own
        record, and no write-stopped check unless ``verify`` (the cluster's check watches every master at once)."""
        node = Isolation(endpoint, mode=self.mode, state=state, users=self.users, record=record,
                         pause_ms=self.pause_ms, renew=self.renew, renew_max_seconds=self.renew_max_seconds,
                         verify_window_ms=self.verify_window_ms if verify else 0, check_mode=self.check_mode,
                         warn=self.warn)
        node.node_of_cluster = True
        return node

    # -- helpers --------------------------------------------------------------------------------
    def _execute(self, *args, **kwargs):
        """Run a command on the server, noting it (without values) in ``executed_commands``."""
        label = kwargs.get('label') or ' '.join(_text(a) for a in args)
        self.commands.append(label)
        try:
            return self.server.client.execute_command(*args)
        except Exception as exc:
            raise self._error(exc, label)

    def _error(self, exc, action):
        err = self.endpoint.error(exc, action)
        if err.kind == 'noperm':
            err.message = '%s. kv_isolate mode=%s needs %s' % (
                err.message.rstrip('.'), self.mode, PERMISSIONS.get(self.mode, 'no special permission'))
        return err

    def _validate(self):
        if self.pause_ms < 100:
            raise KVError('pause_ms must be at least 100 (it is the lease of each CLIENT PAUSE)', kind='config')
        if self.verify_window_ms < 0:
            raise KVError('verify_window_ms must be 0 (no check) or more', kind='config')
        if self.mode == 'acl' and self.state == 'isolated' and not self.users:
            raise KVError('mode=acl needs users: the application users to switch off', kind='config')
        if self.mode == 'acl' and not self.record_path:
            raise KVError('mode=acl needs record: the file that keeps the users\' prior state', kind='config')
        if self.mode == 'pause' and self.renew and not self.record_path:
            raise KVError('mode=pause with renew=true needs record: the file that names the renewer process',
                          kind='config')

    def _base_result(self):
        return dict(changed=False, mode=self.mode, state=self.state, endpoint=self.endpoint.address,
                    migrate_allowed=self.mode != 'pause', record=self.record_path, executed_commands=self.commands)

    def _load_record(self):
        record = read_record(self.record_path)
        if record and record.get('server') != self.endpoint.identity:
            raise KVError('the record %s belongs to %s, not %s: choose the record of this server'
                          % (self.record_path, record.get('server'), self.endpoint.identity), kind='config')
        return record

    # -- entry point ----------------------------------------------------------------------------
    def run(self):
        self._validate()
        if self.mode == 'acl' and self.endpoint.sentinel is not None:  # every node of the group (_isolate_sentinel)
            return GroupAclIsolation(self).run()
        self.server = connect_server(self.endpoint)
        try:
            if self.server.cluster_enabled and not self.node_of_cluster:
                # a pause or an ACL change on one node leaves the other masters writable: every node
                return ClusterIsolation(self, self.server.client).run()
            result = self._base_result()
            if self.mode == 'pause' and not self.server.capabilities['client_pause_write']:
                raise KVError('mode=pause needs CLIENT PAUSE ... WRITE (Redis >= 6.2, Valkey); this server is %s %s: '
                              'use mode=acl or isolate the clients otherwise' % (self.server.engine,
                                                                                 self.server.version_string),
                              kind='unsupported', endpoint=self.endpoint.address)
            if self.mode == 'acl' and not self.server.capabilities['acl']:
                raise KVError('mode=acl needs ACL users (Redis >= 6.0); this server is %s %s'
                              % (self.server.engine, self.server.version_string), kind='unsupported',
                              endpoint=self.endpoint.address)
            handler = getattr(self, '_%s_%s' % (self.mode, self.state))
            if self.mode == 'pause' and self.endpoint.sentinel is not None:  # failovers (_isolate_sentinel)
                handler = GroupPause(self, handler, read_record).run
            try:
                handler(result)
            except KVError as exc:
                exc.partial = dict((k, v) for k, v in result.items() if k != 'msg')
                raise
            if self.mode == 'pause':
                result['migrate_note'] = ('writes are paused with CLIENT PAUSE WRITE: MIGRATE is a write and would '
                                          'block, copy with kvtools.migration.kv_dump_restore')
            return result
        finally:
            self.server.client.close()

    # -- mode none --------------------------------------------------------------------------------
    def _none_isolated(self, result):
        result['verify'] = self.verify_writes_stopped(raise_on_writes=True)

    def _none_released(self, result):
        result['verify'] = None

    # -- mode pause -------------------------------------------------------------------------------
    def _pause_isolated(self, result):
        record = self._load_record() if self.record_path else None
        pause = (record or {}).get('pause') or {}
        active = bool(record and record.get('state') == 'isolated' and record.get('mode') == 'pause'
                      and self.renew and renewer_alive(pause) and pause.get('deadline', 0) > time.time())
        result['pause_ms'] = self.pause_ms
        if active:
            result['renewer'] = dict(pid=pause['pid'], deadline=pause['deadline'])
            result['isolated_at'] = record.get('isolated_epoch')
            result['verify'] = self.verify_writes_stopped(raise_on_writes=True)
            return
        result['changed'] = True
        if self.check_mode:
            self.commands.append('CLIENT PAUSE %d WRITE' % self.pause_ms)
            result['verify'] = None
            return
        token = uuid.uuid4().hex
        deadline = time.time() + self.renew_max_seconds
        if self.renew:
            record = dict(format=RECORD_FORMAT, server=self.endpoint.identity, node=self.endpoint.address, mode='pause', state='isolated',
                          isolated_at=now_iso(), released_at=None, isolated_epoch=time.time(),
                          pause=dict(lease_ms=self.pause_ms, token=token, deadline=deadline, pid=None,
                                     pid_start_time=None))
            write_record(self.record_path, record)
        # the moment writes stop, taken before the command: the pause measured from here is never too short
        result['isolated_at'] = time.time()
        self._execute('CLIENT', 'PAUSE', self.pause_ms, 'WRITE')
        if self.renew:
            record['isolated_epoch'] = result['isolated_at']
        if self.renew:
            pid = start_renewer(self.endpoint, self.pause_ms, deadline, self.record_path, token)
            record['pause'].update(pid=pid, pid_start_time=process_start_time(pid))
            write_record(self.record_path, record)
            result['renewer'] = dict(pid=pid, deadline=deadline)
        result['verify'] = self.verify_writes_stopped(raise_on_writes=True)

    def _pause_released(self, result):
        record = self._load_record() if self.record_path else None
        pause = (record or {}).get('pause') or {}
        was_isolated = bool(record and record.get('state') == 'isolated')
        # Without a record (renew=false) the server cannot tell whether it is paused: report the UNPAUSE as a change.
        result['changed'] = was_isolated or record is None
        if self.check_mode:
            if result['changed']:
                self.commands.append('CLIENT UNPAUSE')
            return
        if was_isolated:
            record['state'] = 'released'
            record['released_at'] = now_iso()
            write_record(self.record_path, record)  # the renewer sees this and stops by itself
            result['renewer_stopped'] = stop_renewer(pause)
        # CLIENT UNPAUSE is harmless when nothing is paused; always end any pause we may have left.
        self._execute('CLIENT', 'UNPAUSE')
        result['released_at'] = time.time()  # taken after the reply: the pause measured to here is never too short

    # -- mode acl ---------------------------------------------------------------------------------
    def _acl_user(self, name):
        """``{'name', 'enabled', 'flags'}`` for an existing ACL user; KVError when it does not exist."""
        reply = self._execute('ACL', 'GETUSER', name)
        if not reply:
            raise KVError('ACL user %r does not exist on %s: check users (kv_isolate never creates users)'
                          % (name, self.endpoint.address), kind='config', endpoint=self.endpoint.address)
        if isinstance(reply, dict):
            fields = dict((_text(k), v) for k, v in reply.items())
        else:
            fields = dict(zip([_text(k) for k in reply[::2]], reply[1::2]))
        flags = [_text(f) for f in fields.get('flags') or []]
        return dict(name=name, enabled='on' in flags, flags=[f for f in flags if f in ('on', 'off')])

    def _acl_isolated(self, result):
        me = self.server.whoami()
        if me in self.users:
            raise KVError('users holds %r, the user kv_isolate connects as: switching it off would lock the '
                          'migration out. Connect as an admin user' % me, kind='config')
        record = self._load_record()
        if record and (record.get('mode') != 'acl' or record.get('state') != 'isolated'):
            record = None  # a finished (released) or other isolation: start a new record
        known = dict((u['name'], u) for u in (record or {}).get('users', []))
        current = [self._acl_user(name) for name in self.users]
        new_entries = [dict(u, recorded_at=now_iso()) for u in current if u['name'] not in known]
        to_disable = [u['name'] for u in current if u['enabled']]
        connected = self._connections_by_user()
        to_kill = [name for name in self.users if connected.get(name)]
        result['users'] = [dict(name=u['name'], was_enabled=known.get(u['name'], u)['enabled'],
                                disabled=u['name'] in to_disable, connections=connected.get(u['name'], 0))
                           for u in current]
        result['changed'] = bool(new_entries or to_disable or to_kill)
        if self.check_mode:
            self.commands.extend('ACL SETUSER %s off' % n for n in to_disable)
            self.commands.extend('CLIENT KILL USER %s' % n for n in self.users)
            result['verify'] = None
            return
        if record is None:
            record = dict(format=RECORD_FORMAT, server=self.endpoint.identity, node=self.endpoint.address, mode='acl', state='isolated',
                          isolated_at=now_iso(), released_at=None, users=[], isolated_epoch=time.time())
        if new_entries:
            record['users'].extend(new_entries)
            write_record(self.record_path, record)  # the prior state is safe before anything changes
        result['isolated_at'] = time.time() if to_disable or to_kill else record.get('isolated_epoch')
        for name in to_disable:
            self._execute('ACL', 'SETUSER', name, 'off')
        killed = 0
        for name in self.users:
            try:
                killed += int(self._execute('CLIENT', 'KILL', 'USER', name) or 0)
            except KVError as exc:
                if 'No such user' not in exc.message:
                    raise
        result['connections_killed'] = killed
        if killed:
            result['changed'] = True
        result['verify'] = self.verify_writes_stopped(raise_on_writes=True)

    def _acl_released(self, result):
        record = self._load_record()
        if not record or record.get('mode') != 'acl':
            result['users'] = []
            return
        restore = []
        for entry in record.get('users', []):
            if self.users and entry['name'] not in self.users:
                continue
            now = self._acl_user(entry['name'])
            restore.append(dict(name=entry['name'], enabled=entry['enabled'],
                                changed=now['enabled'] != entry['enabled']))
        result['users'] = restore
        result['changed'] = any(u['changed'] for u in restore) or record.get('state') == 'isolated'
        if self.check_mode:
            self.commands.extend('ACL SETUSER %s %s' % (u['name'], 'on' if u['enabled'] else 'off')
                                 for u in restore if u['changed'])
            return
        for user in restore:
            if user['changed']:
                self._execute('ACL', 'SETUSER', user['name'], 'on' if user['enabled'] else 'off')
        result['released_at'] = time.time()
        if record.get('state') == 'isolated':
            record['state'] = 'released'
            record['released_at'] = now_iso()
            write_record(self.record_path, record)

    # -- checks -------------------------------------------------------------------------------------
    def _connections_by_user(self):
        """``{user: number of connections}`` (without this module's own connection)."""
        try:
            reply = self.server.client.execute_command('CLIENT', 'LIST')
            my_id = self.server.client.execute_command('CLIENT', 'ID')
        except Exception as exc:
            if reply_kind(exc) == 'noperm':
                return {}
            raise self._error(exc, 'CLIENT LIST')
        out = {}
        for line in _text(reply).splitlines():
            fields = dict(part.split('=', 1) for part in line.split(' ') if '=' in part)
            if fields.get('id') == str(my_id):
                continue
            user = fields.get('user', 'default')
            out[user] = out.get(user, 0) + 1
        return out

    def _write_counters(self):
        try:
            return write_counters(self.server.client)
        except Exception as exc:
            raise self._error(exc, 'INFO')

    def verify_writes_stopped(self, raise_on_writes=True):
        """Watch the write counters for ``verify_window_ms``; KVError(kind='writes') when they move.

        ``rdb_changes_since_last_save`` moves with every write; expired or evicted keys (which move it
        too) are allowed for.  A save in the window resets the counter: the window is then measured again.
        """
        if self.verify_window_ms <= 0:
            return None
        for _attempt in range(3):
            before = self._write_counters()
            time.sleep(self.verify_window_ms / 1000.0)
            after = self._write_counters()
            if after['saves'] == before['saves'] and after['changes'] >= before['changes']:
                break
        else:
            raise KVError('cannot verify that writes stopped: the server saved its RDB during every check window',
                          kind='writes', endpoint=self.endpoint.address)
        housekeeping = (after['expired'] - before['expired']) + (after['evicted'] - before['evicted'])
        writes = max(0, after['changes'] - before['changes'] - housekeeping)
        outcome = dict(window_ms=self.verify_window_ms, writes=writes, stopped=writes == 0)
        if writes and raise_on_writes:
            connected = self._connections_by_user()
            me = self.server.whoami()
            others = ', '.join('%s (%d)' % (u, n) for u, n in sorted(connected.items()) if u != me) or 'none listed'
            hint = {
                'acl': 'a writer that is not in users still writes: add its user to users',
                'pause': 'a client not subject to CLIENT PAUSE (a replica or the primary\'s own traffic) still writes',
                'none': 'the server is not isolated: unbind the applications (kv_cf_bindings) or use mode=pause/acl',
            }[self.mode]
            raise KVError('writes did not stop on %s: %d change(s) in %d ms. %s. Connected users: %s. '
                          'The isolation stays in place; release it with state=released'
                          % (self.endpoint.address, writes, self.verify_window_ms, hint, others),
                          kind='writes', endpoint=self.endpoint.address, details=outcome)
        return outcome
