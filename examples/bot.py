#!/usr/bin/env python3
"""A KF bot in 20 lines: customer messages in (JSON lines from `kfcli msg history --consumer`),
replies out (JSON lines for `kfcli msg send --batch -`). Each line is flushed at once.

    kfcli msg history wkAbC123 --follow --consumer bot --ack replies -o jsonl \\
        | python examples/bot.py | kfcli msg send --batch -
"""
import json
import sys

for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("origin") != 3:  # only customers' messages: not events, not servicers
        continue
    reply = {"open_kfid": msg["open_kfid"], "external_userid": msg["external_userid"],
             "reply_to": msg["msgid"]}
    if msg.get("msgtype") == "text":
        text = msg["text"]["content"]
        reply.update(msgtype="text", text={"content": f"收到：{text}（我们会尽快回复）"})
    else:
        reply["no_reply"] = True  # a photo, a voice…: left to a person, but acknowledged
    print(json.dumps(reply, ensure_ascii=False), flush=True)
