import json


def test_get_with_invalid_ids_and_context(kf, sandbox):
    open_kfid = sandbox.account()
    entered = sandbox.post("/sandbox/enter_session", {"open_kfid": open_kfid, "scene": "ad",
                                                      "scene_param": "p=1"})
    customer = entered["external_userid"]
    r = kf("customer", "get", customer, "wmUnknown", "--with-context", "-o", "json")
    assert r.code == 4
    doc = r.json()
    assert [c["external_userid"] for c in doc["customer_list"]] == [customer]
    assert doc["customer_list"][0]["enter_session_context"]["scene_param"] == "p=1"
    assert doc["invalid_external_userid"] == ["wmUnknown"]
    assert "not found" in json.loads(r.err)["error"]["message"]
    r = kf("customer", "get", customer)
    assert r.code == 0 and r.out.startswith(customer + "\t")


def test_batches_of_100(kf, sandbox):
    open_kfid = sandbox.account()
    customers = [sandbox.say(open_kfid, f"hi {i}") for i in range(3)]
    fake = [f"wmFake{i:04d}" for i in range(205)]
    r = kf("customer", "get", "--from", "-", "-o", "json", input="\n".join(customers + fake))
    assert r.code == 4
    assert len(r.json()["customer_list"]) == 3
    assert len(r.json()["invalid_external_userid"]) == 205
    assert sandbox.stats()["/cgi-bin/kf/customer/batchget"] == 3
    assert kf("customer", "get").code == 2
