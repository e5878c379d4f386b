"""Profiles and the resolution of settings: flag > environment variable > profile > default.

The profiles live in one JSON file (`config.json` in the config directory):

    {"current": "default", "profiles": {"default": {"corp_id": "ww…", "secret": "…"}}}

It is written atomically with mode 0600 in a 0700 directory. A file that cannot be parsed is
reported with its path and never rewritten, so nothing a user stored is lost.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kfcli.core import paths
from kfcli.core.errors import ConfigError, UsageError, ValidationError
from kfcli.core.files import write_private

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
DEFAULT_PROFILE = "default"

#: Profile fields, in display order.
FIELDS = ("corp_id", "secret", "token", "aes_key", "base_url", "store")
#: Fields that are never accepted as arguments and never shown unmasked.
SECRET_FIELDS = frozenset({"secret", "token", "aes_key"})
#: Environment variable for each field (DESIGN.md §2, contract).
ENV_VARS = {
    "corp_id": "KFCLI_CORP_ID",
    "secret": "KFCLI_SECRET",
    "token": "KFCLI_TOKEN",
    "aes_key": "KFCLI_AES_KEY",
    "base_url": "KFCLI_BASE_URL",
    "store": "KFCLI_STORE",
}

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: The callback settings entered in WeCom's admin console (kf-api.md §4.1): pattern, limit.
CALLBACK_RULES = {
    "token": (re.compile(r"[A-Za-z0-9]{1,32}"),
              "the callback Token is 1-32 characters [A-Za-z0-9]"),
    "aes_key": (re.compile(r"[A-Za-z0-9]{43}"),
                "the EncodingAESKey is exactly 43 characters [A-Za-z0-9]"),
}
FLAGS = {"token": "--token", "aes_key": "--aes-key", "corp_id": "--corp-id"}


def check_profile_name(name: str) -> str:
    if not _PROFILE_NAME.fullmatch(name):
        raise ValidationError(
            "profile", f"invalid name {name!r}: use 1-64 of [A-Za-z0-9_.-], starting alphanumeric"
        )
    return name


def check_field(key: str, value: str) -> str:
    """Validate one profile value; returns it normalised."""
    if key not in FIELDS:
        raise UsageError(f"unknown setting {key!r}; settings are: {', '.join(FIELDS)}")
    value = value.strip()
    if key == "base_url":
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValidationError("base_url", "must be an http(s) URL such as " + DEFAULT_BASE_URL)
        return value.rstrip("/")
    if key in CALLBACK_RULES and not CALLBACK_RULES[key][0].fullmatch(value):
        raise ValidationError(key, CALLBACK_RULES[key][1])
    if key == "corp_id" and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ValidationError("corp_id", "the CorpID is 1-64 characters [A-Za-z0-9_-] (ww…)")
    if key == "secret" and not re.fullmatch(r"[\x21-\x7e]{1,128}", value):
        raise ValidationError("secret", "the secret is 1-128 printable ASCII characters")
    if key == "store":
        from kfcli.core.store import parse

        try:
            parse(value)
        except ConfigError as exc:  # a value typed in now: invalid input (exit 2), not config
            raise UsageError(exc.message, hint=exc.hint) from None
    return value


def shown(key: str, value: str | None) -> str:
    """A setting as it may be shown: secrets masked, a store URL with its password masked."""
    from kfcli.core.redact import mask

    if not value:
        return ""
    if key in SECRET_FIELDS:
        return mask(value)
    if key == "store":
        from kfcli.core.store import display_url

        return display_url(value)
    return value


@dataclass
class ConfigFile:
    """The profiles file. `load()` never creates anything; `save()` writes atomically."""

    path: Path
    current: str = DEFAULT_PROFILE
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)
    exists: bool = False

    @classmethod
    def load(cls, path: Path | None = None) -> ConfigFile:
        path = path or paths.config_file()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path=path)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("top level is not an object")
            profiles = doc.get("profiles", {})
            current = doc.get("current", DEFAULT_PROFILE)
            if not isinstance(profiles, dict) or not isinstance(current, str):
                raise ValueError("'profiles' must be an object and 'current' a string")
            for name, prof in profiles.items():
                if not isinstance(prof, dict) or not all(
                    isinstance(v, str) for v in prof.values()
                ):
                    raise ValueError(f"profile {name!r} must map setting names to strings")
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ConfigError(
                f"config file {path} is corrupt ({exc}); it was left untouched",
                hint="fix or move the file away; kfcli never overwrites it",
            ) from None
        return cls(path=path, current=current, profiles=profiles, exists=True)

    def save(self) -> None:
        doc = {"current": self.current, "profiles": self.profiles}
        write_private(self.path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        self.exists = True

    def profile(self, name: str) -> dict[str, str]:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(
                f"profile {name!r} not found in {self.path} (known profiles: {known})",
                hint=f"create it with `kfcli -p {name} config set corp_id …`",
            ) from None


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # "flag", "env", "profile", "default", "sandbox" or "unset"


@dataclass
class Settings:
    """The resolved credentials and endpoint for one invocation, with where each came from."""

    profile: str
    profile_source: str
    values: dict[str, Setting]
    config_path: Path

    def get(self, key: str) -> str | None:
        return self.values[key].value

    @property
    def corp_id(self) -> str | None:
        return self.get("corp_id")

    @property
    def secret(self) -> str | None:
        return self.get("secret")

    @property
    def base_url(self) -> str:
        return self.get("base_url") or DEFAULT_BASE_URL

    def require(self, *keys: str) -> None:
        missing = [k for k in keys if not self.get(k)]
        if missing:
            names = ", ".join(missing)
            envs = ", ".join(ENV_VARS[k] for k in missing)
            raise ConfigError(
                f"{names} not configured (profile {self.profile!r}, {self.config_path})",
                hint=f"run `kfcli config set {missing[0]}`, set {envs}, or try `kfcli --sandbox`",
            )


def resolve(
    *,
    profile: str | None = None,
    flags: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every field. `overrides` (the sandbox's own credentials) beat everything."""
    env = os.environ if env is None else env
    flags = flags or {}
    cfg = ConfigFile.load()
    if profile:
        name, profile_source = profile, "flag"
    elif env.get("KFCLI_PROFILE"):
        name, profile_source = env["KFCLI_PROFILE"], "env"
    else:
        name, profile_source = cfg.current, "profile" if cfg.exists else "default"
    explicit = profile_source in ("flag", "env")
    if overrides:
        prof = {}
    elif explicit or name in cfg.profiles:
        # An explicitly requested profile must exist; the implicit default may be absent.
        prof = cfg.profile(name)
    else:
        prof = {}
    values: dict[str, Setting] = {}
    for key in FIELDS:
        if overrides and key in overrides:
            values[key] = Setting(overrides[key], "sandbox")
        elif flags.get(key) is not None:
            values[key] = Setting(flags[key], "flag")
        elif env.get(ENV_VARS[key]) is not None:
            values[key] = Setting(env[ENV_VARS[key]], "env")
        elif key in prof:
            values[key] = Setting(prof[key], "profile")
        elif key == "base_url":
            values[key] = Setting(DEFAULT_BASE_URL, "default")
        elif key == "store":
            from kfcli.core.store import default_url

            values[key] = Setting(default_url(), "default")
        else:
            values[key] = Setting(None, "unset")
    return Settings(name, profile_source, values, cfg.path)


