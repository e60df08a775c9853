#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_info
short_description: Read facts about a Redis or Valkey server
version_added: 0.1.0
description:
  - Connects to one Redis or Valkey server and returns what a migration needs to know about it -
    engine and version, the RDB version of its DUMP payloads, keys per database, memory, role,
    cluster mode, the C(rdb-version-check) setting, and which of the commands the collection
    uses the connected user may run.
  - Never writes to the server. The RDB version is read from the DUMP payload of an existing key;
    on an empty server it comes from a table of known versions (RV(rdb_version_source) says which).
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint
  - kvtools.migration.attributes.SERVER
options:
  permissions:
    description:
      - Find out which commands the connected user may run (see RV(commands)).
      - Uses C(ACL DRYRUN) where the server has it and the user may run it, then C(ACL GETUSER),
        then harmless probes that cannot change data. What cannot be known is reported as C(unknown).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: The module never changes anything; check mode runs it as usual.
  diff_mode:
    support: none
    description: Nothing changes, so there is no difference to show.
'''

EXAMPLES = r'''
- name: Read facts about the source
  kvtools.migration.kv_info:
    server:
      host: redis-old.internal
      port: 6379
      username: migrator
      password: "{{ vault_source_password }}"
  register: source_facts

- name: Read facts about a TLS target from a Cloud Foundry binding URL
  kvtools.migration.kv_info:
    server:
      url: "{{ binding.credentials.uri }}"
      ca_cert: /etc/ssl/certs/platform-ca.pem

- name: Stop early when the target cannot take the source's payloads
  ansible.builtin.assert:
    that:
      - source_facts.commands.dump == 'yes'
      - source_facts.role == 'master'
'''

RETURN = r'''
engine:
  description: C(redis) or C(valkey).
  returned: success
  type: str
  sample: valkey
version:
  description: The server version (Valkey's own version for Valkey).
  returned: success
  type: str
  sample: 8.0.1
redis_version:
  description: The C(redis_version) the server reports (Valkey reports a compatible Redis version).
  returned: success
  type: str
  sample: 7.2.4
rdb_version:
  description: RDB version of the server's DUMP payloads (null when it cannot be found out).
  returned: success
  type: int
  sample: 11
rdb_version_source:
  description: C(payload) (read from a real DUMP), C(version table) (empty server) or C(unknown).
  returned: success
  type: str
  sample: payload
role:
  description: Replication role, C(master) or C(slave).
  returned: success
  type: str
  sample: master
cluster_enabled:
  description: Whether the server runs in cluster mode.
  returned: success
  type: bool
cluster:
  description:
    - The cluster of a node in cluster mode, as found from it (C(CLUSTER SHARDS), C(CLUSTER SLOTS) before 7.0) -
      C(masters) (each with C(address), C(node_id), C(slots), C(ranges), C(health)), C(replicas) (addresses),
      C(state), C(discovered_with), C(seed) and C(problems) (what stops a copy from or into it - unassigned slots,
      failing nodes; empty when none). The other facts (keys, memory, ...) are those of the node given. Null when
      the server is not in cluster mode; null with a warning when the user may not read the cluster's shape.
  returned: success
  type: dict
tls:
  description: Whether this connection uses TLS.
  returned: success
  type: bool
databases:
  description: The C(databases) setting (null when CONFIG GET is not permitted).
  returned: success
  type: int
  sample: 16
dbs:
  description: Every non-empty logical database with its key and expiring-key counts.
  returned: success
  type: list
  elements: dict
  sample: [{"db": 0, "keys": 1200, "expires": 30}]
total_keys:
  description: Sum of the keys of all databases.
  returned: success
  type: int
used_memory:
  description: Bytes in use (INFO memory); null when INFO cannot be read (see RV(unknown)).
  returned: success
  type: int
maxmemory:
  description: The memory limit in bytes; 0 means none; null when neither INFO nor CONFIG GET can be read.
  returned: success
  type: int
maxmemory_policy:
  description: The eviction policy.
  returned: success
  type: str
  sample: noeviction
rdb_version_check:
  description: Valkey's C(rdb-version-check) setting - whether it exists and its value.
  returned: success
  type: dict
  sample: {"supported": true, "value": "strict"}
capabilities:
  description: Features the collection decides on (PEXPIRETIME, RESTORE ABSTTL, ACL DRYRUN, hash field TTL, ...).
  returned: success
  type: dict
commands:
  description:
    - For each command the collection uses (scan, dump, pexpiretime, pttl, restore, migrate, sync, client_pause,
      info, config_get) whether the connected user may run it - C(yes), C(no) or C(unknown).
  returned: when O(permissions=true)
  type: dict
  sample: {"scan": "yes", "restore": "no", "sync": "unknown"}
permissions_method:
  description: How RV(commands) was found out - C(acl dryrun), C(acl getuser) or C(probe).
  returned: when O(permissions=true)
  type: str
command_reasons:
  description: Why a command of RV(commands) is C(no) or C(unknown) - renamed or disabled on the server (a managed
    plan's C(rename-command)), denied to the user, or not probeable.
  returned: when O(permissions=true)
  type: dict
  sample: {"config_get": "CONFIG is not available on the server (renamed or disabled)"}
unknown:
  description:
    - The facts that could not be read, each with the reason - C(info) (INFO renamed, disabled or denied; the engine
      and version then come from C(HELLO) and the key counts from C(DBSIZE)), C(config), C(used_memory),
      C(maxmemory), C(expires), C(databases). Empty when everything was read.
  returned: success
  type: dict
  sample: {"config": "CONFIG is not available on the server (renamed or disabled)"}
'''

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import discover
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server


def main():
    module = KVModule(argument_spec=dict(permissions=dict(type='bool', default=True)), endpoints=('server',))
    endpoint = module.endpoint('server')

    def run():
        server = connect_server(endpoint)
        try:
            facts = server.facts(with_permissions=module.params['permissions'])
            facts['cluster'] = None
            if server.cluster_enabled:
                try:
                    topology = discover(endpoint, server.client)
                except KVError as exc:
                    if exc.kind != 'noperm':
                        raise
                    module.warn('the masters of the cluster were not read: %s' % exc.message)
                else:
                    facts['cluster'] = topology.describe()
                    facts['cluster']['replicas'] = [r.address for r in topology.replicas]
                    facts['cluster']['problems'] = topology.problems('server')
        finally:
            server.client.close()
        facts['changed'] = False
        facts['endpoint'] = endpoint.address
        return facts

    module.run(run)


if __name__ == '__main__':
    main()
