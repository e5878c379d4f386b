"""Typed results of the KF API.

Each model has the fields kfcli relies on as attributes and keeps the API's own object in
`raw`, so fields WeCom adds later still reach `-o json` unchanged (`to_dict()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _without_status(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("errcode", "errmsg")}


@dataclass(frozen=True)
class Model:
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return _without_status(self.raw)


@dataclass(frozen=True)
class Account(Model):
    open_kfid: str = ""
    name: str = ""
    avatar: str = ""
    manage_privilege: bool | None = None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> Account:
        return cls(
            raw=doc,
            open_kfid=doc.get("open_kfid", ""),
            name=doc.get("name", ""),
            avatar=doc.get("avatar", ""),
            manage_privilege=doc.get("manage_privilege"),
        )


@dataclass(frozen=True)
class MediaUpload(Model):
    type: str = ""
    media_id: str = ""
    created_at: str = ""

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> MediaUpload:
        return cls(
            raw=_without_status(doc),
            type=doc.get("type", ""),
            media_id=doc.get("media_id", ""),
            created_at=str(doc.get("created_at", "")),
        )
