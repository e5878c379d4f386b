#!/usr/bin/env python3
"""A KF bot on kfcli's library alone (no `kfcli` process): it answers each customer text
with "收到：" and the text, and acknowledges every other customer message without a reply.

    python examples/library_bot.py wkAbC123

Settings as for the CLI (the profile, KFCLI_* variables, KFCLI_STORE). Something must fill
the store beside it: `kfcli callback serve --sync` or `kfcli msg sync wkAbC123 --follow`.
Killed (even with kill -9) and started again, it answers each message exactly once: the
consumer hands back what was not acknowledged, and a reply sent before has the same derived
msgid, which WeCom refuses to deliver twice.
"""

import contextlib
import sys

from kfcli.core import Consumer, KfClient, Replier, open_store

CUSTOMER = 3  # origin of a customer's message (4: system, 5: servicer, 100: kfcli's sends)


def main(open_kfid: str) -> None:
    client = KfClient.from_profile()
    store = open_store()
    replier = Replier(client, store)
    with Consumer(store, client.corp_id, "library-bot", open_kfid, ack=True) as consumer:
        for message in consumer.messages(follow=True, interval=0.2):
            if message.origin != CUSTOMER:
                continue  # servicers' messages, events, kfcli's own sends
            if message.msgtype == "text":
                text = message.body.get("content", "")
                replier.reply(message, "text", {"content": f"收到：{text}"})
            else:
                replier.acknowledge(message)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1])
