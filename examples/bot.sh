#!/bin/sh
# The same bot in shell, with jq (https://jqlang.github.io/jq/): one reply per customer text,
# every other customer message acknowledged with no_reply. --unbuffered flushes each line.
#
#   kfcli msg history wkAbC123 --follow --consumer bot --ack replies -o jsonl \
#       | sh examples/bot.sh | kfcli msg send --batch -
exec jq --unbuffered -c 'select(.origin == 3)
  | {open_kfid, external_userid, reply_to: .msgid}
    + (if .msgtype == "text"
       then {msgtype: "text", text: {content: ("收到：" + .text.content)}}
       else {no_reply: true} end)'
