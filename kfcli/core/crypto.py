"""WeCom callback crypto: signatures, AES, and the XML envelopes (kf-api.md §4.4, DESIGN.md §7).

    from kfcli.core.crypto import WeComCrypto

    crypto = WeComCrypto(token, encoding_aes_key, corp_id)
    reply = crypto.verify_url(msg_signature, timestamp, nonce, echostr)     # GET: answer bytes
    inner = crypto.decrypt_post(msg_signature, timestamp, nonce, body)     # POST: inner XML bytes
    fields = parse_xml(inner)                    # {"Token": ..., "OpenKfId": ..., ...}

The scheme, byte by byte:

* signature = SHA-1 hex of the four strings token, timestamp, nonce, encrypt sorted in code-point
  order and concatenated; compared in constant time;
* key = the 43-character EncodingAESKey decoded as base64 (leniently: WeCom's own keys often have
  non-zero bits in the last character's two unused bits, which strict decoders reject);
  AES-256-CBC with IV = key[:16]; PKCS#7 padding over 32-byte blocks, pad value 1..32;
* plaintext = 16 random bytes + 4-byte big-endian length + message + receive id; the buffer is
  split as bytes, never decoded as text first.

Every failure raises `CallbackError` whose `reason` is one of `REASONS`; outer or inner XML that
cannot be parsed raises its subclass `MalformedCallback` (reason `decrypt_failed`), so that a
receiver can answer 400 rather than 403. XML from outside is parsed with expat and refused as soon
as it declares a DOCTYPE or an entity, so no entity is ever expanded (billion laughs, XXE).

No Typer or rich here; pycryptodome (`Crypto`) is imported on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import string
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kfcli.core.errors import CallbackError

__all__ = [
    "AES_KEY_ALPHABET",
    "BLOCK_SIZE",
    "REASONS",
    "MalformedCallback",
    "SignedPost",
    "WeComCrypto",
    "decode_aes_key",
    "parse_xml",
    "signature",
]

#: The only values `CallbackError.reason` takes (DESIGN.md §7, contract).
REASONS = ("invalid_signature", "invalid_aes_key", "decrypt_failed", "receive_id_mismatch")

#: WeCom pads to 32 bytes, not AES's 16 (kf-api.md §4.4).
BLOCK_SIZE = 32

#: EncodingAESKey: exactly 43 characters from [A-Za-z0-9] (kf-api.md §4.1).
AES_KEY_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits
_B64_VALUE = {c: i for i, c in enumerate(AES_KEY_ALPHABET)}
AES_KEY_LENGTH = 43

#: Nesting deeper than this is not a WeCom callback; refusing it keeps later recursive
#: consumers (json.dumps of the parsed fields) away from RecursionError.
MAX_XML_DEPTH = 16

HINT_SIGNATURE = (
    "the signature is WeCom's msg_signature (not `signature`) over the Token, timestamp, nonce "
    "and the Encrypt value or echostr; check the Token, and URL-decode the query values "
    "exactly once"
)
HINT_AES_KEY = (
    "the EncodingAESKey is exactly 43 characters [A-Za-z0-9], as shown in the callback settings"
)
HINT_DECRYPT = (
    "the signature matched, so the Token is right: the EncodingAESKey does not match the one "
    "configured in WeCom's callback settings (or the Encrypt value was altered)"
)


class MalformedCallback(CallbackError):
    """The outer body or the inner message is not acceptable XML or lacks a required field."""

    def __init__(self, detail: str, *, hint: str | None = None) -> None:
        super().__init__("decrypt_failed", f"decrypt_failed: {detail}", hint=hint)
        self.detail = detail


def _error(reason: str, detail: str, hint: str | None) -> CallbackError:
    """Messages start with the reason, so that the one line an operator sees names it."""
    return CallbackError(reason, f"{reason}: {detail}", hint=hint)


# ---------------------------------------------------------------------------- primitives


def _utf8(value: str) -> bytes:
    # surrogatepass: a lone surrogate (from a mangled command line) must yield a failed
    # comparison, not a UnicodeEncodeError.
    return value.encode("utf-8", "surrogatepass")


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's msg_signature: SHA-1 hex of the four strings sorted and concatenated.

    Python orders str by code point, which is also the byte order of their UTF-8 encodings.
    """
    joined = "".join(sorted((token, timestamp, nonce, encrypt)))
    return hashlib.sha1(_utf8(joined)).hexdigest()


