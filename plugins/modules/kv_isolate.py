#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_isolate
short_description: Stop writers on a source server for the time of a migration, and let them back
version_added: 0.1.0
description:
  - Isolates a Redis or Valkey source so that no new data arrives while it is copied, verifies that
    writes really stopped, and with O(state=released) undoes exactly what it did.
  - O(mode=pause) holds writers with C(CLIENT PAUSE <pause_ms> WRITE); readers, C(SCAN) and C(DUMP) go on,
    so M(kvtools.migration.kv_dump_restore) can copy. C(MIGRATE) is a write and would block, so the result
    says RV(migrate_allowed=false). The pause is a lease of O(pause_ms); with O(renew=true) a small detached
    process re-issues it every O(pause_ms)/3 until O(state=released), until the record stops naming it, or
    until O(renew_max_seconds) have passed. If the module, the renewer and the controller all die, writers
    resume at most O(pause_ms) later.
  - O(mode=acl) switches the application users in O(users) off (C(ACL SETUSER user off)) and drops their
    connections (C(CLIENT KILL USER user)). Their prior on/off state is written to O(record) before anything
    changes; O(state=released) sets exactly that state back.
  - O(mode=none) changes nothing (the clients were isolated otherwise, for example by unbinding the Cloud
    Foundry apps with M(kvtools.migration.kv_cf_bindings)) and only verifies that writes stopped.
  - The write-stopped check watches C(rdb_changes_since_last_save) (allowing for expired and evicted keys)
    for O(verify_window_ms) and fails, naming the users still connected, when it moves. A failed check
    leaves the isolation in place; release it with O(state=released).
  - O(server) may be any node of a cluster. The masters are found from it (C(CLUSTER SHARDS), C(CLUSTER SLOTS)
    before 7.0) and every one is isolated - O(mode=pause) pauses every master (a renewer per master),
    O(mode=acl) switches the users off on every master and every replica (ACL users are per node, and apps may
    write through a replica after a failover), O(mode=none) watches every master. O(record) then names the nodes
    acted on, each with a record of its own next to it (C(<record>.node-<host>-<port>)); it is written before the
    first node changes, and O(state=released) releases every node it names. A node that cannot be isolated
    fails the step, and what this run isolated on the other nodes is released again. One write-stopped window
    watches every master. The result lists every node (RV(nodes)).
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint
  - kvtools.migration.attributes.SERVER
options:
  mode:
    description:
      - How to keep writers out. See the description.
    type: str
    choices: [none, pause, acl]
    default: pause
  state:
    description:
      - V(isolated) stops the writers (idempotent - a running renewer or users already off is no change).
      - V(released) lets them back - stops the renewer and sends C(CLIENT UNPAUSE), or restores the users'
        recorded on/off state.
    type: str
    choices: [isolated, released]
    default: isolated
  users:
    description:
      - The application ACL users to switch off with O(mode=acl). Required for O(mode=acl) and O(state=isolated).
      - The module never creates a user; an unknown user is an error. The user the module connects as may not be listed.
      - With O(state=released), restricts the release to these users (default - every recorded user).
    type: list
    elements: str
    default: []
  record:
    description:
      - The JSON file that keeps what O(state=released) needs - for O(mode=acl) each user's prior on/off state,
        for O(mode=pause) the renewer's pid and lease. Written atomically with mode 0600, before any change;
        it never holds a secret.
      - Required for O(mode=acl), and for O(mode=pause) with O(renew=true).
    type: path
  pause_ms:
    description:
      - The lease of each C(CLIENT PAUSE) in milliseconds - how long writers stay blocked after the last renewal.
    type: int
    default: 30000
  renew:
    description:
      - Start a detached renewer process that re-issues the pause every O(pause_ms)/3 (O(mode=pause)).
      - With V(false) the pause lasts O(pause_ms) once; re-run the module between steps to renew it
        (every such run reports a change).
    type: bool
    default: true
  renew_max_seconds:
    description:
      - The renewer stops after this many seconds even if never released, so the pause is bounded in time.
    type: int
    default: 3600
  verify_window_ms:
    description:
      - How long to watch the write counters after isolating (and with O(mode=none)). V(0) skips the check.
    type: int
    default: 1000
attributes:
  check_mode:
    support: full
    description: Reports the commands it would run in RV(executed_commands) and the same C(changed); changes nothing and writes no record.
  diff_mode:
    support: none
    description: The result lists the users and their states; there is no separate diff.
