"""Masking and redaction of secrets: the one `redact()` used by errors, logs and `--debug`.

WeCom puts `corpsecret` and `access_token` in the URL query string, and HTTP libraries echo
URLs in their exceptions, so every string that may reach a user passes through `redact()`.
Besides the query parameters it knows by name, it removes any value registered with
`register_secret()` (the configured secret, callback token and EncodingAESKey, and every
access token kfcli has seen), wherever it appears, and the password of any URL of the form
`scheme://user:password@host` (a PostgreSQL store URL in an error or a trace).
"""

from __future__ import annotations

import re
import threading

_SECRET_PARAMS = re.compile(
    r"(?P<key>corpsecret|access_token|secret|aes_key|encoding_aes_key|token|password)"
    # query strings (key=value) and JSON ("key": "value"); not prose such as "token: the …"
    r"(?P<sep>=|[\"']\s*:\s*[\"'])(?P<value>[^&\s\"',}]+)",
    re.IGNORECASE,
)

# The password of `scheme://user:password@host…`: up to the last `@` before the path, so a
# password holding an unencoded `@` is masked whole.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*):(?P<password>[^\s/?#]*)@"
)

_lock = threading.Lock()
_secrets: set[str] = set()

# Values this short would redact ordinary words; nothing WeCom issues is that short.
_MIN_SECRET_LEN = 6


def mask(value: str | None) -> str:
    """`****` plus the last four characters, or an empty string when there is no value."""
    if not value:
        return ""
    return "****" + (value[-4:] if len(value) >= 12 else "")


def register_secret(value: str | None) -> None:
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every known secret and every secret-bearing parameter value with its mask."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, mask(value))
    text = _URL_PASSWORD.sub(_mask_url_password, text)
    return _SECRET_PARAMS.sub(_mask_match, text)


def _mask_url_password(m: re.Match[str]) -> str:
    if not m.group("password"):
        return m.group(0)
    return f"{m.group('head')}:****@"


def _mask_match(m: re.Match[str]) -> str:
    value = m.group("value")
    if value.startswith("****"):
        return m.group(0)
    return f"{m.group('key')}{m.group('sep')}{mask(value)}"
