# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An endpoint from a Cloud Foundry service key: find the instance, create or reuse the named key, read its
credentials through the v3 API and map them onto the endpoint's sub-options with a JMESPath expression.

The inventory then names the instance (``cf_service``) and holds no copied password.  Every value read from
the credentials that could be a secret is handed back in :attr:`ServiceKeyEndpoint.secrets`, so the module
scrubs it from every message and result; the credentials themselves are never returned.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import jmespath
    HAS_JMESPATH = True
except ImportError:  # pragma: no cover - reported as a config error
    jmespath = None
    HAS_JMESPATH = False

from ansible_collections.kvtools.migration.plugins.module_utils._cf import (
    ACCESS_OPTIONS, client_from_options, find_instance)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._ranges import CF_RANGES, check_value

DEFAULT_KEY_NAME = 'kvtools-migration'

# Fits both credential shapes of the guide: a9s KeyValue / a9s Redis (host, port, username, password, cacrt)
# and STACKIT (the same plus hosts and uri).  ``host`` wins over ``uri``'s host (STACKIT: "always use host").
DEFAULT_QUERY = ('{url: uri || url, host: host || hostname || hosts[0], port: port, username: username || user, '
                 'password: password, tls: tls || ssl, ca_cert_pem: cacrt || ca_cert || ca}')

# What a query may produce: endpoint sub-options, and ca_cert_pem (the CA as PEM text, used from memory).
MAPPED = ('url', 'host', 'port', 'username', 'password', 'db', 'tls', 'server_name', 'migrate_host',
          'migrate_port', 'ca_cert_pem')

# Options of cf_service besides the CF access options (ACCESS_OPTIONS)
INSTANCE_OPTIONS = ('instance_name', 'instance_guid', 'org', 'space', 'service_key', 'credentials_query')

# Credential fields whose values are scrubbed from every output, whatever the query does with them.
SECRET_HINTS = ('pass', 'secret', 'token', 'uri', 'url', 'key', 'auth')


def cf_service_spec():
    """The argument spec of an endpoint's ``cf_service`` sub-option."""
    return dict(
        instance_name=dict(type='str'),
        instance_guid=dict(type='str'),
        org=dict(type='str'),
        space=dict(type='str'),
        service_key=dict(type='str', default=DEFAULT_KEY_NAME, no_log=False),
        credentials_query=dict(type='str'),
        api=dict(type='str'),
        uaa_url=dict(type='str'),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
        client_id=dict(type='str'),
        client_secret=dict(type='str', no_log=True),
        token=dict(type='str', no_log=True),
        validate_certs=dict(type='bool'),
        ca_cert=dict(type='path'),
        timeout=dict(type='int'),
        job_timeout=dict(type='int'),
        poll_interval=dict(type='float'),
    )


def _secret_values(value, name=''):
    """Every string in the credentials that is stored under a secret-sounding field name."""
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_secret_values(item, '%s.%s' % (name, key)))
    elif isinstance(value, list):
        for item in value:
            out.extend(_secret_values(item, name))
    elif isinstance(value, str) and len(value) >= 4:
        leaf = name.rsplit('.', 1)[-1].lower()
        if any(h in leaf for h in SECRET_HINTS):
            out.append(value)
    return out


def map_credentials(credentials, query, label):
    """The endpoint sub-options that ``query`` (JMESPath) makes of ``credentials``; null values are dropped.

    KVError (config) for a query that does not parse, does not give a mapping, gives unknown keys or
    values of the wrong type - naming the keys, never a value."""
    if not HAS_JMESPATH:
        raise KVError('%s.cf_service needs the jmespath Python library (pip install jmespath)' % label, kind='config')
    try:
        mapped = jmespath.search(query, credentials)
    except jmespath.exceptions.JMESPathError as exc:
        # the parser's message quotes the expression, never the credentials
        raise KVError('%s.cf_service.credentials_query is not a valid JMESPath expression: %s'
                      % (label, str(exc).splitlines()[0]), kind='config')
    if not isinstance(mapped, dict):
        raise KVError('%s.cf_service.credentials_query must give a mapping such as {host: host, port: port, password: '
                      'password}, got a %s; the credentials have the fields %s'
                      % (label, type(mapped).__name__, ', '.join(sorted(credentials)) or 'none'), kind='config')
    unknown = sorted(k for k in mapped if k not in MAPPED)
    if unknown:
        raise KVError('%s.cf_service.credentials_query gives %s; allowed: %s'
                      % (label, ', '.join(unknown), ', '.join(MAPPED)), kind='config')
    out = {}
    for key, value in mapped.items():
        if value is None or value == '':
            continue
        if key in ('port', 'db', 'migrate_port'):
            if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
                raise KVError('%s.cf_service: the credentials give %s as a %s, not a number: fix credentials_query'
                              % (label, key, type(value).__name__), kind='config')
            value = int(value)
        elif key == 'tls':
            if isinstance(value, str):
                value = value.strip().lower() in ('true', 'yes', '1', 'on')
            else:
                value = bool(value)
        elif not isinstance(value, str):
            raise KVError('%s.cf_service: the credentials give %s as a %s, not a string: fix credentials_query'
                          % (label, key, type(value).__name__), kind='config')
        out[key] = value
    return out


