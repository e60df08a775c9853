# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The endpoint specification and the one client factory of the collection.

An endpoint is what a user writes under ``server:``, ``source:`` or ``target:``.  It is
declared here once (:data:`ENDPOINT_OPTIONS`) and documented once in
``plugins/doc_fragments/endpoint.py``.  :class:`Endpoint` normalises it (a ``url`` gives
defaults, explicit sub-options win) and :meth:`Endpoint.client` builds a redis-py client that
never decodes replies, never retries behind the caller's back and never puts a secret into a
message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import inspect
import ssl

try:
    from urllib.parse import urlsplit, unquote, parse_qs
except ImportError:  # pragma: no cover - Python 2 is not supported
    urlsplit = unquote = parse_qs = None

try:
    import redis
    from redis.connection import Connection as _RedisConnection
    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the module
    redis = None
    _RedisConnection = object
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = _exc

from ansible_collections.kvtools.migration.plugins.module_utils._cf_keys import cf_service_spec
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, classify
from ansible_collections.kvtools.migration.plugins.module_utils._ranges import RANGES, check_value

DEFAULT_HOST = 'localhost'
DEFAULT_PORT = 6379
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_SOCKET_TIMEOUT = 60.0

TLS_SCHEMES = ('rediss', 'valkeys')
PLAIN_SCHEMES = ('redis', 'valkey')
UNIX_SCHEMES = ('unix', 'redis+unix', 'valkey+unix')
FILE_SCHEMES = ('file',)  # a backup (logical or RDB) as the source of kv_dump_restore

# The sub-options of every endpoint.  Defaults that a url can supply (host, port, db, tls) are
# applied by Endpoint, not here, so that an explicit value can be told from a default.
ENDPOINT_OPTIONS = dict(
    url=dict(type='str', no_log=True),
    host=dict(type='str'),
    port=dict(type='int'),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
    db=dict(type='int'),
    tls=dict(type='bool'),
    ca_cert=dict(type='path'),
    client_cert=dict(type='path'),
    client_key=dict(type='path', no_log=False),
    server_name=dict(type='str'),
    validate_certs=dict(type='bool', default=True),
    connect_timeout=dict(type='float', default=DEFAULT_CONNECT_TIMEOUT),
    socket_timeout=dict(type='float', default=DEFAULT_SOCKET_TIMEOUT),
    migrate_host=dict(type='str'),
    migrate_port=dict(type='int'),
    read_from=dict(type='str', choices=['master', 'replica'], default='master'),
    replica_max_lag=dict(type='int', default=1048576),
    sentinel=dict(type='dict', options=dict(
        hosts=dict(type='list', elements='str', required=True),
        service_name=dict(type='str', required=True),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
        tls=dict(type='bool', default=False),
        ca_cert=dict(type='path'),
        client_cert=dict(type='path'),
        client_key=dict(type='path', no_log=False),
        server_name=dict(type='str'),
        validate_certs=dict(type='bool', default=True),
    )),
    # A Cloud Foundry service instance whose service key gives the rest (resolved by KVModule.endpoint)
    cf_service=dict(type='dict', options=cf_service_spec()),
)
DEFAULT_SENTINEL_PORT = 26379


def endpoint_spec(required=True):
    """The argument spec entry for one endpoint option (``server``, ``source`` or ``target``)."""
    return dict(type='dict', required=required, options=copy.deepcopy(ENDPOINT_OPTIONS))


class _TLSConnection(_RedisConnection):
    """A TCP connection wrapped in an SSL context we build ourselves.

    redis-py's own SSLConnection always sends the connect host as SNI and checks the certificate
    against it; ``server_name`` needs both to be a different name.
    """

    def __init__(self, ssl_context=None, server_name=None, **kwargs):
        self._kv_ssl_context = ssl_context
        self._kv_server_name = server_name
        super(_TLSConnection, self).__init__(**kwargs)

    def _connect(self):
        sock = super(_TLSConnection, self)._connect()
        try:
            sock.settimeout(self.socket_connect_timeout)
            tls_sock = self._kv_ssl_context.wrap_socket(sock, server_hostname=self._kv_server_name or self.host)
            tls_sock.settimeout(self.socket_timeout)
            return tls_sock
        except Exception:
            sock.close()
            raise


