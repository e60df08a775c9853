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

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._payload import (
    payload_rdb_version, rdb_version_for)

# The commands the collection uses, with harmless arguments for ACL DRYRUN.
NEEDED_COMMANDS = (
    ('scan', ['SCAN', '0']),
    ('dump', ['DUMP', 'kvtools:probe']),
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
        try:
            self.info = client.info()
        except Exception as exc:
            raise endpoint.error(exc, 'reading INFO')
        server_name = _text(self.info.get('server_name'))
        if self.info.get('valkey_version') or (server_name or '').lower() == 'valkey':
            self.engine = 'valkey'
            self.version_string = _text(self.info.get('valkey_version') or self.info.get('redis_version'))
        else:
            self.engine = 'redis'
            self.version_string = _text(self.info.get('redis_version'))
        self.version = parse_version(self.version_string)
        self._config_cache = {}

    # -- simple facts ------------------------------------------------------------------------
    @property
    def role(self):
        return _text(self.info.get('role')) or 'unknown'

    @property
    def cluster_enabled(self):
        return bool(int(self.info.get('cluster_enabled', 0) or 0))

    @property
    def memory(self):
        return dict(used_memory=int(self.info.get('used_memory', 0) or 0),
                    maxmemory=int(self.info.get('maxmemory', 0) or 0),
                    maxmemory_policy=_text(self.info.get('maxmemory_policy')))

    def keyspace(self):
        """``{db: {'keys': n, 'expires': m}}`` for every non-empty db, from INFO keyspace."""
        out = {}
        for name, value in self.info.items():
            match = re.match(r'^db(\d+)$', str(name))
            if match and isinstance(value, dict):
                out[int(match.group(1))] = dict(keys=int(value.get('keys', 0)),
                                                expires=int(value.get('expires', 0)))
        return out

    def refresh_keyspace(self):
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
                if reply_kind(exc) in ('noperm', 'unknown_command'):
                    self._config_cache[name] = None
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
        client = self.endpoint.client(db=db, check=False)
        try:
            cursor = 0
            for _page in range(50):
                cursor, keys = client.scan(cursor=cursor, count=100)
                for key in keys:
                    payload = client.dump(key)
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
                if reply_kind(exc) in ('noperm', 'unknown_command'):
                    return None
                if 'user' in str(exc).lower() and 'not found' in str(exc).lower():
                    return None
                raise self.endpoint.error(exc, 'ACL DRYRUN')
            out[name] = 'yes' if _text(reply) == 'OK' else 'no'
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
            'restore': lambda: client.execute_command('RESTORE', probe_key, 0, b'\x00invalid'),
            'migrate': lambda: client.execute_command('MIGRATE', '127.0.0.1', 1, probe_key, 0, 1000, 'COPY'),
            'info': lambda: client.info('server'),
            'config_get': lambda: client.config_get('maxmemory'),
        }
        out = {}
        for name, _args in NEEDED_COMMANDS:
            probe = probes.get(name)
            if probe is None:
                out[name] = 'unknown'
                continue
            try:
                probe()
                out[name] = 'yes'
            except Exception as exc:
                kind = reply_kind(exc)
                if kind == 'noperm':
                    out[name] = 'no'
                elif kind in ('payload', 'nokey', 'busykey', 'error'):
                    # The command ran and refused the harmless input: it is permitted.
                    out[name] = 'yes'
                else:
                    out[name] = 'unknown'
        return out

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
        return facts


def connect_server(endpoint, label=None):
    """Open a checked client on ``endpoint`` and read its facts; raises KVError."""
    client = endpoint.client()
    try:
        return Server(client, endpoint)
    except KVError:
        client.close()
        raise
