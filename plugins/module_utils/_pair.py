# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rules a source/target pair must meet, written once.

Each rule returns :class:`Problem` objects (an error kind and a sentence that says what to do).
kv_preflight lists every problem; an engine calls :func:`raise_first` before it writes anything.

* :func:`pair_problems`: same server, cluster mode (or, for a copy that takes clusters, a db other than 0 into a
  cluster), a replica as target, a db that does not exist;
* :func:`migrate_blockers`: what stops ``MIGRATE`` between the two servers (the payload refused, hashes
  with field TTLs that would cross between Redis and Valkey, a unix-socket target, a TLS mismatch seen through ``tls-cluster``, AUTH2 before 6.0, ...).

A rule reads facts of connected :class:`~._server.Server` objects; ``source`` may be None (a backup
file has no server).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


class Problem:
    """One broken rule: ``rule`` (its name), ``kind`` (the error kind an engine raises) and ``text``
    (the sentence)."""

    def __init__(self, rule, kind, text, certain=True):
        self.rule = rule
        self.kind = kind
        self.text = text
        self.certain = certain  # False: the fact could not be read; an engine warns instead of failing

    def __str__(self):
        return self.text

    def __repr__(self):
        return 'Problem(%r, %r, %r)' % (self.rule, self.kind, self.text)


def raise_first(problems, endpoint=None, warn=None):
    """Raise the first certain problem as a KVError; pass the uncertain ones to ``warn``."""
    for problem in problems:
        if problem.certain:
            raise KVError(problem.text, kind=problem.kind, endpoint=endpoint)
    for problem in problems:
        if warn is not None:
            warn(problem.text)


def _run_id(server):
    value = server.info.get('run_id') if server is not None else None
    return value.decode() if isinstance(value, bytes) else value


def same_server(source_ep, target_ep, source=None, target=None):
    """True when both endpoints reach one server: the same INFO ``run_id`` when both are connected,
    else the same address (host and port, or unix socket path)."""
    source_id, target_id = _run_id(source), _run_id(target)
    if source_id and target_id:
        return source_id == target_id
    return (source_ep.host, source_ep.port, source_ep.unix_socket) == \
        (target_ep.host, target_ep.port, target_ep.unix_socket)


def pair_problems(source_ep, target_ep, source, target, pairs=(), tool='the collection', check_source_dbs=False,
                  clusters=False):
    """What stops any copy (or comparison) between ``source`` and ``target`` for the db ``pairs``.

    ``clusters``: the caller copies from and into clusters (a cluster target then holds db 0 only, and its
    masters are found from the node given, which may be a replica); else cluster mode is refused.
    """
    out = []
    if source is not None and same_server(source_ep, target_ep, source, target):
        out.append(Problem('same_server', 'config', 'source and target are the same server (%s): give a different '
                                                    'target' % source_ep.address))
    for label, server in (('source', source), ('target', target)):
        if server is not None and server.cluster_enabled and not clusters:
            text = ('the %s %s runs in cluster mode: %s is not supported for cluster yet (kv_dump_restore copies '
                    'from and into clusters)' % (label, server.endpoint.address, tool))
            out.append(Problem('cluster', 'config', text))
    target_cluster = clusters and target.cluster_enabled
    if target_cluster:
        other = sorted(set(s for s, t in pairs if t != 0))
        if other:
            text = ('the target %s is a cluster, which holds db 0 only, and source db(s) %s would go to db(s) %s: map '
                    'them to 0 with db_map (e.g. db_map: {%d: 0}; several dbs may all go to 0, on_conflict decides '
                    'between keys of the same name), or choose the dbs to copy with dbs'
                    % (target_ep.address, ', '.join(str(d) for d in other),
                       ', '.join(str(t) for s, t in pairs if t != 0), other[0]))
            out.append(Problem('cluster_db', 'config', text))
        return out
    if target.role not in ('master', 'primary'):
        text = 'the target %s is a replica (read-only): give its primary' % target.endpoint.address
        out.append(Problem('replica', 'readonly', text))
    sides = [('target', target, 1)]
    if check_source_dbs and source is not None:
        sides.insert(0, ('source', source, 0))
    for label, server, index in sides:
        databases = server.databases
        for pair in pairs:
            if databases is not None and pair[index] >= databases:
                text = ('%s db %d does not exist on %s (databases = %d): change dbs or db_map, or raise "databases" '
                        'there' % (label, pair[index], server.endpoint.address, databases))
                out.append(Problem('databases', 'db', text))
    return out


