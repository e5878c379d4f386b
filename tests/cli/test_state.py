"""`kfcli state get|trans` and the session state machine."""


def test_get_and_the_transitions(kf, sandbox):
    open_kfid = sandbox.account()
    customer = sandbox.say(open_kfid)
    kf("servicer", "add", open_kfid, "user001", "user002")
    r = kf("state", "get", open_kfid, customer)
    assert r.code == 0 and r.out.split("\t")[:2] == ["0", "new"]
    r = kf("state", "trans", open_kfid, customer, "pool")
    assert r.code == 0, r.err
    assert r.out.strip() and "48 h" in r.err
    r = kf("state", "trans", open_kfid, customer, "servicer", "--servicer", "user001")
    assert r.code == 0, r.err
    doc = kf("state", "get", open_kfid, customer, "-o", "json").json()
    assert doc == {"service_state": 3, "servicer_userid": "user001"}
    assert kf("state", "trans", open_kfid, customer, "3", "--servicer", "user002").code == 0
    r = kf("state", "trans", open_kfid, customer, "new")
    assert r.code == 1 and "95016" in r.err and "kfcli state get" in r.err
    assert sandbox.state(open_kfid, customer) == 3


def test_servicer_rules(kf, sandbox):
    open_kfid = sandbox.account()
    customer = sandbox.say(open_kfid)
    r = kf("state", "trans", open_kfid, customer, "servicer")
    assert r.code == 2 and "--servicer" in r.err
    r = kf("state", "trans", open_kfid, customer, "servicer", "--servicer", "user003")
    assert r.code == 1 and "95014" in r.err
    r = kf("state", "trans", open_kfid, customer, "sleeping")
    assert r.code == 2 and "new (0)" in r.err
    r = kf("state", "trans", open_kfid, customer, "7")
    assert r.code == 2


def test_unknown_ids(kf, sandbox):
    open_kfid = sandbox.account()
    assert kf("state", "get", "wkNoSuchAccount", "wmX").code == 4
    assert kf("state", "get", open_kfid, "wmNoSuchCustomer").code == 4
