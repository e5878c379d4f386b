import json
import stat


def test_set_get_show_list_use_remove(run, home):
    assert run("config", "set", "corp_id", "ww0123456789abcdef").code == 0
    r = run("config", "set", "secret", input="my-very-secret-value-0001\n")
    assert r.code == 0 and "my-very-secret-value-0001" not in r.text
    assert run("config", "get", "corp_id").out == "ww0123456789abcdef\n"
    assert run("config", "get", "secret").out == "****0001\n"
    r = run("-p", "prod", "config", "set", "corp_id", "wwprod")
    assert r.code == 0
    rows = run("config", "list", "-o", "json").json()
    assert [(p["profile"], p["current"]) for p in rows] == [("default", True), ("prod", False)]
    assert run("config", "use", "prod").code == 0
    assert run("config", "show", "-o", "json").json()["corp_id"] == "wwprod"
    assert run("config", "remove", "prod").code == 2  # scripts must say --yes
    assert run("config", "remove", "prod", "--yes").code == 0
    doc = json.loads((home / "config" / "config.json").read_text())
    assert list(doc["profiles"]) == ["default"] and doc["current"] == "default"
    assert "my-very-secret-value-0001" not in run("config", "show").text


def test_secrets_are_never_arguments(run, home):
    r = run("config", "set", "secret", "typed-on-command-line")
    assert r.code == 2 and "never taken as an argument" in r.err
    assert "typed-on-command-line" not in r.text
    assert not (home / "config" / "config.json").exists()


def test_files_are_private(run, home):
    run("config", "set", "corp_id", "ww1")
    path = home / "config" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_invalid_values_and_unknown_keys(run, home):
    assert run("config", "set", "aes_key", input="tooshort\n").code == 2
    r = run("config", "set", "colour", "red")
    assert r.code == 2 and "unknown setting" in r.err
    r = run("config", "set", "base_url", "not a url")
    assert r.code == 2 and "http(s) URL" in r.err


def test_corrupt_config_is_reported_and_kept(run, home):
    path = home / "config" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"profiles": [')
    for args in (["config", "set", "corp_id", "x"], ["config", "list"], ["account", "list"]):
        r = run(*args)
        assert r.code == 3, args
        assert str(path) in r.err and "Traceback" not in r.err
    assert path.read_text() == '{"profiles": ['


def test_unknown_profile(run, home):
    run("config", "set", "corp_id", "ww1")
    r = run("-p", "ghost", "account", "list")
    assert r.code == 3 and "'ghost' not found" in r.err
    r = run("account", "list", env={"KFCLI_PROFILE": "ghost"})
    assert r.code == 3


def test_nothing_configured(run, home):
    r = run("account", "list")
    assert r.code == 3
    assert "corp_id, secret not configured" in r.err and "hint:" in r.err