def find_key(cf, instance, name):
    """The service key ``name`` of ``instance`` (a v3 service credential binding of type key), or None."""
    keys, dummy = cf.list('/v3/service_credential_bindings',
                          {'service_instance_guids': instance['guid'], 'type': 'key', 'names': name},
                          'looking for service key %r of %s' % (name, instance['name']))
    keys = [k for k in keys if k.get('name') == name]
    return keys[0] if keys else None


def create_key(cf, instance, name):
    """Create the service key ``name`` of ``instance`` and follow its job; returns the key."""
    action = 'creating service key %r of %s' % (name, instance['name'])
    body = {'type': 'key', 'name': name, 'relationships': {'service_instance': {'data': {'guid': instance['guid']}}}}
    try:
        status, headers, dummy = cf.request('POST', '/v3/service_credential_bindings', body, action=action)
    except KVError as exc:
        # another host of the same run may have created it a moment ago: use that one
        if exc.details.get('status') == 422:
            key = find_key(cf, instance, name)
            if key is not None:
                return key
        raise
    cf.wait_job(status, headers, action)
    key = find_key(cf, instance, name)
    if key is None:
        raise cf._fail('%s: the job completed but the key is not listed' % action, kind='cf')
    return key


def delete_key(cf, instance, key):
    """Delete a service key and follow its job."""
    action = 'deleting service key %r of %s' % (key.get('name'), instance['name'])
    status, headers, dummy = cf.request('DELETE', '/v3/service_credential_bindings/%s' % key['guid'], action=action)
    cf.wait_job(status, headers, action)


