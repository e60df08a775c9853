# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backup of a whole cluster: one part per master, and a manifest that names them.

Each master holds only the keys of its slots, so ``kv_rdb_backup`` on a node of a cluster backs up every master:
one RDB per master (``SYNC`` to it, validated, encrypted with a passphrase - the engine of one server,
:class:`~._backup.Backup`, run per master, every master at once; a master that refuses ``SYNC`` gets a logical part
under ``method=auto``).  The parts are written next to ``dest`` under names of their own, which never change:

    <dest root>.<UTC time>-node<i>of<n><dest extension>[.enc]     and each part's sidecar (.json)

``dest`` itself is the *manifest* (JSON, format :data:`MANIFEST_FORMAT`, no secret): the cluster's masters and, per
part, the node address and id, its slots, the file, its size and sha256, its keys.  The sidecar ``dest.json`` holds
the same list.  Older backups rotate as for one server (:func:`~._backup_files.rotation_plan` on the manifest): a
rotated manifest keeps naming its parts, and the parts of a manifest that is removed are removed with it.

Nothing of a run that fails is left behind: the parts written so far are removed, older backups untouched.  The
free-space check is made once, before the first part, against the sum of every master's expected size.
A restore (:mod:`._rdb_file_source`) opens the backup by ``dest`` through :mod:`._backup_manifest`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._backup import Backup
from ansible_collections.kvtools.migration.plugins.module_utils._backup_files import (
    ENC_SUFFIX, STAMP_FORMAT, check_free_space, expected_backup_bytes, rotation_plan)
from ansible_collections.kvtools.migration.plugins.module_utils._backup_manifest import MANIFEST_FORMAT, part_files
from ansible_collections.kvtools.migration.plugins.module_utils._cluster import discover
from ansible_collections.kvtools.migration.plugins.module_utils._encryption import open_plain
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._files import atomic_write
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import SnapshotParser
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._text import iso_time

PART_FIELDS = ('format', 'method_used', 'encrypted', 'size', 'sha256', 'content_size', 'content_sha256',
               'rdb_version', 'engine', 'version', 'transfer', 'checksum', 'keys', 'expired')


def part_path(dest, stamp, index, count, encrypted):
    """The file of part ``index`` (0-based) of ``count``, written at ``stamp``, for the manifest ``dest``."""
    base = dest[:-len(ENC_SUFFIX)] if encrypted and dest.endswith(ENC_SUFFIX) else dest
    root, ext = os.path.splitext(base)
    return '%s.%s-node%dof%d%s' % (root, stamp, index + 1, count, ext)


