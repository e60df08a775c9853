#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_cf_bindings
short_description: Unbind the apps of a Cloud Foundry service instance into a record, and bind them again
version_added: 0.1.0
description:
  - Isolates a Cloud Foundry service instance (the source of a migration) by unbinding its apps, and binds
    apps to an instance again - to the source to roll back, or to the new instance to cut over.
  - Talks to the Cloud Foundry v3 API directly; no C(cf) CLI is needed.
  - O(state=absent) lists the app bindings of the instance (all of them, or those of O(apps)), writes them to
    the binding O(record) (app guid and name, binding name, parameters, timestamps) B(before) the first delete,
    then deletes each binding and follows its job until it completes or fails. Bindings already in the record
    are kept, so a run that died halfway can be repeated without losing any.
  - O(state=present) binds apps to the instance - from the binding O(record) (optionally only O(apps)), or the
    apps named in O(apps) (with O(binding_name) and O(parameters)). Apps already bound are left alone.
    O(restart=true) restarts the apps that got a new binding, so they read the new credentials.
author:
  - kvtools.migration contributors (!UNKNOWN)
options:
  api:
    description: The Cloud Foundry API URL, for example V(https://api.cf.example.com).
    type: str
    required: true
  uaa_url:
    description: The UAA URL for tokens. Default - the C(uaa) link of the API root.
    type: str
  username:
    description: User for the UAA password grant (with O(password) and the C(cf) client).
    type: str
  password:
    description: Password for the UAA password grant.
    type: str
  client_id:
    description:
      - UAA client. Without O(username) the module uses the client credentials grant with O(client_secret).
    type: str
    default: cf
  client_secret:
    description: Secret of O(client_id) (empty for the C(cf) client).
    type: str
  token:
    description:
      - A bearer token to use as is (for example from C(cf oauth-token)); with or without the C(bearer) prefix.
      - When it expires the module fails and says so; with O(username) or a client it gets a new token itself.
    type: str
  validate_certs:
    description: Verify the TLS certificates of the API and UAA.
    type: bool
    default: true
  ca_cert:
    description: A CA bundle to verify the API and UAA certificates with.
    type: path
  instance_guid:
    description: The service instance, by guid.
    type: str
  instance_name:
    description: The service instance, by name (with O(org) and O(space)).
    type: str
  org:
    description: The org of O(instance_name).
    type: str
  space:
    description: The space of O(instance_name).
    type: str
  state:
    description:
      - V(absent) unbinds the apps (recording them first); V(present) binds them.
    type: str
    choices: [absent, present]
    default: absent
  apps:
    description:
      - App names. With O(state=absent) - only unbind these. With O(state=present) - bind these (from the record
        when O(record) is given, else as new bindings). Apps are looked up in the space of the service instance.
    type: list
    elements: str
    default: []
  record:
    description:
      - The binding record, a JSON file written with mode 0600. Required with O(state=absent).
      - With O(state=present), the bindings to create (to the same instance to roll back, or to another = cutover).
    type: path
  binding_name:
    description: The name of new bindings made from O(apps) without a record.
    type: str
  parameters:
    description: Parameters of new bindings made from O(apps) without a record.
    type: dict
  restart:
    description: Restart the apps that got a new binding (O(state=present)).
    type: bool
    default: false
  timeout:
    description: Seconds to wait for one HTTP request.
    type: int
    default: 30
  job_timeout:
    description: Seconds to wait for one CF job (a bind or an unbind) to finish.
    type: int
    default: 300
  poll_interval:
    description: Seconds between two looks at a CF job.
    type: float
    default: 2.0
attributes:
  check_mode:
    support: full
    description: Lists in RV(actions) what it would do and returns the same C(changed); writes no record.
  diff_mode:
    support: none
    description: RV(bindings) lists the bindings concerned.
notes:
  - Needs the SpaceDeveloper role (or an admin client) in the space of the service instance and the apps.
  - The record holds the binding parameters as the broker returns them; keep it as safe as the credentials.
  - This module has no C(server) option, yet it is in the C(kvtools.migration.kv) action group. Ansible passes
    every option of a group's C(module_defaults) to every module of the group, so defaults such as C(server) set
    for C(group/kvtools.migration.kv) make this module fail with C(Unsupported parameters). Set its defaults
    under its own name (C(kvtools.migration.kv_cf_bindings)) instead.
seealso:
  - module: kvtools.migration.kv_isolate
  - name: Cloud Foundry v3 API - service credential bindings
    description: The API the module uses.
    link: https://v3-apidocs.cloudfoundry.org/
'''

EXAMPLES = r'''
- name: Isolate the source - unbind every app, record first
  kvtools.migration.kv_cf_bindings:
    api: https://api.cf.example.com
    username: "{{ cf_user }}"
    password: "{{ cf_password }}"
    instance_name: redis-old
    org: shop
    space: production
    state: absent
    record: /var/lib/kvtools/redis-old-bindings.json

- name: Cut over - bind the same apps to the new instance and restart them
  kvtools.migration.kv_cf_bindings:
    api: https://api.cf.example.com
    username: "{{ cf_user }}"
    password: "{{ cf_password }}"
    instance_name: valkey-new
    org: shop
    space: production
    state: present
    record: /var/lib/kvtools/redis-old-bindings.json
    restart: true

- name: Roll back - bind them to the old instance again
  kvtools.migration.kv_cf_bindings:
    api: https://api.cf.example.com
    token: "{{ cf_token }}"
    instance_guid: 1c4f3e0a-2b7d-4c55-9c1e-0d7a5b3f9a21
    state: present
    record: /var/lib/kvtools/redis-old-bindings.json
'''

RETURN = r'''
service_instance:
  description: The service instance acted on.
  returned: always
  type: dict
  sample: {"guid": "1c4f3e0a-2b7d-4c55-9c1e-0d7a5b3f9a21", "name": "redis-old"}
bindings:
  description:
    - The bindings concerned - C(name) and C(app) (guid and name); with O(state=present) also C(already_bound).
  returned: always
  type: list
  elements: dict
actions:
  description: What the run did (or, in check mode, would do), one line each.
  returned: always
  type: list
  elements: str
  sample: ["unbind redis-old from app shop-web (binding redis)"]
restarted:
  description: Apps restarted (or to be restarted in check mode).
  returned: when O(state=present)
  type: list
  elements: str
record:
  description: The record file path.
  returned: always
  type: str
api:
  description: The API URL.
  returned: always
  type: str
'''

from ansible_collections.kvtools.migration.plugins.module_utils._cf import SECRET_OPTIONS, Bindings, CFClient
from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule


def main():
    module = KVModule(
        endpoints=(),
        needs_redis=False,
        secret_options=SECRET_OPTIONS,
        argument_spec=dict(
            api=dict(type='str', required=True),
            uaa_url=dict(type='str'),
            username=dict(type='str'),
            password=dict(type='str', no_log=True),
            client_id=dict(type='str', default='cf'),
            client_secret=dict(type='str', no_log=True),
            token=dict(type='str', no_log=True),
            validate_certs=dict(type='bool', default=True),
            ca_cert=dict(type='path'),
            instance_guid=dict(type='str'),
            instance_name=dict(type='str'),
            org=dict(type='str'),
            space=dict(type='str'),
            state=dict(type='str', default='absent', choices=['absent', 'present']),
            apps=dict(type='list', elements='str', default=[]),
            record=dict(type='path'),
            binding_name=dict(type='str'),
            parameters=dict(type='dict'),
            restart=dict(type='bool', default=False),
            timeout=dict(type='int', default=30),
            job_timeout=dict(type='int', default=300),
            poll_interval=dict(type='float', default=2.0),
        ),
        required_one_of=[('instance_guid', 'instance_name')],
        mutually_exclusive=[('instance_guid', 'instance_name'), ('token', 'username'), ('token', 'client_secret')],
        required_by=dict(instance_name=('org', 'space'), username=('password',)),
        required_if=[('state', 'absent', ('record',))],
    )
    params = module.params
    if params['state'] == 'present' and not params['record'] and not params['apps']:
        module.fail_json(msg='state=present needs record (the bindings to restore or cut over) or apps')
    if not (params['token'] or params['username'] or params['client_secret']):
        module.fail_json(msg='give token, username and password, or client_id and client_secret')
    cf = CFClient(params['api'], token=params['token'], username=params['username'], password=params['password'],
                  client_id=params['client_id'], client_secret=params['client_secret'], uaa_url=params['uaa_url'],
                  validate_certs=params['validate_certs'], ca_cert=params['ca_cert'], timeout=params['timeout'],
                  poll_interval=params['poll_interval'], job_timeout=params['job_timeout'])
    bindings = Bindings(cf, state=params['state'], instance_guid=params['instance_guid'],
                        instance_name=params['instance_name'], org=params['org'], space=params['space'],
                        apps=params['apps'], record=params['record'], binding_name=params['binding_name'],
                        parameters=params['parameters'], restart=params['restart'], check_mode=module.check_mode)
    module.run(bindings.run, extra_secrets=lambda: cf.secrets)


if __name__ == '__main__':
    main()
