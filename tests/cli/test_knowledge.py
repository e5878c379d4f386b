"""`kfcli knowledge group|intent`."""


def test_groups(kf, sandbox):
    r = kf("knowledge", "group", "list", "-o", "json")
    default = [g for g in r.json() if g["is_default"]]
    assert len(default) == 1
    r = kf("knowledge", "group", "add", "售后问题")
    assert r.code == 0, r.err
    group_id = r.out.strip()
    assert kf("knowledge", "group", "rename", group_id, "退换货").code == 0
    names = [g["name"] for g in kf("knowledge", "group", "list", "--json").json()]
    assert "退换货" in names
    r = kf("knowledge", "group", "add", "这个名字超过了十二个字符啊")
    assert r.code == 2 and "12 characters" in r.err
    r = kf("knowledge", "group", "rename", default[0]["group_id"], "x")
    assert r.code == 1
    assert kf("knowledge", "group", "delete", group_id).code == 2
    assert kf("knowledge", "group", "delete", group_id, "--yes").code == 0


def test_intents(kf, sandbox, avatar):
    group_id = kf("knowledge", "group", "add", "FAQ").out.strip()
    r = kf("knowledge", "intent", "add", "--group", group_id, "--question", "如何退货？",
           "--similar", "怎么退", "--similar", "退货流程", "--answer", "七天内可退。",
           "--image", str(avatar),
           "--attachment", '{"msgtype": "link", "link": {"title": "t", "picurl": '
           '"https://e.com/p.png", "desc": "d", "url": "https://e.com"}}')
    assert r.code == 0, r.err
    intent_id = r.out.strip()
    listed = kf("knowledge", "intent", "list", "--group", group_id, "-o", "json").json()
    assert [i["intent_id"] for i in listed] == [intent_id]
    kinds = [a["msgtype"] for a in listed[0]["answers"][0]["attachments"]]
    assert sorted(kinds) == ["image", "link"]
    r = kf("knowledge", "intent", "update", intent_id, "--answer", "十天内可退。", "--yes")
    assert r.code == 0, r.err
    r = kf("knowledge", "intent", "list", "--intent", intent_id)
    assert r.out.split("\t")[3].strip() == "十天内可退。"
    assert kf("knowledge", "intent", "update", intent_id).code == 2
    r = kf("knowledge", "intent", "add", "--group", group_id, "--question", "q" * 201,
           "--answer", "a")
    assert r.code == 2 and "200 characters" in r.err
    r = kf("knowledge", "intent", "add", "--group", group_id, "--question", "q",
           "--answer", "a" * 501)
    assert r.code == 2 and "500 characters" in r.err
    assert kf("knowledge", "intent", "delete", intent_id, "--yes").code == 0
    assert kf("knowledge", "intent", "list", "--group", group_id, "--json").json() == []


def test_listing_pages_through(kf, sandbox):
    for i in range(7):
        assert kf("knowledge", "group", "add", f"g{i}").code == 0
    r = kf("knowledge", "group", "list", "--limit", "3")
    assert len(r.out.splitlines()) == 3 and "--all" in r.err
    r = kf("knowledge", "group", "list", "--all")  # --all pages by 500
    assert len(r.out.splitlines()) == 8
    from kfcli.core.client import KfClient  # pages of 3, as the command's pages of 500

    with KfClient(sandbox.creds["corp_id"], sandbox.creds["secret"],
                  base_url=sandbox.base_url) as client:
        assert len(list(client.knowledge_groups(page_size=3))) == 8
