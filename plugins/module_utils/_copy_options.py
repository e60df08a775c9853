# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The options of a copy job (kv_dump_restore; kv_migrate extends them): spec, defaults, validation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._conflict import ON_CONFLICT
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

PAYLOAD_MODES = ('auto', 'restore', 'commands')
ON_UNSUPPORTED = ('fail', 'drop')


class CopyOptions:
    """The options of kv_dump_restore, with their defaults.

    :attr:`SPEC` is the module's argument spec for them (documented in the doc fragment
    ``kvtools.migration.job``); :meth:`from_params` builds the options from a module's params.
    """

    SPEC = dict(
        dbs=dict(type='list', elements='int'),
        db_map=dict(type='dict'),
        allow_db_merge=dict(type='bool', default=False),
        match=dict(type='str'),
        on_conflict=dict(type='str', choices=list(ON_CONFLICT), default='fail'),
        payload=dict(type='str', choices=list(PAYLOAD_MODES), default='auto'),
        batch_size=dict(type='int', default=1000),
        workers=dict(type='int', default=3),
        chunk_size=dict(type='int', default=1000),
        checkpoint=dict(type='path'),
        report=dict(type='path'),
        progress=dict(type='path'),
        on_unsupported=dict(type='str', choices=list(ON_UNSUPPORTED), default='fail'),
        skipped_keys_file=dict(type='path'),
    )

    @classmethod
    def from_params(cls, params, check_mode=False):
        """The options from a module's ``params`` (the names of :attr:`SPEC`)."""
        return cls(check_mode=check_mode, **dict((name, params[name]) for name in cls.SPEC if name in params))

    def __init__(self, dbs=None, db_map=None, match=None, on_conflict='fail', payload='auto', batch_size=1000,
                 workers=3, checkpoint=None, report=None, chunk_size=1000, check_mode=False, progress=None,
                 on_unsupported='fail', allow_db_merge=False, skipped_keys_file=None):
        self.dbs = dbs
        self.db_map = db_map
        self.allow_db_merge = bool(allow_db_merge)
        self.skipped_keys_file = skipped_keys_file
        self.match = match
        self.on_conflict = on_conflict
        self.payload = payload
        self.batch_size = max(1, int(batch_size))
        self.workers = max(1, int(workers))
        self.checkpoint = checkpoint
        self.report = report
        self.chunk_size = max(1, int(chunk_size))
        self.check_mode = check_mode
        self.progress = progress
        self.on_unsupported = on_unsupported
        if on_unsupported not in ON_UNSUPPORTED:
            raise KVError('on_unsupported must be fail or drop, got %r' % (on_unsupported,), kind='config')
        if on_conflict not in ON_CONFLICT:
            raise KVError('on_conflict must be fail, skip or replace', kind='config')
        if payload not in PAYLOAD_MODES:
            raise KVError('payload must be auto, restore or commands', kind='config')
