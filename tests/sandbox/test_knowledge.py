"""Knowledge base: groups and intents (kf-api.md §2.11)."""

from __future__ import annotations

from typing import Any

import pytest

from kfcli.sandbox import rules

from .conftest import MP4, PNG, Client

K = "/cgi-bin/kf/knowledge/"


def groups(client: Client, **body: Any) -> list[dict[str, Any]]:
    answer = client.post(K + "list_group", body)
    assert answer["errcode"] == 0, answer
    return answer["group_list"]


def default_group(client: Client) -> dict[str, Any]:
    [group] = [g for g in groups(client) if g["is_default"] == 1]
    return group


def add_group(client: Client, name: str) -> str:
    answer = client.post(K + "add_group", {"name": name})
    assert answer["errcode"] == 0, answer
    return answer["group_id"]


def text(content: str) -> dict[str, Any]:
    return {"text": {"content": content}}


def intent(group_id: str, question: str, answer: str = "答案", **extra: Any) -> dict[str, Any]:
    return {"group_id": group_id, "question": text(question), "answers": [text(answer)], **extra}


def add_intent(client: Client, body: dict[str, Any]) -> str:
    answer = client.post(K + "add_intent", body)
    assert answer["errcode"] == 0, answer
    return answer["intent_id"]


def test_default_group_always_exists_and_is_immutable(client: Client) -> None:
    listed = groups(client)
    assert len(listed) == 1
    default = listed[0]
    assert default["name"] == "默认分组" and default["is_default"] == 1
    answer = client.post(K + "mod_group", {"group_id": default["group_id"], "name": "改名"})
    assert answer["errcode"] == 40058 and "default group" in answer["errmsg"]
    assert client.post(K + "del_group", {"group_id": default["group_id"]})["errcode"] == 40058
    assert groups(client) == [default]


def test_group_lifecycle(client: Client) -> None:
    group_id = add_group(client, "售后问题")
    assert {"group_id": group_id, "name": "售后问题", "is_default": 0} in groups(client)
    assert client.post(K + "mod_group", {"group_id": group_id, "name": "售后"})["errcode"] == 0
    assert groups(client, group_id=group_id) == [
        {"group_id": group_id, "name": "售后", "is_default": 0}
    ]
    # Renaming to its own name is fine; to another group's name is not.
    assert client.post(K + "mod_group", {"group_id": group_id, "name": "售后"})["errcode"] == 0
    add_group(client, "物流")
    answer = client.post(K + "mod_group", {"group_id": group_id, "name": "物流"})
    assert answer["errcode"] == 40058
    # Deleting a group deletes its intents.
    intent_id = add_intent(client, intent(group_id, "怎么退货？"))
    assert client.post(K + "del_group", {"group_id": group_id}) == {"errcode": 0, "errmsg": "ok"}
    assert groups(client, group_id=group_id) == []
    assert client.post(K + "list_intent", {"intent_id": intent_id})["intent_list"] == []
    assert client.post(K + "del_group", {"group_id": group_id})["errcode"] == 40058
    assert client.post(K + "mod_group", {"group_id": group_id, "name": "x"})["errcode"] == 40058


