import json
import stat

import pytest

from kfcli.core.config import ConfigFile, check_field, resolve
from kfcli.core.errors import ConfigError, ValidationError


def test_save_is_private_and_atomic(home):
    cfg = ConfigFile.load()
    assert not cfg.exists
    cfg.profiles["default"] = {"corp_id": "ww1", "secret": "s" * 32}
    cfg.save()
    assert stat.S_IMODE(cfg.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.path.parent.stat().st_mode) == 0o700
    assert not [p for p in cfg.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert ConfigFile.load().profiles == cfg.profiles


def test_corrupt_file_is_reported_with_its_path_and_left_alone(home):
    cfg = ConfigFile.load()
    cfg.path.parent.mkdir(parents=True)
    cfg.path.write_text("{not json")
    with pytest.raises(ConfigError) as exc:
        ConfigFile.load()
    assert str(cfg.path) in exc.value.message
    assert cfg.path.read_text() == "{not json"


def test_precedence_flag_env_profile_default(home, monkeypatch):
    cfg = ConfigFile.load()
    cfg.profiles = {"default": {"corp_id": "from-profile", "base_url": "http://p"},
                    "other": {"corp_id": "other-corp"}}
    cfg.save()
    s = resolve(env={})
    assert s.values["corp_id"].source == "profile" and s.corp_id == "from-profile"
    assert s.values["secret"].source == "unset"
    s = resolve(env={"KFCLI_CORP_ID": "from-env"})
    assert (s.corp_id, s.values["corp_id"].source) == ("from-env", "env")
    s = resolve(env={"KFCLI_CORP_ID": "from-env"}, flags={"corp_id": "from-flag"})
    assert (s.corp_id, s.values["corp_id"].source) == ("from-flag", "flag")
    s = resolve(env={"KFCLI_PROFILE": "other"})
    assert s.corp_id == "other-corp" and s.base_url == "https://qyapi.weixin.qq.com"
    assert s.values["base_url"].source == "default"
    # An empty receive id is a value, not "unset" (DESIGN.md §7).
    assert resolve(env={}, flags={"corp_id": ""}).values["corp_id"].source == "flag"


def test_unknown_profile_is_a_config_error(home):
    with pytest.raises(ConfigError, match="'nope' not found"):
        resolve(profile="nope", env={})


def test_field_checks_name_the_limit():
    with pytest.raises(ValidationError, match="43 characters"):
        check_field("aes_key", "short")
    with pytest.raises(ValidationError, match="http"):
        check_field("base_url", "ftp://x")
    assert check_field("base_url", "http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    assert json.dumps(check_field("token", "abc123"))
