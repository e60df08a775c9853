"""Is a write blocked by ``CLIENT PAUSE WRITE``?  Asked of the server, not of a clock.

A probe sends one SET from a client of its own (named, no retries, no socket timeout) in a thread.  The
server either runs it (the thread finishes: not blocked) or postpones it (``CLIENT LIST`` shows the probe's
connection with flag ``b`` and ``cmd=set``: blocked).  Either answer comes however slow the machine is, so a
test asking "are writes blocked now?" never depends on a timeout being long enough.  A blocked probe finishes
when the pause ends, which is what ``finished(timeout)`` waits for.
"""

import itertools
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_names = itertools.count()


class WriteProbe:
    """``WriteProbe(server).start()``: one SET in flight; ``blocked()``, ``finished(timeout)``, ``close()``."""

    def __init__(self, server, key=b'kvtools:test:probe'):
        self.server = server
        self.key = key
        self.name = 'kvtools-probe-%d' % next(_names)
        kw = dict(host='127.0.0.1', port=server.port, socket_timeout=None, decode_responses=False,
                  retry=Retry(NoBackoff(), 0), client_name=self.name)
        admin = server.admin()
        for name in ('username', 'password', 'ssl', 'ssl_ca_certs', 'ssl_certfile', 'ssl_keyfile'):
            value = admin.connection_pool.connection_kwargs.get(name)
            if value is not None:
                kw[name] = value
        admin.close()
        self.client = redis.Redis(**kw)
        self.client.ping()  # connected and named before the SET is sent
        self.done = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            self.client.set(self.key, b'x')
        except Exception as exc:  # reported by finished()
            self.error = exc
        finally:
            self.done.set()

    def _postponed(self, admin):
        for line in admin.execute_command('CLIENT', 'LIST').decode('utf-8', 'replace').splitlines():
            fields = dict(part.split('=', 1) for part in line.split(' ') if '=' in part)
            if fields.get('name') == self.name:
                return 'b' in fields.get('flags', '') and fields.get('cmd') == 'set'
        return False

    def blocked(self, deadline=60.0):
        """True once the server holds the SET back, False once it ran it (whichever comes first)."""
        admin = self.server.admin()
        try:
            end = time.time() + deadline
            while time.time() < end:
                if self.done.is_set():
                    return False
                if self._postponed(admin):
                    return True
                time.sleep(0.01)
        finally:
            admin.close()
        raise AssertionError('the probe SET neither ran nor was held back within %.0f s' % deadline)

    def finished(self, timeout=60.0):
        """True when the SET was acknowledged within ``timeout`` seconds."""
        self.done.wait(timeout)
        if self.error is not None:
            raise self.error
        return self.done.is_set()

    def close(self):
        self.client.close()


def write_blocked(server, deadline=60.0):
    """Whether a write sent now is held back by the server; a held-back probe is left to finish by itself."""
    probe = WriteProbe(server).start()
    try:
        return probe.blocked(deadline)
    finally:
        if probe.done.is_set():
            probe.close()
