# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small helpers for time and text that several engines share."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time


def now_ms():
    """The current unix time in milliseconds (the unit of PEXPIRETIME and RESTORE ... ABSTTL)."""
    return int(time.time() * 1000)


def iso_time(ts):
    """A unix time as ISO 8601 UTC, e.g. ``2026-01-31T12:00:00Z``."""
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ts))


def now_iso():
    """The current UTC time as ISO 8601 text (``2026-12-01T21:16:58Z``)."""
    return iso_time(time.time())


def as_text(value):
    """A reply as text: bytes decoded as UTF-8 (undecodable bytes replaced), anything else with str()."""
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return str(value)


def plural(count, one, many=None):
    """``plural(1, 'key')`` -> ``'1 key'``, ``plural(2, 'key')`` -> ``'2 keys'``."""
    return '%d %s' % (count, one if count == 1 else (many or one + 's'))


def seconds_text(ms):
    """Milliseconds as seconds with one decimal: ``'1.5 s'``."""
    return '%.1f s' % (ms / 1000.0)