notes:
  - Permissions - O(mode=pause) needs C(CLIENT PAUSE) and C(CLIENT UNPAUSE) (category C(@admin));
    O(mode=acl) needs C(ACL GETUSER), C(ACL SETUSER), C(CLIENT KILL) and, for the connection counts, C(CLIENT LIST).
  - C(ACL SETUSER) changes the running server only; the module never runs C(ACL SAVE) or C(CONFIG REWRITE).
    If the server restarts while isolated, the users come back as its configuration says.
  - The renewer runs on the host that runs the module and talks to the server from there.
  - O(mode=pause) needs Redis 6.2 or later or Valkey.
  - A server behind Sentinel (O(server.sentinel)) - O(mode=acl) switches the users off on the master and on every
    replica the sentinels list (ACLs are per node), each node with a record of its own next to O(record); a
    re-run after a failover reports RV(master_moved) and isolates a new master that was not isolated; the release
    sets every node back. O(mode=pause) pauses the master of the moment; its renewer pauses a new master as soon
    as the sentinels name it and writes the failover to C(<record>.failover); the release un-pauses every node
    paused.
seealso:
  - module: kvtools.migration.kv_cf_bindings
  - module: kvtools.migration.kv_dump_restore
'''

EXAMPLES = r'''
- name: Pause writers on the source for the copy (renewed until released)
  kvtools.migration.kv_isolate:
    server: "{{ source }}"
    mode: pause
    record: /var/lib/kvtools/source-isolation.json
  register: isolation

- name: Copy while paused (MIGRATE would block)
  kvtools.migration.kv_dump_restore:
    source: "{{ source }}"
    target: "{{ target }}"
  when: not isolation.migrate_allowed

- name: Let the writers back (also on failure)
  kvtools.migration.kv_isolate:
    server: "{{ source }}"
    mode: pause
    state: released
    record: /var/lib/kvtools/source-isolation.json

- name: Switch the application users off and drop their sessions
  kvtools.migration.kv_isolate:
    server: "{{ source }}"
    mode: acl
    users: [shop, worker]
    record: /var/lib/kvtools/source-acl.json

- name: Pause every master of a cluster (any node given; a renewer per master)
  kvtools.migration.kv_isolate:
    server: "{{ cluster_node }}"
    mode: pause
    record: /var/lib/kvtools/cluster-isolation.json

- name: Only check that nothing writes any more (apps unbound in Cloud Foundry)
  kvtools.migration.kv_isolate:
    server: "{{ source }}"
    mode: none
    verify_window_ms: 3000
'''

RETURN = r'''
mode:
  description: The mode used.
  returned: always
  type: str
state:
  description: The state asked for.
  returned: always
  type: str
endpoint:
  description: C(host:port) of the server.
  returned: always
  type: str
migrate_allowed:
  description:
    - Whether C(MIGRATE) can run on the source in this mode. V(false) under O(mode=pause) - copy with
      M(kvtools.migration.kv_dump_restore) instead.
  returned: always
  type: bool
migrate_note:
  description: Why C(MIGRATE) is not allowed.
  returned: when O(mode=pause)
  type: str
record:
  description: The record file path.
  returned: always
  type: str
renewer:
  description: The renewer process - its pid and the time (epoch seconds) at which it stops renewing.
  returned: when O(mode=pause), O(state=isolated) and O(renew=true), except in check mode
  type: dict
  sample: {"pid": 4242, "deadline": 1767225600.0}
renewer_stopped:
  description: Whether a running renewer was stopped.
  returned: when O(mode=pause) and O(state=released) released a recorded pause
  type: bool
pause_ms:
  description: The lease of each pause.
  returned: when O(mode=pause) and O(state=isolated)
  type: int
users:
  description:
    - O(mode=acl) - per user its name, whether it was enabled before (C(was_enabled)), whether this run switches
      it off (C(disabled)) and its connections before this run; on release the recorded state (C(enabled))
      and whether it changes (C(changed)).
  returned: when O(mode=acl)
  type: list
  elements: dict
  sample: [{"name": "shop", "was_enabled": true, "disabled": true, "connections": 4}]
connections_killed:
  description: Connections dropped by C(CLIENT KILL USER).
  returned: when O(mode=acl) and O(state=isolated) changed something
  type: int
verify:
  description:
    - The write-stopped check - C(window_ms), C(writes) (changes seen) and C(stopped); on a cluster also
      C(nodes), the changes seen per master. Null when skipped (check mode, O(verify_window_ms=0), release).
  returned: when O(state=isolated)
  type: dict
  sample: {"window_ms": 1000, "writes": 0, "stopped": true}
isolated_at:
  description:
    - When writes stopped (epoch seconds, taken just before C(CLIENT PAUSE) or the first C(ACL SETUSER off)); for an
      isolation already in place, when it began (from the record). With RV(released_at) of the release it measures
      the writers' pause (the migrate playbook's C(writes_paused_s)).
  returned: when O(state=isolated) with O(mode=pause) or O(mode=acl), except in check mode
  type: float
