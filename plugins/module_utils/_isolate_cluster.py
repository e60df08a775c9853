# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kv_isolate on a cluster: the isolation of one server, applied to every node that takes writes.

A pause or an ACL change on one node of a cluster leaves the other masters writable, so a cluster is isolated
node by node with the engine of a single server (:class:`~._isolate.Isolation`, one per node, each with a
record of its own next to the record given):

* ``pause`` - ``CLIENT PAUSE WRITE`` (and its renewer process) on every master;
* ``acl`` - the users switched off on every master *and* every replica: ACL users are per node, and an
  application may write through a replica promoted by a failover, or read from one;
* ``none`` - the write counters of every master are watched.

The record given (``record``) becomes the cluster's record: the nodes acted on and their own record files.  It is
written before the first node is touched, so a release (or a rerun after a crash) finds every node, even those
the cluster no longer lists.  A node that cannot be isolated stops the step: what this run isolated on the other
nodes is released again before the error is raised.  The write-stopped check watches every master in one window.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import discover, node_endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._files import read_record_file, write_record_file
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso

CLUSTER_RECORD_FORMAT = 'kvtools.migration/isolation-cluster/1'


def write_counters(client):
    """The write counters of a server from INFO: ``changes``, ``saves``, ``expired``, ``evicted``."""
    info = client.info('all')
    return dict(changes=int(info.get('rdb_changes_since_last_save', 0) or 0),
                saves=int(info.get('rdb_last_save_time', 0) or 0),
                expired=int(info.get('expired_keys', 0) or 0),
                evicted=int(info.get('evicted_keys', 0) or 0))


def node_record_path(record, address):
    """The record of one node, next to the cluster's: ``<record>.node-<host>-<port>``."""
    if not record:
        return None
    return '%s.node-%s' % (record, re.sub(r'[^A-Za-z0-9.]', '-', address))