def field_ttl_hashes(server):
    """Whether INFO keyspace counts hashes with field TTLs in any db (Redis ``subexpiry``, Valkey
    ``keys_with_volatile_items``); False when the server does not report it."""
    for name, value in server.info.items():
        if str(name).startswith('db') and isinstance(value, dict):
            if int(value.get('subexpiry', 0) or 0) or int(value.get('keys_with_volatile_items', 0) or 0):
                return True
    return False


def migrate_blockers(source_ep, target_ep, source, accepts, source_rdb=None, target_rdb=None, isolation=None,
                     migrate_permitted=None, target=None):
    """What stops ``MIGRATE`` from the ``source`` server into the target.

    ``accepts``: whether the target takes the source's payloads (:func:`~._payload.target_accepts`);
    ``isolation``: ``'pause'`` when the source is under CLIENT PAUSE WRITE; ``migrate_permitted``:
    False when the source user may not run MIGRATE.  A ``tls-cluster`` the source does not let us read
    is an uncertain problem.
    """
    out = []
    if target_ep.unix_socket:
        out.append(Problem('unix_target', 'config', 'the target is a unix socket, which the source server cannot reach '
                                                    'with MIGRATE: give target.migrate_host and target.migrate_port, '
                                                    'or use kv_dump_restore'))
    if accepts is False:
        text = ('the target %s refuses the DUMP payloads of the source %s (RDB %s -> %s), so MIGRATE cannot copy '
                'between these servers: use kv_dump_restore with payload=auto, which copies such keys type-aware '
                'with ordinary commands' % (target_ep.address, source_ep.address, source_rdb, target_rdb))
        out.append(Problem('payload', 'payload', text))
    if accepts is None and target is not None and source.engine != target.engine and field_ttl_hashes(source):
        text = ('the source %s (%s %s) holds hashes with field TTLs, whose DUMP payloads never cross between Redis '
                'and Valkey (the target %s answers "Bad data format"), so MIGRATE cannot copy them: use '
                'kv_dump_restore with payload=auto, which copies such keys type-aware with ordinary commands'
                % (source_ep.address, source.engine, source.version_string, target_ep.address))
        out.append(Problem('field_ttls_cross', 'payload', text))
    tls_cluster = source.config_get('tls-cluster')
    if tls_cluster is None:
        if target_ep.tls:
            text = ('the target uses TLS but tls-cluster cannot be read on the source %s: if it is "no", MIGRATE '
                    'cannot reach the TLS target and the first batch fails with IOERR' % source_ep.address)
            out.append(Problem('tls_cluster', 'tls', text, certain=False))
    elif target_ep.tls and str(tls_cluster).lower() != 'yes':
        text = ('the target uses TLS but the source does not open TLS connections for MIGRATE (tls-cluster is no; '
                'target %s, source %s). Use kv_dump_restore, which connects to each server itself, or give '
                'target.migrate_host/migrate_port of a plain port' % (target_ep.address, source_ep.address))
        out.append(Problem('tls_cluster', 'tls', text))
    elif not target_ep.tls and str(tls_cluster).lower() == 'yes':
        text = ('the source opens TLS connections for MIGRATE (tls-cluster yes) but the target is plain TCP (source '
                '%s, target %s). Use kv_dump_restore, or give the target\'s TLS port'
                % (source_ep.address, target_ep.address))
        out.append(Problem('tls_cluster', 'tls', text))
    if isolation == 'pause':
        out.append(Problem('paused', 'config', 'the source is isolated with CLIENT PAUSE WRITE, under which MIGRATE '
                                               '(a write) would wait'))
    if migrate_permitted is False:
        out.append(Problem('migrate_permission', 'noperm', 'the source user may not run MIGRATE'))
    if target_ep.username and not source.at_least((6, 0, 0), (6, 0, 0)):
        text = ('the source %s (%s %s) cannot send AUTH2 (an ACL user) with MIGRATE; it needs 6.0 or later. Use '
                'kv_dump_restore' % (source_ep.address, source.engine, source.version_string))
        out.append(Problem('auth2', 'config', text))
    return out
