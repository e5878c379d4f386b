from kfcli.core.errors import (
    ERRCODES,
    ApiError,
    AuthError,
    NotFoundError,
    RateLimitError,
    TokenError,
    api_error,
)


def test_table_maps_codes_to_exit_codes():
    assert api_error(95004, "x").exit_code == 4
    assert api_error(40001, "x", gettoken=True).exit_code == 3
    assert isinstance(api_error(40001, "x"), TokenError)
    assert isinstance(api_error(48002, "x"), AuthError)
    assert isinstance(api_error(45009, "x"), RateLimitError) and api_error(45009, "").exit_code == 7
    assert isinstance(api_error(40096, "x"), NotFoundError)


def test_unknown_codes_keep_raw_errcode_and_errmsg():
    err = api_error(123456, "something new")
    assert type(err) is ApiError and err.exit_code == 1
    assert err.to_dict()["errcode"] == 123456 and "something new" in err.message


def test_every_entry_has_both_languages():
    for code, info in ERRCODES.items():
        assert info.en and info.zh, code
