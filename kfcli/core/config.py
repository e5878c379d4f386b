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
from kfcli.core.files import ensure_private_dir, write_atomic, write_private

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
DEFAULT_PROFILE = "default"

#: Profile fields, in display order.
FIELDS = ("corp_id", "secret", "token", "aes_key", "base_url", "store", "retention_days",
          "ca_bundle", "token_previous", "aes_key_previous")
#: Fields that are never accepted as arguments and never shown unmasked.
SECRET_FIELDS = frozenset({"secret", "token", "aes_key", "token_previous", "aes_key_previous"})
#: Environment variable for each field (DESIGN.md §2, contract).
ENV_VARS = {
    "corp_id": "KFCLI_CORP_ID",
    "secret": "KFCLI_SECRET",
    "token": "KFCLI_TOKEN",
    "aes_key": "KFCLI_AES_KEY",
    "base_url": "KFCLI_BASE_URL",
    "store": "KFCLI_STORE",
    "retention_days": "KFCLI_RETENTION_DAYS",
    #: Extra CA certificates (PEM) trusted on top of the system store (a TLS-inspecting proxy).
    "ca_bundle": "KFCLI_CA_BUNDLE",
    #: Key rotation: the callback Token/EncodingAESKey pair WeCom used before the current one,
    #: still accepted by receivers until WeCom uses the new pair everywhere.
    "token_previous": "KFCLI_TOKEN_PREVIOUS",
    "aes_key_previous": "KFCLI_AES_KEY_PREVIOUS",
}
#: `retention_days`: how many days of messages `kfcli store prune` keeps (1 to 100 years).
RETENTION_DAYS = (1, 36500)

#: How long `save()` waits for another process's write (they take milliseconds).
LOCK_TIMEOUT = 30.0

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: The callback settings entered in WeCom's admin console (kf-api.md §4.1): pattern, limit.
CALLBACK_RULES = {
    "token": (re.compile(r"[A-Za-z0-9]{1,32}"),
              "the callback Token is 1-32 characters [A-Za-z0-9]"),
    "aes_key": (re.compile(r"[A-Za-z0-9]{43}"),
                "the EncodingAESKey is exactly 43 characters [A-Za-z0-9]"),
}
CALLBACK_RULES["token_previous"] = CALLBACK_RULES["token"]
CALLBACK_RULES["aes_key_previous"] = CALLBACK_RULES["aes_key"]
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
        return _check_base_url(value)
    if key in CALLBACK_RULES and not CALLBACK_RULES[key][0].fullmatch(value):
        raise ValidationError(key, CALLBACK_RULES[key][1])
    if key == "corp_id" and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ValidationError("corp_id", "the CorpID is 1-64 characters [A-Za-z0-9_-] (ww…)")
    if key == "secret" and not re.fullmatch(r"[\x21-\x7e]{1,128}", value):
        raise ValidationError("secret", "the secret is 1-128 printable ASCII characters")
    if key == "retention_days":
        return check_retention_days(value)
    if key == "store":
        from kfcli.core.store import parse

        try:
            parse(value)
        except ConfigError as exc:  # a value typed in now: invalid input (exit 2), not config
            raise UsageError(exc.message, hint=exc.hint) from None
    return value


def check_retention_days(value: str) -> str:
    low, high = RETENTION_DAYS
    if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
        raise ValidationError("retention_days", f"{value!r} is not a whole number of days "
                              f"from {low} to {high}")
    return str(int(value))


def _check_base_url(value: str) -> str:
    match = re.fullmatch(r"https?://(\[[0-9A-Fa-f:.]+\]|[^\s/?#:@\[\]]+)(?::(\d*))?"
                         r"(/[^\s?#]*)?", value)
    if not match:
        raise ValidationError("base_url", "must be an http(s) URL such as " + DEFAULT_BASE_URL)
    port = match.group(2)
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValidationError("base_url", f"port {port or '(empty)'} is not in 1-65535")
    return value.rstrip("/")


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

    def __post_init__(self) -> None:
        self._base = _snapshot(self.current, self.profiles)  # what save() compares against

    def save(self) -> None:
        """Write the changes made since `load()`, under the config lock, onto what the file
        holds now: two processes changing different profiles or settings both keep their
        change (the last writer wins only for the same setting). A symlinked config.json is
        written through the link, so the link stays."""
        import filelock

        target = self._target()
        try:
            ensure_private_dir(self.path.parent)
            lock = filelock.FileLock(str(self.path.parent / f".{self.path.name}.lock"),
                                     mode=0o600, timeout=LOCK_TIMEOUT)
            with lock:
                now = ConfigFile.load(self.path)
                current, profiles = _merge(self._base, self, now)
                doc = {"current": current, "profiles": profiles}
                data = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
                if target == self.path:
                    write_private(target, data)
                else:
                    write_atomic(target, data, mode=0o600)
        except filelock.Timeout:
            raise ConfigError(f"config file {self.path} is locked by another kfcli for more "
                              f"than {LOCK_TIMEOUT:.0f} s", hint="try again") from None
        except OSError as exc:
            raise ConfigError(f"cannot write config file {target}: "
                              f"{exc.strerror or exc}",
                              hint="check the permissions of the file and its directory, "
                              "or point KFCLI_CONFIG_DIR elsewhere") from None
        self.current, self.profiles = current, profiles
        self._base = _snapshot(current, profiles)
        self.exists = True

    def _target(self) -> Path:
        """The file to replace: the link's target when config.json is a symlink."""
        if self.path.is_symlink():
            return Path(os.path.realpath(self.path))
        return self.path

    def profile(self, name: str) -> dict[str, str]:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(
                f"profile {name!r} not found in {self.path} (known profiles: {known})",
                hint=f"create it with `kfcli -p {name} config set corp_id …`",
            ) from None


