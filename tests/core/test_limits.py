import pytest

from kfcli.core import limits
from kfcli.core.errors import ValidationError


def test_name_counts_characters_not_bytes():
    assert limits.check_account_name("客" * 16)
    with pytest.raises(ValidationError, match="17 characters, the limit is 16"):
        limits.check_account_name("a" * 17)
    with pytest.raises(ValidationError, match="must not be empty"):
        limits.check_account_name("")


def test_scene_rules():
    assert limits.check_scene("spring_sale-2") == "spring_sale-2"
    with pytest.raises(ValidationError, match=r"\[0-9a-zA-Z_-\]"):
        limits.check_scene("bad scene")
    with pytest.raises(ValidationError, match="33 bytes.*32 bytes"):
        limits.check_scene("a" * 33)
    with pytest.raises(ValidationError, match="needs a non-empty --scene"):
        limits.check_scene_param("x", None)
    with pytest.raises(ValidationError, match="129 bytes"):
        limits.check_scene_param("a" * 129, "s")


def test_media_checks(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    assert limits.check_media_file(png) == ("image", 108)
    tiny = tmp_path / "t.txt"
    tiny.write_bytes(b"12345")
    with pytest.raises(ValidationError, match="5 bytes or less"):
        limits.check_media_file(tiny)
    with pytest.raises(ValidationError, match="not a JPG or PNG"):
        limits.check_media_file(tmp_path / "t.txt", "image")
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.truncate(10 * 1024 * 1024 + 1)
    with pytest.raises(ValidationError, match="limit for image is 10 MB"):
        limits.check_media_file(big, "image")
    with pytest.raises(ValidationError, match="cannot read"):
        limits.check_media_file(tmp_path / "missing.png")
