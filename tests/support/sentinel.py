"""A Sentinel-managed pair on loopback: one master, one replica, three sentinels.

The data nodes are ordinary test servers (tests/support/servers.py: ACL users, ``default`` off); the replica
replicates as ``admin``.  The sentinels run the same binary with ``--sentinel``; ``default`` is off on them
too, and the module reaches them as ``watcher`` (SENTINEL_PASSWORD), a user allowed to ask where the master is
and nothing that changes anything.  The sentinels talk to each other as ``peer`` and to the data nodes as
``admin``.  ``down-after-milliseconds`` is small and :meth:`SentinelSet.failover` forces a failover with
``SENTINEL FAILOVER``; every wait is on a condition, with a generous deadline.
"""

import os
import subprocess
import tempfile
import time

import redis

from tests.support.servers import PASSWORDS, Server, command, free_port

SERVICE = 'kvmain'
SENTINEL_PASSWORD = 'snt-Secret-6 "watch"'
PEER_PASSWORD = 'peer-Secret-7'
SENTINEL_ACL = {
    'watcher': 'on >{pw} +ping +hello +auth +sentinel|get-master-addr-by-name +sentinel|replicas',
    'peer': 'on >{pw} +@all',
}
SENTINEL_PASSWORDS = {'watcher': SENTINEL_PASSWORD, 'peer': PEER_PASSWORD}
DEADLINE = 90.0  # seconds: generous, the machine is shared


def _quote(text):
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"') + '"'


def wait_for(what, condition, deadline=DEADLINE, interval=0.05):
    end = time.time() + deadline
    last = None
    while time.time() < end:
        try:
            value = condition()
            if value:
                return value
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError('timed out waiting for %s (last error: %s)' % (what, last))


