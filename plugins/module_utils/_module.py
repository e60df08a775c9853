# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The AnsibleModule every kvtools module uses: endpoint options, the redis import check,
and the translation of :class:`KVError` into ``fail_json``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kvtools.migration.plugins.module_utils._connection import (
    HAS_REDIS, REDIS_IMPORT_ERROR, Endpoint, endpoint_spec)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, scrub


class KVModule(AnsibleModule):
    """``KVModule(argument_spec, endpoints=('server',), ...)``.

    ``endpoints`` names the endpoint options this module takes; each gets the shared spec.
    """

    def __init__(self, argument_spec=None, endpoints=('server',), **kwargs):
        spec = dict(argument_spec or {})
        for name in endpoints:
            spec[name] = endpoint_spec(required=True)
        kwargs.setdefault('supports_check_mode', True)
        super(KVModule, self).__init__(argument_spec=spec, **kwargs)
        self._endpoint_names = endpoints
        if not HAS_REDIS:
            self.fail_json(msg=missing_required_lib('redis'), exception=str(REDIS_IMPORT_ERROR))

    def endpoint(self, name):
        """The :class:`Endpoint` for option ``name``; fails the module on a config error."""
        try:
            return Endpoint(self.params[name], label=name)
        except KVError as exc:
            self.fail_kv(exc)

    @property
    def secrets(self):
        out = []
        for name in self._endpoint_names:
            params = self.params.get(name) or {}
            for key in ('password', 'url'):
                if params.get(key):
                    out.append(params[key])
        return out

    def fail_kv(self, exc, **result):
        """Fail with a classified error; merge any partial ``result`` (counts done so far)."""
        result.update(exc.to_result())
        result['msg'] = scrub(result['msg'], self.secrets)
        self.fail_json(**result)

    def run(self, func):
        """Call ``func()`` -> result dict and exit; turn every error into a clear failure."""
        try:
            result = func()
        except KVError as exc:
            self.fail_kv(exc, **getattr(exc, 'partial', {}))
        except Exception as exc:  # an unexpected bug: say so, without secrets
            self.fail_json(msg=scrub('unexpected error: %s: %s' % (type(exc).__name__, exc), self.secrets),
                           exception=scrub(traceback.format_exc(), self.secrets))
        self.exit_json(**result)
