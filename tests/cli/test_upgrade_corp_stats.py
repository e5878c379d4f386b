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
    today = date(2026, 11, 24)
    start, end = window("2026-11-01", "2026-11-23", today)
    assert start == int(datetime(2026, 11, 1, tzinfo=CHINA).timestamp())
    assert end - start == 22 * 86400
    for args, needle in [
        (("2026-10-01", "2026-11-05"), "36 days, at most 31"),
        (("2026-11-10", "2026-11-01"), "after --until"),
        (("2026-11-20", "2026-11-24"), "latest day is yesterday"),
        (("2026-05-01", "2026-05-10"), "more than 180 days"),
        (("2026/11/01", None), "not a date"),
    ]:
        try:
            window(*args, today)
        except Exception as exc:  # ValidationError
            assert needle in str(exc), (args, exc)
        else:
            raise AssertionError(args)


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
    before = sandbox.stats()
    r = kf("stats", "corp", open_kfid, "--since", (today - timedelta(days=40)).isoformat())
    assert r.code == 2 and "at most 31" in r.err
    assert sandbox.stats() == before
