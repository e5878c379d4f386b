"""search_text's shortcut for text messages gives what the general rule gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kfcli.core.store.base import json_line, search_pieces, search_text

VALUES = st.one_of(st.text(), st.sampled_from(["", "  ", "\n", "Ab 退款", "ÄÖ"]), st.none(),
                   st.integers(), st.lists(st.text(), max_size=2))


@given(body=st.one_of(st.dictionaries(st.sampled_from(["content", "menu_id", "title"]), VALUES,
                                      max_size=3), VALUES))
def test_text_messages_read_as_the_general_rule_reads_them(body):
    doc = {"msgtype": "text", "text": body}
    assert search_text(doc) == "\n".join(search_pieces(doc)).lower()


def test_json_line_keeps_the_received_text_on_one_line():
    doc = {"msgid": "m1", "text": {"content": "a\nb"}}
    assert json_line(doc, '{"msgid":"m1"}') == '{"msgid":"m1"}'
    assert "\n" not in json_line(doc, '{\n "msgid": "m1"\n}')
    assert "\n" not in json_line(doc)
