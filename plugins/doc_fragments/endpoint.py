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
          - Between two steps, kv_sync's record and kv_isolate's record keep the node they were made on - a later
            step names a moved master; kv_sync resumes its follower on the new master, kv_isolate's ACL isolation
            covers every node and its pause renewer pauses a new master (see the modules).
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
              - Connect to the sentinels with TLS (sentinels with C(tls-port) and C(tls-replication yes); the data
                nodes' TLS is this endpoint's own C(tls)).
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
      cf_service:
        description:
          - A Cloud Foundry service instance (an a9s KeyValue or a9s Redis instance, a STACKIT Redis or Valkey
            instance in CF, ...) whose service key gives the connection, so the inventory holds no copied password.
          - The module finds the instance (by C(instance_name) in C(org) and C(space), or by C(instance_guid)),
            reuses its service key named C(service_key) or creates it, reads the key's credentials through the CF v3
            API (C(/v3/service_credential_bindings?type=key) and C(.../details)) and maps them onto this endpoint
            with C(credentials_query).
          - Sub-options set next to C(cf_service) win over the credentials. A C(host) and C(port) that differ from
            the key's (an SSH tunnel, for example) are used to connect; the key's host and port then become the
            defaults of C(migrate_host), C(migrate_port) and C(server_name).
          - The key is kept after the run (reruns reuse it); the playbooks delete it at the end of a successful
            migration with C(kv_cf_delete_service_keys=true). Creating it is a change on CF - in check mode nothing
            is created, and an endpoint whose key does not exist yet cannot be resolved (the module fails with
            C(error=check_mode) and says so).
          - Every value of the credentials is treated as a secret; results name only the instance and the key
            (C(cf_service_keys) in the result).
        type: dict
        suboptions:
          instance_name:
            description: The service instance, by name (with C(org) and C(space)).
            type: str
          instance_guid:
            description: The service instance, by guid.
            type: str
          org:
            description: The org of C(instance_name).
            type: str
          space:
            description: The space of C(instance_name).
            type: str
          service_key:
            description: The name of the service key to reuse or create.
            type: str
            default: kvtools-migration
          credentials_query:
            description:
              - A JMESPath expression that turns the key's credentials into a mapping of endpoint sub-options - C(url),
                C(host), C(port), C(username), C(password), C(db), C(tls), C(server_name), C(migrate_host),
                C(migrate_port) - and C(ca_cert_pem), a CA certificate as PEM text (used from memory, never written
                to disk). Null values are left out.
              - 'The default fits the a9s KeyValue / a9s Redis and the STACKIT credentials -
                C({url: uri || url, host: host || hostname || hosts[0], port: port, username: username || user,
                password: password, tls: tls || ssl, ca_cert_pem: cacrt || ca_cert || ca}); TLS is switched on when
                the key carries a CA and no C(redis://) url.'
            type: str
          api:
            description: The Cloud Foundry API URL. The playbooks take it (and the other CF access options) from C(kv_cf).
            type: str
          uaa_url:
            description: The UAA URL for tokens. Default - the C(uaa) link of the API root.
            type: str
          username:
            description: User for the UAA password grant.
            type: str
          password:
            description: Password of C(username).
            type: str
          client_id:
            description: UAA client; without C(username) the client credentials grant with C(client_secret). Default C(cf).
            type: str
          client_secret:
            description: Secret of C(client_id).
            type: str
          token:
            description: A bearer token to use as is (for example from C(cf oauth-token)).
            type: str
          validate_certs:
            description: Verify the TLS certificates of the API and UAA. Default C(true).
            type: bool
          ca_cert:
            description: A CA bundle to verify the API and UAA certificates with.
            type: path
          timeout:
            description: Seconds to wait for one HTTP request. Default 30.
            type: int
          job_timeout:
            description: Seconds to wait for the CF job that creates the key. Default 300.
            type: int
          poll_interval:
            description: Seconds between two looks at that job. Default 2.
            type: float
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
          - Between two steps, kv_sync's record and kv_isolate's record keep the node they were made on - a later
            step names a moved master; kv_sync resumes its follower on the new master, kv_isolate's ACL isolation
            covers every node and its pause renewer pauses a new master (see the modules).
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
              - Connect to the sentinels with TLS (sentinels with C(tls-port) and C(tls-replication yes); the data
                nodes' TLS is this endpoint's own C(tls)).
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
      cf_service:
        description:
          - A Cloud Foundry service instance (an a9s KeyValue or a9s Redis instance, a STACKIT Redis or Valkey
            instance in CF, ...) whose service key gives the connection, so the inventory holds no copied password.
          - The module finds the instance (by C(instance_name) in C(org) and C(space), or by C(instance_guid)),
            reuses its service key named C(service_key) or creates it, reads the key's credentials through the CF v3
            API (C(/v3/service_credential_bindings?type=key) and C(.../details)) and maps them onto this endpoint
            with C(credentials_query).
          - Sub-options set next to C(cf_service) win over the credentials. A C(host) and C(port) that differ from
            the key's (an SSH tunnel, for example) are used to connect; the key's host and port then become the
            defaults of C(migrate_host), C(migrate_port) and C(server_name).
          - The key is kept after the run (reruns reuse it); the playbooks delete it at the end of a successful
            migration with C(kv_cf_delete_service_keys=true). Creating it is a change on CF - in check mode nothing
            is created, and an endpoint whose key does not exist yet cannot be resolved (the module fails with
            C(error=check_mode) and says so).
          - Every value of the credentials is treated as a secret; results name only the instance and the key
            (C(cf_service_keys) in the result).
        type: dict
        suboptions:
          instance_name:
            description: The service instance, by name (with C(org) and C(space)).
            type: str
          instance_guid:
            description: The service instance, by guid.
            type: str
          org:
            description: The org of C(instance_name).
            type: str
          space:
            description: The space of C(instance_name).
            type: str
          service_key:
            description: The name of the service key to reuse or create.
            type: str
            default: kvtools-migration
          credentials_query:
            description:
              - A JMESPath expression that turns the key's credentials into a mapping of endpoint sub-options - C(url),
                C(host), C(port), C(username), C(password), C(db), C(tls), C(server_name), C(migrate_host),
                C(migrate_port) - and C(ca_cert_pem), a CA certificate as PEM text (used from memory, never written
                to disk). Null values are left out.
              - 'The default fits the a9s KeyValue / a9s Redis and the STACKIT credentials -
                C({url: uri || url, host: host || hostname || hosts[0], port: port, username: username || user,
                password: password, tls: tls || ssl, ca_cert_pem: cacrt || ca_cert || ca}); TLS is switched on when
                the key carries a CA and no C(redis://) url.'
            type: str
          api:
            description: The Cloud Foundry API URL. The playbooks take it (and the other CF access options) from C(kv_cf).
            type: str
          uaa_url:
            description: The UAA URL for tokens. Default - the C(uaa) link of the API root.
            type: str
          username:
            description: User for the UAA password grant.
            type: str
          password:
            description: Password of C(username).
            type: str
          client_id:
            description: UAA client; without C(username) the client credentials grant with C(client_secret). Default C(cf).
            type: str
          client_secret:
            description: Secret of C(client_id).
            type: str
          token:
            description: A bearer token to use as is (for example from C(cf oauth-token)).
            type: str
          validate_certs:
            description: Verify the TLS certificates of the API and UAA. Default C(true).
            type: bool
          ca_cert:
            description: A CA bundle to verify the API and UAA certificates with.
            type: path
          timeout:
            description: Seconds to wait for one HTTP request. Default 30.
            type: int
          job_timeout:
            description: Seconds to wait for the CF job that creates the key. Default 300.
            type: int
          poll_interval:
            description: Seconds between two looks at that job. Default 2.
            type: float
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
