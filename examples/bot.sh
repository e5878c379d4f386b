#!/bin/sh
# The same bot in shell, with jq (https://jqlang.github.io/jq/): a reply per customer text,
# every other customer message acknowledged with no_reply.
#
#   kfcli msg history wkAbC123 --follow --consumer bot --ack replies -o jsonl \
#       | sh examples/bot.sh | kfcli msg send --batch -
#
# WeCom allows 5 sends per customer message: the messages that arrive together (a backlog
# after an outage) are answered per customer with one reply acknowledging them all
# (reply_to as a list), once no line has come for 0.1 s (or every 200 lines). bash: read -t.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"

answer() {
    [ -n "$batch" ] && printf '%s' "$batch" | jq -c -s '
        map(select(.origin == 3)) | group_by([.open_kfid, .external_userid])[]
        | . as $all | range(0; length; 100) | $all[.:. + 100]
        | (map(select(.msgtype == "text") | .text.content) | join(" / ")) as $said
        | {open_kfid: .[0].open_kfid, external_userid: .[0].external_userid,
           reply_to: (if length == 1 then .[0].msgid else map(.msgid) end)}
          + (if $said != ""
             then {msgtype: "text", text: {content: ("收到：" + (if ($said | length) > 500
                   then $said[:500] + "…" else $said end))}}
             else {no_reply: true} end)'
    batch="" count=0
}

batch="" count=0 partial=""
while :; do
    if IFS= read -r -t 0.1 line; then
        batch="$batch$partial$line
" count=$((count + 1)) partial=""
        [ "$count" -lt 200 ] || answer
    elif [ $? -gt 128 ]; then  # quiet for 0.1 s
        # A busy machine can stall bash in the middle of a line (it reads a pipe a byte at a
        # time): read -t then hands back the part it read, which the rest follows.
        if [ -n "$line" ]; then
            partial="$partial$line"
            continue
        fi
        [ -n "$partial" ] || answer
    else  # the end of the input
        line="$partial$line"
        [ -z "$line" ] || batch="$batch$line
"
        answer
        exit 0
    fi
done
