"""kfcli.core.records.record behaves as @dataclass(frozen=True) where kfcli uses it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kfcli.core.models import Account, SendResult, SyncPage
from kfcli.core.records import FrozenInstanceError, field, record


@record
class Base:
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@record
class Rec(Base):
    a: str = ""
    b: int | None = None
    items: list[int] = field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class DBase:
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class DRec(DBase):
    a: str = ""
    b: int | None = None
    items: list[int] = dataclasses.field(default_factory=list)


@pytest.mark.parametrize("args, kwargs", [
    ((), {}), (({"x": 1}, "a", 2), {}), ((), {"a": "x", "items": [1]}),
    (({"k": 1},), {"b": 3}), ((), {"raw": {"y": 2}, "a": "z"}),
])
def test_construction_repr_equality_and_hash_match_a_frozen_dataclass(args, kwargs):
    r, d = Rec(*args, **kwargs), DRec(*args, **kwargs)
    assert repr(r).replace("Rec(", "X(") == repr(d).replace("DRec(", "X(")
    assert (r.raw, r.a, r.b, r.items) == (d.raw, d.a, d.b, d.items)
    same = Rec(*args, **kwargs)
    assert r == same
    assert not r != same  # noqa: SIM202 - __ne__ from __eq__
    assert _hash(r) == _hash(d)  # the same value, or unhashable (a list field) in both
    assert Rec(raw={"other": 1}, a=r.a, b=r.b, items=r.items) == r  # raw: compare=False
    assert Rec(a=r.a + "!") != r
    assert r != DRec(*args, **kwargs) and r != (r.raw, r.a)


def _hash(obj: object) -> int | str:
    try:
        return hash(obj)
    except TypeError:
        return "unhashable"


def test_defaults_from_factories_are_new_each_time_and_fields_are_frozen():
    one, two = Rec(), Rec()
    assert one.items is not two.items and one.raw is not two.raw
    with pytest.raises(FrozenInstanceError):
        one.a = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del one.a  # type: ignore[misc]
    assert Rec.__match_args__ == ("raw", "a", "b", "items")
    assert Rec.a == "" and "items" not in Rec.__dict__  # as dataclasses leaves the class


def test_arguments_are_checked_as_a_dataclass_checks_them():
    with pytest.raises(TypeError, match="positional"):
        Rec({}, "a", 1, [], "extra")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        Rec({}, "a", a="b")  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword"):
        Rec(c=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing required argument: 'msgid'"):
        SendResult()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="without a default follows"):
        @record
        class Wrong:
            a: int = 0
            b: int


def test_the_library_models_keep_their_behaviour():
    account = Account.from_api({"open_kfid": "wk1", "name": "客服", "errcode": 0})
    assert account == Account(open_kfid="wk1", name="客服")
    assert account.to_dict() == {"open_kfid": "wk1", "name": "客服"}
    assert "raw" not in repr(account) and "wk1" in repr(account)
    assert SendResult("m1") == SendResult(msgid="m1", already_delivered=False)
    page = SyncPage.from_api({"next_cursor": "c", "has_more": 1, "msg_list": [{"msgid": "x"}]})
    assert (page.next_cursor, page.has_more, page.msg_list) == ("c", True, [{"msgid": "x"}])