def parse_host_port(text, label, default_port):
    """``(host, port)`` of ``host:port``, ``[v6]:port`` or ``host`` (the default port)."""
    text = (text or '').strip()
    host, port = text, default_port
    if text.startswith('['):
        end = text.find(']')
        host, rest = text[1:end], text[end + 1:]
        if end < 0 or (rest and not rest.startswith(':')):
            host = ''
        elif rest:
            port = rest[1:]
    elif text.count(':') == 1:
        host, port = text.split(':')
    try:
        port = int(port)
    except ValueError:
        port = None
    if not host or port is None:
        raise KVError('%s: %r is not host:port' % (label, text), kind='config')
    check_value(label, port, RANGES['port'])
    return host, port


def _supported_kwargs(kwargs):
    """Drop keyword arguments the installed redis-py does not know (older releases)."""
    try:
        params = inspect.signature(redis.Redis.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return kwargs
    out = dict((k, v) for k, v in kwargs.items() if k in params)
    if 'driver_info' in out:  # newer redis-py: lib_name/lib_version are deprecated in its favour
        out.pop('lib_name', None)
        out.pop('lib_version', None)
    return out


class Endpoint:
    """One server as the user described it, normalised.

    Attributes: ``host``, ``port``, ``unix_socket`` (or None), ``username``, ``password``,
    ``db``, ``tls``, TLS files, ``server_name``, ``validate_certs``, timeouts, ``label``.
    """

    def __init__(self, params, label='server', ca_data=None):
        params = dict(params or {})
        self.label = label
        self.ca_data = ca_data  # a CA as PEM text (from a CF service key), used when ca_cert is not given
        url = params.get('url')
        parsed = self._parse_url(url) if url else {}
        self.url_given = bool(url)

        def pick(name, default=None):
            value = params.get(name)
            if value is None:
                value = parsed.get(name)
            return default if value is None else value

        self.unix_socket = parsed.get('unix_socket')
        self.backup_file = parsed.get('backup_file')
        self.host = pick('host', DEFAULT_HOST)
        self.port = int(pick('port', DEFAULT_PORT))
        self.username = pick('username') or None
        self.password = pick('password') or None
        self.db = int(pick('db', 0))
        self.tls = bool(pick('tls', False))
        self.ca_cert = pick('ca_cert')
        self.client_cert = pick('client_cert')
        self.client_key = pick('client_key')
        self.server_name = pick('server_name')
        self.validate_certs = params.get('validate_certs', True) is not False
        # None means "not given"; 0 is a value (out of range), never silently the default
        self.connect_timeout = float(pick('connect_timeout', DEFAULT_CONNECT_TIMEOUT))
        self.socket_timeout = float(pick('socket_timeout', DEFAULT_SOCKET_TIMEOUT))
        # The address another server (the source of a MIGRATE) uses to reach this one.
        self._migrate_host_given = bool(params.get('migrate_host'))
        self.migrate_host = params.get('migrate_host') or self.host
        self.migrate_port = int(pick('migrate_port', self.port))
        for name in ('port', 'migrate_port', 'connect_timeout', 'socket_timeout'):  # a url's values too
            check_value('%s.%s' % (label, name), getattr(self, name), RANGES[name])
        if self.unix_socket and self.tls:
            raise KVError('%s: TLS over a unix socket is not supported; use a TCP url' % label, kind='config')
        if self.db < 0:
            raise KVError('%s: db must be 0 or more, got %d' % (label, self.db), kind='config')
        if bool(self.client_cert) != bool(self.client_key):
            raise KVError('%s: client_cert and client_key must be given together' % label, kind='config')
        # Sentinel: the data node is the master the sentinels name, resolved by _sentinel.resolve_master
        # (KVModule.endpoint does it once for every module); until then host/port are not known.
        self.sentinel = self._parse_sentinel(params, parsed) if params.get('sentinel') else None
        self.read_from = params.get('read_from') or 'master'
        self.replica_max_lag = int(params['replica_max_lag'] if params.get('replica_max_lag') is not None
                                   else 1048576)
        check_value('%s.replica_max_lag' % label, self.replica_max_lag, RANGES['replica_max_lag'])
        if self.read_from == 'replica' and (self.sentinel is None or label != 'source'):
            raise KVError('%s.read_from: replica is only for a source with sentinel (the sentinels list the '
                          'replicas); got it for %s' % (label, 'a server without sentinel' if self.sentinel is None
                                                        else 'the %s' % label), kind='config')
        self.master_resolved = False
        self.master_watch = None  # set by the resolution: checks that the master has not moved

    def _parse_sentinel(self, params, parsed):
        label = self.label
        given = [n for n in ('host', 'port', 'migrate_port') if params.get(n) is not None] + \
            ['url %s' % n for n in ('host', 'port', 'unix_socket', 'backup_file') if parsed.get(n)]
        if given:
            raise KVError('%s: give either sentinel (the sentinels name the master) or the address of the server, '
                          'not both (got %s)' % (label, ', '.join(given)), kind='config')
        spec = dict(params['sentinel'])
        hosts = []
        for item in spec.get('hosts') or []:
            hosts.append(parse_host_port(item, '%s.sentinel.hosts' % label, DEFAULT_SENTINEL_PORT))
        if not hosts:
            raise KVError('%s.sentinel.hosts: give at least one sentinel as host:port' % label, kind='config')
        name = spec.get('service_name') or ''
        if not name.strip():
            raise KVError('%s.sentinel.service_name: give the name the sentinels monitor the master under '
                          '(sentinel monitor <name> ...)' % label, kind='config')
        if bool(spec.get('client_cert')) != bool(spec.get('client_key')):
            raise KVError('%s.sentinel: client_cert and client_key must be given together' % label, kind='config')
        spec['hosts'] = hosts
        return spec

    @property
    def identity(self):
        """What names this endpoint across runs: the address, or the sentinels' service for a Sentinel endpoint
        (its master moves on a failover; a checkpoint or record stays valid)."""
        if self.sentinel is not None:
            return 'sentinel:%s@%s' % (self.sentinel['service_name'],
                                       ','.join('%s:%d' % hp for hp in sorted(self.sentinel['hosts'])))
        return self.address

    def set_master(self, host, port):
        """Point a Sentinel endpoint at the master ``host:port`` the sentinels named."""
        self.host, self.port = host, int(port)
        self.master_resolved = True
        if not self._migrate_host_given:
            self.migrate_host = host
        self.migrate_port = self.port

    def check_master(self, force=False):
        """Raise a ``failover`` KVError when the master of a Sentinel endpoint has moved (no-op otherwise)."""
        if self.master_watch is not None:
            self.master_watch.check(force=force)

    @staticmethod
    def _parse_url(url):
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise KVError('url is not valid: %s' % exc, kind='config')
        scheme = (parts.scheme or '').lower()
        out = {}
        if scheme in FILE_SCHEMES:
            out['backup_file'] = unquote(parts.path)
            if not out['backup_file']:
                raise KVError('a file:// url needs the path of a backup (logical or RDB), e.g. '
                              'file:///var/backups/old.kvtlog',
                              kind='config')
            return out
        if scheme in UNIX_SCHEMES:
            out['unix_socket'] = unquote(parts.path)
            if not out['unix_socket']:
                raise KVError('a unix:// url needs a socket path, e.g. unix:///run/redis.sock', kind='config')
        elif scheme in TLS_SCHEMES + PLAIN_SCHEMES:
            out['tls'] = scheme in TLS_SCHEMES
            try:
                if parts.hostname:
                    out['host'] = parts.hostname
                if parts.port:
                    out['port'] = parts.port
            except ValueError:
                raise KVError('url has an invalid port', kind='config')
            path = parts.path.strip('/')
            if path:
                if not path.isdigit():
                    raise KVError('url path must be a db number, e.g. redis://host:6379/2', kind='config')
                out['db'] = int(path)
        else:
            raise KVError('url scheme must be one of redis, rediss, valkey, valkeys, unix, file (got %r)' % scheme,
                          kind='config')
        if parts.username:
            out['username'] = unquote(parts.username)
        if parts.password:
            out['password'] = unquote(parts.password)
        query = parse_qs(parts.query)
        if 'db' in query and query['db'][0].isdigit():
            out['db'] = int(query['db'][0])
        return out

    # -- presentation -------------------------------------------------------------------------
    @property
    def address(self):
        """``host:port`` or ``unix:/path``: what messages and results show (no credentials)."""
        if self.backup_file:
            return 'file:%s' % self.backup_file
        if self.unix_socket:
            return 'unix:%s' % self.unix_socket
        if getattr(self, 'sentinel', None) is not None and not self.master_resolved:
            return 'sentinel:%s' % self.sentinel['service_name']
        return '%s:%d' % (self.host, self.port)

    @property
    def secrets(self):
        return [s for s in (self.password, (self.sentinel or {}).get('password')) if s]

    def describe(self):
        """A secret-free summary for results and reports."""
        out = dict(address=self.address, username=self.username, tls=self.tls, db=self.db)
        if self.sentinel is not None:
            out['sentinel'] = dict(service_name=self.sentinel['service_name'], master=self.address)
        return out

    # -- clients ------------------------------------------------------------------------------
    def ssl_context(self):
        if self.validate_certs:
            try:
                if self.ca_cert:
                    ctx = ssl.create_default_context(cafile=self.ca_cert)
                elif self.ca_data:
                    ctx = ssl.create_default_context(cadata=self.ca_data)
                else:
                    ctx = ssl.create_default_context()
            except (IOError, OSError, ssl.SSLError, ValueError) as exc:
                raise KVError('%s: cannot read %s: %s' % (self.label, ('ca_cert %s' % self.ca_cert) if self.ca_cert
                                                          else 'the CA of the service key', exc), kind='config')
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            try:
                ctx.load_cert_chain(self.client_cert, self.client_key)
            except (IOError, OSError, ssl.SSLError) as exc:
                raise KVError('%s: cannot load client_cert/client_key: %s' % (self.label, exc), kind='config')
        return ctx

    def client(self, db=None, check=True):
        """A redis-py client for ``db`` (default: the endpoint's db) that returns bytes.

        With ``check`` the connection is opened and authenticated now, so a bad endpoint fails
        here with a classified :class:`KVError` rather than later, mid-operation.
        """
        if not HAS_REDIS:
            raise KVError('the redis Python library is required (pip install redis)', kind='config')
        if self.backup_file:
            raise KVError('%s is a backup file (%s), not a server: only the source of kv_dump_restore may be a file'
                          % (self.label, self.backup_file), kind='config')
        db = self.db if db is None else int(db)
        kwargs = dict(
            db=db,
            username=self.username,
            password=self.password,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.socket_timeout,
            decode_responses=False,
            protocol=2,
            health_check_interval=0,
            retry_on_timeout=False,
            lib_name=None,
            lib_version=None,
            driver_info=None,
            max_connections=64,
        )
        try:
            from redis.retry import Retry
            from redis.backoff import NoBackoff
            kwargs['retry'] = Retry(NoBackoff(), 0)
            kwargs.pop('retry_on_timeout')  # deprecated in redis-py 6+; the Retry above already says "never"
        except ImportError:  # pragma: no cover
            pass
        kwargs = _supported_kwargs(kwargs)
        if self.unix_socket:
            kwargs['unix_socket_path'] = self.unix_socket
            client = redis.Redis(**kwargs)
        else:
            pool_kwargs = dict(kwargs)
            pool_kwargs.pop('max_connections', None)
            pool_kwargs.pop('retry_on_timeout', None)
            pool_kwargs.update(host=self.host, port=self.port)
            if self.tls:
                pool_kwargs.update(connection_class=_TLSConnection, ssl_context=self.ssl_context(),
                                   server_name=self.server_name)
            pool = redis.ConnectionPool(max_connections=64, **pool_kwargs)
            client = redis.Redis(connection_pool=pool)
        if check:
            try:
                client.ping()
            except Exception as exc:  # classified, secret-free
                client.close()
                raise classify(exc, self._with_db(db), 'connecting to %s' % self.label, connecting=True)
        return client

    def _with_db(self, db):
        if db == self.db:
            return self
        other = Endpoint.__new__(Endpoint)
        other.__dict__.update(self.__dict__)
        other.db = db
        return other

    def error(self, exc, action=None, db=None):
        """Classify ``exc`` raised while working on this endpoint (optionally on ``db``)."""
        return classify(exc, self if db is None else self._with_db(db), action)
