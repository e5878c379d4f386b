#!/usr/bin/env python3
"""A KF bot: customer messages in (JSON lines from `kfcli msg history --consumer`), replies out
(JSON lines for `kfcli msg send --batch -`). Each line is flushed at once.

    kfcli msg history wkAbC123 --follow --consumer bot --ack replies -o jsonl \\
        | python examples/bot.py | kfcli msg send --batch -

WeCom allows 5 sends per customer message (within 48 h of it). A customer's messages that
arrive together (a backlog after an outage, or several lines typed at once) are answered with
one reply that acknowledges them all (`reply_to` as a list): once no new line has come for
SETTLE seconds, or after WAIT seconds at most. A lone message is answered as before.
"""
import json
import os
import select
import sys
import time

SETTLE = 0.1  # seconds of quiet before the waiting customers are answered
WAIT = 2.0  # at most this long after a customer's first waiting message
MOST = 100  # messages one reply may acknowledge (msg send --batch)


def answer(group):
    """One reply (or acknowledgement) for one customer's messages, oldest first."""
    for start in range(0, len(group), MOST):
        part = group[start:start + MOST]
        reply = {"open_kfid": part[0]["open_kfid"], "external_userid": part[0]["external_userid"],
                 "reply_to": part[0]["msgid"] if len(part) == 1 else [m["msgid"] for m in part]}
        texts = [m["text"]["content"] for m in part if m.get("msgtype") == "text"]
        if texts:  # within WeCom's 2048 bytes for a text
            said = " / ".join(texts)
            said = said if len(said) <= 500 else said[:500] + "…"
            reply.update(msgtype="text", text={"content": f"收到：{said}（我们会尽快回复）"})
        else:
            reply["no_reply"] = True  # photos, voices…: left to a person, but acknowledged
        print(json.dumps(reply, ensure_ascii=False), flush=True)


waiting = {}  # (open_kfid, external_userid) -> [first arrival, messages]
buffered = b""
done = False
while not done:
    timeout = None
    if waiting:
        oldest = min(first for first, _ in waiting.values())
        timeout = max(0.0, min(SETTLE, oldest + WAIT - time.monotonic()))
    if select.select([sys.stdin.fileno()], [], [], timeout)[0]:
        chunk = os.read(sys.stdin.fileno(), 1 << 16)
        done = not chunk
        *lines, buffered = (buffered + chunk).split(b"\n")
        for line in lines:
            msg = json.loads(line) if line.strip() else {}
            if msg.get("origin") == 3:  # only customers' messages: not events, not servicers
                key = (msg["open_kfid"], msg["external_userid"])
                waiting.setdefault(key, [time.monotonic(), []])[1].append(msg)
        if not done and not any(first + WAIT <= time.monotonic() for first, _ in
                                waiting.values()):
            continue
    for _, group in waiting.values():
        answer(group)
    waiting.clear()