class ServiceKeyEndpoint:
    """Resolve one endpoint's ``cf_service``: ``ServiceKeyEndpoint(params, label, check_mode).resolve()``.

    After :meth:`resolve`: ``params`` (the endpoint's sub-options, what the user set winning over the
    credentials), ``ca_data`` (the CA PEM of the credentials, or None), ``info`` (secret-free: instance, key,
    created) and ``secrets`` (values to scrub).  ``access`` holds CF access options that the endpoint's
    ``cf_service`` does not set (the playbooks pass kv_cf there)."""

    def __init__(self, params, label='server', check_mode=False, access=None):
        self.given = dict((k, v) for k, v in (params or {}).items() if k != 'cf_service' and v is not None)
        service = dict((k, v) for k, v in (params.get('cf_service') or {}).items() if v is not None)
        for key, value in (access or {}).items():
            if key in ACCESS_OPTIONS + ('org', 'space') and value is not None:
                service.setdefault(key, value)
        service.setdefault('service_key', DEFAULT_KEY_NAME)
        self.service = service
        self.label = label
        self.check_mode = check_mode
        self.params = None
        self.ca_data = None
        self.info = None
        self.secrets = [service[k] for k in ('password', 'client_secret', 'token') if service.get(k)]
        self.cf = None

    def _check_options(self):
        svc, where = self.service, '%s.cf_service' % self.label
        if bool(svc.get('instance_name')) == bool(svc.get('instance_guid')):
            raise KVError('%s: give instance_name (with org and space) or instance_guid, one of them' % where,
                          kind='config')
        if svc.get('instance_name') and not (svc.get('org') and svc.get('space')):
            raise KVError('%s: instance_name %r needs org and space (in cf_service, or in kv_cf for the playbooks)'
                          % (where, svc['instance_name']), kind='config')
        if not svc.get('service_key'):
            raise KVError('%s.service_key must not be empty' % where, kind='config')
        for name in ('timeout', 'job_timeout', 'poll_interval'):
            if svc.get(name) is not None:
                check_value('%s.%s' % (where, name), svc[name], CF_RANGES[name])

    def connect(self):
        """Check the options, build the CF client and find the instance; returns the instance."""
        self._check_options()
        self.cf = client_from_options(self.service, label='%s.cf_service' % self.label)
        svc = self.service
        try:
            instance = find_instance(self.cf, svc.get('instance_guid'), svc.get('instance_name'), svc.get('org'),
                                     svc.get('space'))
        finally:
            self.secrets.extend(self.cf.secrets)
        if instance.get('type') == 'user-provided':
            raise KVError('%s: %s is a user-provided service instance, which has no service keys: give the endpoint\'s '
                          'host, port and password instead' % (self.label, instance['name']), kind='config')
        return instance

    def resolve(self):
        """Read (or, outside check mode, create) the key and map its credentials; returns ``self``."""
        instance = self.connect()
        try:
            return self._resolve(instance)
        finally:
            self.secrets.extend(self.cf.secrets)

    def _resolve(self, instance):
        svc = self.service
        what = 'service key %r of %s' % (svc['service_key'], instance['name'])
        self.info = dict(endpoint=self.label, instance=instance['name'], instance_guid=instance['guid'],
                         service_key=svc['service_key'], created=False)
        key = find_key(self.cf, instance, svc['service_key'])
        if key is None:
            if self.check_mode:
                self.info['would_create'] = True
                raise KVError('%s: the %s does not exist yet. A real run creates it (cf create-service-key %s %s); '
                              'check mode creates nothing, so it cannot read the credentials and stops here. Run once '
                              'without --check, or create the key yourself, to see the full plan'
                              % (self.label, what, instance['name'], svc['service_key']), kind='check_mode',
                              details=dict(cf_service_keys=[self.info]))
            key = create_key(self.cf, instance, svc['service_key'])
            self.info['created'] = True
        state = (key.get('last_operation') or {}).get('state')
        if state and state != 'succeeded':
            raise KVError('%s: the %s is in state %r (%s): wait for it, or delete it (cf delete-service-key %s %s) and '
                          'run again' % (self.label, what, state, (key.get('last_operation') or {}).get('type'),
                                         instance['name'], svc['service_key']), kind='cf')
        self.info['key_guid'] = key['guid']
        details = self.cf.get('/v3/service_credential_bindings/%s/details' % key['guid'],
                              action='reading the credentials of the %s' % what)
        credentials = details.get('credentials')
        if not isinstance(credentials, dict) or not credentials:
            raise KVError('%s: the %s holds no credentials' % (self.label, what), kind='cf')
        self.secrets.extend(_secret_values(credentials))
        mapped = map_credentials(credentials, svc.get('credentials_query') or DEFAULT_QUERY, self.label)
        self.secrets.extend(mapped[k] for k in ('password', 'url') if mapped.get(k))
        self.params = self._merge(mapped)
        if not (self.params.get('host') or self.params.get('url')):
            raise KVError('%s: the credentials of the %s give no host (fields: %s): give credentials_query, or host '
                          'in the endpoint' % (self.label, what, ', '.join(sorted(credentials))), kind='config')
        self.info['address'] = '%s:%s' % (self.params.get('host') or 'url', self.params.get('port') or '')
        return self

    def _merge(self, mapped):
        """The endpoint's sub-options: what the user set wins, then the credentials."""
        params = dict(self.given)
        self.ca_data = mapped.pop('ca_cert_pem', None)
        key_host, key_port = mapped.get('host'), mapped.get('port')
        tunnel = self.given.get('host') and key_host and self.given['host'] != key_host
        if tunnel:
            # reached through a tunnel: other servers (the source of a MIGRATE) still use the real address, and the
            # certificate names the real host
            mapped.setdefault('migrate_host', key_host)
            if key_port:
                mapped.setdefault('migrate_port', key_port)
            mapped.setdefault('server_name', key_host)
        if 'tls' not in mapped and self.ca_data and not (mapped.get('url') or '').lower().startswith(('redis:', 'valkey:')):
            mapped['tls'] = True  # the key ships a CA: the instance speaks TLS
        for key, value in mapped.items():
            if key == 'url':
                if not self.given.get('url'):
                    params['url'] = value
            elif params.get(key) is None:
                params[key] = value
        uses_tls = params.get('tls') if params.get('tls') is not None \
            else (params.get('url') or '').lower().startswith(('rediss:', 'valkeys:'))
        if not uses_tls and 'server_name' not in self.given:
            params.pop('server_name', None)  # SNI means nothing without TLS
        return params
