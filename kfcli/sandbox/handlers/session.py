"""Session state: /cgi-bin/kf/service_state/get and /trans (kf-api.md §1.5, §2.4).

The transition table and the event-code lifetimes are in `rules`; what a session *is* (its
48 h life, who counts as a servicer) is in `sessions`.
"""

from __future__ import annotations

from typing import Any

from .. import rules, sessions
from ..errors import WeComError
from ..params import optional_str
from ..routing import API, Request
from .common import account_from_body, customer_from_body


@API.route("POST", "/cgi-bin/kf/service_state/get")
def service_state_get(request: Request) -> dict[str, Any]:
    with request.db.read() as db:
        open_kfid = account_from_body(request, db)["open_kfid"]
        external_userid = customer_from_body(request, db)
        row = sessions.get(db, open_kfid, external_userid)
    state = sessions.effective_state(row, request.now)
    # servicer_userid is only meaningful in state 3 and is "" otherwise (§2.4).
    servicer = row["servicer_userid"] if row is not None and state == 3 else ""
    return {"service_state": state, "servicer_userid": servicer}


@API.route("POST", "/cgi-bin/kf/service_state/trans")
def service_state_trans(request: Request) -> dict[str, Any]:
    target = request.body.get("service_state")
    if isinstance(target, bool) or not isinstance(target, int) or target not in range(5):
        raise WeComError(40058, "field service_state must be an integer 0..4")
    servicer = optional_str(request.body, "servicer_userid")
    if target == 3 and servicer is None:
        raise WeComError(40058, "servicer_userid is required when service_state is 3")
    now = request.now_int
    with request.db.write() as db:
        open_kfid = account_from_body(request, db)["open_kfid"]
        external_userid = customer_from_body(request, db)
        row = sessions.get(db, open_kfid, external_userid)
        state = sessions.effective_state(row, now)
        current_servicer = row["servicer_userid"] if row is not None else ""
        rules.check_transition(state, target, current_servicer, servicer)
        if target == 3:
            assert servicer is not None
            sessions.require_receiving_servicer(db, open_kfid, servicer)
        sessions.set_state(db, open_kfid, external_userid, target, servicer or "")
        kind = rules.CODE_FOR_STATE.get(target)
        if kind is None:  # -> 1: the bot keeps the session; no code (§2.4)
            return {}
        code = sessions.issue_code(db, kind, open_kfid, external_userid, target, now)
    return {"msg_code": code}
