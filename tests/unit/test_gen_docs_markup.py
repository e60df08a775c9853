"""The reference pages are generated from the modules' documentation: its markup becomes Markdown, none is left."""

from tests.support.gen_docs import markup


def test_return_value_and_option_markers_become_code():
    assert markup('see RV(writes_paused_s) and O(state=stopped)') == 'see `writes_paused_s` and `state=stopped`'
    assert markup('OV(x) C(y) V(z) E(HOME) P(kvtools.migration.kv_sync#module)') == \
        '`x` `y` `z` `HOME` `kvtools.migration.kv_sync#module`'


def test_capitals_inside_words_are_not_markers():
    assert markup('ACL GETUSER(1) and TYPE(2)') == 'ACL GETUSER(1) and TYPE(2)'
    assert markup('I(italic) B(bold) U(https://x) L(text,https://y)') == \
        '*italic* **bold** <https://x> [text](https://y)'
