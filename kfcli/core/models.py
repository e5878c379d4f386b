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


@dataclass(frozen=True)
class Servicer(Model):
    """A servicer: a member (`userid`, `status` 0 receiving / 1 stopped, `stop_type`) or a
    department (`department_id`)."""

    userid: str | None = None
    department_id: int | None = None
    status: int | None = None
    stop_type: int | None = None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> Servicer:
        return cls(raw=doc, userid=doc.get("userid"), department_id=doc.get("department_id"),
                   status=doc.get("status"), stop_type=doc.get("stop_type"))


@dataclass(frozen=True)
class ServicerResult(Model):
    """One entry of servicer add/del `result_list`: its own errcode (0 = success)."""

    userid: str | None = None
    department_id: int | None = None
    errcode: int = 0
    errmsg: str = ""

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> ServicerResult:
        return cls(raw=doc, userid=doc.get("userid"), department_id=doc.get("department_id"),
                   errcode=int(doc.get("errcode", 0)), errmsg=str(doc.get("errmsg", "")))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)  # per-item errcode/errmsg are the point here

    @property
    def ok(self) -> bool:
        return self.errcode == 0


@dataclass(frozen=True)
class ServiceState(Model):
    service_state: int = 0
    servicer_userid: str = ""  # the API's name; one peer SDK reads "service_userid" by mistake

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> ServiceState:
        return cls(raw=_without_status(doc), service_state=int(doc.get("service_state", 0)),
                   servicer_userid=str(doc.get("servicer_userid", "")))


@dataclass(frozen=True)
class SyncPage(Model):
    next_cursor: str = ""
    has_more: bool = False
    msg_list: list[dict[str, Any]] = field(default_factory=list)
    #: Each message's JSON text as received, when asked for (`sync_msg(keep_text=True)`).
    msg_texts: list[str] | None = None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> SyncPage:
        texts = doc.pop("msg_texts", None)
        return cls(raw=_without_status(doc), next_cursor=str(doc.get("next_cursor", "")),
                   has_more=bool(doc.get("has_more", 0)), msg_list=list(doc.get("msg_list", [])),
                   msg_texts=texts)


@dataclass(frozen=True)
class CustomerBatch(Model):
    customer_list: list[dict[str, Any]] = field(default_factory=list)
    invalid_external_userid: list[str] = field(default_factory=list)

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> CustomerBatch:
        return cls(raw=_without_status(doc), customer_list=list(doc.get("customer_list", [])),
                   invalid_external_userid=list(doc.get("invalid_external_userid", [])))


@dataclass(frozen=True)
class SendResult:
    """The whole outcome of one send (`KfClient.send_message` / `send_message_on_event`).

    `msgid`: the message's id (the caller's, or the one kfcli generated).
    `already_delivered`: WeCom refused the msgid as a repeat, which proves a message with it
    had been accepted before; nothing was delivered twice. Either an earlier send with the
    same msgid did it, or, when `retried` is also true, possibly this call's own first
    attempt, whose answer was lost.
    `retried`: the request was sent again after a failure that may have reached WeCom (a
    dropped connection, a timeout, an HTTP 5xx). Retries after failures that cannot have
    reached it (refused connection, rejected token, rate limit) do not count.
    `recorded`: with a recorder (a store configured), whether the send is in the store
    (False: kept in the journal, recorded on the next run; `kfcli.core.sends`); None
    without one.
    """

    msgid: str
    already_delivered: bool = False
    retried: bool = False
    recorded: bool | None = None
