"""`kfcli corp`: corp-level facts that limit KF (reception quota)."""

from __future__ import annotations

from kfcli.cli.context import new_app, state, with_output

app = new_app("Corp qualification.")


@app.command("qualification", epilog="""Example:

  kfcli corp qualification -o json

Reception quota: unverified corp: 100 customers in total; verified corp without a bound
WeChat Channels account: 10,000; verified with Channels bound: unlimited (WeCom's page:
https://developer.work.weixin.qq.com/document/path/95148).""")
@with_output
def qualification() -> None:
    """Whether a WeChat Channels account is bound, and what that means for the quota."""
    doc = state().client().corp_qualification()
    bound = bool(doc.get("wechat_channels_binding"))
    out = state().out
    if out.machine:
        out.obj(doc)
        return
    out.obj({"wechat_channels_binding": bound}, ["wechat_channels_binding"])
    if bound:
        out.info("WeChat Channels bound: no reception limit once the corp is verified")
    else:
        out.info("no WeChat Channels account bound: at most 10,000 customers if the corp is "
                 "verified, 100 if not; bind one to lift the limit")
