# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cloud Foundry v3 API: app bindings of a service instance, unbound into a record and bound again.

Talks HTTP with ``ansible.module_utils.urls.open_url`` only (no cf CLI, no extra library).  The
API subset used is: ``GET /`` (links), UAA ``POST /oauth/token``, ``GET /v3/organizations``,
``/v3/spaces``, ``/v3/service_instances``, ``/v3/apps``, ``/v3/service_credential_bindings``
(list, ``/:guid/parameters``, create, delete), ``GET /v3/jobs/:guid`` and
``POST /v3/apps/:guid/actions/restart``.  Every failure is a :class:`KVError` whose message names
the action, the object and CF's own error text, and never holds a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import time

from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urljoin

from ansible.module_utils.urls import open_url

from ansible_collections.kvtools.migration.plugins.module_utils._files import atomic_write
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso

RECORD_FORMAT = 'kvtools.migration/cf-bindings/1'
SECRET_OPTIONS = ('password', 'client_secret', 'token')


# The options that reach the CF API (kv_cf_bindings' top-level options, an endpoint's cf_service keys).
ACCESS_OPTIONS = ('api', 'uaa_url', 'username', 'password', 'client_id', 'client_secret', 'token', 'validate_certs',
                  'ca_cert', 'timeout', 'poll_interval', 'job_timeout')


def client_from_options(options, label='kv_cf_bindings'):
    """A :class:`CFClient` from the CF access options (``ACCESS_OPTIONS``); KVError (config) when no way
    to authenticate is given."""
    opts = dict((k, options.get(k)) for k in ACCESS_OPTIONS if options.get(k) is not None)
    if not opts.get('api'):
        raise KVError('%s: give api, the Cloud Foundry API URL (for example https://api.cf.example.com)' % label,
                      kind='config')
    if not (opts.get('token') or opts.get('username') or opts.get('client_secret')):
        raise KVError('%s: give token, username and password, or client_id and client_secret' % label, kind='config')
    if opts.get('username') and not opts.get('password'):
        raise KVError('%s: username needs password' % label, kind='config')
    return CFClient(opts.pop('api'), **opts)


