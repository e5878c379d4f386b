import time

from kfcli.callback import CallbackHandler
from kfcli.core.models import SyncPage


class FakeClient:
    def __init__(self, messages):
        self.messages = messages
        self.calls = []

    def sync_msg(self, open_kfid, *, cursor=None, token=None, limit=1000):
        self.calls.append((cursor, token))
        start = int(cursor or 0)
        page = self.messages[start:start + limit]
        return SyncPage.from_api({"msg_list": page, "next_cursor": str(start + len(page)),
                                  "has_more": 0})


def test_first_pull_emits_only_messages_since_the_receiver_started():
    now = time.time()
    client = FakeClient([{"msgid": "old", "send_time": int(now - 86400)},
                         {"msgid": "new", "send_time": int(now)}])
    out = []
    handler = CallbackHandler(out.append, client=client)
    handler({"OpenKfId": "wk1", "Token": "t"})
    assert [r.get("msgid") for r in out if r["type"] == "message"] == ["new"]
    client.messages.append({"msgid": "later-but-backdated", "send_time": 1})
    handler({"OpenKfId": "wk1", "Token": "t2"})  # with a cursor, everything new counts
    assert [r.get("msgid") for r in out if r["type"] == "message"] == ["new",
                                                                        "later-but-backdated"]
    assert client.calls[-1] == ("2", "t2")


def test_history_emits_everything_wecom_still_has():
    client = FakeClient([{"msgid": "old", "send_time": 1}])
    out = []
    CallbackHandler(out.append, client=client, history=True)({"OpenKfId": "wk1"})
    assert [r.get("msgid") for r in out if r["type"] == "message"] == ["old"]
