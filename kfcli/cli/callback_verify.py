"""`kfcli callback-verify`: check, decrypt and forge WeCom callbacks by hand (DESIGN.md §7).

No corp secret is needed: only the callback Token, the EncodingAESKey and the receive id.
The Token and key (secrets) come from KFCLI_TOKEN / KFCLI_AES_KEY, the profile, or a hidden
prompt on a terminal; their old flags `--token` / `--aes-key` still work but warn and are
hidden from help (`kfcli.cli.secret_flags`). The receive id comes from `--corp-id`,
KFCLI_CORP_ID or the profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.core.errors import KfError, UsageError, ValidationError

app = new_app("Verify, decrypt and encrypt WeCom callbacks (no corp secret needed).")

@dataclass(frozen=True)
class Credentials:
    token: str
    aes_key: str
    receive_id: str

    def crypto(self):
        from kfcli.core.crypto import WeComCrypto

        return WeComCrypto(self.token, self.aes_key, self.receive_id)


def credentials(token: str | None = None, aes_key: str | None = None,
                corp_id: str | None = None, *,
                options: tuple[str, ...] = ("token", "aes_key", "corp_id"),
                prompt: bool = False) -> Credentials:
    """Token, EncodingAESKey and receive id: (deprecated) flag > env > profile > a hidden
    prompt on a terminal, checked before anything is read or sent (unset: exit 3;
    malformed: exit 2). An empty --corp-id is an empty receive id. `options`: the settings
    the command has flags for (named when one is unset); `prompt`: whether to ask on a
    terminal."""
    from kfcli.cli.context import read_secret
    from kfcli.cli.secret_flags import warn_secret_flags
    from kfcli.core.config import callback_values

    warn_secret_flags({"--token": token, "--aes-key": aes_key},
                      instead="KFCLI_TOKEN / KFCLI_AES_KEY, `kfcli config set token` / "
                      "`kfcli config set aes_key`, or the prompt")
    flags = {"token": token, "aes_key": aes_key, "corp_id": corp_id}
    settings = state().settings(**flags)
    env = state().env
    if prompt and env.stdin_isatty and env.stderr_isatty:
        for key, prompt in (("token", "Callback Token"), ("aes_key", "EncodingAESKey")):
            if flags[key] is None and settings.get(key) is None:
                flags[key] = read_secret(prompt)
    values = callback_values(settings, flags,
                             options=tuple(o for o in options if o == "corp_id"))
    return Credentials(values["token"], values["aes_key"], values["corp_id"])


# Deprecated: secrets on the command line (ps, shell history). Hidden; they warn.
TokenOpt = Annotated[str | None, typer.Option(
    "--token", hidden=True, help="Deprecated: use KFCLI_TOKEN or the profile.",
    show_default=False)]
AesKeyOpt = Annotated[str | None, typer.Option(
    "--aes-key", hidden=True, help="Deprecated: use KFCLI_AES_KEY or the profile.",
    show_default=False)]
CorpIdOpt = Annotated[str | None, typer.Option(
    "--corp-id", help="Receive id: the CorpID for KF; '' for an empty one. "
    "[env: KFCLI_CORP_ID]", show_default=False)]
SigOpt = Annotated[str, typer.Option(
    "--msg-signature", help="The msg_signature query parameter (not `signature`).",
    show_default=False)]
TsOpt = Annotated[str, typer.Option("--timestamp", help="The timestamp query parameter.",
                                    show_default=False)]
NonceOpt = Annotated[str, typer.Option("--nonce", help="The nonce query parameter.",
                                       show_default=False)]
RawOpt = Annotated[bool, typer.Option(
    "--raw", help="Write exactly the decrypted bytes (no newline added).")]


def _read_input(source: str, what: str) -> bytes:
    if source == "-":
        return state().env.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {source} ({exc.strerror})") from None


@app.command("url", epilog="""Examples:

  kfcli callback-verify url --msg-signature S --timestamp T --nonce N \\
      --echostr 'P9nA...'

Pass the query values URL-decoded exactly once (echostr contains + / =). Prints what the
receiver must answer: the decrypted echostr, as the bare body.""")
@with_output
def url(
    msg_signature: SigOpt,
    timestamp: TsOpt,
    nonce: NonceOpt,
    echostr: Annotated[str, typer.Option("--echostr", help="The echostr query parameter.",
                                         show_default=False)],
    raw: RawOpt = False,
    token: TokenOpt = None,
    aes_key: AesKeyOpt = None,
    corp_id: CorpIdOpt = None,
) -> None:
    """Verify a URL-verification request (GET) and print the decrypted echostr."""
    creds = credentials(token, aes_key, corp_id, prompt=True)
    plain = creds.crypto().verify_url(msg_signature, timestamp, nonce, echostr)
    out = state().out
    if raw:
        out.binary(plain)
    else:
        out.value({"echostr": plain.decode("utf-8", "replace")}, "echostr")


@app.command("decrypt", epilog="""Examples:

  kfcli callback-verify decrypt --msg-signature S --timestamp T --nonce N \\
      body.xml

  kfcli callback-verify decrypt --msg-signature S --timestamp T --nonce N \\
      - < body.xml

  kfcli callback-verify decrypt --msg-signature S --timestamp T --nonce N \\
      --encrypt 'RypE...'

