import json

from hypothesis import given
from hypothesis import strategies as st

from kfcli.core.sync import Message, split_page

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
messages = st.lists(st.dictionaries(st.text(max_size=8), values, max_size=4), max_size=5)


@given(messages, st.sampled_from([None, 2]), st.booleans(), st.booleans())
def test_split_page_matches_json_loads(msgs, indent, ascii_only, list_first):
    doc = {"msg_list": msgs, "errcode": 0, "next_cursor": "c\"x", "has_more": 1}
    if not list_first:
        doc = {"errcode": 0, "next_cursor": "c", "has_more": 1, "msg_list": msgs}
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only)
    out = split_page(text)
    assert out["msg_list"] == msgs
    assert [json.loads(t) for t in out["msg_texts"]] == msgs
    assert {k: v for k, v in out.items() if k != "msg_texts"} == doc


def test_events_read_ids_from_inside_the_event():
    msg = Message.from_api({"msgid": "m", "origin": 4, "msgtype": "event", "event": {
        "event_type": "enter_session", "open_kfid": "wk1", "external_userid": "wm1",
        "scene": "s", "welcome_code": "c"}})
    assert (msg.open_kfid, msg.external_userid, msg.event_type) == ("wk1", "wm1",
                                                                    "enter_session")
    assert "welcome_code" in msg.summary() and msg.sender == "system"
    unknown = Message.from_api({"msgid": "x", "origin": 3, "msgtype": "hologram"})
    assert unknown.summary() == "[hologram]" and unknown.raw["msgtype"] == "hologram"
