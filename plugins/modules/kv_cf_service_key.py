#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_cf_service_key
short_description: Create, check or delete the service key an endpoint's cf_service reads its credentials from
version_added: 0.1.0
description:
  - An endpoint may name a Cloud Foundry service instance (C(cf_service)) instead of host, port and password; every
    module then reads the credentials of the instance's service key, creating the key when it is missing. This
    module manages that key on its own - the playbooks use it to create the keys before the first step (so that
    check mode can say which keys a real run creates) and to delete them at the end when asked to.
  - O(state=present) reuses the key C(cf_service.service_key) of the instance or creates it; it also reads the
    credentials and maps them with C(cf_service.credentials_query), so a wrong query or a key without a host fails
    here, before any migration step. In check mode a missing key is reported (RV(service_key.exists) false,
    C(changed) true) and not created.
  - O(state=absent) deletes the key when it exists.
  - The credentials never appear in the result; RV(service_key) names the instance and the key only.
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint
options:
  state:
    description: V(present) reuses or creates the key; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reads only; says whether the key would be created or deleted.
  diff_mode:
    support: none
    description: RV(service_key) says what changed.
notes:
  - O(server) must have C(cf_service); the connection options next to it are not used by this module.
  - Needs the SpaceDeveloper role in the space of the instance (reading a key's credentials needs it too).
seealso:
  - module: kvtools.migration.kv_cf_bindings
  - name: Cloud Foundry v3 API - service credential bindings
    description: The API the module uses.
    link: https://v3-apidocs.cloudfoundry.org/
'''

EXAMPLES = r'''
- name: Make sure the migration's service key of the old instance exists
  kvtools.migration.kv_cf_service_key:
    server:
      cf_service:
        api: https://api.cf.example.com
        username: migration-bot
        password: "{{ vault_cf_password }}"
        org: shop
        space: production
        instance_name: redis-old

- name: Delete it after the migration
  kvtools.migration.kv_cf_service_key:
    server:
      cf_service:
        api: https://api.cf.example.com
        token: "{{ cf_token }}"
        instance_guid: 1c4f3e0a-2b7d-4c55-9c1e-0d7a5b3f9a21
        service_key: kvtools-migration
    state: absent
'''

RETURN = r'''
service_key:
  description: The instance and the key - never its credentials.
  returned: always
  type: dict
  contains:
    instance:
      description: The name of the service instance.
      type: str
    name:
      description: The name of the key.
      type: str
    guid:
      description: The guid of the key (absent when it does not exist).
      type: str
    exists:
      description: Whether the key exists after the run (in check mode - before it).
      type: bool
    created:
      description: Whether this run created the key (in check mode - would create it).
      type: bool
    deleted:
      description: Whether this run deleted the key (in check mode - would delete it).
      type: bool
    address:
      description: C(host:port) the endpoint resolves to (O(state=present), when the key exists).
      type: str
msg:
  description: What was done, in one sentence.
  returned: always
  type: str
'''

from ansible_collections.kvtools.migration.plugins.module_utils._cf_keys import (
    ServiceKeyEndpoint, delete_key, find_key)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule


def main():
    module = KVModule(
        endpoints=('server',),
        needs_redis=False,
        argument_spec=dict(state=dict(type='str', default='present', choices=['present', 'absent'])),
    )
    params = module.params
    if not params['server'].get('cf_service'):
        module.fail_json(msg='server needs cf_service (the service instance whose key to manage)', error='config')
    resolver = ServiceKeyEndpoint(params['server'], label='server', check_mode=module.check_mode)

    def run():
        instance = resolver.connect()
        name = resolver.service['service_key']
        out = dict(instance=instance['name'], name=name, created=False, deleted=False)
        key = find_key(resolver.cf, instance, name)
        if key is not None:
            out['guid'] = key['guid']
        if params['state'] == 'absent':
            out['exists'] = key is not None
            out['deleted'] = key is not None
            if key is not None and not module.check_mode:
                delete_key(resolver.cf, instance, key)
                out['exists'] = False
            verb = ('would delete' if module.check_mode else 'deleted') if key is not None else 'found no'
            return dict(changed=key is not None, service_key=out,
                        msg='%s service key %r of %s' % (verb, name, instance['name']))
        if key is None and module.check_mode:
            out.update(exists=False, created=True)
            return dict(changed=True, service_key=out,
                        msg='would create service key %r of %s (check mode creates nothing, so the credentials '
                            'cannot be read before a real run)' % (name, instance['name']))
        try:
            resolver.resolve()  # creates the key when missing; reads and maps its credentials
        except KVError as exc:
            exc.partial = dict(service_key=out)
            raise
        out.update(exists=True, created=resolver.info['created'], guid=resolver.info['key_guid'],
                   address=resolver.info['address'])
        return dict(changed=out['created'], service_key=out,
                    msg='%s service key %r of %s; its credentials give %s'
                        % ('created' if out['created'] else 'reused', name, instance['name'], out['address']))

    module.run(run, extra_secrets=lambda: resolver.secrets)


if __name__ == '__main__':
    main()