def callback_values(settings: Settings, flags: Mapping[str, str | None], *,
                    keys: tuple[str, ...] = ("token", "aes_key", "corp_id"),
                    options: tuple[str, ...] = ("token", "aes_key", "corp_id")) -> dict[str, str]:
    """The callback Token, EncodingAESKey and receive id: flag > resolved settings.

    Unset → `ConfigError` (exit 3, naming every way to set it; `options` are the settings the
    command has flags for). Malformed → `ValidationError` (exit 2) naming where it came from.
    An empty corp id is a value: some app types sign with an empty receive id.
    """
    from kfcli.core.redact import register_secret

    values: dict[str, str] = {}
    for key in keys:
        given = flags.get(key)
        value = given if given is not None else settings.get(key)
        if value is None:
            ways = [f"pass {FLAGS[key]}"] if key in options else []
            ways += [f"set {ENV_VARS[key]}", f"`kfcli config set {key}`"]
            extra = " (--corp-id '' for an empty receive id)" if key == "corp_id" else ""
            raise ConfigError(f"{key} not configured: {', '.join(ways[:-1])} or {ways[-1]}"
                              f"{extra}", hint="use the Token, EncodingAESKey and CorpID "
                              "entered in WeCom's callback settings")
        if key in CALLBACK_RULES:
            register_secret(value)
            pattern, limit = CALLBACK_RULES[key]
            if not pattern.fullmatch(value):
                source = "flag" if given is not None else settings.values[key].source
                where = {"flag": FLAGS[key], "env": ENV_VARS[key]}.get(source,
                                                                       f"{source} setting")
                raise ValidationError(f"{key} (from {where})", limit)
        values[key] = value
    return values
