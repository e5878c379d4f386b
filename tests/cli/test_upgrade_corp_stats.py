"""`kfcli upgrade`, `corp qualification` and `stats`."""

from datetime import date, datetime, timedelta

from kfcli.cli.stats import CHINA, window


def test_upgrade_member_group_cancel(kf, sandbox):
    open_kfid = sandbox.account()
    customer = sandbox.say(open_kfid)
    config = kf("upgrade", "config", "-o", "json").json()
    member = config["member_range"]["userid_list"][0]
    chat = config["groupchat_range"]["chat_id_list"][0]
    assert all(isinstance(d, int) for d in config["member_range"]["department_id_list"])
    r = kf("upgrade", "member", open_kfid, customer, "--userid", member, "--wording", "专属顾问")
    assert r.code == 0, r.err
    assert kf("upgrade", "group", open_kfid, customer, "--chat-id", chat).code == 0
    assert kf("upgrade", "cancel", open_kfid, customer).code == 0
    r = kf("upgrade", "member", open_kfid, customer, "--userid", "not-configured")
    assert r.code == 1 and "95021" in r.err
    assert "member\t" in kf("upgrade", "config").out


def test_corp_qualification(kf, sandbox):
    r = kf("corp", "qualification", "-o", "json")
    assert r.json() == {"wechat_channels_binding": False}
    r = kf("corp", "qualification")
    assert r.out == "false\n" and "10,000" in r.err
    sandbox.post("/sandbox/corp", {"wechat_channels_binding": True})
    assert kf("corp", "qualification").out == "true\n"


def test_stats_window_checked_locally():
    now = datetime(2026, 11, 24, 10, 0, tzinfo=CHINA).timestamp()
    assert window("2026-11-01", "2026-11-23", now) == (date(2026, 11, 1), date(2026, 11, 23))
    assert window("7d", None, now) == (date(2026, 11, 17), date(2026, 11, 23))
    assert window("2w", "1d", now) == (date(2026, 11, 10), date(2026, 11, 23))
    assert window(str(int(now) - 3 * 86400), "1h", now)[0] == date(2026, 11, 21)
    for args, needle in [
        (("2026-11-10", "2026-11-01"), "after --until"),
        (("2026-11-20", "2026-11-24"), "latest day is yesterday"),
        (("2026-05-01", "2026-05-10"), "more than 180 days ago: WeCom keeps 180 days"),
        (("200d", None), "more than 180 days"),
        (("2026/11/01", None), "is not a time"),
        (("2026-02-30", None), "is not a date"),
    ]:
        try:
            window(*args, now)
        except Exception as exc:  # ValidationError
            assert needle in str(exc), (args, exc)
        else:
            raise AssertionError(args)


def test_long_ranges_split_into_31_day_windows():
    from kfcli.core.statdays import midnight, windows

    spans = windows(date(2026, 9, 1), date(2026, 11, 7))  # 68 days
    assert [(e - s) // 86400 + 1 for s, e in spans] == [31, 31, 6]
    assert spans[0][0] == midnight(date(2026, 9, 1)) and spans[-1][1] == midnight(date(2026, 11, 7))
    assert all(b[0] - a[1] == 86400 for a, b in zip(spans, spans[1:], strict=False))


def test_stats_commands(kf, sandbox):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid)
    today = datetime.now(CHINA).date()
    since = (today - timedelta(days=3)).isoformat()
    r = kf("stats", "corp", open_kfid, "--since", since)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 3 and lines[0].startswith(since)
    r = kf("stats", "servicer", open_kfid, "--since", since, "-o", "json")
    assert r.code == 0 and len(r.json()) == 3 and "stat_time" in r.json()[0]
    r = kf("stats", "corp", open_kfid, "--since", "3d", "--until", "1d")  # as everywhere
    assert r.code == 0 and r.out == kf("stats", "corp", open_kfid, "--since", since).out
    # 68 days: three calls (31 + 31 + 6 days), one table in day order
    before = sandbox.stats().get("/cgi-bin/kf/get_corp_statistic", 0)
    r = kf("stats", "corp", open_kfid, "--since", "68d", "-o", "json")
    assert r.code == 0, r.err
    days = [e["stat_time"] for e in r.json()]
    assert len(days) == 68 and days == sorted(days)
    assert all(b - a == 86400 for a, b in zip(days, days[1:], strict=False))
    assert sandbox.stats()["/cgi-bin/kf/get_corp_statistic"] - before == 3
    r = kf("stats", "servicer", open_kfid, "--since", "40d", "-o", "json")
    assert r.code == 0 and len(r.json()) == 40, r.err
    # beyond WeCom's 180 days: refused before any call
    before = sandbox.stats()
    r = kf("stats", "corp", open_kfid, "--since", (today - timedelta(days=200)).isoformat())
    assert r.code == 2 and "WeCom keeps 180 days of statistics" in r.err
    assert sandbox.stats() == before
