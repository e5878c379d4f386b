"""kfcli.core.crypto: the official vector, generated vectors checked against an independent
implementation written here with pycryptodome, padding edge cases, safe XML, and properties."""

from __future__ import annotations

import base64
import hashlib
import os
import string
import struct
import subprocess
import sys

import pytest
from Crypto.Cipher import AES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfcli.core.crypto import (
    REASONS,
    MalformedCallback,
    WeComCrypto,
    decode_aes_key,
    parse_xml,
    signature,
)
from kfcli.core.errors import CallbackError

# kf-api.md §4.4: the official WXBizMsgCrypt sample.
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
RECEIVE_ID = "wx5823bf96d3bd56c7"
TIMESTAMP = "1409659813"
NONCE = "1372623149"
MSG_SIGNATURE = "477715d11cdb4164915debcba66cb864d751f3e6"
ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCU"
    "pj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgp"
    "ue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCK"
    "Iw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o"
    "0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2"
    "pDBS8R07+qN+E7Q=="
)


# ---------------------------------------------------------------------------- independent code


def ref_key(aes_key: str) -> bytes:
    # binascii ignores the unused low bits of the last character in its default mode.
    return base64.b64decode(aes_key + "=")


def ref_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def ref_encrypt(aes_key: str, message: bytes, receive_id: bytes, *, block: int = 32,
                pad_value: int | None = None, prefix: bytes = b"\x07" * 16) -> str:
    key = ref_key(aes_key)
    plain = prefix + struct.pack(">I", len(message)) + message + receive_id
    n = pad_value if pad_value is not None else block - len(plain) % block
    plain += bytes([n]) * n
    return base64.b64encode(AES.new(key, AES.MODE_CBC, key[:16]).encrypt(plain)).decode()


def ref_encrypt_raw(aes_key: str, plain: bytes) -> str:
    key = ref_key(aes_key)
    return base64.b64encode(AES.new(key, AES.MODE_CBC, key[:16]).encrypt(plain)).decode()


def ref_decrypt(aes_key: str, encrypt: str) -> tuple[bytes, bytes, int]:
    key = ref_key(aes_key)
    plain = AES.new(key, AES.MODE_CBC, key[:16]).decrypt(base64.b64decode(encrypt))
    n = plain[-1]
    body = plain[:-n]
    (length,) = struct.unpack(">I", body[16:20])
    return body[20:20 + length], body[20 + length:], n


def random_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(alphabet[b % 62] for b in os.urandom(43))


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, RECEIVE_ID)


# ---------------------------------------------------------------------------- official vector


def test_official_vector_signature(crypto):
    assert signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT) == MSG_SIGNATURE
    assert crypto.signature(TIMESTAMP, NONCE, ENCRYPT) == MSG_SIGNATURE
    crypto.verify(MSG_SIGNATURE, TIMESTAMP, NONCE, ENCRYPT)


