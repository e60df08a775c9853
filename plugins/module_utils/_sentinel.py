# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Sentinel endpoints: find the master, and notice when it moves.

An endpoint with ``sentinel`` names no server: :func:`resolve_master` asks the sentinels in turn
(``SENTINEL GET-MASTER-ADDR-BY-NAME``, with the sentinels' own user, password and TLS) until one answers,
points the endpoint at that master and checks with ``ROLE`` (``INFO replication`` when ROLE is denied)
that it really is a master; the data node is then reached with the endpoint's own credentials.

:class:`MasterWatch` is kept on the endpoint (``endpoint.master_watch``).  ``check()`` asks again (the
engines call it between batches, at most once a second, and the module once more at the end of the step):
a master that moved, or a node that turned replica, raises a ``failover`` error naming the old and the
new master.  The step is resumable as any interrupted step (checkpoint, kv_sync's record), and the rerun
resolves the new master.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind, scrub

CHECK_INTERVAL = 1.0   # seconds between two checks of the master during a step
SETTLE_RETRY = 0.2     # seconds between two looks at a master that still says it is a replica
CHECK_TIMEOUT = 2.0    # seconds per sentinel for a check during a step


def _text(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)


def _address(host_port):
    """``host:port`` of a ``(host, port)`` pair; an address already written so (a record's) as it is."""
    if not host_port:
        return 'unknown'
    return '%s:%d' % tuple(host_port) if isinstance(host_port, (tuple, list)) else str(host_port)


def sentinel_endpoint(endpoint, host, port, timeout=None):
    """The :class:`Endpoint` of one sentinel of ``endpoint`` (the sentinels' credentials and TLS)."""
    spec = endpoint.sentinel
    connect_timeout = endpoint.connect_timeout if timeout is None else min(endpoint.connect_timeout, timeout)
    params = dict(host=host, port=port, username=spec.get('username'), password=spec.get('password'),
                  tls=bool(spec.get('tls')), ca_cert=spec.get('ca_cert'), client_cert=spec.get('client_cert'),
                  client_key=spec.get('client_key'), server_name=spec.get('server_name'),
                  validate_certs=spec.get('validate_certs', True) is not False,
                  connect_timeout=connect_timeout, socket_timeout=min(endpoint.socket_timeout, timeout or 10.0))
    return Endpoint(params, label='%s.sentinel' % endpoint.label)


def node_role(client):
    """``(role, (master host, port) or None)`` of the node behind ``client``: ``master``, ``slave``, ..."""
    try:
        reply = client.execute_command('ROLE')
        role = _text(reply[0])
        master = (_text(reply[1]), int(reply[2])) if role == 'slave' and len(reply) > 2 else None
        return role, master
    except Exception as exc:  # pylint: disable=broad-except
        if reply_kind(exc) not in ('noperm', 'unknown_command'):
            raise
    info = client.info('replication')  # ROLE denied to this user: INFO says the same
    role = _text(info.get('role', 'unknown'))
    master = None
    if role == 'slave' and info.get('master_host'):
        master = (_text(info['master_host']), int(info.get('master_port') or 0))
    return role, master


def _fields(entry):
    """A SENTINEL REPLICAS entry (a dict, or a flat list of names and values) as a dict of str names."""
    if isinstance(entry, dict):
        return dict((_text(k), v) for k, v in entry.items())
    return dict((_text(entry[i]), entry[i + 1]) for i in range(0, len(entry) - 1, 2))


def failover_error(endpoint, old, new, how, advice=None):
    """The ``failover`` KVError naming the old and the new master (``old``/``new``: pairs or ``host:port``).

    ``advice``: what the operator does now (default: rerun the step, it resumes on the new master)."""
    service = endpoint.sentinel['service_name']
    advice = advice or ('The step stopped; rerun it once the failover is over: it resolves the new master and '
                        'resumes (checkpoint, record)')
    return KVError("failover: the master of sentinel service '%s' (%s) %s: it was %s, it is now %s. %s"
                   % (service, endpoint.label, how, _address(old), _address(new), advice),
                   kind='failover', endpoint=_address(old),
                   details=dict(service_name=service, old_master=_address(old), new_master=_address(new)))


class MasterWatch:
    """The sentinels of one endpoint, and the master they named when the step started."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.master = None
        self.answered_by = None
        self.replica = None  # (host, port) read from, with read_from=replica
        self.lock = threading.Lock()
        self.last = 0.0
        self._client = None

    def ask(self, timeout=None):
        """``(host, port)`` of the master, from the first sentinel that answers; KVError when none does.

        ``timeout``: at most this many seconds per sentinel (the checks during a step must not stall it)."""
        reply = self._each_sentinel('SENTINEL GET-MASTER-ADDR-BY-NAME', timeout)
        return _text(reply[0]), int(reply[1])

    def ask_each(self, timeout=None):
        """The masters every sentinel that answers names (a set of ``(host, port)``; empty when none answers).

        The sentinels that did not run a failover learn of it through hello messages, which a paused master
        holds back: the first sentinel may still name the old master while another names the new one."""
        named = set()
        for host, port in self.endpoint.sentinel['hosts']:
            watch = MasterWatch(copy.copy(self.endpoint))
            watch.endpoint.sentinel = dict(self.endpoint.sentinel, hosts=[(host, port)])
            try:
                named.add(watch.ask(timeout))
            except KVError:
                continue
        return named

    def replicas(self, timeout=None):
        """``[(host, port, flags)]`` of the replicas, from the first sentinel that answers."""
        out = []
        for entry in self._each_sentinel('SENTINEL REPLICAS', timeout):
            fields = _fields(entry)
            flags = fields.get('flags', '')
            if isinstance(flags, bytes):  # RESP2: b'slave,s_down' (iterating it would give numbers)
                flags = _text(flags)
            elif not isinstance(flags, str):  # RESP3 may give a set of flags
                flags = ','.join(sorted(_text(f) for f in flags))
            out.append((_text(fields.get('ip')), int(fields.get('port')), flags))
        return out

    def _each_sentinel(self, command, timeout):
        spec = self.endpoint.sentinel
        name = spec['service_name']
        problems = []
        kinds = set()
        for host, port in spec['hosts']:
            sentinel = sentinel_endpoint(self.endpoint, host, port, timeout)
            client = None
            try:
                client = sentinel.client(check=True)
                reply = client.execute_command(command, name)
            except Exception as exc:  # pylint: disable=broad-except
                err = sentinel.error(exc, command)
                if reply_kind(exc) == 'error' and 'no such master' in str(exc).lower():
                    reply = None
                else:
                    problems.append(err.message)
                    kinds.add(err.kind)
                    continue
            finally:
                if client is not None:
                    client.close()
            if reply is None or (not reply and command.endswith('BY-NAME')):
                problems.append("sentinel %s monitors no master named '%s'" % (sentinel.address, name))
                kinds.add('config')
                continue
            self.answered_by = sentinel.address
            return reply
        secrets = self.endpoint.secrets
        raise KVError(scrub("%s.sentinel: no sentinel answered %s for '%s': %s. Check sentinel.hosts, "
                            "sentinel.service_name and the sentinels' username/password/TLS"
                            % (self.endpoint.label, command, name, '; '.join(problems)), secrets),
                      kind=kinds.pop() if len(kinds) == 1 else 'unreachable',
                      endpoint='sentinel:%s' % name)

    def pick_replica(self):
        """The first replica the sentinels list that is up, linked to the master and at most
        ``replica_max_lag`` bytes behind it: ``(host, port)``; KVError ``replica_lag`` when none is."""
        problems = []
        for host, port, flags in self.replicas():
            if 's_down' in flags or 'o_down' in flags or 'disconnected' in flags:
                problems.append('%s:%d is down (%s)' % (host, port, flags))
                continue
            problem = self.replica_problem((host, port))
            if problem is None:
                return host, port
            problems.append(problem)
        raise KVError('%s.read_from: replica - no replica of %s to read from: %s. Read from the master '
                      '(read_from: master), raise replica_max_lag, or wait until a replica has caught up'
                      % (self.endpoint.label, _address(self.master), '; '.join(problems) or 'the sentinels list none'),
                      kind='replica_lag', endpoint=_address(self.master))

    def replica_problem(self, replica):
        """Why ``replica`` may not be read from now (None when it may): not linked, or too far behind."""
        bound = self.endpoint.replica_max_lag
        master_ep = copy.copy(self.endpoint)
        master_ep.host, master_ep.port = self.master
        replica_ep = copy.copy(self.endpoint)
        replica_ep.host, replica_ep.port = replica
        clients = []
        try:
            clients.append(master_ep.client(check=True))
            master_offset = int(clients[0].info('replication').get('master_repl_offset') or 0)
            clients.append(replica_ep.client(check=True))
            info = clients[1].info('replication')  # read after the master's: the lag is not understated
        except KVError as exc:
            return '%s: %s' % (_address(replica), exc.message)
        except Exception as exc:  # pylint: disable=broad-except
            return '%s: %s' % (_address(replica), replica_ep.error(exc, 'INFO replication').message)
        finally:
            for client in clients:
                client.close()
        if _text(info.get('role')) != 'slave' or (_text(info.get('master_host')), int(info.get('master_port') or 0)) \
                != self.master:
            return '%s is not a replica of %s' % (_address(replica), _address(self.master))
        if _text(info.get('master_link_status')) != 'up':
            return '%s has its link to the master down' % _address(replica)
        lag = max(0, master_offset - int(info.get('slave_repl_offset') or 0))
        if lag > bound:
            return '%s is %d bytes behind the master (replica_max_lag %d)' % (_address(replica), lag, bound)
        return None

    def client(self):
        if self._client is None:
            self._client = self.endpoint.client(check=False)
        return self._client

    def role(self):
        try:
            return node_role(self.client())
        except Exception as exc:  # pylint: disable=broad-except
            raise self.endpoint.error(exc, 'ROLE')

    def check(self, force=False):
        """Raise a ``failover`` KVError when the sentinels name another master or the node turned replica.

        Without ``force`` at most once per :data:`CHECK_INTERVAL` (callers run it between batches, from
        several threads).  Sentinels that cannot be reached now do not stop the step: ROLE still says."""
        with self.lock:
            now = time.time()
            if not force and now - self.last < CHECK_INTERVAL:
                return
            self.last = now
            try:
                current = self.ask(timeout=None if force else CHECK_TIMEOUT)
            except KVError:
                current = None
            if current is not None and current != self.master:
                raise failover_error(self.endpoint, self.master, current, 'moved during this step')
            try:
                role, replica_of = self.role()
            except KVError:
                return  # the node is unreachable: the engine's own error says so
            if self.replica is not None:  # reading from a replica: it must still be one, of this master
                if role != 'slave':
                    raise failover_error(self.endpoint, self.master, self.replica,
                                         'lost its replica %s, which turned %s during this step'
                                         % (_address(self.replica), role))
                if force:  # the end of the step: as far behind as allowed, or the copy may miss writes
                    problem = self.replica_problem(self.replica)
                    if problem is not None:
                        raise KVError('%s.read_from: replica - at the end of the step %s: keys written to the '
                                      'master meanwhile may be missing. Rerun (or read from the master)'
                                      % (self.endpoint.label, problem), kind='replica_lag',
                                      endpoint=_address(self.replica))
            elif role != 'master':
                raise failover_error(self.endpoint, self.master, current or replica_of,
                                     'turned %s during this step' % ('replica' if role == 'slave' else role))

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None


def resolve_master(endpoint):
    """Point a Sentinel ``endpoint`` at its current master and keep a :class:`MasterWatch` on it.

    A master that still says it is a replica (a failover under way) is asked again until
    ``connect_timeout`` has passed, then refused with both addresses named.  Other endpoints: unchanged.
    """
    if endpoint.sentinel is None or endpoint.master_resolved:
        return endpoint
    watch = MasterWatch(endpoint)
    deadline = time.time() + endpoint.connect_timeout
    while True:
        master = watch.ask()
        endpoint.set_master(*master)
        watch.close()
        try:
            client = watch.client()
            client.ping()
        except Exception as exc:  # pylint: disable=broad-except
            watch.close()
            raise endpoint.error(exc, 'connecting to the master %s:%d that sentinel %s named'
                                 % (master[0], master[1], watch.answered_by))
        role, replica_of = watch.role()
        if role == 'master':
            break
        if time.time() >= deadline:
            watch.close()
            raise failover_error(endpoint, master, replica_of,
                                 'is in a failover: sentinel %s names %s:%d, which says it is a %s of %s'
                                 % (watch.answered_by, master[0], master[1], role, _address(replica_of)))
        time.sleep(SETTLE_RETRY)
    watch.master = master
    if endpoint.read_from == 'replica':
        watch.close()
        watch.replica = watch.pick_replica()
        endpoint.set_master(*watch.replica)
    endpoint.master_watch = watch
    return endpoint
