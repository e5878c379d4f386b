"""Global options anywhere on the command line, and "did you mean" at every level."""

from __future__ import annotations

import pytest


def _profile(run, name: str, sandbox, secret: str | None = None) -> None:
    for key, value in (("corp_id", sandbox.creds["corp_id"]), ("base_url", sandbox.base_url)):
        assert run("-p", name, "config", "set", key, value).code == 0
    r = run("-p", name, "config", "set", "secret", input=(secret or sandbox.creds["secret"]))
    assert r.code == 0, r.err


def test_profile_before_or_after_the_command_means_the_same(run, sandbox):
    _profile(run, "prod", sandbox)
    _profile(run, "wrong", sandbox, secret="not-the-secret")
    sandbox.account("Support")
    before = run("-p", "prod", "account", "list", "-o", "json")
    assert before.code == 0, before.err
    assert [a["name"] for a in before.json()] == ["Support"]
    for args in (["account", "list", "-p", "prod", "-o", "json"],
                 ["account", "list", "--profile=prod", "--json"],
                 ["account", "-p", "prod", "list", "-o", "json"],
                 ["-p", "prod", "account", "list", "-p", "prod", "-o", "json"]):
        r = run(*args)
        assert r.code == 0 and r.json() == before.json(), (args, r.err)
    r = run("account", "list", "-p", "wrong")  # the profile after the command is the one used
    assert r.code == 3, r.err


@pytest.mark.parametrize("args", [
    ["-p", "a", "account", "list", "-p", "b"],
    ["account", "list", "-p", "a", "--profile", "b"],
    ["account", "-p", "a", "list", "-pb"],
])
def test_a_profile_given_twice_with_different_values_is_a_usage_error(run, args):
    r = run(*args)
    assert r.code == 2 and r.out == ""
    assert "-p/--profile given twice with different values ('a', 'b')" in r.err, r.err


def test_sandbox_and_debug_after_the_command(run):
    r = run("account", "list", "--sandbox", "--debug", "-o", "json")
    assert r.code == 0, r.err
    assert r.json() == []
    assert "> POST http://127.0.0.1:" in r.err and "/cgi-bin/kf/account/list" in r.err
    # a value that looks like a global option stays the value it is
    r = run("msg", "send", "wk1", "wm1", "--text", "--sandbox", "--dry-run", "--json")
    assert r.code == 0, r.err
    assert r.json()["text"] == {"content": "--sandbox"}
    # not shown in every command's help: they are the root's
    assert "--sandbox" not in run("account", "list", "--help").out


@pytest.mark.parametrize("args, suggestion", [
    (["acount"], "No such command 'acount'. Did you mean 'account'?"),
    (["sandbx", "serve"], "Did you mean 'sandbox'?"),
    (["history"], "No such command 'history'. Did you mean 'msg history'?"),
    (["account", "lsit"], "Did you mean 'list'?"),
    (["knowledge", "intnt", "list"], "Did you mean 'intent'?"),
    (["knowledge", "intent", "updte"], "Did you mean 'update'?"),
    (["store", "stauts"], "Did you mean 'status'?"),
])
def test_a_mistyped_group_or_command_gets_a_suggestion(run, args, suggestion):
    r = run(*args)
    assert r.code == 2 and suggestion in r.err, r.err


def test_no_suggestion_for_a_word_far_from_every_command(run):
    r = run("zzzz")
    assert r.code == 2 and "No such command 'zzzz'." in r.err and "Did you mean" not in r.err