class CFClient:
    """A small CF v3 client: authentication, JSON requests, pagination and jobs."""

    def __init__(self, api, token=None, username=None, password=None, client_id='cf', client_secret='',
                 uaa_url=None, validate_certs=True, ca_cert=None, timeout=30, poll_interval=2.0,
                 job_timeout=300, sleep=time.sleep):
        self.api = api.rstrip('/')
        self.username = username
        self.password = password
        self.client_id = client_id or 'cf'
        self.client_secret = client_secret or ''
        self.uaa_url = uaa_url.rstrip('/') if uaa_url else None
        self.validate_certs = validate_certs
        self.ca_cert = ca_cert
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.sleep = sleep
        self.given_token = token[7:] if token and token.lower().startswith('bearer ') else token
        self.token = self.given_token
        self.requests = 0

    @property
    def secrets(self):
        return [s for s in (self.password, self.client_secret, self.given_token, self.token) if s]

    def _fail(self, text, kind='cf', details=None):
        return KVError(scrub(text, self.secrets), kind=kind, endpoint=self.api, details=details)

    # -- HTTP ------------------------------------------------------------------------------------
    def _open(self, method, url, body=None, headers=None, action=''):
        """``(status, headers, parsed JSON or None)``; HTTP errors come back as a status too."""
        self.requests += 1
        try:
            resp = open_url(url, data=body, headers=headers, method=method, validate_certs=self.validate_certs,
                            ca_path=self.ca_cert, timeout=self.timeout, follow_redirects='safe')
            status, resp_headers, raw = resp.getcode(), resp.headers, resp.read()
        except HTTPError as exc:
            status, resp_headers = exc.code, exc.headers
            try:
                raw = exc.read()
            except Exception:
                raw = b''
        except (URLError, OSError, ValueError) as exc:
            reason = getattr(exc, 'reason', exc)
            hint = ''
            if 'CERTIFICATE_VERIFY_FAILED' in str(reason) or 'certificate verify failed' in str(reason):
                hint = '. Give the platform CA as ca_cert, or (tests only) validate_certs=false'
            raise self._fail('%s: cannot reach %s: %s%s' % (action, url.split('?')[0], reason, hint),
                             kind='unreachable')
        data = None
        if raw:
            try:
                data = json.loads(raw.decode('utf-8'))
            except ValueError:
                data = {'raw': raw.decode('utf-8', 'replace')[:300]}
        return status, resp_headers, data

    def authenticate(self):
        """Get a bearer token from UAA (password or client-credentials grant); a given token is used as is."""
        if self.given_token:
            self.token = self.given_token
            return
        if not self.uaa_url:
            status, dummy, root = self._open('GET', self.api + '/', action='reading the API root')
            links = (root or {}).get('links') or {}
            href = ((links.get('uaa') or {}).get('href') or (links.get('login') or {}).get('href'))
            if status != 200 or not href:
                raise self._fail('reading the API root %s/ did not name a UAA (HTTP %s): give uaa_url' % (self.api, status),
                                 kind='config')
            self.uaa_url = href.rstrip('/')
        if self.username:
            form = dict(grant_type='password', username=self.username, password=self.password or '')
            what = 'user %r' % self.username
        else:
            form = dict(grant_type='client_credentials')
            what = 'client %r' % self.client_id
        basic = base64.b64encode(('%s:%s' % (self.client_id, self.client_secret)).encode('utf-8')).decode('ascii')
        headers = {'Authorization': 'Basic ' + basic, 'Content-Type': 'application/x-www-form-urlencoded',
                   'Accept': 'application/json'}
        status, dummy, data = self._open('POST', self.uaa_url + '/oauth/token', body=urlencode(form), headers=headers,
                                         action='getting a token from UAA')
        if status != 200 or not (data or {}).get('access_token'):
            err = (data or {}).get('error_description') or (data or {}).get('error') or 'HTTP %s' % status
            raise self._fail('UAA at %s refused the credentials of %s: %s. Check username/password or '
                             'client_id/client_secret' % (self.uaa_url, what, err), kind='auth')
        self.token = data['access_token']

    def request(self, method, path, body=None, action=None, ok=(200, 201, 202, 204), retry_auth=True):
        """A JSON request to the API; ``path`` is a path or a full URL.  Returns ``(status, headers, data)``."""
        if self.token is None:
            self.authenticate()
        url = path if path.startswith('http') else self.api + path
        headers = {'Authorization': 'bearer %s' % self.token, 'Accept': 'application/json'}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers['Content-Type'] = 'application/json'
        action = action or '%s %s' % (method, path.split('?')[0])
        status, resp_headers, data = self._open(method, url, payload, headers, action)
        if status == 401 and retry_auth and not self.given_token:
            self.token = None  # our own token expired mid-run: get a new one once
            return self.request(method, path, body, action, ok, retry_auth=False)
        if status not in ok:
            raise self.http_error(status, data, action)
        return status, resp_headers, data

    def http_error(self, status, data, action):
        errors = (data or {}).get('errors') or []
        cf_text = '; '.join('%s: %s' % (e.get('title') or e.get('code'), e.get('detail')) for e in errors) \
            or (data or {}).get('raw') or 'HTTP %s' % status
        if status == 401:
            how = ('the given token expired or is invalid: get a new one (cf oauth-token) or give username/password or '
                   'client_id/client_secret') if self.given_token else 'check the credentials'
            return self._fail('%s: the CF API refused the token (401 %s): %s' % (action, cf_text, how), kind='auth',
                              details=dict(status=status, errors=errors))
        if status == 403:
            return self._fail('%s: not permitted (403 %s). The user needs the SpaceDeveloper role in the space of '
                              'the service instance and the apps' % (action, cf_text), kind='noperm',
                              details=dict(status=status, errors=errors))
        if status == 404:
            return self._fail('%s: not found (404 %s)' % (action, cf_text), kind='not_found',
                              details=dict(status=status, errors=errors))
        return self._fail('%s failed (HTTP %s): %s' % (action, status, cf_text), kind='cf',
                          details=dict(status=status, errors=errors))

    def get(self, path, params=None, action=None):
        if params:
            path = '%s?%s' % (path, urlencode(params))
        return self.request('GET', path, action=action, ok=(200,))[2] or {}

    def list(self, path, params=None, action=None):
        """Every resource of a paginated list, following ``pagination.next.href``; ``(resources, included)``."""
        page = self.get(path, params, action)
        resources = list(page.get('resources') or [])
        included = dict((k, list(v)) for k, v in (page.get('included') or {}).items())
        for dummy in range(10000):
            nxt = ((page.get('pagination') or {}).get('next') or {}).get('href')
            if not nxt:
                break
            page = self.request('GET', urljoin(self.api + '/', nxt), action=action, ok=(200,))[2] or {}
            resources.extend(page.get('resources') or [])
            for key, values in (page.get('included') or {}).items():
                included.setdefault(key, []).extend(values)
        return resources, included

    def wait_job(self, status, headers, action):
        """Follow the job of a 202 reply until COMPLETE; KVError with CF's text when it FAILED."""
        if status != 202:
            return None
        location = headers.get('Location') if headers else None
        if not location:
            return None
        deadline = time.time() + self.job_timeout
        while True:
            job = self.request('GET', urljoin(self.api + '/', location), action='%s: reading its job' % action,
                               ok=(200,))[2] or {}
            state = job.get('state')
            if state == 'COMPLETE':
                return job
            if state == 'FAILED':
                errors = job.get('errors') or []
                text = '; '.join('%s: %s' % (e.get('title') or e.get('code'), e.get('detail')) for e in errors) \
                    or 'no error text'
                raise self._fail('%s: the CF job %s FAILED: %s' % (action, job.get('guid'), text), kind='job_failed',
                                 details=dict(job=job.get('guid'), operation=job.get('operation'), errors=errors))
            if time.time() > deadline:
                raise self._fail('%s: the CF job %s is still %s after %s s: raise job_timeout or look at it with '
                                 'cf curl %s' % (action, job.get('guid'), state, self.job_timeout, location),
                                 kind='timeout')
            self.sleep(self.poll_interval)


