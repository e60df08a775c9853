# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The allowed range of every numeric option of the collection, checked once where options are parsed.

A value outside its range is a mistake of the user: it is refused with ``error: config`` naming the
option, the value and the range, before anything is read or written (check mode too).  Nothing is
clamped: ``max(1, batch_size)`` would hide the mistake.  :func:`check_ranges` refuses a numeric option
that has no entry here, so a new option cannot slip past unvalidated.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

DAY_S = 86400
DAY_MS = DAY_S * 1000
INT_MAX = 2147483647

# option name -> (lowest, highest, whether the lowest is allowed).  One entry per option name: an option
# that means the same thing in several modules (batch_size, workers, the endpoint's port) has one range.
RANGES = dict(
    # every endpoint (server, source, target)
    port=(1, 65535, True),
    migrate_port=(1, 65535, True),
    replica_max_lag=(0, 1 << 40, True),
    db=(0, INT_MAX, True),
    connect_timeout=(0, DAY_S, False),
    socket_timeout=(0, DAY_S, False),
    # the copy modules
    dbs=(0, INT_MAX, True),
    batch_size=(1, 1000000, True),
    workers=(1, 64, True),
    chunk_size=(1, 1000000, True),
    batch_bytes=(1, 1073741824, True),
    timeout=(1, DAY_MS, True),  # kv_migrate: MIGRATE's timeout in milliseconds
    # kv_verify
    max_reported=(0, 1000000, True),
    sample_rate=(0, 1, False),
    ttl_tolerance=(0, DAY_S * 365, True),
    memory_tolerance=(0, 1000, True),
    # kv_rdb_backup
    keep=(0, 1000, True),
    # kv_isolate
    pause_ms=(100, DAY_MS, True),
    renew_max_seconds=(1, DAY_S * 7, True),
    verify_window_ms=(0, 600000, True),
    # kv_verify's live scope and kv_cutover (kv_sync's keys log and held-back expiries)
    keys_file_offset=(0, 2 ** 62, True),
    rounds=(1, 100, True),
    recheck_delay=(0, 3600, True),
    target_expiry_offset=(0, 2 ** 62, True),
    # kv_sync
    max_lag=(0, 1099511627776, True),
    started_timeout=(1, DAY_S * 7, True),
    drain_timeout=(1, DAY_S, True),
    max_seconds=(1, DAY_S * 30, True),
    backup_keep=(0, 1000, True),  # as keep of kv_rdb_backup
)

# kv_cf_bindings: its timeout counts seconds of one HTTP request.
CF_RANGES = dict(
    timeout=(1, DAY_S, True),
    job_timeout=(1, DAY_S, True),
    poll_interval=(0, 3600, False),
)

# Sub-option dicts with a table of their own: an endpoint's cf_service talks to the CF API as kv_cf_bindings does.
NESTED_RANGES = dict(cf_service=CF_RANGES)

# kv_wait (an action plugin): seconds between two looks at the job, and the longest wait (0: no limit).
WAIT_RANGES = dict(
    interval=(0.2, 3600, True),
    timeout=(0, DAY_S * 30, True),
)

NUMERIC_TYPES = ('int', 'float')


def describe_range(bounds):
    """``from 1 to 65535`` / ``greater than 0 and at most 86400``."""
    low, high, low_included = bounds
    if low_included:
        return 'from %s to %s' % (low, high)
    return 'greater than %s and at most %s' % (low, high)


def check_value(name, value, bounds):
    """Raise ``KVError(kind='config')`` when ``value`` lies outside ``bounds``."""
    low, high, low_included = bounds
    if value is None:
        return
    below = value < low if low_included else value <= low
    if below or value > high:
        raise KVError('%s: %s is out of range: give a value %s' % (name, value, describe_range(bounds)),
                      kind='config', details={'option': name, 'value': value, 'allowed': describe_range(bounds)})


def check_ranges(params, spec, ranges=None, prefix=''):
    """Check every numeric option in ``params`` (as parsed with ``spec``, sub-options included).

    ``ranges`` defaults to :data:`RANGES`.  Raises the first out-of-range option as ``error: config``;
    raises ``error: internal`` for a numeric option that has no range (a defect of the collection).
    """
    ranges = RANGES if ranges is None else ranges
    for name in sorted(spec):
        option = spec[name]
        value = (params or {}).get(name)
        label = prefix + name
        if option.get('options') and option.get('type') == 'dict':
            if value is not None:
                check_ranges(value, option['options'], NESTED_RANGES.get(name, ranges), prefix=label + '.')
            continue
        kind = option.get('elements') if option.get('type') == 'list' else option.get('type')
        if kind not in NUMERIC_TYPES:
            continue
        if name not in ranges:
            raise KVError('option %s has no allowed range (a defect of the collection: add it to _ranges.RANGES)'
                          % label, kind='internal')
        for item in (value if isinstance(value, list) else [value]):
            check_value(label, item, ranges[name])