def test_group_rules(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.post(K + "add_group", {"name": "一" * 12})["errcode"] == 0
    for name, errcode in (("一" * 13, 40058), ("", 40058), ("   ", 40058), (None, 40058)):
        assert client.post(K + "add_group", {"name": name})["errcode"] == errcode, name
    answer = client.post(K + "add_group", {"name": "一" * 12})  # names are unique
    assert answer["errcode"] == 40058 and "exists" in answer["errmsg"]
    assert client.post(K + "add_group", {"name": "默认分组"})["errcode"] == 40058
    monkeypatch.setattr(rules, "MAX_GROUPS", 3)  # the default group counts
    add_group(client, "third")
    assert client.post(K + "add_group", {"name": "fourth"})["errcode"] == 40058


def test_group_paging(client: Client) -> None:
    names = [f"g{n:02d}" for n in range(12)]
    for name in names:
        add_group(client, name)
    seen, cursor, pages = [], "", 0
    while True:
        answer = client.post(K + "list_group", {"cursor": cursor, "limit": 5})
        assert answer["errcode"] == 0
        seen += [g["name"] for g in answer["group_list"]]
        pages += 1
        cursor = answer["next_cursor"]
        if not answer["has_more"]:
            break
    assert seen == ["默认分组", *names] and pages == 3
    for bad in ({"limit": 0}, {"limit": 1001}, {"cursor": "garbage"}):
        assert client.post(K + "list_group", bad)["errcode"] == 40058, bad
    # The default page size (500) takes everything here.
    answer = client.post(K + "list_group", {})
    assert len(answer["group_list"]) == 13 and answer["has_more"] == 0


def test_intent_lifecycle_and_name_only_media(client: Client) -> None:
    group_id = default_group(client)["group_id"]
    image = client.upload(PNG, "image", "产品图.png")["media_id"]
    video = client.upload(MP4, "video", "demo.mp4")["media_id"]
    thumb = client.image()
    attachments = [
        {"msgtype": "image", "image": {"media_id": image}},
        {"msgtype": "video", "video": {"media_id": video}},
        {
            "msgtype": "link",
            "link": {
                "title": "说明",
                "picurl": "https://e.com/p.png",
                "desc": "详情",
                "url": "https://e.com/a",
            },
        },
        {
            "msgtype": "miniprogram",
            "miniprogram": {
                "title": "小程序",
                "thumb_media_id": thumb,
                "appid": "wx1",
                "pagepath": "pages/a",
            },
        },
    ]
    body = intent(
        group_id,
        "怎么开发票？",
        similar_questions={"items": [text("开票"), text("发票怎么开")]},
    )
    body["answers"][0]["attachments"] = attachments
    intent_id = add_intent(client, body)
    [listed] = client.post(K + "list_intent", {"intent_id": intent_id})["intent_list"]
    assert listed == {
        "group_id": group_id,
        "intent_id": intent_id,
        "question": text("怎么开发票？"),
        "similar_questions": {"items": [text("开票"), text("发票怎么开")]},
        "answers": [
            {
                "text": {"content": "答案"},
                "attachments": [
                    # image/video come back with their name only, not the media_id.
                    {"msgtype": "image", "image": {"name": "产品图.png"}},
                    {"msgtype": "video", "video": {"name": "demo.mp4"}},
                    attachments[2],
                    attachments[3],
                ],
            }
        ],
    }

    # mod_intent replaces each given section wholesale and keeps the others.
    answer = client.post(
        K + "mod_intent",
        {
            "intent_id": intent_id,
            "similar_questions": {"items": [text("开票据")]},
            "answers": [text("新答案")],
        },
    )
    assert answer == {"errcode": 0, "errmsg": "ok"}
    [listed] = client.post(K + "list_intent", {"intent_id": intent_id})["intent_list"]
    assert listed["question"] == text("怎么开发票？")
    assert listed["similar_questions"] == {"items": [text("开票据")]}
    assert listed["answers"] == [text("新答案")]
    assert (
        client.post(K + "mod_intent", {"intent_id": intent_id, "question": text("新问题")})[
            "errcode"
        ]
        == 0
    )
    [listed] = client.post(K + "list_intent", {"group_id": group_id})["intent_list"]
    assert listed["question"] == text("新问题") and listed["answers"] == [text("新答案")]

    assert client.post(K + "del_intent", {"intent_id": intent_id})["errcode"] == 0
    assert client.post(K + "list_intent", {})["intent_list"] == []
    assert client.post(K + "del_intent", {"intent_id": intent_id})["errcode"] == 40058
    assert client.post(K + "mod_intent", {"intent_id": intent_id})["errcode"] == 40058


def test_intent_rules(client: Client) -> None:
    group_id = add_group(client, "规则")
    image = client.image()
    file_media = client.upload(b"plain file", "file", "a.txt")["media_id"]
    cases: list[tuple[dict[str, Any], int]] = [
        (intent(group_id, "问" * 200), 0),
        (intent(group_id, "问" * 201), 40058),
        (intent(group_id, ""), 40058),
        ({"group_id": group_id, "answers": [text("a")]}, 40058),
        ({"group_id": group_id, "question": text("no answers")}, 40058),
        (intent(group_id, "two answers", answers=[text("a"), text("b")]), 40058),
        (intent(group_id, "no answer", answers=[]), 40058),
        (intent(group_id, "long answer", "答" * 501), 40058),
        (intent(group_id, "max answer", "答" * 500), 0),
        (intent(group_id, "sims", similar_questions={"items": [text("s")] * 100}), 0),
        (intent(group_id, "too many sims", similar_questions={"items": [text("s")] * 101}), 40058),
        (intent(group_id, "long sim", similar_questions={"items": [text("s" * 201)]}), 40058),
        (intent("no-such-group", "orphan"), 40058),
    ]
    for body, errcode in cases:
        answer = client.post(K + "add_intent", body)
        assert answer["errcode"] == errcode, body.get("question", body)

    def with_attachments(question: str, attachments: list[Any]) -> dict[str, Any]:
        body = intent(group_id, question)
        body["answers"][0]["attachments"] = attachments
        return body

    img = {"msgtype": "image", "image": {"media_id": image}}
    attachment_cases = [
        ([img] * 4, 0),
        ([img] * 5, 40058),
        ([{"msgtype": "image", "image": {"media_id": file_media}}], 40007),
        ([{"msgtype": "video", "video": {"media_id": image}}], 40007),
        ([{"msgtype": "voice", "voice": {"media_id": image}}], 40058),
        ([{"msgtype": "link", "link": {"title": "t", "url": "https://e.com"}}], 0),
        ([{"msgtype": "link", "link": {"title": "t", "desc": "no url"}}], 40058),
        ([{"msgtype": "link", "link": {"title": "t", "url": "e.com"}}], 40058),
        (
            [
                {
                    "msgtype": "miniprogram",
                    "miniprogram": {
                        "title": "t",
                        "appid": "wx",
                        "pagepath": "p",
                        "thumb_media_id": "3none",
                    },
                }
            ],
            40007,
        ),
    ]
    for n, (attachments, errcode) in enumerate(attachment_cases):
        answer = client.post(K + "add_intent", with_attachments(f"att {n}", attachments))
        assert answer["errcode"] == errcode, attachments


def test_questions_are_unique_across_groups(client: Client) -> None:
    first, second = add_group(client, "一组"), add_group(client, "二组")
    intent_id = add_intent(client, intent(first, "营业时间？"))
    answer = client.post(K + "add_intent", intent(second, "营业时间？"))
    assert answer["errcode"] == 40058 and "exists" in answer["errmsg"]
    other = add_intent(client, intent(second, "地址？"))
    # mod_intent cannot take another intent's question, but may keep its own.
    body = {"intent_id": other, "question": text("营业时间？")}
    assert client.post(K + "mod_intent", body)["errcode"] == 40058
    body = {"intent_id": intent_id, "question": text("营业时间？")}
    assert client.post(K + "mod_intent", body)["errcode"] == 0


def test_intents_per_group_limit(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "MAX_INTENTS_PER_GROUP", 2)
    group_id = add_group(client, "小组")
    add_intent(client, intent(group_id, "q1"))
    add_intent(client, intent(group_id, "q2"))
    assert client.post(K + "add_intent", intent(group_id, "q3"))["errcode"] == 40058
    other = add_group(client, "另一组")
    add_intent(client, intent(other, "q3"))


def test_intent_paging_and_filters(client: Client) -> None:
    first, second = add_group(client, "A"), add_group(client, "B")
    ids = [add_intent(client, intent(first if n % 2 else second, f"q{n}")) for n in range(9)]
    seen, cursor = [], ""
    while True:
        answer = client.post(K + "list_intent", {"cursor": cursor, "limit": 4})
        seen += [i["intent_id"] for i in answer["intent_list"]]
        cursor = answer["next_cursor"]
        if not answer["has_more"]:
            break
    assert seen == ids
    in_first = client.post(K + "list_intent", {"group_id": first})["intent_list"]
    assert [i["intent_id"] for i in in_first] == ids[1::2]
    assert all(i["group_id"] == first for i in in_first)
    assert client.post(K + "list_intent", {"limit": 1001})["errcode"] == 40058
    # Cursors of one list do not work on the other.
    group_cursor = client.post(K + "list_group", {"limit": 1})["next_cursor"]
    assert client.post(K + "list_intent", {"cursor": group_cursor})["errcode"] == 40058
