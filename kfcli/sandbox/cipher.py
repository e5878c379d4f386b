"""WeCom's callback encryption as the sender does it (kf-api.md §4.3-4.4): the simulator's own.

Deliberately independent of `kfcli.core.crypto`: kfcli's receiver must interoperate with a
second implementation written from the protocol description, so that a mistake in one cannot
hide behind the same mistake in the other. Only the sending side is here (encrypt, sign, build
the XML); nothing in the simulator ever decrypts.

Byte by byte:

* key = base64-decode(EncodingAESKey + "="), 32 bytes; the two bits beyond 256 in the last
  character are dropped, as WeCom's own SDKs do (its generated keys often have them set);
* plaintext = 16 random bytes | message length (4 bytes, big-endian) | message | receive id;
* PKCS#7 padding to a multiple of 32 bytes (a full block of 32 when already aligned);
* AES-256-CBC, IV = the key's first 16 bytes; the ciphertext in standard base64;
* msg_signature = SHA-1 hex of token, timestamp, nonce and the ciphertext sorted as bytes and
  concatenated.

pycryptodome is imported on first use, so that importing the sandbox stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct

PAD_BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16
KEY_CHARS = 43


def aes_key(encoding_aes_key: str) -> bytes:
    """The AES-256 key of a 43-character EncodingAESKey; ValueError for anything else."""
    if len(encoding_aes_key) != KEY_CHARS or not encoding_aes_key.isascii() \
            or not encoding_aes_key.isalnum():
        raise ValueError("an EncodingAESKey is 43 characters from [A-Za-z0-9]")
    try:
        # Non-strict base64 ignores non-zero pad bits in the last character.
        key = base64.b64decode(encoding_aes_key + "=")
    except binascii.Error as exc:  # pragma: no cover - 43 alphanumerics always decode
        raise ValueError(f"EncodingAESKey does not decode: {exc}") from None
    if len(key) != 32:  # pragma: no cover - 43 characters are always 32 bytes
        raise ValueError("EncodingAESKey does not decode to 32 bytes")
    return key


def encrypt(encoding_aes_key: str, message: bytes, receive_id: str, *,
            random_prefix: bytes | None = None) -> str:
    """The base64 `Encrypt` value carrying `message` for `receive_id` (the CorpID for KF).

    `random_prefix` (16 bytes) exists only to reproduce a known vector in tests.
    """
    from Crypto.Cipher import AES

    key = aes_key(encoding_aes_key)
    prefix = os.urandom(16) if random_prefix is None else random_prefix
    if len(prefix) != 16:
        raise ValueError("the random prefix is 16 bytes")
    plain = prefix + struct.pack(">I", len(message)) + message + receive_id.encode("utf-8")
    n = PAD_BLOCK - len(plain) % PAD_BLOCK
    plain += bytes([n]) * n
    ciphertext = AES.new(key, AES.MODE_CBC, iv=key[:16]).encrypt(plain)
    return base64.b64encode(ciphertext).decode("ascii")


def sign(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """msg_signature: the four values sorted in byte order, concatenated, SHA-1, lower hex."""
    parts = sorted(value.encode("utf-8") for value in (token, timestamp, nonce, encrypt))
    return hashlib.sha1(b"".join(parts)).hexdigest()


def nonce() -> str:
    """A fresh nonce: WeCom's are decimal strings of about ten digits."""
    return str(secrets.randbelow(9_000_000_000) + 1_000_000_000)


def _cdata(value: str) -> str:
    # Every value here is an identifier the simulator generated; `]]>` would still stay safe.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def event_xml(corp_id: str, create_time: int, sync_token: str, open_kfid: str) -> bytes:
    """The inner message of a kf_msg_or_event callback (kf-api.md §4.3), as WeCom writes it."""
    return (
        "<xml>"
        f"<ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime>"
        f"<MsgType>{_cdata('event')}</MsgType>"
        f"<Event>{_cdata('kf_msg_or_event')}</Event>"
        f"<Token>{_cdata(sync_token)}</Token>"
        f"<OpenKfId>{_cdata(open_kfid)}</OpenKfId>"
        "</xml>"
    ).encode()


def post_body(corp_id: str, encrypted: str) -> bytes:
    """The POST body around an `Encrypt` value; AgentID is empty for KF callbacks."""
    return (
        "<xml>"
        f"<ToUserName>{_cdata(corp_id)}</ToUserName>"
        f"<Encrypt>{_cdata(encrypted)}</Encrypt>"
        f"<AgentID>{_cdata('')}</AgentID>"
        "</xml>"
    ).encode()
