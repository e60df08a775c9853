# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The manifest of a cluster backup (written by :mod:`._backup_cluster`, read by a restore): a JSON object of
format :data:`MANIFEST_FORMAT` at the backup's path, naming one part (an RDB or logical file next to it) per
master of the cluster.  It holds no secret."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

MANIFEST_FORMAT = 'kvtools.migration/cluster-backup/1'
MANIFEST_HEAD = b'{'


def is_manifest(path):
    """Whether ``path`` is the manifest of a cluster backup (a JSON object of :data:`MANIFEST_FORMAT`)."""
    try:
        with open(path, 'rb') as fh:
            if fh.read(1) != MANIFEST_HEAD:
                return False
        return read_manifest(path) is not None
    except (IOError, OSError, ValueError, KVError):
        return False


def read_manifest(path):
    """The manifest at ``path`` (a dict), its parts' ``path`` made absolute; KVError when it is not one."""
    try:
        with open(path, 'r') as fh:
            manifest = json.load(fh)
    except (IOError, OSError, ValueError) as exc:
        raise KVError('cannot read the cluster backup manifest %s: %s' % (path, exc), kind='corrupt')
    if not isinstance(manifest, dict) or manifest.get('format') != MANIFEST_FORMAT:
        raise KVError('%s is not the manifest of a cluster backup (format %r)' % (path, manifest.get('format')
                      if isinstance(manifest, dict) else None), kind='corrupt')
    directory = os.path.dirname(os.path.abspath(path))
    for part in manifest.get('parts') or []:
        part['path'] = os.path.join(directory, part['file'])
    return manifest


def part_files(path):
    """The files of the cluster backup whose manifest is ``path`` (parts and their sidecars) that exist; [] for
    any other file."""
    if not is_manifest(path):
        return []
    out = []
    for part in read_manifest(path)['parts']:
        out.extend(p for p in (part['path'], part['path'] + '.json') if os.path.exists(p))
    return out


class PartFile:
    """What a file source needs of its endpoint, for one part: the path and the address shown."""

    def __init__(self, path):
        self.backup_file = path
        self.address = 'file:%s' % path
        self.label = 'the backup part %s' % os.path.basename(path)
