# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""kv_sync and Sentinel: the nodes a live copy follows and writes to, and a failover between two steps.

The record keeps the data nodes the follower was started on (``source_node``, ``target_node``: the masters the
sentinels named then).  The follower itself stops on a failover it sees (``_sentinel.MasterWatch`` while it
streams, and before every reconnection), but a failover can also happen while nobody looks (the follower was
stopped, the host slept, the check had not come yet).  So every later step compares the masters the sentinels
name now with the record's:

* ``state=stopped`` refuses to drain (the source offset it would wait for is another node's, and the follower
  would be behind a node that no longer takes the writes) and names both masters;
* ``state=started`` stops a follower still attached to the old master and resumes on the new one: ``PSYNC``
  with the recorded replication id continues on a promoted replica (it keeps the old id as its second one, with
  the offset it had), else the follower takes a new snapshot.  The result says which.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._sentinel import failover_error

SIDES = (('source', 'source_node'), ('target', 'target_node'))


def _master(endpoint):
    """The master a Sentinel endpoint was resolved to (also with ``read_from=replica``: the replica read from may
    change between steps without any failover), else the endpoint's address."""
    watch = endpoint.master_watch
    if watch is not None and watch.master is not None:
        return '%s:%d' % tuple(watch.master)
    return endpoint.address


def node_fields(source, target):
    """The record's fields naming the masters the endpoints point at now."""
    return dict(source_node=_master(source), target_node=_master(target))


def moved_masters(source, target, record):
    """``[dict(side, old_master, new_master)]``: each Sentinel side whose master is not the record's node."""
    moved = []
    for (side, field), endpoint in zip(SIDES, (source, target)):
        old = (record or {}).get(field)
        if endpoint.sentinel is not None and old and old != _master(endpoint):
            moved.append(dict(side=side, old_master=old, new_master=_master(endpoint)))
    return moved


def drain_refusal(source, target, record, record_path):
    """``state=stopped`` after a failover: the ``failover`` KVError naming both masters (None when none moved)."""
    moved = moved_masters(source, target, record)
    if not moved:
        return None
    first = moved[0]
    endpoint = source if first['side'] == 'source' else target
    err = failover_error(endpoint, first['old_master'], first['new_master'], 'moved since the follower started',
                         advice='The follower of record %s was started on the old master: nothing was drained '
                                'or stopped. Run state=started (it resumes the follower on the new master), '
                                'then state=stopped' % record_path)
    err.details['moved'] = moved
    return err


def resume_note(moved, before, after):
    """How a follower restarted after a failover went on: ``(how, sentence)``.

    ``before``/``after``: the records before the restart and once caught up (``continued`` and ``full_resyncs``
    count the links that continued and the new snapshots)."""
    names = '; '.join('%s master moved from %s to %s' % (m['side'], m['old_master'], m['new_master'])
                      for m in moved)
    if (after.get('full_resyncs') or 0) > (before.get('full_resyncs') or 0) or not before.get('snapshot_done'):
        how = 'snapshot'
        text = ('a new snapshot (the new master could not continue the old replication stream; the mapped target '
                'dbs were emptied and filled again)')
    else:
        how = 'continue'
        text = 'PSYNC continue (the new master kept the old replication id and offset)'
    return how, '%s since the follower started; it resumed on the new master by %s' % (names, text)
