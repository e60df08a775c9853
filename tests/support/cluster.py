"""Real Redis / Valkey clusters on loopback for the tests: N masters (no replicas), every slot assigned.

Each node is a :class:`~tests.support.servers.Server` with ``cluster-enabled yes`` and a cluster bus port of
its own (``cluster-port``, so the bus never collides with another test's server at port + 10000).  Slots are
split evenly with ``CLUSTER ADDSLOTSRANGE``, the nodes meet with ``CLUSTER MEET``, and :meth:`Cluster.start`
returns once every node reports ``cluster_state:ok`` and knows every other node (conditions, never a
fixed sleep).  The same ACL users as the standalone servers; TLS where the flavour has it (``tls-cluster``
and ``tls-replication`` then carry the bus over TLS too).
"""

import os
import time

import redis

from tests.support import servers

SLOTS = 16384
START_TIMEOUT = 60


def key_slot(key):
    """The hash slot of ``key`` (bytes) as the servers compute it (CRC16-XMODEM, hash tags): the tests'
    own implementation, independent of the collection's."""
    start = key.find(b'{')
    if start >= 0:
        end = key.find(b'}', start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    crc = 0
    for byte in bytearray(key):
        crc ^= byte << 8
        for dummy in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % SLOTS


class Cluster:
    """``Cluster('valkey80', masters=3).start()``; ``nodes`` are the masters (test Servers)."""

    def __init__(self, flavour, masters=3, tls=False, certs=None, name=None, extra=None):
        self.flavour = flavour
        self.masters = masters
        self.tls = tls
        self.certs = certs
        self.name = name or '%s-cluster' % flavour
        self.extra = list(extra or [])
        self.nodes = []
        self.version = servers.FLAVOURS[flavour][1]

    def _node(self, index):
        extra = ['cluster-enabled yes', 'cluster-config-file nodes.conf', 'cluster-node-timeout 5000',
                 'cluster-port %d' % servers.free_port(), 'cluster-allow-reads-when-down no'] + self.extra
        if self.tls:
            # the bus always checks the peer's certificate: the nodes present the tests' client certificate
            extra += ['tls-cluster yes', 'tls-replication yes',
                      'tls-client-cert-file %s' % self.certs['client_cert'],
                      'tls-client-key-file %s' % self.certs['client_key']]
        return servers.Server(self.flavour, tls=self.tls, certs=self.certs, extra=extra,
                              name='%s-%d' % (self.name, index))

    def start(self):
        try:
            for index in range(self.masters):
                self.nodes.append(self._node(index).start())
            per = SLOTS // self.masters
            for index, node in enumerate(self.nodes):
                first = index * per
                last = SLOTS - 1 if index == self.masters - 1 else (index + 1) * per - 1
                node.admin().execute_command('CLUSTER', 'ADDSLOTSRANGE', first, last)
            seed = self.nodes[0]
            for node in self.nodes[1:]:
                seed.admin().execute_command('CLUSTER', 'MEET', '127.0.0.1', node.port, self.bus_port(node))
            self.wait_ok()
        except Exception:
            if os.environ.get('KV_CLUSTER_DEBUG'):
                for node in self.nodes:
                    print(node.name, node.log_tail(12))
            self.cleanup()
            raise
        return self

    @staticmethod
    def bus_port(node):
        for line in node.extra:
            if line.startswith('cluster-port '):
                return int(line.split()[1])
        raise AssertionError('node without a cluster-port')

    def wait_ok(self, timeout=START_TIMEOUT):
        """Until every node says cluster_state:ok, knows every node and agrees on who owns every slot."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                views = []
                for node in self.nodes:
                    admin = node.admin()
                    info = admin.execute_command('CLUSTER', 'INFO')
                    info = info.decode() if isinstance(info, bytes) else info
                    fields = dict(line.split(':', 1) for line in info.split('\r\n') if ':' in line)
                    if fields.get('cluster_state') != 'ok' or int(fields.get('cluster_known_nodes', 0)) \
                            < len(self.nodes):
                        last = '%s: %s' % (node.name, info.replace('\r\n', ' ')[:200])
                        break
                    views.append(self.slot_view(admin))
                else:
                    if all(view == views[0] for view in views):
                        return self
                    last = 'the nodes do not agree on the slot owners yet'
            except (redis.ConnectionError, redis.ResponseError) as exc:
                last = exc
            time.sleep(0.05)
        raise RuntimeError('cluster %s did not become ok within %d s: %s' % (self.name, timeout, last))

    @staticmethod
    def slot_view(admin):
        """``[(first, last, port), ...]`` as one node sees them (CLUSTER SLOTS)."""
        out = []
        for entry in admin.execute_command('CLUSTER', 'SLOTS'):
            out.append((int(entry[0]), int(entry[1]), int(entry[2][1])))
        return sorted(out)

    # -- access ------------------------------------------------------------------------------
    def endpoint(self, user='migrator', node=0, **overrides):
        """The endpoint dict of one node (any node: the collection discovers the others)."""
        return self.nodes[node].endpoint(user, **overrides)

    def node_for(self, key):
        """The master that owns ``key``'s slot now (asked from the servers, not computed from the plan)."""
        return self.node_for_slot(key_slot(key))

    def node_for_slot(self, slot):
        for first, last, port in self.slot_view(self.nodes[0].admin()):
            if first <= slot <= last:
                return next(node for node in self.nodes if node.port == port)
        raise AssertionError('slot %d has no owner' % slot)

    def admin_for(self, key):
        return self.node_for(key).admin()

    @staticmethod
    def node_id(node):
        return node.admin().execute_command('CLUSTER', 'MYID')

    def start_move(self, slot, source_node, target_node):
        """The first step of a reshard of ``slot``: IMPORTING on ``target_node``, MIGRATING on ``source_node``."""
        target_node.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', self.node_id(source_node))
        source_node.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', self.node_id(target_node))

    def end_move(self, slot, target_node, nodes=None):
        """The last step: ``SETSLOT slot NODE target`` on ``nodes`` (every master by default), one after the
        other as an operator's tool does it; with every master told, until they all name the new owner."""
        new_id = self.node_id(target_node)
        for node in self.nodes if nodes is None else nodes:
            node.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'NODE', new_id)
        if nodes is None:
            self._settle_slot(slot, target_node, new_id)

    def _settle_slot(self, slot, target_node, new_id, timeout=30):
        """Until every node names ``target_node`` as the owner of ``slot``.  Gossip settles it; where a node still
        names another owner (a stale claim that won on the config epoch), SETSLOT NODE again, and after 2 s the new
        owner's CLUSTER BUMPEPOCH, as an operator's fix does."""
        start = time.time()
        bumped = False
        while True:
            wrong = [node for node in self.nodes
                     if not any(first <= slot <= last and port == target_node.port
                                for first, last, port in self.slot_view(node.admin()))]
            if not wrong:
                return
            if time.time() - start > timeout:
                raise RuntimeError('slot %d: %s still do not name %s as its owner after %d s'
                                   % (slot, ', '.join(node.name for node in wrong), target_node.name, timeout))
            if time.time() - start > 2 and not bumped:
                target_node.admin().execute_command('CLUSTER', 'BUMPEPOCH')
                bumped = True
            for node in wrong:
                try:
                    node.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'NODE', new_id)
                except redis.ResponseError:
                    pass
            time.sleep(0.2)

    def move_slot(self, slot, source_node, target_node, batch=50):
        """A real reshard of one slot: IMPORTING / MIGRATING, MIGRATE of its keys, SETSLOT NODE on every node."""
        self.start_move(slot, source_node, target_node)
        src = source_node.admin()
        while True:
            keys = src.execute_command('CLUSTER', 'GETKEYSINSLOT', slot, batch)
            if not keys:
                break
            src.execute_command('MIGRATE', '127.0.0.1', target_node.port, '', 0, 5000, 'AUTH2', 'admin',
                                servers.PASSWORDS['admin'], 'KEYS', *keys)
        self.end_move(slot, target_node)

    def client(self):
        """redis-py's own cluster client (admin, bytes) for test data: routes every key to its master."""
        from redis.cluster import RedisCluster
        node = self.nodes[0]
        kw = dict(host='127.0.0.1', port=node.port, username='admin', password=servers.PASSWORDS['admin'],
                  decode_responses=False, socket_timeout=30)
        if self.tls:
            kw.update(ssl=True, ssl_ca_certs=self.certs['ca_cert'])
        return RedisCluster(**kw)

    def keys(self):
        """Every key of every master (SCAN per node)."""
        out = set()
        for node in self.nodes:
            out.update(node.admin().scan_iter(count=1000))
        return out

    def dbsize(self):
        return sum(int(node.admin().dbsize()) for node in self.nodes)

    def flushall(self):
        for node in self.nodes:
            node.flushall()

    def alive(self):
        return all(node.proc is not None and node.proc.poll() is None for node in self.nodes)

    def cleanup(self):
        for node in self.nodes:
            node.cleanup()
        self.nodes = []

    def __repr__(self):
        return '<Cluster %s %s>' % (self.name, [node.port for node in self.nodes])
