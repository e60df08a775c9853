# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Why the source closed kv_sync's replication link: its output-buffer limit for replicas, or not.

The most common way a live copy dies is the source dropping its replica when the replica's output
buffer passes ``client-output-buffer-limit replica <hard> <soft> <seconds>``: while the source forks
and writes the snapshot, every write it takes meanwhile waits in that buffer.  The source says so
only in its log.  Redis >= 7.4 and Valkey count such drops in ``INFO stats``
(``client_output_buffer_limit_disconnections``): :func:`buffer_drops` reads the count before the link
opens, and :func:`explain_close` turns a closed link into an error that names the limit and its
value when the count rose meanwhile.  On older sources, or when INFO or CONFIG is denied, the error
says that this limit is the likely cause and how to check it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, scrub

COUNTER = 'client_output_buffer_limit_disconnections'
EXAMPLE = 'replica 512mb 256mb 120'


def buffer_drops(endpoint):
    """The source's count of clients dropped for their output buffer, or None when it cannot be read."""
    client = None
    try:
        client = endpoint.client(db=0, check=False)
        value = client.info('stats').get(COUNTER)
        return int(value) if value is not None else None
    except Exception:
        return None
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:  # pragma: no cover - closing only
                pass


def replica_limit(endpoint):
    """The source's ``client-output-buffer-limit`` for replicas as text (``replica 268435456 67108864 60``), or None."""
    client = None
    try:
        client = endpoint.client(db=0, check=False)
        reply = client.config_get('client-output-buffer-limit')
        text = reply.get('client-output-buffer-limit') if isinstance(reply, dict) else None
        if not text:
            return None
        words = text.split()
        for i in range(0, len(words) - 3, 4):
            if words[i] in ('replica', 'slave'):
                return 'replica %s %s %s' % tuple(words[i + 1:i + 4])
        return None
    except Exception:
        return None
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:  # pragma: no cover - closing only
                pass


def explain_close(endpoint, error, drops_before, phase):
    """``error`` (the link's KVError, kind ``connection``) or a KVError of kind ``buffer_limit`` naming the limit.

    ``drops_before``: :func:`buffer_drops` read before the link opened; ``phase``: ``snapshot`` or
    ``streaming`` (said in the message: during the snapshot the source buffers every write it takes).
    """
    if error is None or error.kind != 'connection':
        return error
    after = buffer_drops(endpoint) if drops_before is not None else None
    if after is None or after <= drops_before:
        return error
    limit = replica_limit(endpoint)
    setting = 'client-output-buffer-limit (%s)' % limit if limit else 'client-output-buffer-limit replica'
    when = ('while it prepared and sent the snapshot, the writes it took meanwhile filled the buffer it keeps for '
            'the follower' if phase == 'snapshot' else 'the follower did not read the command stream fast enough')
    text = ('the source %s dropped the replication link because the follower passed its %s: %s (INFO stats %s went '
            'from %d to %d). Raise the replica limit on the source for the copy, e.g. CONFIG SET '
            'client-output-buffer-limit "%s", or start kv_sync when the source takes fewer writes; then run '
            'state=started again' % (endpoint.address, setting, when, COUNTER, drops_before, after, EXAMPLE))
    return KVError(scrub(text, endpoint.secrets), kind='buffer_limit', endpoint=endpoint.address)