Snapshot = tuple[str, dict[str, dict[str, str]]]


def _snapshot(current: str, profiles: dict[str, dict[str, str]]) -> Snapshot:
    return current, {name: dict(prof) for name, prof in profiles.items()}


def _merge(base: Snapshot, mine: ConfigFile, now: ConfigFile) -> Snapshot:
    """Apply what `mine` changed relative to `base` onto `now` (the file as it is now)."""
    base_current, base_profiles = base
    profiles = {name: dict(prof) for name, prof in now.profiles.items()}
    for name in base_profiles.keys() - mine.profiles.keys():
        profiles.pop(name, None)  # removed here
    for name, prof in mine.profiles.items():
        before = base_profiles.get(name)
        if before is None:
            profiles[name] = {**profiles.get(name, {}), **prof}  # created here
            continue
        merged = profiles.setdefault(name, {})
        for key in before.keys() - prof.keys():
            merged.pop(key, None)
        for key, value in prof.items():
            if before.get(key) != value:
                merged[key] = value
    current = mine.current if mine.current != base_current else now.current
    return current, profiles


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
    #: Environment variables present but not used (a profile named with -p beats them).
    ignored_env: list[str] = field(default_factory=list)

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
    """Resolve every field: flag > environment > profile > default, except that a profile
    named by `profile` (the command line's -p) beats the environment entirely, as the aws CLI
    does: `kfcli -p prod …` never acts on the corp that KFCLI_CORP_ID names. Empty
    environment variables count as unset. `overrides` (the sandbox's own credentials) beat
    everything."""
    env = os.environ if env is None else env
    flags = flags or {}
    cfg = ConfigFile.load()
    if profile is not None:
        name, profile_source = check_profile_name(profile), "flag"
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
    ignored: list[str] = []
    for key in FIELDS:
        from_env = env.get(ENV_VARS[key]) or None
        if from_env is not None and (profile_source == "flag" or overrides):
            ignored.append(ENV_VARS[key])
            from_env = None
        if overrides and key in overrides:
            values[key] = Setting(overrides[key], "sandbox")
        elif flags.get(key) is not None:
            values[key] = Setting(flags[key], "flag")
        elif from_env is not None:
            values[key] = Setting(_checked(key, from_env, ENV_VARS[key]), "env")
        elif key in prof:
            values[key] = Setting(_checked(key, prof[key], f"profile {name!r}"), "profile")
        elif key == "base_url":
            values[key] = Setting(DEFAULT_BASE_URL, "default")
        elif key == "store":
            from kfcli.core import paths

            values[key] = Setting(paths.default_store_url(), "default")
        else:
            values[key] = Setting(None, "unset")
    return Settings(name, profile_source, values, cfg.path, ignored_env=ignored)


def _checked(key: str, value: str, where: str) -> str:
    """A base URL from the environment or a hand-edited profile, checked before any request
    (exit 3 naming where it came from), so `ftp://x` or port 99999 never reaches a socket."""
    if key == "retention_days":
        try:
            return check_retention_days(value.strip())
        except ValidationError as exc:
            raise ConfigError(f"retention_days from {where}: {exc.problem}",
                              hint="set it to the number of days of messages `kfcli store "
                              "prune` keeps, e.g. `kfcli config set retention_days 180`"
                              ) from None
    if key != "base_url":
        return value
    try:
        return check_field(key, value)
    except ValidationError as exc:
        raise ConfigError(f"base_url from {where} ({value!r}): {exc.problem}",
                          hint="set an http(s) URL such as " + DEFAULT_BASE_URL) from None


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
