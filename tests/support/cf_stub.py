"""A Cloud Foundry v3 API stand-in for the tests (stdlib only, threaded, on a free loopback port).

It implements exactly the subset kv_cf_bindings uses, with CF's shapes:

=====================================================  ==========================================================
``GET /``                                              ``links.uaa.href`` / ``links.login.href`` (this server)
``POST /oauth/token``                                  UAA: ``grant_type=password`` (basic auth ``cf:``) or
                                                       ``client_credentials``; 401 ``{"error": "unauthorized"}``
``GET /v3/organizations?names=``                       list
``GET /v3/spaces?names=&organization_guids=``          list
``GET /v3/service_instances?names=&space_guids=``      list; ``GET /v3/service_instances/:guid``
``GET /v3/apps?names=&space_guids=&guids=``            list
``GET /v3/service_credential_bindings``                list, filters ``service_instance_guids``, ``app_guids``,
                                                       ``type``; ``include=app`` fills ``included.apps``
                                                       ``names``; ``type`` app or key (both without it)
``GET /v3/service_credential_bindings/:guid/parameters``  the parameters given at bind time
``GET /v3/service_credential_bindings/:guid/details``  ``{"credentials": ..}``: a service key gets the
                                                       instance's ``credentials`` (see ``add_instance``)
``POST /v3/service_credential_bindings``               managed instance: 202 + ``Location: /v3/jobs/:guid``;
                                                       user-provided: 201; 422 when the app is already bound;
                                                       ``type: key`` needs a name unique per instance (422
                                                       otherwise) and a managed instance (422 otherwise)
``DELETE /v3/service_credential_bindings/:guid``       managed: 202 + job; user-provided: 204
``GET /v3/jobs/:guid``                                 ``PROCESSING`` for ``job_polls`` polls, then ``COMPLETE``
                                                       (the change is applied then) or ``FAILED`` with ``errors``
``POST /v3/apps/:guid/actions/restart``                200, counted in ``restarts``
=====================================================  ==========================================================

Lists paginate with ``per_page`` (capped by ``page_size``) and ``pagination.next.href``.
Errors are CF bodies ``{"errors": [{"code": .., "title": .., "detail": ..}]}``: 401
CF-InvalidAuthToken, 403 CF-NotAuthorized, 404 CF-ResourceNotFound, 422 CF-UnprocessableEntity.

Knobs for the tests: ``fail_jobs`` (the next N jobs fail), ``expire_tokens()`` (every issued token
becomes invalid), ``readonly_users`` (these users get 403 on writes; ``auditor`` by default), ``on_request``
(a hook called with ``(method, path)`` before each request is served), ``log`` (every request).
"""

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENTS = {'cf': '', 'migrator-client': 'cl1ent-S3cret'}
USERS = {'operator': 'op-Pa55word', 'auditor': 'aud-Pa55word'}


def _guid():
    return str(uuid.uuid4())


