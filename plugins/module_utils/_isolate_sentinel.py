# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kv_isolate ``mode=acl`` on a Sentinel endpoint: every node of the group, so a failover cannot undo it.

ACL users are per node and not replicated: switching the application users off on the master alone leaves a
replica that the sentinels promote open to the applications' writes, with nobody told.  So the isolation is
applied to the master *and* to every replica the sentinels list, each node with a record of its own (the users'
prior state on that node, ``<record>.node-<host>-<port>``), and the record the user names lists the nodes, the
master they had when the isolation was made, and the failovers seen since.

* A re-run (``state=isolated``, the status check) compares the master the sentinels name with the record's:
  a moved master is reported (``master_moved``); a new master that was not isolated (a replica added or down
  at isolation time) is isolated now, saying so.  The write check runs on the master of the moment.
* ``state=released`` restores every recorded node to its own prior state; a node that cannot be reached is
  named (``unreleased``) and a later release tries it again.
* A replica the sentinels list as down cannot be isolated: the step warns and names it.

The engine of one node is :class:`._isolate.Isolation` itself, run on an endpoint pointing at that node.

``mode=pause`` on a Sentinel endpoint pauses the master of the moment (the record's ``node``).  The pause is a
lease renewed by a detached renewer: on a Sentinel endpoint it is :func:`renew_group_loop`, which asks the
sentinels about once a second and, when they name another master, pauses that one too (the old one stays paused:
a failback finds it paused) and writes the failover to ``<record>.failover`` (its own file: the record belongs to
the module, which may be releasing it at that moment).  :class:`GroupPause` wraps the module's pause steps: a
re-run and the release name a moved master (``master_moved``) and the nodes paused (``paused_nodes``); the
release un-pauses every one of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._files import read_record_file, write_record_file
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso

GROUP_FORMAT = 'kvtools.migration/isolation-group/1'
FAILOVER_FORMAT = 'kvtools.migration/isolation-failover/1'
CHECK_INTERVAL = 1.0   # seconds between two questions to the sentinels in the renewer
CHECK_TIMEOUT = 2.0    # seconds per sentinel for one question


def node_record_path(record_path, address):
    return '%s.node-%s' % (record_path, address.replace(':', '-').replace('/', '_'))


def node_endpoint(endpoint, address):
    """A copy of the Sentinel ``endpoint`` pointing at the data node ``address`` (its own credentials and TLS)."""
    node = copy.copy(endpoint)
    host, port = address.rsplit(':', 1)
    node.host, node.port = host, int(port)
    node.sentinel = None        # one node: its identity is its address; no watch of its own
    node.master_watch = None
    node.master_resolved = True
    return node


def _down(flags):
    return any(flag in flags for flag in ('s_down', 'o_down', 'disconnected'))


class GroupAclIsolation:
    """``GroupAclIsolation(isolation).run()``: ``isolation`` is the :class:`Isolation` built from the options."""

    def __init__(self, isolation):
        self.base = isolation
        self.endpoint = isolation.endpoint
        self.record_path = isolation.record_path
        self.warn = isolation.warn

    def _node(self, address, state, verify):
        base = self.base
        return type(base)(node_endpoint(self.endpoint, address), mode='acl', state=state, users=base.users,
                          record=node_record_path(self.record_path, address),
                          verify_window_ms=base.verify_window_ms if verify else 0, check_mode=base.check_mode,
                          warn=self.warn)

    def _load(self):
        record = read_record_file(self.record_path, GROUP_FORMAT, 'kv_isolate')
        if record and record.get('server') != self.endpoint.identity:
            raise KVError('the record %s belongs to %s, not %s: choose the record of this server'
                          % (self.record_path, record.get('server'), self.endpoint.identity), kind='config')
        return record

    def _write(self, record):
        write_record_file(self.record_path, record, 'isolation')

    def run(self):
        if self.base.state == 'released':
            return self._released()
        return self._isolated()

    def _members(self):
        """``(replicas up, replicas down)`` as the sentinels list them."""
        up, down = [], []
        for host, port, flags in self.endpoint.master_watch.replicas():
            (down if _down(flags) else up).append('%s:%d' % (host, port))
        return up, down

    def _isolated(self):
        master = self.endpoint.address
        record = self._load()
        if record and record.get('state') != 'isolated':
            record = None  # released before: a new isolation
        up, down = self._members()
        known = [n['node'] for n in (record or {}).get('nodes', [])]
        nodes = [master] + [n for n in up if n != master]
        for address in known:  # nodes isolated before and not listed now (an old master that is down)
            if address not in nodes and address not in down:
                nodes.append(address)
        result = dict(changed=False, mode='acl', state='isolated', endpoint=master, master=master,
                      migrate_allowed=True, record=self.record_path, executed_commands=[], nodes=[])
        notes = []
        if record and record.get('node') != master:
            result['master_moved'] = dict(old_master=record.get('node'), new_master=master)
            notes.append('the master moved from %s to %s since the isolation was made' % (record.get('node'), master))
            if master not in known:
                notes.append('%s was not isolated: the application users are switched off there now' % master)
        never = [n for n in down if n not in known]  # down and never isolated (a known one keeps its users off)
        if [n for n in down if n in known]:
            result['down'] = [n for n in down if n in known]
        if never:
            result['not_isolated'] = never
            self.warn('kv_isolate: the sentinels list the replica(s) %s as down: their application users could not '
                      'be switched off. A failover to one of them would take the applications\' writes: release, '
                      'or isolate again once they are up' % ', '.join(never))
        if not self.base.check_mode:  # the nodes first: a release finds every node record even after a failure
            if record is None:
                record = dict(format=GROUP_FORMAT, server=self.endpoint.identity, mode='acl', state='isolated',
                              node=master, isolated_at=now_iso(), released_at=None, nodes=[], failovers=[])
                result['changed'] = True
            for address in nodes:
                if address not in known:
                    record['nodes'].append(dict(node=address, role='master' if address == master else 'replica',
                                                record=node_record_path(self.record_path, address),
                                                added_at=now_iso()))
            if 'master_moved' in result and master != (record['failovers'] or [{}])[-1].get('new_master'):
                record['failovers'].append(dict(result['master_moved'], seen_at=now_iso()))
            self._write(record)
        fresh = not known
        done = []
        for address in nodes[1:] + nodes[:1]:  # the master last: its write check is the step's last word
            is_master = address == master
            try:
                outcome = self._node(address, 'isolated', verify=is_master).run()
            except KVError as exc:
                if is_master or address in up:
                    exc.message = '%s: isolating %s (%s) failed: %s' % (
                        self.endpoint.label, address, 'master' if is_master else 'replica', exc.message)
                    if fresh and exc.kind != 'writes' and not self.base.check_mode:
                        touched = os.path.exists(node_record_path(self.record_path, address))  # users' state saved
                        exc.message += self._undo(done + ([address] if touched else []), record)
                    exc.partial = dict((k, v) for k, v in result.items() if k != 'msg')
                    raise
                self.warn('kv_isolate: %s, isolated before, cannot be reached now (%s): it is not the master'
                          % (address, exc.message))
                result['nodes'].append(dict(address=address, role='unreachable', changed=False, error=exc.message))
                continue
            done.append(address)
            result['changed'] = result['changed'] or outcome['changed']
            result['executed_commands'].extend('%s: %s' % (address, c) for c in outcome['executed_commands'])
            result['nodes'].append(dict(address=address, role='master' if is_master else 'replica',
                                        changed=outcome['changed'], users=outcome.get('users'),
                                        connections_killed=outcome.get('connections_killed')))
            if is_master:
                for key in ('users', 'isolated_at', 'verify', 'connections_killed'):
                    result[key] = outcome.get(key)
        result['msg'] = 'application users off on %s (master %s)%s' % (
            ', '.join(n['address'] for n in result['nodes'] if n['role'] != 'unreachable'), master,
            ('; ' + '; '.join(notes)) if notes else '')
        return result

    def _undo(self, addresses, record):
        """A new isolation that failed on one node: set the nodes done so far back; the sentence to add."""
        failed = []
        for address in addresses:
            try:
                self._node(address, 'released', verify=False).run()
            except KVError as exc:
                failed.append('%s (%s)' % (address, exc.message))
        if failed:
            return ('. Setting the users back failed on %s: run state=released once reachable'
                    % '; '.join(failed))
        record.update(state='released', released_at=now_iso())
        self._write(record)
        if not addresses:
            return '. No node was changed: nothing stays isolated'
        return '. The users were set back on %s: nothing stays isolated' % ', '.join(addresses)

    def _released(self):
        master = self.endpoint.address
        record = self._load()
        result = dict(changed=False, mode='acl', state='released', endpoint=master, master=master,
                      migrate_allowed=True, record=self.record_path, executed_commands=[], nodes=[], users=[])
        if not record:
            return result
        if record.get('node') != master:
            result['master_moved'] = dict(old_master=record.get('node'), new_master=master)
        unreleased = []
        for entry in record.get('nodes', []):
            address = entry['node']
            try:
                outcome = self._node(address, 'released', verify=False).run()
            except KVError as exc:
                unreleased.append(dict(node=address, error=exc.message))
                continue
            result['changed'] = result['changed'] or outcome['changed']
            result['executed_commands'].extend('%s: %s' % (address, c) for c in outcome['executed_commands'])
            result['nodes'].append(dict(address=address, changed=outcome['changed'], users=outcome.get('users')))
            if address == master:
                result['users'] = outcome.get('users')
        result['released_at'] = time.time()
        if unreleased:
            result['unreleased'] = unreleased
            self.warn('kv_isolate: the application users could not be set back on %s; release again once %s '
                      'reachable' % ('; '.join('%s (%s)' % (u['node'], u['error']) for u in unreleased),
                                     'it is' if len(unreleased) == 1 else 'they are'))
        if master not in [n['node'] for n in record.get('nodes', [])]:
            result['msg'] = ('the master %s is none of the nodes the isolation was applied to: its users were not '
                             'touched by it' % master)
        if record.get('state') == 'isolated' and not self.base.check_mode:
            result['changed'] = True
            record.update(state='released', released_at=now_iso(), unreleased=[u['node'] for u in unreleased])
            self._write(record)
        elif record.get('state') == 'isolated':
            result['changed'] = True
        return result


# -- mode pause -----------------------------------------------------------------------------------

def failover_path(record_path):
    return '%s.failover' % record_path


def read_failovers(record_path, token=None):
    """The renewer's failover file (``nodes`` paused, ``failovers`` seen) for ``token`` (any when None)."""
    found = read_record_file(failover_path(record_path), FAILOVER_FORMAT, 'kv_isolate renewer')
    if found and token is not None and found.get('token') != token:
        return None
    return found


def _pause_node(clients, endpoint, address, lease_ms):
    """CLIENT PAUSE WRITE on ``address``; a connection error is retried at the next tick (the lease holds)."""
    client = clients.get(address)
    try:
        if client is None:
            client = clients[address] = node_endpoint(endpoint, address).client(check=False)
        client.execute_command('CLIENT', 'PAUSE', lease_ms, 'WRITE')
        return True
    except Exception:  # pylint: disable=broad-except
        clients.pop(address, None)
        try:
            client.close()
        except Exception:  # pylint: disable=broad-except
            pass
        return False


def renew_group_loop(endpoint, lease_ms, deadline, record_path, token, names_token, clock=time.time,
                     sleep=time.sleep):
    """The renewer of a pause on a Sentinel endpoint: the lease discipline of ``_isolate.renew_loop``, on the
    master the sentinels name (and every node paused before it: a failback finds them paused).

    ``names_token(record_path, token)``: whether the record still names this renewer."""
    interval = max(0.05, lease_ms / 3000.0)
    paused = [endpoint.address]
    failovers = []
    clients = {}
    checked = 0.0
    if endpoint.master_watch is not None:
        endpoint.master_watch.close()  # the module's connection is not this process's to use
    try:
        while True:
            now = clock()
            remaining_ms = int((deadline - now) * 1000)
            if remaining_ms <= 0 or not names_token(record_path, token):
                return
            lease = max(1, min(lease_ms, remaining_ms))
            if endpoint.master_watch is not None and now - checked >= CHECK_INTERVAL:
                checked = now
                # every sentinel: one that has not heard of the failover yet (the pause holds their hellos back)
                # must not hide the new master; a node any of them names is paused
                named = sorted('%s:%d' % hp for hp in endpoint.master_watch.ask_each(timeout=CHECK_TIMEOUT))
                for master in [n for n in named if n not in paused]:  # a failback finds its node paused already
                    _pause_node(clients, endpoint, master, lease)  # first the pause, then the paperwork
                    failovers.append(dict(old_master=paused[-1], new_master=master, seen_at=now_iso()))
                    paused.append(master)
                    write_record_file(failover_path(record_path), dict(
                        format=FAILOVER_FORMAT, token=token, master=master, nodes=list(paused),
                        failovers=failovers), 'kv_isolate renewer')
            for address in paused:
                _pause_node(clients, endpoint, address, lease)
            sleep(interval)
    finally:
        for client in clients.values():
            try:
                client.close()
            except Exception:  # pylint: disable=broad-except
                pass


class GroupPause:
    """Wraps a pause step (``handler(result)``) of :class:`._isolate.Isolation` on a Sentinel endpoint.

    ``read_record``: the reader of the isolation record (its format belongs to ``_isolate``)."""

    def __init__(self, isolation, handler, read_record):
        self.base = isolation
        self.handler = handler
        self.read_record = read_record

    def _nodes(self, record):
        """``(paused nodes, failovers)`` of the isolation ``record`` (the renewer's file for its token)."""
        if not record or record.get('mode') != 'pause':
            return [], []
        token = (record.get('pause') or {}).get('token')
        seen = read_failovers(self.base.record_path, token) if self.base.record_path and token else None
        if seen:
            return list(seen.get('nodes') or []), list(seen.get('failovers') or [])
        return ([record['node']] if record.get('node') else []), []

    def run(self, result):
        base = self.base
        master = base.endpoint.address
        before = self.read_record(base.record_path) if base.record_path else None
        was_isolated = bool(before and before.get('state') == 'isolated')
        nodes, failovers = self._nodes(before) if was_isolated else ([], [])
        self.handler(result)
        if was_isolated and before.get('node') and before.get('node') != master:
            result['master_moved'] = dict(old_master=before['node'], new_master=master)
        if failovers:
            result['failovers'] = failovers
        if base.state == 'released':
            self._unpause_others(result, [n for n in nodes if n != master])
            return
        after = self.read_record(base.record_path) if base.record_path and not base.check_mode else None
        now_paused, _seen = self._nodes(after)
        result['paused_nodes'] = sorted(set(now_paused + [master]))
        if 'master_moved' in result:
            old, new = result['master_moved']['old_master'], master
            if result.get('changed'):
                how = 'the pause is applied to the new master %s now' % new
            elif master in nodes:
                how = 'the renewer paused the new master %s as soon as it saw the failover' % new
            else:
                how = 'the pause is held on %s' % new
            result['msg'] = 'the master moved from %s to %s since the pause was made: %s' % (old, new, how)

    def _unpause_others(self, result, others):
        """The release: CLIENT UNPAUSE on the nodes paused before a failover (the master's is the step's own)."""
        base = self.base
        result['unpaused_nodes'] = [base.endpoint.address] + others
        if base.check_mode:
            base.commands.extend('%s: CLIENT UNPAUSE' % n for n in others)
            return
        failed = []
        for address in others:
            client = None
            try:
                client = node_endpoint(base.endpoint, address).client(check=True)
                client.execute_command('CLIENT', 'UNPAUSE')
                base.commands.append('%s: CLIENT UNPAUSE' % address)
            except KVError as exc:
                failed.append('%s (%s)' % (address, exc.message))
            except Exception as exc:  # pylint: disable=broad-except
                failed.append('%s (%s)' % (address, exc))
            finally:
                if client is not None:
                    client.close()
        if failed:  # each lease ends by itself pause_ms after its last renewal
            result['not_unpaused'] = failed
            base.warn('kv_isolate: CLIENT UNPAUSE failed on %s; their pause ends by itself within pause_ms'
                      % '; '.join(failed))
        path = failover_path(base.record_path) if base.record_path else None
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
