# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filter that gives an endpoint naming a Cloud Foundry service instance the CF access of kv_cf."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: cf_endpoint
short_description: Fill the Cloud Foundry access of an endpoint's cf_service from kv_cf
version_added: 0.1.0
description:
  - An endpoint dict with C(cf_service) (a Cloud Foundry service instance whose service key gives host, port and
    password) needs the CF API and its credentials. The playbooks keep them once, in C(kv_cf); this filter copies
    C(api), C(uaa_url), C(username), C(password), C(client_id), C(client_secret), C(token), C(validate_certs),
    C(ca_cert), C(org), C(space), C(timeout), C(job_timeout) and C(poll_interval) from it into C(cf_service) where
    C(cf_service) does not set them.
  - An endpoint without C(cf_service) is returned unchanged.
options:
  _input:
    description: The endpoint dict.
    type: dict
    required: true
  cf:
    description: The CF access dict (C(kv_cf)).
    type: dict
    required: true
author: kvtools.migration contributors
'''

EXAMPLES = r'''
- name: Read a key of the source
  kvtools.migration.kv_info:
    server: "{{ kv_source | kvtools.migration.cf_endpoint(kv_cf | default({})) }}"
'''

RETURN = r'''
_value:
  description: The endpoint dict, its C(cf_service) completed.
  type: dict
'''

ACCESS = ('api', 'uaa_url', 'username', 'password', 'client_id', 'client_secret', 'token', 'validate_certs',
          'ca_cert', 'org', 'space', 'timeout', 'job_timeout', 'poll_interval')


def cf_endpoint(endpoint, cf=None):
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get('cf_service'), dict):
        return endpoint
    service = dict(endpoint['cf_service'])
    for key in ACCESS:
        if service.get(key) is None and isinstance(cf, dict) and cf.get(key) is not None:
            service[key] = cf[key]
    out = dict(endpoint)
    out['cf_service'] = service
    return out


class FilterModule(object):
    def filters(self):
        return {'cf_endpoint': cf_endpoint}
