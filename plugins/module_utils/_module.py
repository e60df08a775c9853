# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The AnsibleModule every kvtools module uses: endpoint options, the redis import check, the diff,
and the translation of :class:`KVError` into ``fail_json`` without secrets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kvtools.migration.plugins.module_utils._cf_keys import ServiceKeyEndpoint
from ansible_collections.kvtools.migration.plugins.module_utils._connection import (
    HAS_REDIS, REDIS_IMPORT_ERROR, Endpoint, endpoint_spec)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._ranges import check_ranges
from ansible_collections.kvtools.migration.plugins.module_utils._sentinel import resolve_master


def scrub_tree(value, secrets):
    """``value`` (a result: dicts, lists, strings) with every secret masked in every string, keys included."""
    if isinstance(value, dict):
        return dict((scrub_tree(k, secrets), scrub_tree(v, secrets)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [scrub_tree(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub(value, secrets)
    return value


class KVModule(AnsibleModule):
    """``KVModule(argument_spec, endpoints=('server',), ...)``.

    ``endpoints`` names the endpoint options this module takes; each gets the shared spec.
    ``options`` (an options class with ``SPEC``, e.g. ``CopyOptions``) adds its options to the spec.
    ``secret_options`` names further options whose values never appear in a result or a message;
    ``needs_redis`` is False for the modules that do not talk to a server (kv_cf_bindings).
    ``ranges`` is the table of allowed ranges of the numeric options (default :data:`._ranges.RANGES`).
    """

    def __init__(self, argument_spec=None, endpoints=('server',), options=None, secret_options=(),
                 needs_redis=True, ranges=None, **kwargs):
        spec = dict(options.SPEC) if options is not None else {}
        spec.update(argument_spec or {})
        for name in endpoints:
            spec[name] = endpoint_spec(required=True)
        kwargs.setdefault('supports_check_mode', True)
        super(KVModule, self).__init__(argument_spec=spec, **kwargs)
        self._endpoint_names = endpoints
        self._endpoints = []  # those built by endpoint(): their Sentinel masters are checked when the step ends
        self._secret_options = secret_options
        self._service_keys = {}  # endpoint name -> its resolved ServiceKeyEndpoint (cf_service)
        self._learnt_secrets = []
        self.options_class = options
        if needs_redis and not HAS_REDIS:
            self.fail_json(msg=missing_required_lib('redis'), exception=str(REDIS_IMPORT_ERROR))
        try:  # every numeric option against its range, before anything is read or written
            check_ranges(self.params, spec, ranges)
        except KVError as exc:
            self.fail_kv(exc)

    def endpoint(self, name):
        """The :class:`Endpoint` for option ``name``; fails the module on a config error.

        A Sentinel endpoint is resolved here, once for every module: it points at the current master.  An endpoint
        with ``cf_service`` gets its credentials from a Cloud Foundry service key first (created when missing, except
        in check mode); every value of those credentials is a secret from then on."""
        params = self.params[name]
        try:
            if params.get('cf_service'):
                if name not in self._service_keys:
                    resolver = ServiceKeyEndpoint(params, label=name, check_mode=self.check_mode)
                    try:
                        resolver.resolve()
                    finally:
                        self._learnt_secrets.extend(resolver.secrets)
                    self._service_keys[name] = resolver
                resolver = self._service_keys[name]
                endpoint = Endpoint(resolver.params, label=name, ca_data=resolver.ca_data)
            else:
                endpoint = Endpoint(params, label=name)
            if endpoint.sentinel is not None:
                resolve_master(endpoint)
            self._endpoints.append(endpoint)
            return endpoint
        except KVError as exc:
            self.fail_kv(exc)

    @property
    def service_keys(self):
        """Secret-free facts about the service keys the endpoints came from (``cf_service_keys`` of results)."""
        return [dict(self._service_keys[n].info) for n in self._endpoint_names if n in self._service_keys]

    def options(self):
        """The engine's options from the params (``options`` class given at creation), in check mode or not."""
        try:
            return self.options_class.from_params(self.params, check_mode=self.check_mode)
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
            if (params.get('sentinel') or {}).get('password'):
                out.append(params['sentinel']['password'])
            service = params.get('cf_service') or {}
            out.extend(service[key] for key in ('password', 'client_secret', 'token') if service.get(key))
        out.extend(self._learnt_secrets)
        out.extend(self.params[name] for name in self._secret_options if self.params.get(name))
        return out

    def _check_masters(self, error):
        """A Sentinel master that moved during the step turns its outcome (``error`` or success) into the
        ``failover`` error naming the old and the new master, with the counts reached."""
        if getattr(error, 'kind', None) == 'failover':
            return
        for endpoint in self._endpoints:
            try:
                endpoint.check_master(force=True)
            except KVError as failover:
                partial = getattr(error, 'partial', None)
                if partial:
                    failover.partial = partial
                if error is not None:
                    failover.message = '%s (the step had failed with: %s)' % (failover.message, error)
                self.fail_kv(failover, (), **getattr(failover, 'partial', {}))

    def fail_kv(self, exc, secrets=(), **result):
        """Fail with a classified error; merge any partial ``result`` (counts done so far)."""
        secrets = self.secrets + list(secrets)
        result.update(exc.to_result())
        result['msg'] = scrub(result['msg'], secrets)
        self.fail_json(**json.loads(scrub(json.dumps(result), secrets)))

    def run(self, func, diff=None, extra_secrets=lambda: ()):
        """Call ``func()`` -> result dict and exit; turn every error into a clear failure.

        ``diff(result)``, in diff mode, gives the result's ``diff``; ``extra_secrets()`` values learnt
        while running (tokens) that must not appear either.
        """
        try:
            result = func()
            self._check_masters(None)
            if diff is not None and self._diff:
                result['diff'] = diff(result)
            if self._service_keys:
                result['cf_service_keys'] = self.service_keys
                # a service key created on CF is a change, even when the module itself wrote nothing
                result['changed'] = bool(result.get('changed')) or any(k['created'] for k in self.service_keys)
        except KVError as exc:
            self._check_masters(exc)
            self.fail_kv(exc, extra_secrets(), **getattr(exc, 'partial', {}))
        except Exception as exc:  # an unexpected bug: say so, without secrets
            self._check_masters(exc)
            secrets = self.secrets + list(extra_secrets())
            self.fail_json(msg=scrub('unexpected error: %s: %s' % (type(exc).__name__, exc), secrets),
                           exception=scrub(traceback.format_exc(), secrets))
        if self._learnt_secrets:  # credentials read from a service key: none may leave in the result
            result = scrub_tree(result, self.secrets + list(extra_secrets()))
        self.exit_json(**result)