class CFStub:
    def __init__(self, page_size=2, job_polls=1):
        self.page_size = page_size
        self.job_polls = job_polls
        self.lock = threading.Lock()
        self.tokens = {}          # token -> user or client
        self.readonly_users = {'auditor'}
        self.fail_jobs = 0
        self.on_request = None
        self.log = []
        self.restarts = []
        self.orgs, self.spaces, self.instances, self.apps, self.bindings, self.jobs = {}, {}, {}, {}, {}, {}
        self.credentials = {}     # instance guid -> the credentials of its new service keys
        self.server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self.server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- set-up ------------------------------------------------------------------------------------
    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add_org(self, name):
        guid = _guid()
        self.orgs[guid] = {'guid': guid, 'name': name}
        return guid

    def add_space(self, name, org_guid):
        guid = _guid()
        self.spaces[guid] = {'guid': guid, 'name': name, 'relationships': {'organization': {'data': {'guid': org_guid}}}}
        return guid

    def add_instance(self, name, space_guid, kind='managed', credentials=None):
        """``credentials``: what the broker puts into every new service key of this instance."""
        guid = _guid()
        self.instances[guid] = {'guid': guid, 'name': name, 'type': kind,
                                'relationships': {'space': {'data': {'guid': space_guid}}}}
        self.credentials[guid] = dict(credentials or {})
        return guid

    def add_key(self, instance_guid, name, credentials=None, state='succeeded'):
        """A service key that exists already (``cf create-service-key``), with the instance's credentials."""
        guid = _guid()
        self.bindings[guid] = {'guid': guid, 'type': 'key', 'name': name, 'created_at': '2026-01-02T03:04:05Z',
                               'updated_at': '2026-01-02T03:04:05Z', 'parameters': {},
                               'last_operation': {'type': 'create', 'state': state},
                               'credentials': dict(self.credentials.get(instance_guid) or {}
                                                   if credentials is None else credentials),
                               'relationships': {'service_instance': {'data': {'guid': instance_guid}}}}
        return guid

    def keys_of(self, instance_guid):
        """The names of the service keys of an instance."""
        return sorted(b['name'] for b in self.bindings.values() if b['type'] == 'key' and
                      b['relationships']['service_instance']['data']['guid'] == instance_guid)

    def add_app(self, name, space_guid):
        guid = _guid()
        self.apps[guid] = {'guid': guid, 'name': name, 'state': 'STARTED',
                           'relationships': {'space': {'data': {'guid': space_guid}}}}
        return guid

    def add_binding(self, app_guid, instance_guid, name=None, parameters=None):
        guid = _guid()
        self.bindings[guid] = {'guid': guid, 'type': 'app', 'name': name, 'created_at': '2026-01-02T03:04:05Z',
                               'updated_at': '2026-01-02T03:04:05Z', 'parameters': parameters or {},
                               'relationships': {'app': {'data': {'guid': app_guid}},
                                                 'service_instance': {'data': {'guid': instance_guid}}}}
        return guid

    def expire_tokens(self):
        with self.lock:
            self.tokens.clear()

    def issue_token(self, who='operator'):
        token = 'tok-' + uuid.uuid4().hex
        self.tokens[token] = who
        return token

    def bindings_of(self, instance_guid):
        """``{(app name, binding name): parameters}`` of an instance, for the tests' comparisons."""
        out = {}
        for b in self.bindings.values():
            if b['type'] == 'app' and b['relationships']['service_instance']['data']['guid'] == instance_guid:
                app = self.apps[b['relationships']['app']['data']['guid']]
                out[(app['name'], b['name'])] = b['parameters']
        return out

    # -- the HTTP side -------------------------------------------------------------------------------
    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def reply(self, status, body=None, headers=None):
                raw = json.dumps(body).encode() if body is not None else b''
                self.send_response(status)
                if body is not None:
                    self.send_header('Content-Type', 'application/json')
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header('Content-Length', str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def error(self, status, code, title, detail):
                self.reply(status, {'errors': [{'code': code, 'title': title, 'detail': detail}]})

            def body(self):
                length = int(self.headers.get('Content-Length') or 0)
                return self.rfile.read(length) if length else b''

            def handle_any(self, method):
                parts = urlsplit(self.path)
                query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
                stub.log.append((method, parts.path, query))
                if stub.on_request:
                    stub.on_request(method, parts.path)
                with stub.lock:
                    try:
                        stub.route(self, method, parts.path, query)
                    except Exception as exc:  # a stub bug shows as a 500, not a hang
                        self.error(500, 10001, 'UnknownError', repr(exc))

            def do_GET(self):
                self.handle_any('GET')

            def do_POST(self):
                self.handle_any('POST')

            def do_DELETE(self):
                self.handle_any('DELETE')

        return Handler

    def route(self, h, method, path, query):
        if path == '/' and method == 'GET':
            return h.reply(200, {'links': {'uaa': {'href': self.url}, 'login': {'href': self.url}}})
        if path == '/oauth/token' and method == 'POST':
            return self.token(h)
        auth = h.headers.get('Authorization') or ''
        token = auth[7:] if auth.lower().startswith('bearer ') else None
        who = self.tokens.get(token)
        if who is None:
            return h.error(401, 1000, 'CF-InvalidAuthToken', 'Invalid Auth Token')
        if method != 'GET' and (who in self.readonly_users):
            return h.error(403, 10003, 'CF-NotAuthorized', 'You are not authorized to perform the requested action')
        seg = path.strip('/').split('/')
        if seg[0] != 'v3':
            return h.error(404, 10000, 'CF-NotFound', 'Unknown request')
        seg = seg[1:]
        if method == 'GET' and len(seg) == 1:
            return self.list(h, seg[0], query)
        if method == 'GET' and len(seg) == 2:
            table = {'service_instances': self.instances, 'apps': self.apps, 'jobs': self.jobs,
                     'service_credential_bindings': self.bindings}.get(seg[0], {})
            if seg[0] == 'jobs' and seg[1] in self.jobs:
                return h.reply(200, self.poll_job(seg[1]))
            if seg[1] in table:
                return h.reply(200, self.public(seg[0], table[seg[1]]))
            return h.error(404, 10010, 'CF-ResourceNotFound', '%s not found' % seg[0].rstrip('s').replace('_', ' '))
        if method == 'GET' and len(seg) == 3 and seg[0] == 'service_credential_bindings' and seg[2] == 'parameters':
            if seg[1] not in self.bindings:
                return h.error(404, 10010, 'CF-ResourceNotFound', 'Service credential binding not found')
            return h.reply(200, self.bindings[seg[1]]['parameters'])
        if method == 'GET' and len(seg) == 3 and seg[0] == 'service_credential_bindings' and seg[2] == 'details':
            if seg[1] not in self.bindings:
                return h.error(404, 10010, 'CF-ResourceNotFound', 'Service credential binding not found')
            if who in self.readonly_users:  # credentials are for space developers only
                return h.error(403, 10003, 'CF-NotAuthorized', 'You are not authorized to perform the requested action')
            return h.reply(200, {'credentials': self.bindings[seg[1]].get('credentials') or {},
                                 'syslog_drain_url': None, 'volume_mounts': []})
        if method == 'POST' and seg == ['service_credential_bindings']:
            return self.create_binding(h, json.loads(h.body() or b'{}'))
        if method == 'DELETE' and len(seg) == 2 and seg[0] == 'service_credential_bindings':
            if seg[1] not in self.bindings:
                return h.error(404, 10010, 'CF-ResourceNotFound', 'Service credential binding not found')
            binding = self.bindings[seg[1]]
            inst = self.instances[binding['relationships']['service_instance']['data']['guid']]
            if inst['type'] == 'user-provided':
                del self.bindings[seg[1]]
                return h.reply(204)
            return self.job(h, 'service_bindings.delete', ('delete', seg[1]))
        if method == 'POST' and len(seg) == 4 and seg[0] == 'apps' and seg[2:] == ['actions', 'restart']:
            if seg[1] not in self.apps:
                return h.error(404, 10010, 'CF-ResourceNotFound', 'App not found')
            self.restarts.append(self.apps[seg[1]]['name'])
            return h.reply(200, self.apps[seg[1]])
        return h.error(404, 10000, 'CF-NotFound', 'Unknown request')

    def token(self, h):
        form = dict((k, v[0]) for k, v in parse_qs(h.body().decode()).items())
        basic = h.headers.get('Authorization') or ''
        try:
            client, secret = base64.b64decode(basic[6:]).decode().split(':', 1)
        except Exception:
            client, secret = None, None
        if CLIENTS.get(client) != secret:
            return h.reply(401, {'error': 'unauthorized', 'error_description': 'Bad credentials'})
        if form.get('grant_type') == 'password':
            if USERS.get(form.get('username')) != form.get('password'):
                return h.reply(401, {'error': 'unauthorized', 'error_description': 'Bad credentials'})
            who = form['username']
        elif form.get('grant_type') == 'client_credentials' and client != 'cf':
            who = client
        else:
            return h.reply(400, {'error': 'unsupported_grant_type'})
        return h.reply(200, {'access_token': self.issue_token(who), 'token_type': 'bearer', 'expires_in': 599})

    def public(self, kind, res):
        if kind == 'service_credential_bindings':
            return dict((k, v) for k, v in res.items() if k not in ('parameters', 'credentials'))
        return res

    def list(self, h, kind, query):
        def csv(name):
            return set(query[name].split(',')) if name in query else None
        names = csv('names')
        if kind == 'organizations':
            items = [o for o in self.orgs.values() if names is None or o['name'] in names]
        elif kind == 'spaces':
            orgs = csv('organization_guids')
            items = [s for s in self.spaces.values() if (names is None or s['name'] in names) and
                     (orgs is None or s['relationships']['organization']['data']['guid'] in orgs)]
        elif kind in ('service_instances', 'apps'):
            spaces, guids = csv('space_guids'), csv('guids')
            items = [r for r in (self.instances if kind == 'service_instances' else self.apps).values()
                     if (names is None or r['name'] in names) and (guids is None or r['guid'] in guids) and
                     (spaces is None or r['relationships']['space']['data']['guid'] in spaces)]
        elif kind == 'service_credential_bindings':
            insts, apps = csv('service_instance_guids'), csv('app_guids')
            items = [self.public(kind, b) for b in self.bindings.values()
                     if (insts is None or b['relationships']['service_instance']['data']['guid'] in insts) and
                     (apps is None or (b['relationships'].get('app') or {}).get('data', {}).get('guid') in apps) and
                     (names is None or b['name'] in names) and query.get('type', b['type']) == b['type']]
        else:
            return h.error(404, 10000, 'CF-NotFound', 'Unknown request')
        per_page = min(int(query.get('per_page', 50)), self.page_size)
        page = int(query.get('page', 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        nxt = None
        if page * per_page < len(items):
            nxt = {'href': '%s/v3/%s?%s' % (self.url, kind, urlencode(dict(query, page=page + 1)))}
        body = {'pagination': {'total_results': len(items), 'total_pages': -(-len(items) // per_page) or 1,
                               'first': {'href': '%s/v3/%s?page=1' % (self.url, kind)}, 'next': nxt},
                'resources': chunk}
        if kind == 'service_credential_bindings' and query.get('include') == 'app':
            app_guids = [b['relationships']['app']['data']['guid'] for b in chunk]
            body['included'] = {'apps': [self.apps[g] for g in dict.fromkeys(app_guids) if g in self.apps]}
        return h.reply(200, body)

    def create_binding(self, h, body):
        rel = body.get('relationships') or {}
        inst_guid = ((rel.get('service_instance') or {}).get('data') or {}).get('guid')
        if body.get('type') == 'key':
            return self.create_key(h, inst_guid, body.get('name'))
        app_guid = ((rel.get('app') or {}).get('data') or {}).get('guid')
        if inst_guid not in self.instances:
            return h.error(422, 10008, 'CF-UnprocessableEntity', 'The service instance could not be found: %s' % inst_guid)
        if app_guid not in self.apps:
            return h.error(422, 10008, 'CF-UnprocessableEntity', 'The app could not be found: %s' % app_guid)
        for b in self.bindings.values():
            if b['type'] == 'app' and b['relationships']['app']['data']['guid'] == app_guid and \
                    b['relationships']['service_instance']['data']['guid'] == inst_guid:
                return h.error(422, 10008, 'CF-UnprocessableEntity', 'The app is already bound to the service instance')
        spec = (app_guid, inst_guid, body.get('name'), body.get('parameters') or {})
        if self.instances[inst_guid]['type'] == 'user-provided':
            guid = self.add_binding(*spec)
            return h.reply(201, self.public('service_credential_bindings', self.bindings[guid]))
        return self.job(h, 'service_bindings.create', ('create', spec))

    def create_key(self, h, inst_guid, name):
        if inst_guid not in self.instances:
            return h.error(422, 10008, 'CF-UnprocessableEntity', 'The service instance could not be found: %s' % inst_guid)
        if not name:
            return h.error(422, 10008, 'CF-UnprocessableEntity', 'Name must be a string')
        if self.instances[inst_guid]['type'] == 'user-provided':
            return h.error(422, 10008, 'CF-UnprocessableEntity',
                           'Service credential bindings of type key are not supported for user-provided service '
                           'instances.')
        if name in self.keys_of(inst_guid):
            return h.error(422, 10008, 'CF-UnprocessableEntity',
                           'The binding name is invalid. Key binding names must be unique. The service instance '
                           'already has a key binding with name \'%s\'.' % name)
        return self.job(h, 'service_bindings.create', ('create_key', (inst_guid, name)))

    def job(self, h, operation, work):
        guid = _guid()
        fail = self.fail_jobs > 0
        if fail:
            self.fail_jobs -= 1
        self.jobs[guid] = {'guid': guid, 'operation': operation, 'state': 'PROCESSING', 'errors': [], 'warnings': [],
                           '_polls': 0, '_work': work, '_fail': fail}
        return h.reply(202, headers={'Location': '%s/v3/jobs/%s' % (self.url, guid)})

    def poll_job(self, guid):
        job = self.jobs[guid]
        if job['state'] == 'PROCESSING':
            job['_polls'] += 1
            if job['_polls'] > self.job_polls:
                if job['_fail']:
                    job['state'] = 'FAILED'
                    job['errors'] = [{'code': 10009, 'title': 'CF-UnableToPerform',
                                      'detail': 'bind could not be completed: Service broker error: '
                                                'instance is being updated'}]
                else:
                    action, arg = job['_work']
                    if action == 'delete':
                        self.bindings.pop(arg, None)
                    elif action == 'create_key':
                        self.add_key(*arg)
                    else:
                        self.add_binding(*arg)
                    job['state'] = 'COMPLETE'
        return dict((k, v) for k, v in job.items() if not k.startswith('_'))
