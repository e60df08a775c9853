"""The filters of the playbooks: check_vars (misspelled and invalid kv_ variables), user_words, endpoint_label."""

from ansible_collections.kvtools.migration.plugins.filter.check_vars import check_vars
from ansible_collections.kvtools.migration.plugins.filter.endpoint_label import endpoint_label
from ansible_collections.kvtools.migration.plugins.filter.user_words import user_words
from ansible_collections.kvtools.migration.plugins.plugin_utils.variables import choices, known, role_to_user


def test_known_names_come_from_the_roles_and_playbooks():
    names = known()
    for name in ('kv_isolation', 'kv_release_after_cutover', 'kv_hosts', 'kv_source', 'migrate_workers',
                 'preflight_writes_window_ms', 'report_playbook'):
        assert name in names, name
    assert role_to_user()['preflight_isolation'] == 'kv_isolation'
    assert choices()['kv_isolation'][1] == ['none', 'pause', 'acl', 'cf']


def test_misspelled_names_get_the_closest_known_one():
    out = check_vars(['kv_isolaton', 'migrate_wokers', 'kv_source', 'kv_isolation', 'inventory_hostname',
                      'migrate_my_own_thing', 'kv_zzzzzzzzzzzz'])
    assert out['errors'] == []
    assert out['warnings'] == [
        'kv_isolaton is not a variable of kvtools.migration and is ignored: did you mean kv_isolation?',
        'kv_zzzzzzzzzzzz is not a variable of kvtools.migration and is ignored',
        'migrate_wokers is not a variable of kvtools.migration and is ignored: did you mean migrate_workers?',
    ]


def test_values_outside_the_choices_name_the_users_variable():
    out = check_vars(['kv_isolation', 'kv_strategy', 'kv_on_conflict'],
                     values=dict(kv_isolation='paus', kv_strategy='live', kv_on_conflict='overwrite'))
    assert out['errors'] == ['kv_isolation is paus; allowed: none, pause, acl, cf',
                             'kv_on_conflict is overwrite; allowed: fail, skip, replace']


def test_user_words():
    assert user_words('empty the target, or set allow_nonempty_target to copy next to them unless on_conflict '
                      'says otherwise') == ('empty the target, or set kv_allow_nonempty_target to copy next to them '
                                            'unless kv_on_conflict says otherwise')
    assert user_words('value of preflight_isolation must be one of') == 'value of kv_isolation must be one of'
    assert user_words('isolation=pause needs CLIENT PAUSE') == 'kv_isolation: pause needs CLIENT PAUSE'
    # words that are not option names stay; names already in the user's words stay
    assert user_words('the isolation record stays; kv_on_conflict is fail') == \
        'the isolation record stays; kv_on_conflict is fail'
    assert user_words(None) is None


def test_endpoint_label_never_shows_credentials():
    assert endpoint_label({'url': 'rediss://app:S3cret@redis.example.com:6380/0'}) == 'rediss://redis.example.com:6380/0'
    assert endpoint_label({'host': '10.0.0.5', 'port': 6390, 'password': 'S3cret'}) == '10.0.0.5:6390'
    assert endpoint_label({'password': 'S3cret', 'sentinel': {'hosts': ['s1:26379', 's2:26379'], 'service_name': 'carts',
                                                              'password': 'Sentinel-S3cret'}}) == \
        'sentinel:carts@s1:26379,s2:26379'
    assert endpoint_label({'unix_socket': '/run/redis.sock'}) == 'unix:/run/redis.sock'
    assert endpoint_label({}) is None


def test_endpoint_label_names_a_cf_service_instance():
    assert endpoint_label({'cf_service': {'instance_name': 'redis-old', 'password': 'x'}}) == 'cf:redis-old'
    assert endpoint_label({'host': '127.0.0.1', 'port': 6390, 'cf_service': {'instance_guid': 'g-1'}}) == \
        'cf:g-1 via 127.0.0.1:6390'


def test_cf_endpoint_fills_the_cf_access_from_kv_cf_and_keeps_what_the_endpoint_sets():
    from ansible_collections.kvtools.migration.plugins.filter.cf_endpoint import cf_endpoint
    kv_cf = {'api': 'https://api.example', 'username': 'bot', 'password': 'pw', 'org': 'shop', 'space': 'prod',
             'source_instance': 'redis-old', 'restart': True}
    plain = {'host': 'h', 'password': 'p'}
    assert cf_endpoint(plain, kv_cf) is plain
    out = cf_endpoint({'port': 7, 'cf_service': {'instance_name': 'redis-old', 'space': 'staging'}}, kv_cf)
    assert out == {'port': 7, 'cf_service': {'instance_name': 'redis-old', 'space': 'staging', 'api': 'https://api.example',
                                             'username': 'bot', 'password': 'pw', 'org': 'shop'}}