def decode_aes_key(aes_key: str) -> bytes:
    """The 32-byte AES key from a 43-character EncodingAESKey.

    Decoded by hand rather than with `base64.b64decode`: 43 base64 characters carry 258 bits, and
    the last two are padding that WeCom does not always zero (the official sample key ends in
    `C`, whose low bits are `10`). The bits are dropped as RFC 4648 allows decoders to do.
    """
    if not isinstance(aes_key, str) or len(aes_key) != AES_KEY_LENGTH:
        raise _error("invalid_aes_key", "the EncodingAESKey must be exactly 43 characters "
                     "[A-Za-z0-9]", HINT_AES_KEY)
    bits = 0
    for ch in aes_key:
        value = _B64_VALUE.get(ch)
        if value is None:
            raise _error("invalid_aes_key", "the EncodingAESKey must contain only [A-Za-z0-9]",
                         HINT_AES_KEY)
        bits = (bits << 6) | value
    return (bits >> 2).to_bytes(32, "big")


def _aes(key: bytes) -> Any:
    from Crypto.Cipher import AES

    return AES.new(key, AES.MODE_CBC, iv=key[:16])


def pad(data: bytes) -> bytes:
    """PKCS#7 to a multiple of 32: a full block of 32 x 0x20 when already aligned."""
    n = BLOCK_SIZE - len(data) % BLOCK_SIZE
    return data + bytes([n]) * n


def unpad(data: bytes) -> bytes:
    """Strip PKCS#7 padding with any value 1..32, checking every pad byte.

    The signature is checked before anything is decrypted, so this cannot serve as a padding
    oracle to someone without the Token.
    """
    n = data[-1] if data else 0
    if not 1 <= n <= BLOCK_SIZE or n > len(data) or data[-n:] != bytes([n]) * n:
        raise _error("decrypt_failed", "invalid padding after decryption", HINT_DECRYPT)
    return data[:-n]


# ---------------------------------------------------------------------------- XML