class ClusterBackup(Backup):
    """:class:`~._backup.Backup` that backs up every master when the server given is a node of a cluster."""

    def run_cluster(self, started):
        topology = discover(self.endpoint, self.server.client)
        self.server.client.close()
        problems = topology.problems('source')
        if problems:
            raise KVError('. '.join(problems), kind='config', endpoint=self.endpoint.address)
        masters = topology.masters
        stamp = time.strftime(STAMP_FORMAT, time.gmtime())
        while any(os.path.exists(part_path(self.dest, stamp, i, len(masters), bool(self.passphrase)) + s)
                  for i in range(len(masters)) for s in ('', ENC_SUFFIX)):
            time.sleep(1)  # a part name is used once: a second backup in the same second waits for the next
            stamp = time.strftime(STAMP_FORMAT, time.gmtime())
        nodes = []
        for index, master in enumerate(masters):
            server = connect_server(master.endpoint)
            try:
                keys = sum(v['keys'] for v in server.keyspace().values())
                need, basis = expected_backup_bytes(server.memory, server.info)
            finally:
                server.client.close()
            nodes.append(dict(address=master.address, node_id=master.node_id, slots=master.slots,
                              ranges=[list(r) for r in master.ranges], keys_now=keys, needed_bytes=need, basis=basis,
                              path=part_path(self.dest, stamp, index, len(masters), bool(self.passphrase))))
        self._check_cluster_space(nodes)
        if self.check_mode:
            return self._cluster_plan(started, topology, nodes)
        parts = self._write_parts(nodes, [master.endpoint for master in masters])
        return self._install_cluster(started, topology, parts)

    def _check_cluster_space(self, nodes):
        """Every part's expected size, summed, against the free bytes of dest's directory (before any part)."""
        needs = [n['needed_bytes'] for n in nodes]
        need = None if any(n is None for n in needs) else sum(needs)
        basis = ('the sum over the %d masters of %s' % (len(nodes), nodes[0]['basis'].split(' (')[0])
                 if need is not None else 'INFO memory is not available on every master')
        if not self.check_space:
            need, basis = None, 'check_free_space is false'
        free = check_free_space(self.dest, need, basis)
        self.space = dict(directory=os.path.dirname(self.dest), free_bytes=free, needed_bytes=need, estimate=basis,
                          per_node=dict((n['address'], n['needed_bytes']) for n in nodes))
        if need is None and self.check_space:
            self._warn('free space for the backup not checked: the size of the data is unknown (%s)' % basis)

    def _rotation(self):
        """``(moves, removals, replaced)``: the rotation of the manifest (:func:`rotation_plan`), the parts of the
        manifests it removes among the removals, and the parts of a manifest at dest that the new one replaces."""
        moves, removals = rotation_plan(self.dest, self.keep, self.keep_first)
        for path in list(removals):
            if not path.endswith('.json'):
                removals.extend(p for p in part_files(path) if p not in removals)
        replaced = [] if any(src == self.dest for src, dummy in moves) else part_files(self.dest)
        return moves, removals, replaced

    def _cluster_plan(self, started, topology, nodes):
        moves, removals, replaced = self._rotation()
        removals = removals + replaced
        would = 'logical' if self.method == 'logical' else 'sync'
        parts = [dict(address=n['address'], node_id=n['node_id'], slots=n['slots'], keys=n['keys_now'],
                      needed_bytes=n['needed_bytes'],
                      file=os.path.basename(n['path'] + (ENC_SUFFIX if self.passphrase else '')))
                 for n in nodes]
        return dict(changed=True, check_mode=True, dest=self.dest, space=self.space, keep_first=self.keep_first,
                    sidecar=self.dest + '.json', method=self.method, method_used=would,
                    method_reason='one part per master of the cluster (%d masters)%s' % (
                        len(nodes), '; SYNC is tried on each, logical for a master that refuses it'
                        if self.method == 'auto' else ''),
                    encrypted=bool(self.passphrase), format='cluster', engine=self.engine, version=self.version,
                    source_keys=sum(p['keys'] for p in parts), parts=parts, cluster=topology.describe(),
                    rotated=[dict(src=a, dest=b) for a, b in moves], removed=removals,
                    seconds=round(time.time() - started, 3))

    def _write_parts(self, nodes, endpoints):
        """One part per master, all at once (a thread per master, each the engine of one server writing a backup of
        its own): the masters' snapshots are taken together, and a diskless SYNC's start delay is waited once.
        KVError naming the node, with every part of this run removed, when one fails."""
        outcomes = [None] * len(nodes)
        written = []
        lock = threading.Lock()
        received = [0]

        def one(index):
            node = nodes[index]
            engine = Backup(endpoints[index], node['path'], method=self.method, passphrase=self.passphrase, keep=0,
                            mode=self.mode, warn=self._warn, capabilities=self.capabilities, check_space=False)
            engine.node_of_cluster = True
            try:
                result = engine.run()
                with lock:
                    written.extend([result['dest'], result['sidecar']])
                if result.get('keys') is None:
                    result['keys'] = rdb_keys(result['dest'], self.passphrase)
                outcomes[index] = (True, result)
            except Exception as exc:  # reported below, once every part has ended
                outcomes[index] = (False, exc)
                return
            with lock:
                received[0] += result['content_size']
                if self.progress is not None:
                    self.progress.update('receiving', bytes_done=received[0],
                                         bytes_total=self.space.get('needed_bytes') or 0, force=True)

        threads = [threading.Thread(target=one, args=(index,), name='kv-backup-part-%d' % (index + 1))
                   for index in range(len(nodes))]
        for thread in threads:
            thread.daemon = True
            thread.start()
        for thread in threads:
            thread.join()
        failed = [(node, outcome[1]) for node, outcome in zip(nodes, outcomes) if not outcome[0]]
        if failed:
            for path in written:
                if os.path.exists(path):
                    os.unlink(path)
            node, exc = failed[0]
            if not isinstance(exc, KVError):
                raise exc
            others = ', '.join(n['address'] for n, dummy in failed[1:])
            raise KVError('the backup of the cluster node %s failed: %s%s. Nothing of this backup was kept'
                          % (node['address'], exc.message.rstrip('.'),
                             ' (and of %s)' % others if others else ''), kind=exc.kind,
                          endpoint=node['address'], details=exc.details)
        parts = []
        for node, (dummy, result) in zip(nodes, outcomes):
            part = dict(address=node['address'], node_id=node['node_id'], slots=node['slots'],
                        ranges=node['ranges'], file=os.path.basename(result['dest']))
            part.update((name, result[name]) for name in PART_FIELDS if name in result)
            parts.append(part)
        return parts

    def _install_cluster(self, started, topology, parts):
        # a manifest at dest that is not kept is replaced by the new one: its parts go once the new one is in place
        moves, removals, replaced = self._rotation()
        try:
            for path in removals:
                if os.path.exists(path):
                    os.unlink(path)
            for src, dst in moves:
                os.rename(src, dst)
        except Exception:
            for part in parts:
                path = os.path.join(os.path.dirname(self.dest), part['file'])
                for one in (path, path + '.json'):
                    if os.path.exists(one):
                        os.unlink(one)
            raise
        methods = sorted(set(p.get('method_used') for p in parts))
        size = sum(p['size'] for p in parts)
        manifest = dict(format=MANIFEST_FORMAT, kind='kvtools.migration cluster backup', created=iso_time(time.time()),
                        source=self.endpoint.address, cluster=topology.describe(), encrypted=bool(self.passphrase),
                        method_used=methods[0] if len(methods) == 1 else 'mixed', keys=sum(p['keys'] for p in parts),
                        size=size, parts=parts)
        text = json.dumps(manifest, indent=2, sort_keys=True) + '\n'
        atomic_write(self.dest, text, self.mode)
        sidecar = dict(manifest, sidecar_version=1, file=os.path.basename(self.dest))
        sidecar.pop('format')
        sidecar['method'] = manifest['method_used']
        atomic_write(self.dest + '.json', json.dumps(sidecar, indent=2, sort_keys=True) + '\n', self.mode)
        for path in replaced:
            if os.path.exists(path):
                os.unlink(path)
        removals = removals + replaced
        seconds = max(time.time() - started, 1e-6)
        if self.progress is not None:
            self.progress.update('done', done=manifest['keys'], total=manifest['keys'], bytes_done=size,
                                 bytes_total=size, force=True, busy=False)
        return dict(changed=True, check_mode=False, dest=self.dest, sidecar=self.dest + '.json', format='cluster',
                    method=self.method, method_used=manifest['method_used'], encrypted=bool(self.passphrase),
                    engine=self.engine, version=self.version, rdb_version=parts[0].get('rdb_version'),
                    checksum=', '.join(sorted(set(str(p.get('checksum')) for p in parts))),
                    keys=manifest['keys'], size=size, parts_size=size, parts=parts, cluster=manifest['cluster'], space=self.space,
                    keep_first=self.keep_first, rotated=[dict(src=a, dest=b) for a, b in moves], removed=removals,
                    seconds=round(seconds, 3), mb_per_second=round(size / seconds / 1e6, 1))


def rdb_keys(path, passphrase):
    """The keys of an RDB part, counted by reading it through (the snapshot parser of a restore)."""
    src, fh, dummy = open_plain(path, passphrase)
    keys = 0
    try:
        parser = SnapshotParser(src.read, what='%s (counting its keys)' % path,
                                way_out='Restore it with kv_dump_restore on a server of the version that wrote it')
        for event in parser.batches():
            if event[0] == 'keys':  # a run of keys (bytes payloads)
                keys += len(event[2])
            elif event[0] == 'key':  # one big key: its payload may be a temp file
                keys += 1
                if event[3].__class__ is not bytes:
                    event[3].close()
    finally:
        fh.close()
    return keys
