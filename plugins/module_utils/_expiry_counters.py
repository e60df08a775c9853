# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The expiry and eviction counters of the servers of a copy (INFO stats), summed over a cluster's masters.

kv_migrate cannot see what MIGRATE skipped (a key that expired between SCAN and MIGRATE): after a db that was
empty it compares what arrived with what it counted, and only expiry the servers counted meanwhile may explain
the difference (:meth:`~._migrate.MigrateWriter.reconcile`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import unavailable
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server


def expiry_counters(server):
    """``(run_id, keys expired, keys evicted)`` of a server, from INFO server and stats.

    Without INFO (renamed, disabled or denied) they are ``(None, 0, 0)``: no expiry is known, so every key
    that did not arrive counts as lost - never as expired.
    """
    if 'info' in server.unknown:
        return None, 0, 0
    try:
        stats = server.client.info('stats')
        run_id = server.client.info('server').get('run_id')
    except Exception as exc:
        if unavailable(exc) is not None:
            return None, 0, 0
        raise server.endpoint.error(exc, 'reading INFO stats')
    return run_id, int(stats.get('expired_keys', 0) or 0), int(stats.get('evicted_keys', 0) or 0)


def expiry_totals(servers):
    """:func:`expiry_counters` summed over ``servers`` (a cluster's masters); the run ids as a tuple."""
    counters = [expiry_counters(server) for server in servers]
    return (tuple(c[0] for c in counters), sum(c[1] for c in counters), sum(c[2] for c in counters))


def source_servers(job):
    """The servers that hold the source's keys: every master of a cluster source, else the source."""
    masters = getattr(job.source, 'masters', None)
    if getattr(job.source, 'parted', False) and masters:
        return [master.server for master in masters]
    return [job.source.server]


def target_expiry_totals(job):
    """:func:`expiry_totals` of the target (every master of a cluster, each asked on a connection of its own)."""
    if job.target_topology is None:
        return expiry_totals([job.target])
    servers = []
    try:
        for endpoint in job.target_endpoints():
            servers.append(connect_server(endpoint))
        return expiry_totals(servers)
    finally:
        for server in servers:
            server.client.close()
