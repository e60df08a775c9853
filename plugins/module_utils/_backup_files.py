# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The files of a backup: its name, the older backups next to it, and the room it needs.

Shared by ``kv_rdb_backup`` (:mod:`._backup`) and the snapshot backup of ``kv_sync`` (:mod:`._sync_backup`),
so both name, rotate and size-check their backups the same way.

* :func:`backup_path` - an encrypted backup gets its own suffix, :data:`ENC_SUFFIX` appended to the path
  the user gave (``kv-backup-a.rdb`` -> ``kv-backup-a.rdb.enc``), so a file that needs a passphrase is
  never mistaken for a plain RDB a server could load.  :func:`existing_backup` finds a backup under the
  name given or with the suffix, so restores of files written before the suffix (plain names, encrypted
  content) and after it read both.
* :func:`rotation_plan` - older backups are renamed once, to a name carrying the UTC time they were written
  (``<file>.20261202T034100Z``), and never renamed again; ``keep`` of them stay, the oldest go.  With
  ``keep_first`` the oldest backup of all - the one taken before the first migration attempt - is never
  removed, whatever ``keep`` says, so retries cannot rotate it away.  Numbered names of earlier versions
  (``<file>.1``) are older backups too.
* :func:`check_free_space` - before anything is written: the free bytes of the directory against the
  bytes the backup is expected to need (:func:`expected_backup_bytes`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

ENC_SUFFIX = '.enc'
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'
# The estimate of a backup's size: the source's data (INFO used_memory_dataset, else used_memory above
# used_memory_startup) plus this share and this many bytes - the encryption's per-chunk tags and header,
# the logical format's per-key records, the sidecar.  An RDB is usually smaller than the data in memory
# (compact encodings, LZF), so this errs on the side of refusing early rather than filling the disk.
SPACE_MARGIN = 0.10
SPACE_SLACK = 1 << 20


def backup_path(dest, encrypted):
    """The file a backup to ``dest`` is written to: ``dest`` + :data:`ENC_SUFFIX` when encrypted."""
    if encrypted and not dest.endswith(ENC_SUFFIX):
        return dest + ENC_SUFFIX
    return dest


def existing_backup(path):
    """``path`` when it exists, else ``path`` + :data:`ENC_SUFFIX` when that exists, else ``path``."""
    if not os.path.exists(path) and os.path.exists(path + ENC_SUFFIX):
        return path + ENC_SUFFIX
    return path


def _older_backups(dest):
    """The older backups next to ``dest`` (not their sidecars), oldest first: ``[(mtime, path)]``."""
    directory = os.path.dirname(os.path.abspath(dest))
    base = os.path.basename(dest)
    pattern = re.compile(r'^%s\.(\d+|\d{8}T\d{6}Z(-\d+)?)$' % re.escape(base))
    found = []
    for name in os.listdir(directory):
        if pattern.match(name):
            path = os.path.join(directory, name)
            found.append((os.stat(path).st_mtime, path))
    return sorted(found)


def _stamped_name(dest, mtime, taken):
    stamp = time.strftime(STAMP_FORMAT, time.gmtime(mtime))
    name = '%s.%s' % (dest, stamp)
    number = 1
    while os.path.exists(name) or name in taken:
        name = '%s.%s-%d' % (dest, stamp, number)
        number += 1
    return name


def rotation_plan(dest, keep, keep_first=False):
    """``(moves, removals)`` that make room for a new backup at ``dest``.

    The backup at ``dest`` now (if any) moves to ``<dest>.<UTC time it was written>``; of the older backups
    the newest ``keep`` stay, and with ``keep_first`` the oldest one of all stays too.  Each backup's sidecar
    (``.json``) moves and goes with it.  With ``keep=0`` and nothing to protect, ``dest`` itself is replaced
    by the rename of the new backup (only its sidecar is removed), so there is never a moment without it.
    """
    dest = os.path.abspath(dest)
    older = [path for dummy, path in _older_backups(dest)]
    current = os.path.exists(dest)
    candidates = older + ([dest] if current else [])
    keepers = set(candidates[-keep:]) if keep > 0 else set()
    if keep_first and candidates:
        keepers.add(candidates[0])
    moves, removals = [], []
    for path in older:
        if path not in keepers:
            removals.extend(p for p in (path, path + '.json') if os.path.exists(p))
    if current:
        if dest in keepers:
            target = _stamped_name(dest, os.stat(dest).st_mtime, ())
            moves.append((dest, target))
            if os.path.exists(dest + '.json'):
                moves.append((dest + '.json', target + '.json'))
        elif os.path.exists(dest + '.json'):
            removals.append(dest + '.json')
    elif os.path.exists(dest + '.json'):
        removals.append(dest + '.json')
    return moves, removals


def expected_backup_bytes(memory, info):
    """``(bytes, basis)``: what a backup of the server is expected to need, and how that was estimated.

    ``memory`` is the server's ``used_memory``/``maxmemory`` facts, ``info`` its INFO fields.  ``(None, why)``
    when INFO does not say (a managed plan that hides INFO memory).
    """
    dataset = info.get('used_memory_dataset')
    if dataset is not None:
        data, basis = int(dataset), 'INFO used_memory_dataset'
    elif memory.get('used_memory') is not None:
        data = int(memory['used_memory']) - int(info.get('used_memory_startup', 0) or 0)
        basis = 'INFO used_memory above used_memory_startup'
    else:
        return None, 'INFO memory is not available'
    need = int(max(data, 0) * (1 + SPACE_MARGIN)) + SPACE_SLACK
    return need, '%s (%d bytes) + %d%% + 1 MiB' % (basis, data, int(SPACE_MARGIN * 100))


def free_bytes(directory):
    """Bytes an unprivileged writer may still write in ``directory``'s file system."""
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def check_free_space(path, need, basis, option='dest'):
    """Refuse (``error: space``) before anything is written when the directory of ``path`` has less than
    ``need`` bytes free; returns the free bytes (None when ``need`` is unknown: nothing is checked)."""
    directory = os.path.dirname(os.path.abspath(path))
    free = free_bytes(directory)
    if need is None:
        return free
    if free < need:
        raise KVError('not enough free space for the backup in %s: %d bytes free, %d bytes needed (estimated '
                      'from %s). Free space there, choose another directory for %s (kv_work_dir in the '
                      'playbooks), or set check_free_space=false when you know the RDB is smaller'
                      % (directory, free, need, basis, option), kind='space',
                      details=dict(directory=directory, free_bytes=free, needed_bytes=need, estimate=basis))
    return free
