# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a server is and may do: engine, version, RDB version, capabilities, permissions.

Every difference between Redis and Valkey releases that the collection cares about is decided
here, from facts read off the server, and nowhere else.  Nothing here writes to a server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind, unavailable
from ansible_collections.kvtools.migration.plugins.module_utils._payload import (
    payload_rdb_version, rdb_version_for)
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyCut, ReplyError, Wire

# The commands the collection uses, with harmless arguments for ACL DRYRUN.
NEEDED_COMMANDS = (
    ('scan', ['SCAN', '0']),
    ('dump', ['DUMP', 'kvtools:probe']),
    ('pexpiretime', ['PEXPIRETIME', 'kvtools:probe']),
    ('pttl', ['PTTL', 'kvtools:probe']),
    ('restore', ['RESTORE', 'kvtools:probe', '0', 'x']),
    ('migrate', ['MIGRATE', '127.0.0.1', '1', 'kvtools:probe', '0', '1000', 'COPY']),
    ('sync', ['SYNC']),
    ('client_pause', ['CLIENT', 'PAUSE', '1', 'WRITE']),
    ('info', ['INFO']),
    ('config_get', ['CONFIG', 'GET', 'maxmemory']),
)


def _text(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return value if value is None else str(value)


def parse_version(text):
    nums = [int(n) for n in re.findall(r'\d+', text or '')[:3]]
    return tuple(nums + [0] * (3 - len(nums)))


class Server:
    """Facts about one connected server (a redis-py client on any db).

    Reads INFO once; other facts are fetched lazily.
    """

    def __init__(self, client, endpoint):
        self.client = client
        self.endpoint = endpoint
        # what could not be read, and why: {fact: reason}.  A managed plan may rename, disable or deny
        # INFO, CONFIG, ACL, CLIENT, MEMORY...; the facts they give are then unknown, not an error.
        self.unknown = {}
        self.command_reasons = {}
        try:
            self.info = client.info()
        except Exception as exc:
            reason = unavailable(exc)
            if reason is None:
                raise endpoint.error(exc, 'reading INFO')
            self.unknown['info'] = 'INFO is %s' % reason
            self.info = self._hello_facts(client, endpoint)
        server_name = _text(self.info.get('server_name'))
        if self.info.get('valkey_version') or (server_name or '').lower() == 'valkey':
            self.engine = 'valkey'
            self.version_string = _text(self.info.get('valkey_version') or self.info.get('redis_version'))
        else:
            self.engine = 'redis'
            self.version_string = _text(self.info.get('redis_version'))
        self.version = parse_version(self.version_string)
        self._config_cache = {}

    @staticmethod
    def _hello_facts(client, endpoint):
        """Engine, version and role from HELLO when INFO cannot be read (HELLO needs no permission)."""
        try:
            reply = client.execute_command('HELLO')
        except Exception as exc:
            raise endpoint.error(exc, 'reading the server version (INFO and HELLO)')
        if isinstance(reply, (list, tuple)):
            reply = dict(zip(reply[::2], reply[1::2]))
        fields = dict((_text(k), _text(v) if isinstance(v, bytes) else v) for k, v in (reply or {}).items())
        facts = dict(redis_version=fields.get('version'), role=fields.get('role'),
                     cluster_enabled=1 if fields.get('mode') == 'cluster' else 0)
        if fields.get('server') == 'valkey':
            facts.update(server_name='valkey', valkey_version=fields.get('version'))
        return facts

    # -- simple facts ------------------------------------------------------------------------
    @property
    def role(self):
        return _text(self.info.get('role')) or 'unknown'

    @property
    def cluster_enabled(self):
        return bool(int(self.info.get('cluster_enabled', 0) or 0))

    @property
    def memory(self):
        """used_memory, maxmemory (0: no limit), maxmemory_policy; None for what cannot be read."""
        used = self.info.get('used_memory')
        if used is None:
            self.unknown.setdefault('used_memory', self.unknown.get('info', 'INFO memory is not available'))
        maxmemory = self.info.get('maxmemory')
        policy = self.info.get('maxmemory_policy')
        if maxmemory is None:  # before INFO reported it, or INFO denied: CONFIG GET
            maxmemory = self.config_get('maxmemory')
            policy = policy or self.config_get('maxmemory-policy')
            if maxmemory is None and 'info' in self.unknown:
                self.unknown.setdefault('maxmemory', '%s, and CONFIG GET maxmemory %s'
                                        % (self.unknown['info'], self.unknown.get('config', 'failed')))
        return dict(used_memory=None if used is None else int(used or 0),
                    maxmemory=None if maxmemory is None else int(maxmemory or 0),
                    maxmemory_policy=_text(policy))

    def keyspace(self):
        """``{db: {'keys': n, 'expires': m}}`` for every non-empty db, from INFO keyspace.

        Without INFO: DBSIZE of every db (``expires`` is then None: unknown)."""
        if 'info' in self.unknown:
            return self._keyspace_dbsize()
        out = {}
        for name, value in self.info.items():
            match = re.match(r'^db(\d+)$', str(name))
            if match and isinstance(value, dict):
                out[int(match.group(1))] = dict(keys=int(value.get('keys', 0)),
                                                expires=int(value.get('expires', 0)))
        return out

    def _keyspace_dbsize(self):
        count = self.databases or 16
        if self.databases is None:
            self.unknown.setdefault('databases', 'CONFIG GET databases %s: dbs 0 to 15 are counted'
                                    % self.unknown.get('config', 'failed'))
        self.unknown.setdefault('expires', '%s: keys with a TTL are not counted' % self.unknown['info'])
        client = self.endpoint.client(db=0, check=False)
        try:
            pipe = client.pipeline(transaction=False)
            for db in range(count):
                pipe.execute_command('SELECT', db)
                pipe.execute_command('DBSIZE')
            replies = pipe.execute(raise_on_error=False)
        except Exception as exc:
            raise self.endpoint.error(exc, 'counting keys with DBSIZE')
        finally:
            client.close()
        out = {}
        for db in range(count):
            selected, size = replies[2 * db], replies[2 * db + 1]
            if isinstance(selected, Exception):
                break  # past the last db
            if isinstance(size, Exception):
                raise self.endpoint.error(size, 'DBSIZE', db=db)
            if int(size):
                out[db] = dict(keys=int(size), expires=None)
        return out

    def refresh_keyspace(self):
        if 'info' in self.unknown:
            return self.keyspace()
        try:
            self.info.update(self.client.info('keyspace'))
        except Exception as exc:
            raise self.endpoint.error(exc, 'reading INFO keyspace')
        return self.keyspace()

    def config_get(self, name):
        """The value of a CONFIG parameter; None when it does not exist or may not be read."""
        if name not in self._config_cache:
            try:
                reply = self.client.config_get(name)
                value = reply.get(name, reply.get(name.encode())) if reply else None
                self._config_cache[name] = _text(value)
            except Exception as exc:
                reason = unavailable(exc)
                if reason is not None:
                    self._config_cache[name] = None
                    self.unknown.setdefault('config', 'CONFIG is %s' % reason)
                else:
                    raise self.endpoint.error(exc, 'CONFIG GET %s' % name)
        return self._config_cache[name]

    @property
    def databases(self):
        value = self.config_get('databases')
        return int(value) if value and value.isdigit() else None

    @property
    def rdb_version_check(self):
        """``{'supported': bool, 'value': 'strict'|'relaxed'|None}`` (Valkey >= 9.0)."""
        value = self.config_get('rdb-version-check')
        supported = value is not None or (self.engine == 'valkey' and self.version >= (9, 0, 0))
        return dict(supported=supported, value=value)

    # -- capabilities --------------------------------------------------------------------------
    def at_least(self, redis_version, valkey_version=(7, 2, 0)):
        return self.version >= (valkey_version if self.engine == 'valkey' else redis_version)

    @property
    def capabilities(self):
        return dict(
            pexpiretime=self.at_least((7, 0, 0)),
            restore_absttl=self.at_least((5, 0, 0)),
            migrate_auth2=self.at_least((6, 0, 0)),
            acl=self.at_least((6, 0, 0)),
            acl_dryrun=self.at_least((7, 0, 0)),
            client_pause_write=self.at_least((6, 2, 0)),
            hash_field_ttl=self.at_least((7, 4, 0), (9, 0, 0)),
            replconf_version=self.engine == 'valkey' and self.version >= (9, 0, 0),
        )

    # -- RDB version ---------------------------------------------------------------------------
    def rdb_version(self):
        """``(version, source)``: read from a real DUMP payload when any key exists (``payload``),
        else from the engine/version table (``version table``), else ``(None, 'unknown')``."""
        for db in sorted(self.keyspace()):
            payload = self._dump_any_key(db)
            if payload is not None:
                return payload_rdb_version(payload), 'payload'
        table = rdb_version_for(self.engine, self.version)
        if table is not None:
            return table, 'version table'
        return None, 'unknown'

    def _dump_any_key(self, db):
        """The DUMP payload of a small key of ``db`` (a payload above :data:`~._wire.BIG_REPLY` is dropped as it
        arrives: a big key says no more than a small one), or None."""
        client = self.endpoint.client(db=db, check=False)
        wire = None
        try:
            wire = Wire(client)
            cursor = 0
            for _page in range(50):
                cursor, keys = client.scan(cursor=cursor, count=100)
                for key in keys:
                    try:
                        payload = wire.call([(b'DUMP', key)])[0]
                    except ReplyCut:
                        continue
                    if isinstance(payload, ReplyError):
                        raise payload
                    if payload is not None:
                        return payload
                if int(cursor) == 0:
                    return None
            return None
        except Exception as exc:
            if reply_kind(exc) == 'noperm':
                return None
            raise self.endpoint.error(exc, 'reading a DUMP payload', db=db)
        finally:
            if wire is not None:
                wire.close()
            client.close()

    # -- permissions --------------------------------------------------------------------------
    def whoami(self):
        try:
            return _text(self.client.execute_command('ACL', 'WHOAMI'))
        except Exception:
            return self.endpoint.username or 'default'

    def command_permissions(self):
        """``({command: 'yes'|'no'|'unknown'}, method)`` for :data:`NEEDED_COMMANDS`.

        Tries ``ACL DRYRUN`` (Redis/Valkey >= 7), then ``ACL GETUSER`` (an ``+@all`` user),
        then harmless probes that cannot change data (a RESTORE of an invalid payload, a
        MIGRATE of a key that does not exist, a DUMP, a SCAN, INFO, CONFIG GET).  SYNC and
        CLIENT PAUSE cannot be probed harmlessly: they stay ``unknown`` without ACL access.
        """
        user = self.whoami()
        perms = self._perms_dryrun(user)
        if perms is not None:
            return perms, 'acl dryrun'
        perms = self._perms_getuser(user)
        if perms is not None:
            return perms, 'acl getuser'
        return self._perms_probe(), 'probe'

    def _perms_dryrun(self, user):
        if not self.capabilities['acl_dryrun']:
            return None
        out = {}
        for name, args in NEEDED_COMMANDS:
            try:
                reply = self.client.execute_command('ACL', 'DRYRUN', user, *args)
            except Exception as exc:
                if re.search(r"^Command '[^']*' not found", str(exc)):  # this command is renamed or disabled
                    out[name] = 'no'
                    self.command_reasons[name] = '%s is not available on the server (renamed or disabled)' % args[0]
                    continue
                if reply_kind(exc) in ('noperm', 'unknown_command'):
                    return None
                if 'user' in str(exc).lower() and 'not found' in str(exc).lower():
                    return None
                raise self.endpoint.error(exc, 'ACL DRYRUN')
            out[name] = 'yes' if _text(reply) == 'OK' else 'no'
            if out[name] == 'no':
                self.command_reasons[name] = 'denied to this user: %s' % _text(reply)
        return out

    def _perms_getuser(self, user):
        if not self.capabilities['acl']:
            return None
        try:
            reply = self.client.execute_command('ACL', 'GETUSER', user)
        except Exception:
            return None
        if not reply:
            return None
        fields = dict(zip([_text(k) for k in reply[::2]], reply[1::2]))
        commands = _text(fields.get('commands')) or ''
        rules = commands.split()
        if rules and rules[0] == '+@all' and not any(r.startswith('-') for r in rules[1:]):
            return dict((name, 'yes') for name, _args in NEEDED_COMMANDS)
        return None

    def _perms_probe(self):
        client = self.client
        probe_key = b'kvtools:probe:' + os.urandom(8).hex().encode()
        probes = {
            'scan': lambda: client.scan(0, count=1),
            'dump': lambda: client.dump(probe_key),
            'pexpiretime': lambda: client.execute_command('PEXPIRETIME', probe_key),
            'pttl': lambda: client.pttl(probe_key),
            'restore': lambda: client.execute_command('RESTORE', probe_key, 0, b'\x00invalid'),
            'migrate': lambda: client.execute_command('MIGRATE', '127.0.0.1', 1, probe_key, 0, 1000, 'COPY'),
            'info': lambda: client.info('server'),
            'config_get': lambda: client.config_get('maxmemory'),
        }
        out = {}
        for name, _args in NEEDED_COMMANDS:
            probe = probes.get(name)
            if probe is None:
                out[name] = self._disprove(name)
                continue
            try:
                probe()
                out[name] = 'yes'
            except Exception as exc:
                kind = reply_kind(exc)
                reason = unavailable(exc)
                if reason is not None:
                    out[name] = 'no'
                    self.command_reasons[name] = '%s is %s' % (name.split('_', 1)[0].upper(), reason)
                elif kind in ('payload', 'nokey', 'busykey', 'error'):
                    # The command ran and refused the harmless input: it is permitted.
                    out[name] = 'yes'
                else:
                    out[name] = 'unknown'
        return out

    def _disprove(self, name):
        """``'no'`` when the command of ``name`` is renamed or disabled, else ``'unknown'`` (it cannot be run
        harmlessly to see): CLIENT PAUSE is judged by CLIENT GETNAME, SYNC by nothing."""
        if name == 'client_pause':
            try:
                self.client.execute_command('CLIENT', 'GETNAME')
            except Exception as exc:
                reason = unavailable(exc)
                if reason is not None and 'not available' in reason:
                    self.command_reasons[name] = 'CLIENT is %s' % reason
                    return 'no'
        self.command_reasons[name] = 'cannot be probed without running it, and ACL DRYRUN is not available'
        return 'unknown'

    # -- summary -------------------------------------------------------------------------------
    def facts(self, with_permissions=True):
        rdb, rdb_source = self.rdb_version()
        facts = dict(
            engine=self.engine,
            version=self.version_string,
            redis_version=_text(self.info.get('redis_version')),
            rdb_version=rdb,
            rdb_version_source=rdb_source,
            role=self.role,
            cluster_enabled=self.cluster_enabled,
            tls=self.endpoint.tls,
            databases=self.databases,
            dbs=[dict(db=db, keys=v['keys'], expires=v['expires']) for db, v in sorted(self.keyspace().items())],
            rdb_version_check=self.rdb_version_check,
            capabilities=self.capabilities,
        )
        facts.update(self.memory)
        facts['total_keys'] = sum(d['keys'] for d in facts['dbs'])
        if with_permissions:
            facts['commands'], facts['permissions_method'] = self.command_permissions()
            facts['command_reasons'] = dict(self.command_reasons)
        facts['unknown'] = dict(self.unknown)
        return facts


def connect_server(endpoint, label=None):
    """Open a checked client on ``endpoint`` and read its facts; raises KVError."""
    client = endpoint.client()
    try:
        return Server(client, endpoint)
    except KVError:
        client.close()
        raise
