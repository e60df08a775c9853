# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # One endpoint (server, source, target) is declared in plugins/module_utils/_connection.py
    # (ENDPOINT_OPTIONS) and documented here.  ansible-test wants every fragment to be a plain string,
    # so the sub-options appear once per fragment: in DOCUMENTATION under server, and in SOURCE_TARGET
    # under source (target reuses them through a YAML anchor).  tests/integration/test_collection.py
    # checks that both copies are identical and match ENDPOINT_OPTIONS.

    # Modules with one server: extends_documentation_fragment: kvtools.migration.endpoint
    DOCUMENTATION = r'''
options:
  server:
    description:
      - The server to connect to.
    type: dict
    required: true
    suboptions:
      url:
        description:
          - A connection URL, C(redis://[user[:password]@]host[:port][/db]); C(rediss://) and C(valkeys://)
            switch TLS on, C(valkey://) is the same as C(redis://), C(unix:///path/to/socket?db=N) uses a unix socket.
          - C(file:///path) names a backup file - an RDB file or a logical backup, written by
            M(kvtools.migration.kv_rdb_backup) (plain or encrypted) or, for an RDB, downloaded from a platform; only
            the source of M(kvtools.migration.kv_dump_restore) accepts it.
          - The URL gives defaults; the other sub-options, when set, win over its parts.
          - Treated as a secret (it may hold a password) and never shown in output.
        type: str
      host:
        description:
          - Host name or address of the server.
          - Defaults to C(localhost) when C(url) does not give one.
        type: str
      port:
        description:
          - TCP port of the server (the TLS port when C(tls=true)).
          - Defaults to C(6379) when C(url) does not give one.
        type: int
      username:
        description:
          - ACL user name (Redis/Valkey 6 and later). Leave it unset for password-only auth (C(requirepass)).
        type: str
      password:
        description:
          - Password of C(username), or the C(requirepass) password when C(username) is unset.
          - Never logged, never passed on a command line, never returned.
        type: str
      db:
        description:
          - Logical database index.
          - Defaults to C(0) when C(url) does not give one.
          - Modules that work on several databases use it only to connect; see their own options.
        type: int
      tls:
        description:
          - Connect with TLS.
          - Defaults to V(false), or V(true) when C(url) uses C(rediss://) or C(valkeys://).
        type: bool
      ca_cert:
        description:
          - Path of a PEM file with the CA certificate(s) that signed the server certificate.
          - Without it the system trust store is used.
        type: path
      client_cert:
        description:
          - Path of a PEM client certificate, for servers started with C(tls-auth-clients yes).
          - Requires C(client_key).
        type: path
      client_key:
        description:
          - Path of the PEM private key of C(client_cert).
        type: path
      server_name:
        description:
          - Name sent as TLS SNI and checked against the server certificate, when it differs from C(host)
            (for example when connecting through an address or a tunnel).
        type: str
      validate_certs:
        description:
          - Verify the server certificate and its name. Only switch this off for tests.
        type: bool
        default: true
      connect_timeout:
        description:
          - Seconds to wait for the TCP connection and TLS handshake.
        type: float
        default: 10.0
      socket_timeout:
        description:
          - Seconds to wait for any one reply. Raise it for very large keys.
        type: float
        default: 60.0
      migrate_host:
        description:
          - Only for the target of M(kvtools.migration.kv_migrate) - the host name or address the source server
            uses to reach this server, when it differs from C(host) (for example the backend address of a
            service whose C(host) is an exposed frontend). Other modules ignore it.
          - Defaults to C(host).
        type: str
      migrate_port:
        description:
          - Only for the target of M(kvtools.migration.kv_migrate) - the port the source server uses to reach
            this server. Other modules ignore it.
          - Defaults to C(port).
        type: int
      read_from:
        description:
          - Only for a C(source) with C(sentinel) - V(replica) reads from a replica the sentinels list, to spare the
            master. The replica must be at most C(replica_max_lag) bytes of replication stream behind the master
            before the copy and again when the step ends; otherwise the step stops (error C(replica_lag)).
          - Results and reports name the replica read from.
        type: str
        choices: [master, replica]
        default: master
      replica_max_lag:
        description:
          - With C(read_from=replica) - how far (bytes of replication stream, C(master_repl_offset) against the
            replica's offset) the replica may be behind the master.
        type: int
        default: 1048576
      sentinel:
        description:
          - The server is the master of a Sentinel-managed group - the sentinels say where it is. Give this instead
            of C(host)/C(port) (a C(url) may still give the data node's user, password, db and TLS, but no host).
          - The module asks the sentinels in turn (C(SENTINEL GET-MASTER-ADDR-BY-NAME)) until one answers, checks
            with C(ROLE) that the node it names is a master, and connects to it with this endpoint's own
            C(username), C(password) and TLS settings.
          - A failover during the step (the sentinels name another master, or the node turns replica) stops the
            step with an error of kind C(failover) that names the old and the new master; a rerun resolves the new
            master and resumes (checkpoint, kv_sync's record).
        type: dict
        suboptions:
          hosts:
            description:
              - The sentinels, as C(host:port) (C([v6addr]:port) for IPv6; the port defaults to C(26379)).
            type: list
            elements: str
            required: true
          service_name:
            description:
              - The name the sentinels monitor the master under (C(sentinel monitor <name> ...)).
            type: str
            required: true
          username:
            description:
              - ACL user on the sentinels, when they have ACL users. It needs C(SENTINEL GET-MASTER-ADDR-BY-NAME).
            type: str
          password:
            description:
              - Password of the sentinels (of C(username), or their C(requirepass)); it may differ from the data
                node's. Never logged, never passed on a command line, never returned.
            type: str
          tls:
            description:
              - Connect to the sentinels with TLS.
            type: bool
            default: false
          ca_cert:
            description:
              - PEM file with the CA certificate(s) that signed the sentinels' certificates.
            type: path
          client_cert:
            description:
              - PEM client certificate for the sentinels. Requires C(client_key).
            type: path
          client_key:
            description:
              - PEM private key of C(client_cert).
            type: path
          server_name:
            description:
              - Name sent as TLS SNI to the sentinels and checked against their certificates.
            type: str
          validate_certs:
            description:
              - Verify the sentinels' certificates and names.
            type: bool
            default: true
requirements:
  - redis (redis-py) >= 5.0 on the host that runs the module
notes:
  - Replies are handled as bytes end to end; key names and values are never decoded.
  - Errors name the endpoint as C(host:port) and say what to fix; they never contain a password.
'''

    # Modules with two servers: extends_documentation_fragment: kvtools.migration.endpoint.source_target
    SOURCE_TARGET = r'''
options:
  source:
    description:
      - The server to read from. Nothing is ever written to it.
    type: dict
    required: true
    suboptions: &endpoint_suboptions
      url:
        description:
          - A connection URL, C(redis://[user[:password]@]host[:port][/db]); C(rediss://) and C(valkeys://)
            switch TLS on, C(valkey://) is the same as C(redis://), C(unix:///path/to/socket?db=N) uses a unix socket.
          - C(file:///path) names a backup file - an RDB file or a logical backup, written by
            M(kvtools.migration.kv_rdb_backup) (plain or encrypted) or, for an RDB, downloaded from a platform; only
            the source of M(kvtools.migration.kv_dump_restore) accepts it.
          - The URL gives defaults; the other sub-options, when set, win over its parts.
          - Treated as a secret (it may hold a password) and never shown in output.
        type: str
      host:
        description:
          - Host name or address of the server.
          - Defaults to C(localhost) when C(url) does not give one.
        type: str
      port:
        description:
          - TCP port of the server (the TLS port when C(tls=true)).
          - Defaults to C(6379) when C(url) does not give one.
        type: int
      username:
        description:
          - ACL user name (Redis/Valkey 6 and later). Leave it unset for password-only auth (C(requirepass)).
        type: str
      password:
        description:
          - Password of C(username), or the C(requirepass) password when C(username) is unset.
          - Never logged, never passed on a command line, never returned.
        type: str
      db:
        description:
          - Logical database index.
          - Defaults to C(0) when C(url) does not give one.
          - Modules that work on several databases use it only to connect; see their own options.
        type: int
      tls:
        description:
          - Connect with TLS.
          - Defaults to V(false), or V(true) when C(url) uses C(rediss://) or C(valkeys://).
        type: bool
      ca_cert:
        description:
          - Path of a PEM file with the CA certificate(s) that signed the server certificate.
          - Without it the system trust store is used.
        type: path
      client_cert:
        description:
          - Path of a PEM client certificate, for servers started with C(tls-auth-clients yes).
          - Requires C(client_key).
        type: path
      client_key:
        description:
          - Path of the PEM private key of C(client_cert).
        type: path
      server_name:
        description:
          - Name sent as TLS SNI and checked against the server certificate, when it differs from C(host)
            (for example when connecting through an address or a tunnel).
        type: str
      validate_certs:
        description:
          - Verify the server certificate and its name. Only switch this off for tests.
        type: bool
        default: true
      connect_timeout:
        description:
          - Seconds to wait for the TCP connection and TLS handshake.
        type: float
        default: 10.0
      socket_timeout:
        description:
          - Seconds to wait for any one reply. Raise it for very large keys.
        type: float
        default: 60.0
      migrate_host:
        description:
          - Only for the target of M(kvtools.migration.kv_migrate) - the host name or address the source server
            uses to reach this server, when it differs from C(host) (for example the backend address of a
            service whose C(host) is an exposed frontend). Other modules ignore it.
          - Defaults to C(host).
        type: str
      migrate_port:
        description:
          - Only for the target of M(kvtools.migration.kv_migrate) - the port the source server uses to reach
            this server. Other modules ignore it.
          - Defaults to C(port).
        type: int
      read_from:
        description:
          - Only for a C(source) with C(sentinel) - V(replica) reads from a replica the sentinels list, to spare the
            master. The replica must be at most C(replica_max_lag) bytes of replication stream behind the master
            before the copy and again when the step ends; otherwise the step stops (error C(replica_lag)).
          - Results and reports name the replica read from.
        type: str
        choices: [master, replica]
        default: master
      replica_max_lag:
        description:
          - With C(read_from=replica) - how far (bytes of replication stream, C(master_repl_offset) against the
            replica's offset) the replica may be behind the master.
        type: int
        default: 1048576
      sentinel:
        description:
          - The server is the master of a Sentinel-managed group - the sentinels say where it is. Give this instead
            of C(host)/C(port) (a C(url) may still give the data node's user, password, db and TLS, but no host).
          - The module asks the sentinels in turn (C(SENTINEL GET-MASTER-ADDR-BY-NAME)) until one answers, checks
            with C(ROLE) that the node it names is a master, and connects to it with this endpoint's own
            C(username), C(password) and TLS settings.
          - A failover during the step (the sentinels name another master, or the node turns replica) stops the
            step with an error of kind C(failover) that names the old and the new master; a rerun resolves the new
            master and resumes (checkpoint, kv_sync's record).
        type: dict
        suboptions:
          hosts:
            description:
              - The sentinels, as C(host:port) (C([v6addr]:port) for IPv6; the port defaults to C(26379)).
            type: list
            elements: str
            required: true
          service_name:
            description:
              - The name the sentinels monitor the master under (C(sentinel monitor <name> ...)).
            type: str
            required: true
          username:
            description:
              - ACL user on the sentinels, when they have ACL users. It needs C(SENTINEL GET-MASTER-ADDR-BY-NAME).
            type: str
          password:
            description:
              - Password of the sentinels (of C(username), or their C(requirepass)); it may differ from the data
                node's. Never logged, never passed on a command line, never returned.
            type: str
          tls:
            description:
              - Connect to the sentinels with TLS.
            type: bool
            default: false
          ca_cert:
            description:
              - PEM file with the CA certificate(s) that signed the sentinels' certificates.
            type: path
          client_cert:
            description:
              - PEM client certificate for the sentinels. Requires C(client_key).
            type: path
          client_key:
            description:
              - PEM private key of C(client_cert).
            type: path
          server_name:
            description:
              - Name sent as TLS SNI to the sentinels and checked against their certificates.
            type: str
          validate_certs:
            description:
              - Verify the sentinels' certificates and names.
            type: bool
            default: true
  target:
    description:
      - The server to write to.
    type: dict
    required: true
    suboptions: *endpoint_suboptions
requirements:
  - redis (redis-py) >= 5.0 on the host that runs the module
notes:
  - Replies are handled as bytes end to end; key names and values are never decoded.
  - Errors name the endpoint as C(host:port) and say what to fix; they never contain a password.
'''