Prints the inner message's fields (Token, OpenKfId, ...); -o json gives one object keyed by
the inner XML's element names; --raw writes exactly the decrypted message bytes.""")
@with_output
def decrypt(
    msg_signature: SigOpt,
    timestamp: TsOpt,
    nonce: NonceOpt,
    body_file: Annotated[str | None, typer.Argument(
        metavar="[BODY_FILE | -]", help="The POST body XML ('-' for stdin).",
        show_default=False)] = None,
    encrypt: Annotated[str | None, typer.Option(
        "--encrypt", help="The bare Encrypt value instead of a body.", show_default=False)
    ] = None,
    raw: RawOpt = False,
    token: TokenOpt = None,
    aes_key: AesKeyOpt = None,
    corp_id: CorpIdOpt = None,
) -> None:
    """Verify and decrypt a callback POST body and print the message inside."""
    from kfcli.core.crypto import encrypt_of, parse_xml

    if body_file is not None and encrypt is not None:
        raise UsageError("give the POST body (BODY_FILE or - for stdin) or --encrypt, not both")
    if body_file is None and encrypt is None:
        raise UsageError("nothing to decrypt: give the POST body (BODY_FILE, or - for stdin) "
                         "or the bare Encrypt value with --encrypt")
    creds = credentials(token, aes_key, corp_id, prompt=True)
    if encrypt is None:
        encrypt = encrypt_of(_read_input(body_file or "-", "BODY_FILE"))
    plain = creds.crypto().decrypt_encrypt(msg_signature, timestamp, nonce, encrypt)
    out = state().out
    if raw:
        out.binary(plain)
        return
    try:
        fields = parse_xml(plain)
    except KfError as exc:
        detail = getattr(exc, "detail", exc.message)
        raise KfError(f"verified and decrypted, but the message is not XML ({detail})",
                      hint="--raw writes its bytes") from None
    if out.machine:
        out.obj(fields)
    else:
        out.rows([{"field": k, "value": v} for k, v in fields.items()], ["field", "value"])


@app.command("encrypt", epilog="""Examples:

  kfcli callback-verify encrypt message.xml --raw > body.xml 2> query.txt

  curl --data-binary @body.xml "http://127.0.0.1:8000/?$(cat query.txt)"

  printf '<xml><Token>T</Token><OpenKfId>wk1</OpenKfId></xml>' | \\
      kfcli callback-verify encrypt -

Encrypts a message for the configured receive id and signs it, as WeCom would: prints the
POST body XML on stdout and the query string (msg_signature, timestamp, nonce) on stderr.""")
@with_output
def encrypt_(
    message_file: Annotated[str, typer.Argument(
        metavar="MESSAGE_FILE | -", help="The message to encrypt ('-' for stdin).",
        show_default=False)],
    timestamp: Annotated[str | None, typer.Option(
        "--timestamp", help="Unix seconds. Default: now.", show_default=False)] = None,
    nonce: Annotated[str | None, typer.Option(
        "--nonce", help="1-64 characters [A-Za-z0-9_-]. Default: 10 random digits.",
        show_default=False)] = None,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Write exactly the body bytes (no newline added).")] = False,
    token: TokenOpt = None,
    aes_key: AesKeyOpt = None,
    corp_id: CorpIdOpt = None,
) -> None:
    """Encrypt and sign a message into a callback POST, for testing a receiver."""
    if timestamp is not None and not re.fullmatch(r"[0-9]{1,20}", timestamp):
        raise ValidationError("--timestamp", "must be Unix seconds (digits only)")
    if nonce is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", nonce):
        raise ValidationError("--nonce", "must be 1-64 characters [A-Za-z0-9_-]")
    creds = credentials(token, aes_key, corp_id, prompt=True)
    message = _read_input(message_file, "MESSAGE_FILE")
    post = creds.crypto().build_post(message, timestamp=timestamp, nonce=nonce)
    out = state().out
    if out.machine:
        out.obj(post.to_dict())
        return
    out.binary(post.body if raw else post.body + b"\n")
    out.info(post.query)
