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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._files import read_record_file, write_record_file
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso

GROUP_FORMAT = 'kvtools.migration/isolation-group/1'


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
        if down:
            result['not_isolated'] = down
            self.warn('kv_isolate: the sentinels list the replica(s) %s as down: their application users could not '
                      'be switched off. A failover to one of them would take the applications\' writes: release, '
                      'or isolate again once they are up' % ', '.join(down))
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
        for address in nodes:
            is_master = address == master
            try:
                outcome = self._node(address, 'isolated', verify=is_master).run()
            except KVError as exc:
                if is_master or address in up:
                    exc.message = '%s: isolating %s (%s) failed: %s' % (
                        self.endpoint.label, address, 'master' if is_master else 'replica', exc.message)
                    exc.partial = dict((k, v) for k, v in result.items() if k != 'msg')
                    raise
                self.warn('kv_isolate: %s, isolated before, cannot be reached now (%s): it is not the master'
                          % (address, exc.message))
                result['nodes'].append(dict(node=address, role='unreachable', changed=False, error=exc.message))
                continue
            result['changed'] = result['changed'] or outcome['changed']
            result['executed_commands'].extend('%s: %s' % (address, c) for c in outcome['executed_commands'])
            result['nodes'].append(dict(node=address, role='master' if is_master else 'replica',
                                        changed=outcome['changed'], users=outcome.get('users'),
                                        connections_killed=outcome.get('connections_killed')))
            if is_master:
                for key in ('users', 'isolated_at', 'verify', 'connections_killed'):
                    result[key] = outcome.get(key)
        result['msg'] = 'application users off on %s (master %s)%s' % (
            ', '.join(n['node'] for n in result['nodes'] if n['role'] != 'unreachable'), master,
            ('; ' + '; '.join(notes)) if notes else '')
        return result

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
            result['nodes'].append(dict(node=address, changed=outcome['changed'], users=outcome.get('users')))
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