released_at:
  description: When writes were let back (epoch seconds, taken after C(CLIENT UNPAUSE) or the last C(ACL SETUSER on)).
  returned: when O(state=released) with O(mode=pause) or O(mode=acl) wrote something, except in check mode
  type: float
master_moved:
  description: A Sentinel master that is not the node the isolation was made on - C(old_master), C(new_master).
  returned: with O(server.sentinel), after a failover
  type: dict
  sample: {"old_master": "10.0.4.11:6379", "new_master": "10.0.4.12:6379"}
not_isolated:
  description: Replicas the sentinels list as down, whose users could not be switched off.
  returned: with O(server.sentinel) and O(mode=acl), when a replica is down
  type: list
  elements: str
down:
  description: Nodes isolated before that the sentinels list as down now (a restart brings their users back).
  returned: with O(server.sentinel) and O(mode=acl), when such a node is down
  type: list
  elements: str
unreleased:
  description: Nodes whose users could not be set back (unreachable), each C(node) and C(error); release again.
  returned: with O(server.sentinel) and O(mode=acl), when a node could not be reached
  type: list
  elements: dict
paused_nodes:
  description: O(mode=pause) with O(server.sentinel) - the nodes held paused (the renewer adds a new master).
  returned: with O(server.sentinel), O(mode=pause) and O(state=isolated)
  type: list
  elements: str
unpaused_nodes:
  description: O(mode=pause) with O(server.sentinel) - the nodes the release ran C(CLIENT UNPAUSE) on.
  returned: with O(server.sentinel), O(mode=pause) and O(state=released)
  type: list
  elements: str
failovers:
  description: The failovers the renewer saw - C(old_master), C(new_master), C(seen_at).
  returned: with O(server.sentinel) and O(mode=pause), after a failover the renewer saw
  type: list
  elements: dict
executed_commands:
  description:
    - The server commands run (or, in check mode, that would run), without secrets. On a cluster each is prefixed
      with the node's C(host:port).
  returned: always
  type: list
  elements: str
cluster:
  description: True when O(server) is a node of a cluster and every node was acted on.
  returned: when O(server) is a cluster node
  type: bool
nodes:
  description:
    - On a cluster, every node acted on (or, in check mode, that would be) - C(address), C(role) (master or
      replica), C(changed) and what the engine of one server returns for it (C(renewer), C(renewer_stopped),
      C(users), C(connections_killed), C(isolated_at), C(released_at)). RV(isolated_at) is the earliest of the nodes',
      RV(released_at) the latest, so the writers' pause they measure is never too short.
    - O(mode=acl) with O(server.sentinel) - every node acted on, C(address), C(role) (C(master), C(replica),
      C(unreachable)), C(changed) and its C(users).
  returned: when O(server) is a cluster node, and with O(server.sentinel) and O(mode=acl)
  type: list
  elements: dict
  sample: [{"address": "10.0.0.5:6379", "role": "master", "changed": true, "renewer": {"pid": 4242, "deadline": 1767225600.0}}]
renewers:
  description: On a cluster with O(mode=pause), the renewer of every master - C(address), C(pid), C(deadline).
  returned: when O(server) is a cluster node, O(mode=pause), O(state=isolated) and O(renew=true), except in check mode
  type: list
  elements: dict
'''

from ansible_collections.kvtools.migration.plugins.module_utils._isolate import (
    DEFAULT_PAUSE_MS, DEFAULT_RENEW_MAX_SECONDS, DEFAULT_VERIFY_WINDOW_MS, Isolation)
from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule


def main():
    module = KVModule(
        argument_spec=dict(
            mode=dict(type='str', default='pause', choices=['none', 'pause', 'acl']),
            state=dict(type='str', default='isolated', choices=['isolated', 'released']),
            users=dict(type='list', elements='str', default=[]),
            record=dict(type='path'),
            pause_ms=dict(type='int', default=DEFAULT_PAUSE_MS),
            renew=dict(type='bool', default=True),
            renew_max_seconds=dict(type='int', default=DEFAULT_RENEW_MAX_SECONDS),
            verify_window_ms=dict(type='int', default=DEFAULT_VERIFY_WINDOW_MS),
        ),
        endpoints=('server',),
    )
    params = module.params
    isolation = Isolation(
        module.endpoint('server'), mode=params['mode'], state=params['state'], users=params['users'],
        record=params['record'], pause_ms=params['pause_ms'], renew=params['renew'],
        renew_max_seconds=params['renew_max_seconds'], verify_window_ms=params['verify_window_ms'],
        check_mode=module.check_mode, warn=module.warn)
    module.run(isolation.run)


if __name__ == '__main__':
    main()
