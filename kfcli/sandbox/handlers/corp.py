"""Corp information: GET /cgi-bin/kf/get_corp_qualification (kf-api.md §2.9).

``wechat_channels_binding`` is kept in ``meta`` (false until POST /sandbox/corp sets it).
"""

from __future__ import annotations

from typing import Any

from ..routing import API, Request

CHANNELS_BINDING_KEY = "wechat_channels_binding"


@API.route("GET", "/cgi-bin/kf/get_corp_qualification")
def get_corp_qualification(request: Request) -> dict[str, Any]:
    return {"wechat_channels_binding": request.db.meta(CHANNELS_BINDING_KEY) == "true"}