class ClusterIsolation:
    """One kv_isolate run on a cluster.  ``seed`` is the :class:`~._isolate.Isolation` of the node the user gave
    (its options, ``for_node()`` to make the engine of another node); ``client`` a connection to that node."""

    def __init__(self, seed, client):
        self.seed = seed
        self.client = client
        self.endpoint = seed.endpoint
        self.topology = None

    # -- the nodes ------------------------------------------------------------------------------
    def _current_nodes(self):
        """``[(address, role, endpoint)]`` of the nodes this mode acts on, as the cluster lists them now."""
        self.topology = discover(self.endpoint, self.client)
        nodes = [(m.address, 'master', m.endpoint) for m in self.topology.masters]
        if self.seed.mode == 'acl':
            nodes += [(r.address, 'replica', r.endpoint) for r in self.topology.replicas]
        return nodes

    def _recorded_nodes(self, record):
        out = []
        for entry in (record or {}).get('nodes', []):
            host, port = entry['address'].rsplit(':', 1)
            endpoint = node_endpoint(self.endpoint, host, int(port))
            endpoint.label = '%s node %s' % (self.endpoint.label, entry['address'])
            out.append((entry['address'], entry.get('role', 'master'), endpoint))
        return out

    def _load_record(self):
        record = read_record_file(self.seed.record_path, CLUSTER_RECORD_FORMAT, 'kv_isolate')
        if record is None:
            return None
        addresses = [n['address'] for n in record.get('nodes', [])]
        if record.get('server') != self.endpoint.identity and self.endpoint.address not in addresses:
            raise KVError('the record %s belongs to the cluster of %s, not to %s: choose the record of this cluster'
                          % (self.seed.record_path, record.get('server'), self.endpoint.address), kind='config')
        return record

    def _write_record(self, record):
        if self.seed.record_path and not self.seed.check_mode:
            write_record_file(self.seed.record_path, record, 'isolation')

    # -- entry point ------------------------------------------------------------------------------
    def run(self):
        result = dict(changed=False, mode=self.seed.mode, state=self.seed.state, endpoint=self.endpoint.address,
                      migrate_allowed=self.seed.mode != 'pause', record=self.seed.record_path, executed_commands=[],
                      cluster=True, nodes=[])
        try:
            if self.seed.state == 'isolated':
                self._isolate(result)
            else:
                self._release(result)
        except KVError as exc:
            exc.partial = dict((k, v) for k, v in result.items() if k != 'msg')
            raise
        if self.seed.mode == 'pause':
            result['migrate_note'] = ('writes are paused with CLIENT PAUSE WRITE on every master: MIGRATE is a write '
                                      'and would block, copy with kvtools.migration.kv_dump_restore')
        return result

    def _node_run(self, result, address, role, endpoint, state, verify=False):
        node = self.seed.for_node(endpoint, node_record_path(self.seed.record_path, address), state, verify)
        try:
            out = node.run()
        finally:
            result['executed_commands'].extend('%s: %s' % (address, c) for c in node.commands)
        entry = dict(address=address, role=role, changed=out['changed'])
        for name in ('renewer', 'renewer_stopped', 'users', 'connections_killed', 'isolated_at', 'released_at'):
            if name in out:
                entry[name] = out[name]
        return entry

    def _isolate(self, result):
        record = self._load_record() if self.seed.record_path and self.seed.mode != 'none' else None
        if record and record.get('state') == 'isolated' and record.get('mode') != self.seed.mode:
            raise KVError('the record %s holds a %s isolation of this cluster: release it first (state=released, '
                          'mode=%s)' % (self.seed.record_path, record.get('mode'), record.get('mode')), kind='config')
        nodes = self._current_nodes()
        # a failing master (any failing node for acl, which acts on replicas too) cannot be isolated
        problems = [f for f in self.topology.failing if self.seed.mode == 'acl' or 'master' in f]
        if problems:
            raise KVError('the cluster of %s has failing node(s): %s; a node that cannot be isolated leaves writers '
                          'in. Wait for the failover or repair them, then isolate again'
                          % (self.endpoint.address, ', '.join(problems)), kind='config', endpoint=self.endpoint.address)
        known = set(a for a, r, e in nodes)
        if record and record.get('state') == 'isolated':
            nodes += [n for n in self._recorded_nodes(record) if n[0] not in known]  # isolated before a topology change
        if self.seed.mode != 'none' and (record is None or record.get('state') != 'isolated'
                                         or set(n['address'] for n in record['nodes']) != set(a for a, r, e in nodes)):
            if self.seed.record_path and not self.seed.check_mode:
                # every node is named before the first one changes: a release finds them all
                self._write_record(dict(format=CLUSTER_RECORD_FORMAT, server=self.endpoint.identity, mode=self.seed.mode,
                                        state='isolated', isolated_at=now_iso(), released_at=None,
                                        nodes=[dict(address=a, role=r, record=node_record_path(self.seed.record_path, a))
                                               for a, r, e in nodes]))
        done = []
        for address, role, endpoint in nodes:
            if self.seed.mode == 'pause' and role != 'master':
                continue
            try:
                entry = self._node_run(result, address, role, endpoint, 'isolated')
            except KVError as exc:
                raise self._undo(result, done, address, exc)
            result['nodes'].append(entry)
            if entry['changed']:
                done.append((address, role, endpoint))
        result['changed'] = any(n['changed'] for n in result['nodes'])
        started = [n['isolated_at'] for n in result['nodes'] if n.get('isolated_at') is not None]
        if started and not self.seed.check_mode:
            result['isolated_at'] = min(started)  # the first node's writers waited from here
        if self.seed.mode == 'pause' and not self.seed.check_mode and self.seed.renew:
            result['renewers'] = [dict(address=n['address'], **n['renewer']) for n in result['nodes'] if n.get('renewer')]
        if self.seed.mode == 'acl':
            result['connections_killed'] = sum(n.get('connections_killed', 0) for n in result['nodes'])
        result['verify'] = None if self.seed.check_mode else self.verify_writes_stopped(
            [(a, e) for a, r, e in nodes if r == 'master'])

    def _undo(self, result, done, failed_at, exc):
        """Release what this run isolated before ``failed_at`` failed; the error to raise."""
        undone, left = [], []
        for address, role, endpoint in reversed(done):
            try:
                self._node_run(result, address, role, endpoint, 'released')
                undone.append(address)
            except KVError as undo_exc:
                left.append('%s (%s)' % (address, undo_exc.message))
        if not left and self.seed.record_path and not self.seed.check_mode:
            record = self._load_record()
            if record is not None and not any(n.get('changed') is False for n in result['nodes']):
                record.update(state='released', released_at=now_iso())
                self._write_record(record)
        text = 'cannot isolate the cluster node %s: %s' % (failed_at, exc.message.rstrip('.'))
        if undone:
            text += '. Released again what this run isolated on %s' % ', '.join(sorted(undone))
        if left:
            text += ('. STILL ISOLATED (the release failed): %s; run kv_isolate state=released with the same record'
                     % ', '.join(left))
        return KVError(text, kind=exc.kind, endpoint=failed_at, details=exc.details)

    def _release(self, result):
        record = self._load_record() if self.seed.record_path and self.seed.mode != 'none' else None
        if self.seed.mode == 'none':
            result['verify'] = None
            return
        if record is not None:
            nodes = self._recorded_nodes(record)
        elif self.seed.mode == 'acl':
            result['users'] = []
            return  # nothing recorded, nothing to set back (as for one server)
        else:
            nodes = self._current_nodes()  # a pause without a record (renew=false): unpause every master
        failed = []
        for address, role, endpoint in nodes:
            if self.seed.mode == 'pause' and role != 'master':
                continue
            try:
                result['nodes'].append(self._node_run(result, address, role, endpoint, 'released'))
            except KVError as exc:  # release the others all the same
                failed.append('%s (%s)' % (address, exc.message.rstrip('.')))
        result['changed'] = any(n['changed'] for n in result['nodes']) or bool(record and record.get('state') == 'isolated')
        ends = [n['released_at'] for n in result['nodes'] if n.get('released_at') is not None]
        if ends:
            result['released_at'] = max(ends)  # the last node's writers waited to here
        if failed:
            raise KVError('cannot release the cluster node(s) %s; the others were released. Run kv_isolate '
                          'state=released again with the same record' % '; '.join(failed), kind='error',
                          endpoint=self.endpoint.address)
        if record is not None and record.get('state') == 'isolated' and not self.seed.check_mode:
            record.update(state='released', released_at=now_iso())
            self._write_record(record)

    # -- checks -------------------------------------------------------------------------------------
    def verify_writes_stopped(self, masters):
        """One window for every master: KVError(kind='writes') naming the masters whose counters moved."""
        window = self.seed.verify_window_ms
        if window <= 0:
            return None
        clients = []
        try:
            for address, endpoint in masters:
                clients.append((address, endpoint, endpoint.client()))
            for dummy_attempt in range(3):
                before = [self._counters(c) for c in clients]
                time.sleep(window / 1000.0)
                after = [self._counters(c) for c in clients]
                if all(a['saves'] == b['saves'] and a['changes'] >= b['changes'] for a, b in zip(after, before)):
                    break
            else:
                raise KVError('cannot verify that writes stopped: a master saved its RDB during every check window',
                              kind='writes', endpoint=self.endpoint.address)
        finally:
            for dummy, dummy_ep, client in clients:
                client.close()
        nodes = []
        for (address, dummy_ep, dummy), b, a in zip(clients, before, after):
            housekeeping = (a['expired'] - b['expired']) + (a['evicted'] - b['evicted'])
            nodes.append(dict(address=address, writes=max(0, a['changes'] - b['changes'] - housekeeping)))
        writes = sum(n['writes'] for n in nodes)
        outcome = dict(window_ms=window, writes=writes, stopped=writes == 0, nodes=nodes)
        if writes:
            hint = {
                'acl': 'a writer that is not in users still writes: add its user to users',
                'pause': 'a client not subject to CLIENT PAUSE still writes',
                'none': 'the cluster is not isolated: unbind the applications or use mode=pause/acl',
            }[self.seed.mode]
            raise KVError('writes did not stop on the cluster of %s: %s in %d ms. %s. The isolation stays in place; '
                          'release it with state=released'
                          % (self.endpoint.address, ', '.join('%s: %d change(s)' % (n['address'], n['writes'])
                                                              for n in nodes if n['writes']), window, hint),
                          kind='writes', endpoint=self.endpoint.address, details=outcome)
        return outcome

    @staticmethod
    def _counters(entry):
        address, endpoint, client = entry
        try:
            return write_counters(client)
        except Exception as exc:
            raise endpoint.error(exc, 'INFO')