def parse_xml(data: bytes | str) -> dict[str, Any]:
    """The children of the root element as a dict: element name -> text (CDATA included).

    An element with children becomes a nested dict; a repeated name becomes a list. Text mixed
    with child elements is dropped. Refuses DOCTYPE and entity declarations outright (no entity
    is ever expanded), nesting deeper than `MAX_XML_DEPTH`, and anything expat rejects.
    """
    from xml.parsers import expat

    if isinstance(data, str):
        data = data.encode("utf-8")

    # stack of (name, children dict, text chunks)
    stack: list[tuple[str, dict[str, Any], list[str]]] = []
    result: dict[str, Any] = {}

    def refuse(*_args: Any) -> None:
        raise MalformedCallback("XML with a DOCTYPE or entity declaration is refused "
                                "(entities are never expanded)")

    def refuse_external(*_args: Any) -> int:
        refuse()
        return 0

    def start(name: str, _attrs: Any) -> None:
        if len(stack) >= MAX_XML_DEPTH:
            raise MalformedCallback(f"XML nested deeper than {MAX_XML_DEPTH} levels")
        stack.append((name, {}, []))

    def end(name: str) -> None:
        _, children, chunks = stack.pop()
        value: Any = children if children else "".join(chunks)
        if not stack:
            result.update(children)
            return
        parent = stack[-1][1]
        if name in parent:
            prev = parent[name]
            parent[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            parent[name] = value

    def chars(text: str) -> None:
        if stack:
            stack[-1][2].append(text)

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse_external
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except CallbackError:
        raise
    except expat.ExpatError as exc:
        raise MalformedCallback(f"XML not well-formed ({expat.ErrorString(exc.code)}, "
                                f"line {exc.lineno}, column {exc.offset})") from None
    except (ValueError, LookupError, RecursionError) as exc:  # e.g. an unknown encoding
        raise MalformedCallback(f"unreadable XML ({type(exc).__name__})") from None
    return result


# Characters XML 1.0 can carry at all (no C0 controls but tab/newline/return, no surrogates).
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _cdata(text: str) -> str:
    if _XML_INVALID.search(text):
        raise ValueError("text with characters XML cannot carry (control characters)")
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


# ---------------------------------------------------------------------------- the scheme


@dataclass(frozen=True)
class Plaintext:
    """A decrypted buffer split into its parts (nothing checked yet)."""

    message: bytes
    receive_id: bytes


@dataclass(frozen=True)
class SignedPost:
    """An encrypted, signed callback as WeCom would POST it."""

    encrypt: str
    msg_signature: str
    timestamp: str
    nonce: str
    body: bytes

    @property
    def query(self) -> str:
        return urlencode({"msg_signature": self.msg_signature, "timestamp": self.timestamp,
                          "nonce": self.nonce})

    def to_dict(self) -> dict[str, str]:
        return {"encrypt": self.encrypt, "msg_signature": self.msg_signature,
                "timestamp": self.timestamp, "nonce": self.nonce,
                "body": self.body.decode("utf-8")}


def new_nonce() -> str:
    """Ten random digits, the shape of WeCom's own nonces."""
    return "".join(secrets.choice(string.digits) for _ in range(10))


class WeComCrypto:
    """Sign, verify, encrypt and decrypt callbacks for one Token, EncodingAESKey and receive id.

    `receive_id` is the CorpID for a self-built app (the KF case), a suite_id for third-party
    apps, and may be the empty string, which then means exactly that.
    """

    def __init__(self, token: str, aes_key: str, receive_id: str) -> None:
        if not isinstance(token, str):
            raise TypeError("token must be a str")
        if not isinstance(receive_id, str):
            raise TypeError("receive_id must be a str (use '' for an empty receive id)")
        self._token = token
        self._key = decode_aes_key(aes_key)
        self.receive_id = receive_id

    def __repr__(self) -> str:  # never the Token or the key
        return f"WeComCrypto(receive_id={self.receive_id!r})"

    # -- signatures

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self._token, timestamp, nonce, encrypt)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise `CallbackError("invalid_signature")` unless `msg_signature` matches."""
        values = (msg_signature, timestamp, nonce, encrypt)
        if not all(isinstance(v, str) for v in values) or not msg_signature:
            raise _error("invalid_signature", "msg_signature, timestamp, nonce and the "
                         "encrypted value are all required", HINT_SIGNATURE)
        expected = self.signature(timestamp, nonce, encrypt).encode("ascii")
        if not hmac.compare_digest(expected, _utf8(msg_signature.lower())):
            raise _error("invalid_signature", "msg_signature does not match",
                         _signature_hint(encrypt))

    # -- AES

    def unpack(self, encrypt: str) -> Plaintext:
        """Decrypt and split, without checking the receive id."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise _error("decrypt_failed", "the encrypted value is not base64",
                         _signature_hint(encrypt)) from None
        if not raw or len(raw) % 16:
            raise _error("decrypt_failed", f"{len(raw)} bytes of ciphertext is not a whole "
                         "number of AES blocks", HINT_DECRYPT)
        content = unpad(_aes(self._key).decrypt(raw))
        if len(content) < 20:
            raise _error("decrypt_failed", "plaintext too short", HINT_DECRYPT)
        (length,) = struct.unpack(">I", content[16:20])
        if length > len(content) - 20:
            raise _error("decrypt_failed", "the message length field exceeds the plaintext",
                         HINT_DECRYPT)
        return Plaintext(content[20:20 + length], content[20 + length:])

    def decrypt(self, encrypt: str) -> bytes:
        """The message bytes of an `Encrypt` value or echostr, after checking the receive id."""
        plain = self.unpack(encrypt)
        expected = self.receive_id.encode("utf-8")
        if plain.receive_id != expected:
            found = _show_id(plain.receive_id)
            want = _show_id(expected)
            raise _error(
                "receive_id_mismatch",
                f"the message carries receive id {found}, expected {want}",
                "the receive id is the CorpID for a self-built app (KF), the suite_id for a "
                f"third-party app, empty for some app types; set it with --corp-id {found} "
                "(or KFCLI_CORP_ID) if that is the intended app",
            )
        return plain.message

    def encrypt(self, message: bytes, *, prefix: bytes | None = None) -> str:
        """The base64 `Encrypt` value for `message` (bytes, normally UTF-8 XML).

        `prefix` is the 16 random bytes that start the plaintext (default: fresh random bytes);
        give it only to build reproducible test vectors.
        """
        if not isinstance(message, (bytes, bytearray)):
            raise TypeError("message must be bytes")
        if len(message) >= 2**32:
            raise ValueError("message longer than 4 GiB")
        prefix = os.urandom(16) if prefix is None else prefix
        if len(prefix) != 16:
            raise ValueError("prefix must be 16 bytes")
        plain = prefix + struct.pack(">I", len(message)) + bytes(message)
        plain += self.receive_id.encode("utf-8")
        return base64.b64encode(_aes(self._key).encrypt(pad(plain))).decode("ascii")

    # -- whole callbacks

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> bytes:
        """URL verification (GET): the plaintext to answer with, as bytes.

        Pass the query values URL-decoded exactly once (echostr contains `+`, `/` and `=`).
        """
        self.verify(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def decrypt_post(self, msg_signature: str, timestamp: str, nonce: str,
                     body: bytes | str) -> bytes:
        """Event delivery (POST): verify the body's `Encrypt` and return the inner XML bytes."""
        return self.decrypt_encrypt(msg_signature, timestamp, nonce, encrypt_of(body))

    def decrypt_encrypt(self, msg_signature: str, timestamp: str, nonce: str,
                        encrypt: str) -> bytes:
        self.verify(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def build_post(self, message: bytes, *, timestamp: str | None = None,
                   nonce: str | None = None, to_user_name: str | None = None) -> SignedPost:
        """Encrypt and sign `message` into the POST WeCom would send (for testing receivers)."""
        timestamp = str(int(time.time())) if timestamp is None else timestamp
        nonce = new_nonce() if nonce is None else nonce
        encrypt = self.encrypt(message)
        to = self.receive_id if to_user_name is None else to_user_name
        body = (f"<xml><ToUserName>{_cdata(to)}</ToUserName><Encrypt>{_cdata(encrypt)}</Encrypt>"
                "<AgentID><![CDATA[]]></AgentID></xml>")
        return SignedPost(encrypt, self.signature(timestamp, nonce, encrypt), timestamp, nonce,
                          body.encode("utf-8"))


def encrypt_of(body: bytes | str) -> str:
    """The `Encrypt` element of a callback POST body."""
    fields = parse_xml(body)
    encrypt = fields.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise MalformedCallback("the callback body has no Encrypt element",
                                hint="a WeCom callback body is <xml><ToUserName/><Encrypt/>"
                                "<AgentID/></xml>")
    return encrypt


def _show_id(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    if len(text) > 64:
        text = text[:64] + "…"
    return repr(text)


def _signature_hint(encrypt: Any) -> str:
    if isinstance(encrypt, str):
        if " " in encrypt:
            return ("the value contains spaces: a `+` was probably turned into a space (decoded "
                    "twice, or as a form); " + HINT_SIGNATURE)
        if "%" in encrypt:
            return "the value still looks URL-encoded (it contains %); " + HINT_SIGNATURE
    return HINT_SIGNATURE