def find_instance(cf, instance_guid=None, instance_name=None, org=None, space=None):
    """``{'guid', 'name', 'space_guid', 'type'}`` of a service instance, by guid or by name in org/space;
    KVError (``not_found``) naming what is unknown."""
    if instance_guid:
        try:
            data = cf.get('/v3/service_instances/%s' % instance_guid,
                          action='reading service instance %s' % instance_guid)
        except KVError as exc:
            if exc.kind == 'not_found':
                raise cf._fail('unknown service instance guid %s (or not visible to this user)' % instance_guid,
                               kind='not_found')
            raise
    else:
        orgs, dummy = cf.list('/v3/organizations', {'names': org}, 'finding org %r' % org)
        if not orgs:
            raise cf._fail('unknown org %r (or not visible to this user)' % org, kind='not_found')
        spaces, dummy = cf.list('/v3/spaces', {'names': space, 'organization_guids': orgs[0]['guid']},
                                'finding space %r' % space)
        if not spaces:
            raise cf._fail('unknown space %r in org %r' % (space, org), kind='not_found')
        found, dummy = cf.list('/v3/service_instances', {'names': instance_name, 'space_guids': spaces[0]['guid']},
                               'finding service instance %r' % instance_name)
        if not found:
            raise cf._fail('unknown service instance %r in org %r space %r' % (instance_name, org, space),
                           kind='not_found')
        data = found[0]
    space_guid = (((data.get('relationships') or {}).get('space') or {}).get('data') or {}).get('guid')
    return dict(guid=data['guid'], name=data.get('name'), space_guid=space_guid, type=data.get('type'))


