from kfcli.core.redact import mask, redact, register_secret


def test_mask_keeps_only_last_four():
    assert mask("abcdefghijklmnop") == "****mnop"
    assert mask("short") == "****"
    assert mask("") == "" and mask(None) == ""


def test_redacts_query_parameters_by_name():
    url = "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=S3CRETVALUE12345"
    assert "S3CRETVALUE12345" not in redact(url)
    assert "corpsecret=****2345" in redact(url)
    text = "POST /cgi-bin/kf/account/list?access_token=TOKENTOKENTOKEN999 failed"
    assert "TOKENTOKENTOKEN999" not in redact(text)


def test_redacts_json_fields_and_registered_values_anywhere():
    assert "tok-value-123456" not in redact('{"access_token": "tok-value-123456"}')
    register_secret("registered-secret-xyz-0001")
    assert "registered-secret-xyz-0001" not in redact("boom registered-secret-xyz-0001 boom")
    assert redact("nothing secret here") == "nothing secret here"


def test_redacts_the_password_of_any_url():
    text = "cannot connect to postgresql://kfcli:supersecretpw@db.internal:5432/kfcli (refused)"
    assert redact(text) == ("cannot connect to postgresql://kfcli:****@db.internal:5432/kfcli "
                            "(refused)")
    # an unencoded @ in the password: masked whole, up to the last @ before the host
    assert redact("postgres://u:p@ss@w0rd@h/db") == "postgres://u:****@h/db"
    assert "supersecretpw" not in redact("dsn: host=db password=supersecretpw dbname=kfcli")
    # no password, or an @ in the path: unchanged
    for plain in ("postgresql://kfcli@db.internal:5432/kfcli", "http://127.0.0.1:8765/a@b",
                  "sqlite:////home/me/.local/state/kfcli/store.db", "user:pw@host"):
        assert redact(plain) == plain
