"""Statistics: get_corp_statistic and get_servicer_statistic (kf-api.md §2.10)."""

from __future__ import annotations

import time

import pytest

from .conftest import Client

CORP = "/cgi-bin/kf/get_corp_statistic"
SERVICER = "/cgi-bin/kf/get_servicer_statistic"
DAY = 86400
TZ = 8 * 3600


def midnight(t: int) -> int:
    return t - (t + TZ) % DAY


def start_of_a_day(client: Client) -> int:
    """Move the clock to 01:00 (UTC+8) of the next day, so a test's activity fits in one day."""
    now = client.ok("GET", "/sandbox/clock")["now"]
    target = midnight(now) + DAY + 3600
    client.later(target - now)
    return midnight(target)


@pytest.fixture
def kf(client: Client) -> str:
    open_kfid = client.add_account()
    client.add_servicers(open_kfid, ["user001", "user002"])
    return open_kfid


def stats(client: Client, path: str, kf: str, start: int, end: int, **extra: object) -> dict:
    return client.post(path, {"open_kfid": kf, "start_time": start, "end_time": end, **extra})


def test_window_rules(client: Client, kf: str) -> None:
    now = client.ok("GET", "/sandbox/clock")["now"]
    today = midnight(now)
    yesterday = today - DAY
    for path in (CORP, SERVICER):
        ok = stats(client, path, kf, yesterday - 30 * DAY, yesterday)
        assert ok["errcode"] == 0 and len(ok["statistic_list"]) == 31
        cases = [
            ((yesterday, yesterday - DAY), "earlier"),
            ((yesterday - 31 * DAY, yesterday), "31 days"),
            ((yesterday, today), "yesterday"),
            ((today, today + 5), "yesterday"),
            ((today - 181 * DAY, today - 170 * DAY), "180 days"),
        ]
        for (start, end), words in cases:
            answer = stats(client, path, kf, start, end)
            assert answer["errcode"] == 40058, (start, end)
            assert words in answer["errmsg"], answer["errmsg"]
        assert stats(client, path, kf, today - 180 * DAY, today - 170 * DAY)["errcode"] == 0
        for body in (
            {"open_kfid": kf, "end_time": yesterday},
            {"open_kfid": kf, "start_time": yesterday},
            {"open_kfid": kf, "start_time": str(yesterday), "end_time": yesterday},
            {"start_time": yesterday, "end_time": yesterday},
        ):
            assert client.post(path, body)["errcode"] == 40058, body
        assert stats(client, path, "wk" + "n" * 30, yesterday, yesterday)["errcode"] == 95004


def test_times_are_rounded_down_to_midnight(client: Client, kf: str) -> None:
    now = client.ok("GET", "/sandbox/clock")["now"]
    three_days_ago = midnight(now) - 3 * DAY
    answer = stats(client, CORP, kf, three_days_ago + 7000, three_days_ago + DAY + 86399)
    assert [e["stat_time"] for e in answer["statistic_list"]] == [
        three_days_ago,
        three_days_ago + DAY,
    ]
    assert all((e["stat_time"] + TZ) % DAY == 0 for e in answer["statistic_list"])


def test_figures_follow_the_history(client: Client, kf: str) -> None:
    day = start_of_a_day(client)
    alice = client.customer(kf, "wmAlice")
    client.say(kf, "second", alice)
    client.say(kf, "third", alice)
    bob = client.customer(kf, "wmBob")
    assert client.send_text(kf, alice, "bot reply")["errcode"] == 0
    started = time.monotonic()
    client.trans(kf, bob, 3, "user001")
    client.later(30)
    client.ok(
        "POST",
        "/sandbox/servicer_message",
        {"open_kfid": kf, "external_userid": bob, "userid": "user001", "text": "人工回复"},
    )
    # The simulator's clock is the real one plus the advances: on a loaded machine the real
    # seconds these requests took are added to the 30 (the bound is measured, not guessed).
    took = time.monotonic() - started
    upgrade = {
        "open_kfid": kf,
        "external_userid": alice,
        "type": 1,
        "member": {"userid": "user001"},
    }
    assert client.post("/cgi-bin/kf/customer/upgrade_service", upgrade)["errcode"] == 0
    client.later(2 * DAY)

    [busy, quiet] = stats(client, CORP, kf, day, day + DAY)["statistic_list"]
    assert busy == {
        "stat_time": day,
        "statistic": {
            "session_cnt": 2,
            "customer_cnt": 2,
            "customer_msg_cnt": 4,
            "upgrade_service_customer_cnt": 1,
            "ai_session_reply_cnt": 1,
            "ai_transfer_rate": 0.5,
            "ai_knowledge_hit_rate": 0.0,
            "msg_rejected_customer_cnt": 0,
        },
    }
    assert isinstance(busy["statistic"]["ai_transfer_rate"], float)
    # A day without activity: zero counts, and rates that cannot be computed are absent.
    assert quiet["stat_time"] == day + DAY
    assert quiet["statistic"]["session_cnt"] == 0
    assert "ai_transfer_rate" not in quiet["statistic"]

    [mine] = stats(client, SERVICER, kf, day, day, servicer_userid="user001")["statistic_list"]
    figures = mine["statistic"]
    assert figures["session_cnt"] == 1 and figures["customer_cnt"] == 1
    assert figures["customer_msg_cnt"] == 1
    assert figures["reply_rate"] == 1.0 and isinstance(figures["reply_rate"], float)
    assert 30.0 <= figures["first_reply_average_sec"] <= 30.0 + took + 1
    assert figures["satisfaction_investgate_cnt"] == 0  # (sic)
    for name in (
        "upgrade_service_member_invite_cnt",
        "upgrade_service_groupchat_invite_cnt",
        "upgrade_service_member_customer_cnt",
        "msg_rejected_customer_cnt",
    ):
        assert figures[name] == 0, name

    [idle] = stats(client, SERVICER, kf, day, day, servicer_userid="user002")["statistic_list"]
    assert idle["statistic"]["session_cnt"] == 0 and "reply_rate" not in idle["statistic"]
    [total] = stats(client, SERVICER, kf, day, day)["statistic_list"]
    assert total["statistic"]["session_cnt"] == 1
    assert total["statistic"]["upgrade_service_member_invite_cnt"] == 1

    # Deterministic: asking again gives the same answer.
    assert stats(client, CORP, kf, day, day + DAY)["statistic_list"] == [busy, quiet]
    # Another account has its own figures.
    other = client.add_account()
    [empty] = stats(client, CORP, other, day, day)["statistic_list"]
    assert empty["statistic"]["customer_msg_cnt"] == 0


def test_unknown_servicer(client: Client, kf: str) -> None:
    yesterday = midnight(client.ok("GET", "/sandbox/clock")["now"]) - DAY
    answer = stats(client, SERVICER, kf, yesterday, yesterday, servicer_userid="nobody")
    assert answer["errcode"] == 60111