def test_official_vector_decrypts(crypto):
    message = crypto.verify_url(MSG_SIGNATURE, TIMESTAMP, NONCE, ENCRYPT)
    assert len(message) == 284
    assert message.startswith(b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>")
    assert b"<Content><![CDATA[hello]]></Content>" in message
    fields = parse_xml(message)
    assert fields["Content"] == "hello" and fields["AgentID"] == "218"
    assert fields["MsgType"] == "text" and fields["MsgId"] == "4561255354251345929"
    # and the independent code agrees on every part, including the pad byte 30
    assert ref_decrypt(AES_KEY, ENCRYPT) == (message, RECEIVE_ID.encode(), 30)


def test_official_key_has_non_zero_trailing_bits_and_is_accepted():
    last = (string.ascii_uppercase + string.ascii_lowercase + string.digits).index(AES_KEY[-1])
    assert last & 0b11  # 'C' = 0b000010: the two unused bits are not zero
    assert decode_aes_key(AES_KEY) == ref_key(AES_KEY)
    assert len(decode_aes_key(AES_KEY)) == 32


def test_post_body_of_the_official_vector(crypto):
    body = (f"<xml><ToUserName><![CDATA[{RECEIVE_ID}]]></ToUserName>"
            f"<Encrypt><![CDATA[{ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>")
    message = crypto.decrypt_post(MSG_SIGNATURE, TIMESTAMP, NONCE, body.encode())
    assert len(message) == 284


# ---------------------------------------------------------------------------- generated vectors


MESSAGES = {
    "chinese_emoji": "<xml><Content><![CDATA[您好，客服 👋🏽 ✨]]></Content></xml>".encode(),
    "one_byte": b"x",
    # 16 + 4 + 26 + 18 = 64: the plaintext is already a multiple of 32
    "aligned": b"a" * (64 - 16 - 4 - len(RECEIVE_ID)),
    "64kib": os.urandom(64 * 1024),
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_generated_vectors_interoperate(name, crypto):
    message = MESSAGES[name]
    # ours -> independent
    ours = crypto.encrypt(message)
    assert ref_decrypt(AES_KEY, ours)[:2] == (message, RECEIVE_ID.encode())
    # independent -> ours
    theirs = ref_encrypt(AES_KEY, message, RECEIVE_ID.encode())
    sig = ref_signature(TOKEN, "1700000000", "42", theirs)
    assert crypto.decrypt_encrypt(sig, "1700000000", "42", theirs) == message


def test_full_pad_block_when_already_aligned(crypto):
    message = MESSAGES["aligned"]
    assert (16 + 4 + len(message) + len(RECEIVE_ID)) % 32 == 0
    encrypt = crypto.encrypt(message)
    assert len(base64.b64decode(encrypt)) == 64 + 32
    assert ref_decrypt(AES_KEY, encrypt)[2] == 32
    assert crypto.decrypt(encrypt) == message


def test_empty_receive_id_means_empty():
    empty = WeComCrypto(TOKEN, AES_KEY, "")
    encrypt = ref_encrypt(AES_KEY, b"<xml/>", b"")
    assert empty.decrypt(encrypt) == b"<xml/>"
    assert ref_decrypt(AES_KEY, empty.encrypt(b"hi"))[1] == b""
    with pytest.raises(CallbackError) as err:
        WeComCrypto(TOKEN, AES_KEY, RECEIVE_ID).decrypt(encrypt)
    assert err.value.reason == "receive_id_mismatch"
    with pytest.raises(TypeError):
        WeComCrypto(TOKEN, AES_KEY, None)  # type: ignore[arg-type]


def test_wrong_receive_id_names_both_ids(crypto):
    encrypt = ref_encrypt(AES_KEY, b"<xml/>", b"ww_other_corp")
    with pytest.raises(CallbackError) as err:
        crypto.decrypt(encrypt)
    assert err.value.reason == "receive_id_mismatch" and err.value.exit_code == 5
    assert "'ww_other_corp'" in err.value.message and repr(RECEIVE_ID) in err.value.message
    assert err.value.message.startswith("receive_id_mismatch:")


def test_wrong_key_fails_cleanly():
    encrypt = WeComCrypto(TOKEN, AES_KEY, RECEIVE_ID).encrypt(b"<xml>secret</xml>" * 10)
    for _ in range(200):
        other = WeComCrypto(TOKEN, random_key(), RECEIVE_ID)
        with pytest.raises(CallbackError) as err:
            other.decrypt(encrypt)
        assert err.value.reason == "decrypt_failed"


def test_tampered_signature(crypto):
    for sig in (MSG_SIGNATURE[:-1] + "0", "", MSG_SIGNATURE + "0", "ü" * 40):
        with pytest.raises(CallbackError) as err:
            crypto.verify_url(sig, TIMESTAMP, NONCE, ENCRYPT)
        assert err.value.reason == "invalid_signature"
        assert "msg_signature" in (err.value.hint or "")
    with pytest.raises(CallbackError) as err:  # any of the four inputs changed
        crypto.verify_url(MSG_SIGNATURE, TIMESTAMP, "1372623148", ENCRYPT)
    assert err.value.reason == "invalid_signature"
    with pytest.raises(CallbackError) as err:
        WeComCrypto("QDG6eL", AES_KEY, RECEIVE_ID).verify_url(MSG_SIGNATURE, TIMESTAMP, NONCE,
                                                               ENCRYPT)
    assert err.value.reason == "invalid_signature"


def test_signature_hint_spots_url_decoding_mistakes(crypto):
    with pytest.raises(CallbackError) as err:
        crypto.verify_url(MSG_SIGNATURE, TIMESTAMP, NONCE, ENCRYPT.replace("+", " "))
    assert "`+`" in err.value.hint
    with pytest.raises(CallbackError) as err:
        crypto.verify_url(MSG_SIGNATURE, TIMESTAMP, NONCE, ENCRYPT.replace("+", "%2B"))
    assert "URL-encoded" in err.value.hint


@pytest.mark.parametrize("key", [AES_KEY[:42], AES_KEY + "A", AES_KEY[:42] + "+",
                                 AES_KEY[:42] + "=", "", "é" * 43])
def test_invalid_aes_key(key):
    with pytest.raises(CallbackError) as err:
        WeComCrypto(TOKEN, key, RECEIVE_ID)
    assert err.value.reason == "invalid_aes_key"
    assert key == "" or key not in err.value.message


@pytest.mark.parametrize("pad_value", [1, 5, 16, 31, 32])
def test_any_pad_value_1_to_32_is_accepted(crypto, pad_value):
    # a sender that pads to 16-byte blocks (or any other valid PKCS#7 length) still decrypts
    message = b"m" * 10
    base = 16 + 4 + len(message) + len(RECEIVE_ID)
    message += b"m" * ((-(base + pad_value)) % 32)
    encrypt = ref_encrypt(AES_KEY, message, RECEIVE_ID.encode(), pad_value=pad_value)
    assert crypto.decrypt(encrypt) == message


@pytest.mark.parametrize("tail", [b"\x00" * 32, b"\x21" * 32, b"\x05" * 31 + b"\x04",
                                  b"\x03" * 30 + b"\x02\x03", b"\xff" * 32])
def test_invalid_padding_is_decrypt_failed(crypto, tail):
    plain = b"\x00" * 16 + struct.pack(">I", 4) + b"abcd" + RECEIVE_ID.encode()
    plain += b"z" * ((-len(plain)) % 32) + tail
    with pytest.raises(CallbackError) as err:
        crypto.decrypt(ref_encrypt_raw(AES_KEY, plain))
    assert err.value.reason == "decrypt_failed" and "padding" in err.value.message


def test_length_field_beyond_the_buffer_and_short_plaintext(crypto):
    plain = b"\x00" * 16 + struct.pack(">I", 10_000) + b"abc"
    plain += bytes([32 - len(plain) % 32]) * (32 - len(plain) % 32)
    with pytest.raises(CallbackError) as err:
        crypto.decrypt(ref_encrypt_raw(AES_KEY, plain))
    assert err.value.reason == "decrypt_failed"
    with pytest.raises(CallbackError) as err:
        crypto.decrypt(ref_encrypt_raw(AES_KEY, b"\x00" * 3 + b"\x1d" * 29))
    assert err.value.reason == "decrypt_failed"


@pytest.mark.parametrize("encrypt", ["", "not base64!", "QUJD", "QUJDRA==" * 3, "é",
                                     base64.b64encode(b"x" * 17).decode()])
def test_garbage_ciphertext_is_decrypt_failed(crypto, encrypt):
    with pytest.raises(CallbackError) as err:
        crypto.decrypt(encrypt)
    assert err.value.reason == "decrypt_failed"


def test_build_post_round_trips_and_is_shaped_like_wecom(crypto):
    post = crypto.build_post(b"<xml><Token>T</Token></xml>", timestamp="1", nonce="2")
    assert post.body.startswith(b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
                                b"<Encrypt><![CDATA[")
    assert post.body.endswith(b"]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>")
    assert post.msg_signature == ref_signature(TOKEN, "1", "2", post.encrypt)
    assert post.query == f"msg_signature={post.msg_signature}&timestamp=1&nonce=2"
    assert crypto.decrypt_post(post.msg_signature, "1", "2", post.body) == \
        b"<xml><Token>T</Token></xml>"
    assert set(post.to_dict()) == {"encrypt", "msg_signature", "timestamp", "nonce", "body"}


def test_repr_hides_secrets(crypto):
    assert TOKEN not in repr(crypto) and AES_KEY not in repr(crypto)


# ---------------------------------------------------------------------------- XML


def test_parse_xml_shapes():
    doc = parse_xml(b"<xml><A><![CDATA[x]]></A><B>1</B><C/><D><E>2</E><E>3</E></D></xml>")
    assert doc == {"A": "x", "B": "1", "C": "", "D": {"E": ["2", "3"]}}
    latin1 = "<?xml version='1.0' encoding='iso-8859-1'?><xml><T>café</T></xml>"
    assert parse_xml(latin1.encode("latin-1")) == {"T": "café"}
    assert parse_xml("<xml><T>中文 👋</T></xml>") == {"T": "中文 👋"}


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<xml><Encrypt>&lol9;</Encrypt></xml>"""

XXE = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<xml><Encrypt>&e;</Encrypt></xml>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, b"<!DOCTYPE xml><xml/>",
                                  b"<xml><Encrypt>&undefined;</Encrypt></xml>",
                                  b"<xml>" * 100 + b"</xml>" * 100, b"", b"\xff\xfe<",
                                  b"<?xml version='1.0' encoding='klingon'?><xml/>",
                                  b"<xml><ToUserName>x</ToUserName></xml>"])
def test_unsafe_or_malformed_bodies_are_refused(crypto, body):
    with pytest.raises(MalformedCallback) as err:
        crypto.decrypt_post(MSG_SIGNATURE, TIMESTAMP, NONCE, body)
    assert err.value.reason == "decrypt_failed"


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE, b"<!DOCTYPE xml><xml><A>1</A></xml>",
                                 b'<!DOCTYPE x SYSTEM "http://example.com/x.dtd"><xml/>'])
def test_any_doctype_is_refused_before_entities_are_read(doc):
    with pytest.raises(MalformedCallback, match="DOCTYPE"):
        parse_xml(doc)


@pytest.mark.process
def test_crypto_module_is_imported_lazily():
    code = "import sys, kfcli.core.crypto, kfcli.callback; print('Crypto' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------- properties

receive_ids = st.text(max_size=40)
PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPS
@given(message=st.binary(max_size=2048), receive_id=receive_ids,
       prefix=st.binary(min_size=16, max_size=16))
def test_round_trip(message, receive_id, prefix):
    c = WeComCrypto(TOKEN, AES_KEY, receive_id)
    encrypt = c.encrypt(message, prefix=prefix)
    assert c.decrypt(encrypt) == message
    assert ref_decrypt(AES_KEY, encrypt)[:2] == (message, receive_id.encode())
    post = c.build_post(message, to_user_name="ww1")
    assert c.decrypt_post(post.msg_signature, post.timestamp, post.nonce, post.body) == message


def test_build_post_refuses_what_xml_cannot_carry(crypto):
    with pytest.raises(ValueError):
        crypto.build_post(b"x", to_user_name="a\x1fb")
    assert b"a]]]]><![CDATA[>b" in crypto.build_post(b"x", to_user_name="a]]>b").body


@PROPS
@given(token=st.text(min_size=1, max_size=32), timestamp=st.text(max_size=12),
       nonce=st.text(max_size=12), encrypt=st.text(max_size=64))
def test_signature_matches_independent_code(token, timestamp, nonce, encrypt):
    assert signature(token, timestamp, nonce, encrypt) == \
        ref_signature(token, timestamp, nonce, encrypt)


def _only_callback_errors(fn, *args):
    try:
        fn(*args)
    except CallbackError as exc:
        assert exc.reason in REASONS


b64_garbage = st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode())
block_garbage = st.integers(1, 20).flatmap(
    lambda n: st.binary(min_size=16 * n, max_size=16 * n)).map(
    lambda b: base64.b64encode(b).decode())
text_garbage = st.text(max_size=200)
xml_garbage = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: f"<xml><Encrypt>{t}</Encrypt></xml>".encode(
        "utf-8", "surrogatepass")),
    b64_garbage.map(lambda t: f"<xml><Encrypt><![CDATA[{t}]]></Encrypt></xml>".encode()),
    st.recursive(st.text(alphabet="abc<>/&;![]CDAT =\"'?-", max_size=20),
                 lambda inner: st.builds(lambda a, b: f"<{a[:3] or 'x'}>{b}</{a[:3] or 'x'}>",
                                         st.text(alphabet="xyzEncrypt", max_size=5), inner),
                 max_leaves=10).map(lambda t: t.encode()),
)


@PROPS
@given(encrypt=st.one_of(b64_garbage, block_garbage, text_garbage),
       sig=st.text(max_size=45), receive_id=receive_ids)
def test_garbage_to_decrypt_and_verify_raises_only_callback_errors(encrypt, sig, receive_id):
    c = WeComCrypto(TOKEN, AES_KEY, receive_id)
    _only_callback_errors(c.decrypt, encrypt)
    _only_callback_errors(c.verify, sig, TIMESTAMP, NONCE, encrypt)
    _only_callback_errors(c.verify_url, sig, TIMESTAMP, NONCE, encrypt)
    # with a valid signature, decryption itself is exercised on the garbage
    _only_callback_errors(c.verify_url, c.signature(TIMESTAMP, NONCE, encrypt), TIMESTAMP,
                          NONCE, encrypt)


@PROPS
@given(body=xml_garbage)
def test_garbage_bodies_raise_only_callback_errors(body):
    c = WeComCrypto(TOKEN, AES_KEY, RECEIVE_ID)
    _only_callback_errors(c.decrypt_post, MSG_SIGNATURE, TIMESTAMP, NONCE, body)
    _only_callback_errors(parse_xml, body)


@PROPS
@given(key=st.text(max_size=50))
def test_garbage_keys_raise_only_callback_errors(key):
    try:
        WeComCrypto(TOKEN, key, RECEIVE_ID)
    except CallbackError as exc:
        assert exc.reason == "invalid_aes_key"