class Bindings:
    """Plan and apply one ``kv_cf_bindings`` run."""

    def __init__(self, cf, state='absent', instance_guid=None, instance_name=None, org=None, space=None,
                 apps=None, record=None, binding_name=None, parameters=None, restart=False, check_mode=False):
        self.cf = cf
        self.state = state
        self.instance_guid = instance_guid
        self.instance_name = instance_name
        self.org = org
        self.space = space
        self.apps = list(apps or [])
        self.record_path = record
        self.binding_name = binding_name
        self.parameters = parameters
        self.restart = restart
        self.check_mode = check_mode
        self.actions = []

    # -- lookups -----------------------------------------------------------------------------------
    def instance(self):
        """``{'guid', 'name', 'space_guid', 'type'}`` of the service instance; KVError when unknown."""
        return find_instance(self.cf, self.instance_guid, self.instance_name, self.org, self.space)

    def apps_by_name(self, names, space_guid):
        """``{name: guid}`` for app names in a space; KVError naming every unknown app."""
        if not names:
            return {}
        found, dummy = self.cf.list('/v3/apps', {'names': ','.join(names), 'space_guids': space_guid},
                                    'finding apps %s' % ', '.join(names))
        out = dict((a['name'], a['guid']) for a in found)
        missing = [n for n in names if n not in out]
        if missing:
            raise self.cf._fail('unknown app(s) %s in the space of the service instance' % ', '.join(missing),
                                kind='not_found')
        return out

    def bindings(self, instance, app_guids=None):
        """The app bindings of ``instance`` (with their app names), following pagination."""
        params = {'service_instance_guids': instance['guid'], 'type': 'app', 'include': 'app', 'per_page': 50}
        if app_guids:
            params['app_guids'] = ','.join(app_guids)
        resources, included = self.cf.list('/v3/service_credential_bindings', params,
                                           'listing the bindings of %s' % instance['name'])
        names = dict((a['guid'], a.get('name')) for a in included.get('apps', []))
        out = []
        for res in resources:
            app_guid = (((res.get('relationships') or {}).get('app') or {}).get('data') or {}).get('guid')
            out.append(dict(guid=res['guid'], name=res.get('name'), app=dict(guid=app_guid, name=names.get(app_guid)),
                            created_at=res.get('created_at'), updated_at=res.get('updated_at')))
        return out

    def binding_parameters(self, binding):
        """The binding's parameters (None plus a reason when the broker cannot give them)."""
        try:
            return self.cf.get('/v3/service_credential_bindings/%s/parameters' % binding['guid'],
                               action='reading the parameters of binding %s' % binding['guid']), None
        except KVError as exc:
            if exc.kind in ('auth', 'unreachable'):
                raise
            return None, exc.message

    # -- the record ---------------------------------------------------------------------------------
    def read_record(self):
        if not self.record_path or not os.path.exists(self.record_path):
            return None
        try:
            with open(self.record_path) as fh:
                record = json.load(fh)
        except (IOError, OSError, ValueError) as exc:
            raise KVError('cannot read the binding record %s: %s' % (self.record_path, exc), kind='config')
        if not isinstance(record, dict) or record.get('format') != RECORD_FORMAT:
            raise KVError('%s is not a kv_cf_bindings record: choose another record path' % self.record_path,
                          kind='config')
        return record

    def write_record(self, record):
        record['updated_at'] = now_iso()
        try:
            atomic_write(self.record_path, json.dumps(record, indent=2, sort_keys=True) + '\n', mode=0o600)
        except (IOError, OSError) as exc:
            raise KVError('cannot write the binding record %s: %s' % (self.record_path, exc), kind='io')

    # -- entry point ----------------------------------------------------------------------------------
    def run(self):
        instance = self.instance()
        result = dict(changed=False, state=self.state, api=self.cf.api, record=self.record_path, actions=self.actions,
                      service_instance=dict(guid=instance['guid'], name=instance['name']))
        try:
            if self.state == 'absent':
                self.unbind(instance, result)
            else:
                self.bind(instance, result)
        except KVError as exc:
            exc.partial = dict((k, v) for k, v in result.items() if k != 'msg')
            raise
        return result

    def unbind(self, instance, result):
        app_guids = list(self.apps_by_name(self.apps, instance['space_guid']).values()) if self.apps else None
        current = self.bindings(instance, app_guids)
        result['bindings'] = [dict(name=b['name'], app=b['app']) for b in current]
        result['changed'] = bool(current)
        for binding in current:
            self.actions.append('unbind %s from app %s (binding %s)'
                                % (instance['name'], binding['app']['name'], binding['name'] or binding['guid']))
        if not current or self.check_mode:
            return
        record = self.read_record()
        if record and record.get('service_instance', {}).get('guid') != instance['guid']:
            raise KVError('the binding record %s belongs to service instance %s, not %s: choose another record path'
                          % (self.record_path, record.get('service_instance', {}).get('name'), instance['name']),
                          kind='config')
        if record is None:
            record = dict(format=RECORD_FORMAT, api=self.cf.api, created_at=now_iso(),
                          service_instance=dict(guid=instance['guid'], name=instance['name'],
                                                space_guid=instance['space_guid']),
                          bindings=[])
        known = dict((b['guid'], b) for b in record['bindings'])
        for binding in current:
            if binding['guid'] in known:
                continue
            params, why = self.binding_parameters(binding)
            entry = dict(binding, parameters=params, recorded_at=now_iso(), unbound_at=None)
            if why:
                entry['parameters_error'] = why
            record['bindings'].append(entry)
            known[binding['guid']] = entry
        self.write_record(record)  # every binding is safe in the record before the first delete
        for binding in current:
            action = 'unbinding app %s from %s' % (binding['app']['name'], instance['name'])
            status, headers, dummy = self.cf.request('DELETE', '/v3/service_credential_bindings/%s' % binding['guid'],
                                                     action=action)
            self.cf.wait_job(status, headers, action)
            known[binding['guid']]['unbound_at'] = now_iso()
            self.write_record(record)

    def _wanted(self, instance):
        """``[{'app': {'guid', 'name'}, 'name', 'parameters'}]`` to bind, from the record and/or apps."""
        if self.record_path:
            record = self.read_record()
            if record is None:
                raise KVError('the binding record %s does not exist: run state=absent first, or give apps'
                              % self.record_path, kind='config')
            wanted, seen = [], set()
            for entry in record.get('bindings', []):
                if self.apps and entry['app']['name'] not in self.apps:
                    continue
                if entry['app']['guid'] in seen:
                    continue
                seen.add(entry['app']['guid'])
                wanted.append(dict(app=entry['app'], name=entry.get('name'), parameters=entry.get('parameters')))
            missing = [n for n in self.apps if n not in [w['app']['name'] for w in wanted]]
            if missing:
                raise KVError('the binding record %s has no binding of app(s) %s' % (self.record_path, ', '.join(missing)),
                              kind='config')
            return wanted
        guids = self.apps_by_name(self.apps, instance['space_guid'])
        return [dict(app=dict(guid=guids[n], name=n), name=self.binding_name, parameters=self.parameters)
                for n in self.apps]

    def bind(self, instance, result):
        wanted = self._wanted(instance)
        existing = dict((b['app']['guid'], b) for b in self.bindings(instance, [w['app']['guid'] for w in wanted])) \
            if wanted else {}
        todo = [w for w in wanted if w['app']['guid'] not in existing]
        result['bindings'] = [dict(name=w['name'], app=w['app'], already_bound=w['app']['guid'] in existing)
                              for w in wanted]
        result['changed'] = bool(todo)
        for want in todo:
            self.actions.append('bind app %s to %s%s'
                                % (want['app']['name'], instance['name'], ' as %s' % want['name'] if want['name'] else ''))
        if self.restart:
            self.actions.extend('restart app %s' % w['app']['name'] for w in todo)
        result['restarted'] = [w['app']['name'] for w in todo] if self.restart else []
        if self.check_mode:
            return
        for want in todo:
            body = {'type': 'app', 'relationships': {'service_instance': {'data': {'guid': instance['guid']}},
                                                     'app': {'data': {'guid': want['app']['guid']}}}}
            if want['name']:
                body['name'] = want['name']
            if want['parameters']:
                body['parameters'] = want['parameters']
            action = 'binding app %s to %s' % (want['app']['name'], instance['name'])
            try:
                status, headers, dummy = self.cf.request('POST', '/v3/service_credential_bindings', body, action=action)
            except KVError as exc:
                if exc.kind == 'not_found':
                    exc.message = '%s (is app %s (%s) gone?)' % (exc.message, want['app']['name'], want['app']['guid'])
                raise
            self.cf.wait_job(status, headers, action)
        if self.restart:
            for want in todo:
                self.cf.request('POST', '/v3/apps/%s/actions/restart' % want['app']['guid'],
                                action='restarting app %s' % want['app']['name'], ok=(200, 201, 202))