class SentinelProcess:
    def __init__(self, flavour, master_port, down_after_ms, certs=None):
        self.flavour = flavour
        self.certs = certs  # TLS only (tls-port, tls-replication) when given
        self.master_port = master_port
        self.down_after_ms = down_after_ms
        self.port = None
        self.dir = None
        self.proc = None

    def start(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='kv-sentinel-')
        if self.certs:
            c = self.certs
            lines = ['port 0', 'tls-port %d' % self.port, 'tls-cert-file %s' % c['server_cert'],
                     'tls-key-file %s' % c['server_key'], 'tls-ca-cert-file %s' % c['ca_cert'],
                     'tls-auth-clients no', 'tls-replication yes']
        else:
            lines = ['port %d' % self.port]
        lines += ['bind 127.0.0.1', 'dir %s' % self.dir, 'daemonize no',
                  'logfile %s' % os.path.join(self.dir, 'sentinel.log'), 'protected-mode no',
                  'sentinel monitor %s 127.0.0.1 %d 2' % (SERVICE, self.master_port),
                  'sentinel down-after-milliseconds %s %d' % (SERVICE, self.down_after_ms),
                  'sentinel failover-timeout %s 10000' % SERVICE,
                  'sentinel parallel-syncs %s 1' % SERVICE,
                  'sentinel auth-user %s admin' % SERVICE,
                  'sentinel auth-pass %s %s' % (SERVICE, _quote(PASSWORDS['admin'])),
                  'sentinel sentinel-user peer',
                  'sentinel sentinel-pass %s' % _quote(PEER_PASSWORD),
                  'user default off']
        for user, rule in SENTINEL_ACL.items():
            lines.append('user %s %s' % (user, rule.replace('>{pw}', _quote('>' + SENTINEL_PASSWORDS[user]))))
        conf = os.path.join(self.dir, 'sentinel.conf')
        with open(conf, 'w') as fh:
            fh.write('\n'.join(lines) + '\n')
        self.proc = subprocess.Popen(command(self.flavour) + [conf, '--sentinel'], cwd=self.dir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        wait_for('sentinel on port %d' % self.port, lambda: self.client().ping(), deadline=30)
        return self

    def client(self):
        tls = dict(ssl=True, ssl_ca_certs=self.certs['ca_cert']) if self.certs else {}
        return redis.Redis(host='127.0.0.1', port=self.port, username='peer', password=PEER_PASSWORD,
                           socket_timeout=10, decode_responses=True, **tls)

    def master(self):
        reply = self.client().execute_command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SERVICE)
        return ('127.0.0.1', int(reply[1])) if reply else None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class SentinelSet:
    """``SentinelSet(flavour).start()``: ``master`` / ``replica`` (Server objects, swapped by a failover)."""

    def __init__(self, flavour='redis70', down_after_ms=1000, certs=None):
        self.flavour = flavour
        self.certs = certs  # every node and sentinel on TLS only (tls-replication yes) when given
        self.down_after_ms = down_after_ms
        self.nodes = []
        self.sentinels = []

    def start(self):
        # both nodes can replicate (a failover turns the master into a replica)
        auth = ['masteruser admin', 'masterauth %s' % _quote(PASSWORDS['admin'])]
        if self.certs:
            auth.append('tls-replication yes')  # after the server's own 'tls-replication no': the last one counts
        tls = dict(tls=bool(self.certs), certs=self.certs)
        master = Server(self.flavour, name='sentinel-master', extra=list(auth), **tls).start()
        self.nodes.append(master)
        replica = Server(self.flavour, name='sentinel-replica', extra=list(auth), **tls)
        replica.extra.append('replicaof 127.0.0.1 %d' % master.port)
        self.nodes.append(replica.start())
        self.wait_replica_synced(master, replica)
        while len(self.sentinels) < 3:
            self.sentinels.append(SentinelProcess(self.flavour, master.port, self.down_after_ms, self.certs).start())
        self.wait_ready(master.port)
        return self

    # -- state -------------------------------------------------------------------------------------
    def node(self, port):
        return [n for n in self.nodes if n.port == port][0]

    @property
    def master(self):
        port = self.sentinels[0].master()[1]
        return self.node(port)

    @property
    def replica(self):
        return [n for n in self.nodes if n is not self.master][0]

    @staticmethod
    def role(server):
        return server.admin().execute_command('ROLE')[0].decode()

    def wait_replica_synced(self, master, replica):
        def synced():
            target = master.admin().info('replication').get('master_repl_offset')
            info = replica.admin().info('replication')  # read after the master's: at least as far
            return info.get('role') == 'slave' and info.get('master_port') == master.port and \
                info.get('master_link_status') == 'up' and int(info.get('slave_repl_offset', -1)) >= int(target)
        wait_for('replica %d synced with master %d' % (replica.port, master.port), synced)

    def wait_ready(self, master_port):
        """Every sentinel names ``master_port``, knows the replica (up) and the two other sentinels."""
        def ready():
            for s in self.sentinels:
                c = s.client()
                if s.master() != ('127.0.0.1', master_port):
                    return False
                replicas = c.execute_command('SENTINEL', 'REPLICAS', SERVICE)
                ok = [r for r in replicas if 'disconnected' not in _flags(r) and 's_down' not in _flags(r)]
                if not ok:
                    return False
                if len(c.execute_command('SENTINEL', 'SENTINELS', SERVICE)) < 2:
                    return False
            return True
        wait_for('the sentinels to agree on master %d' % master_port, ready)

    def failover(self):
        """Force a failover; returns ``(old master, new master)`` once every sentinel names the new one."""
        old = self.master
        new = self.replica
        reply = wait_for('SENTINEL FAILOVER accepted', lambda: _try_failover(self.sentinels[0]))
        assert reply is True
        wait_for('every sentinel to name %d' % new.port,
                 lambda: all(s.master() == ('127.0.0.1', new.port) for s in self.sentinels))
        wait_for('%d to say it is a master' % new.port, lambda: self.role(new) == 'master')
        return old, new

    def failover_seen_by_one(self):
        """Force a failover; returns ``(old master, new master)`` once the sentinel that ran it names the new one
        (the others may not hear of it while the nodes are paused for writes: their hellos are held back)."""
        old = self.master
        new = self.replica
        assert wait_for('SENTINEL FAILOVER accepted', lambda: _try_failover(self.sentinels[0])) is True
        wait_for('sentinel 0 to name %d' % new.port, lambda: self.sentinels[0].master() == ('127.0.0.1', new.port))
        return old, new

    def wait_settled(self):
        """After a failover: the old master is a replica of the new one, in sync; the sentinels see it."""
        master = self.master
        replica = self.replica
        wait_for('%d to turn replica' % replica.port, lambda: self.role(replica) == 'slave', deadline=DEADLINE)
        self.wait_replica_synced(master, replica)
        self.wait_ready(master.port)

    # -- module-side endpoint -------------------------------------------------------------------------
    def endpoint(self, user='migrator', sentinel_user='watcher', **overrides):
        ep = dict(username=user, password=PASSWORDS[user],
                  sentinel=dict(hosts=['127.0.0.1:%d' % s.port for s in self.sentinels], service_name=SERVICE,
                                username=sentinel_user, password=SENTINEL_PASSWORDS.get(sentinel_user)))
        if self.certs:  # the data nodes' TLS options, and the sentinels' own
            ep.update(tls=True, ca_cert=self.certs['ca_cert'])
            ep['sentinel'].update(tls=True, ca_cert=self.certs['ca_cert'])
        ep.update(overrides)
        return ep

    def cleanup(self):
        for s in self.sentinels:
            s.stop()
        for n in self.nodes:
            n.cleanup()


def _flags(entry):
    pairs = entry if isinstance(entry, dict) else dict(zip(entry[0::2], entry[1::2]))
    flags = pairs.get('flags', '')
    return ','.join(sorted(flags)) if isinstance(flags, (set, frozenset, list, tuple)) else str(flags)


def _try_failover(sentinel):
    try:
        return sentinel.client().execute_command('SENTINEL', 'FAILOVER', SERVICE) in (True, 'OK')
    except redis.ResponseError as exc:
        if 'NOGOODSLAVE' in str(exc):
            return False  # the replica is not seen as good yet: ask again
        raise
