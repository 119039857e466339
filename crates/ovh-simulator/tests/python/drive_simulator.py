"""Drives the simulator with OVHcloud's own Python client (`pip install ovh`).

Usage: drive_simulator.py BASE_URL ORGANIZATION
BASE_URL is the simulator's API root, e.g. http://127.0.0.1:8089/1.0. The simulator must be
seeded with the credentials below (tests/python_client.rs does it). Exits non-zero, with the
failed check on stderr, when the simulator does not behave as OVH does.
"""
import os
import sys
import time

import ovh
import ovh.client
import ovh.exceptions

BASE_URL, ORG = sys.argv[1], sys.argv[2]
ROOT = BASE_URL.rsplit("/1.0", 1)[0]
P = f"/email/exchange/{ORG}/service/{ORG}"

# python-ovh only knows named endpoints: register the simulator as one more.
ovh.client.ENDPOINTS["simulator"] = BASE_URL
ovh.client.OAUTH2_TOKEN_URLS["simulator"] = ROOT + "/auth/oauth2/token"
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the simulator speaks plain HTTP on loopback


def client(ak="ak", as_="as", ck="ck"):
    return ovh.Client(endpoint="simulator", application_key=ak, application_secret=as_, consumer_key=ck)


def expect_error(kind, fn, status, message, error_code=None, prefix=False):
    try:
        fn()
    except kind as e:
        got_message = e.args[0] if e.args else ""
        assert e.response.status_code == status, f"{kind.__name__}: HTTP {e.response.status_code}, wanted {status}"
        ok = got_message.startswith(message) if prefix else got_message == message
        assert ok, f"{kind.__name__}: message {got_message!r}, wanted {message!r}"
        assert e.query_id, f"{kind.__name__}: no X-Ovh-QueryID on the error"
        if error_code:
            assert e.response.json().get("errorCode") == error_code, e.response.json()
        return e
    raise AssertionError(f"expected {kind.__name__} ({status} {message!r})")


def wait_task(c, task_id):
    deadline = time.time() + 20
    while time.time() < deadline:
        t = c.get(f"{P}/task/{task_id}")
        if t["status"] in ("done", "error", "cancelled"):
            return t
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} never finished")


def main():
    c = client()
    # Signed calls, the guide's steps.
    assert isinstance(c.get("/auth/time", _need_auth=False), int)
    assert c.get(f"{P}/sendConnector") == []
    task = c.post(
        f"{P}/sendConnector",
        displayName="testconnector",
        smartHost="smtp-relay.example.com",
        port=587,
        requireTLS=True,
        maxSendSize=100,
        smartHostAuthMechanism="basicAuthRequireTLS",
        user="relay-user",
        password="relay-password-1",
    )
    assert task["function"] == "addSendConnector" and task["status"] == "todo", task
    assert wait_task(c, task["id"])["status"] == "done"
    ids = c.get(f"{P}/sendConnector")
    assert len(ids) == 1, ids
    conn = c.get(f"{P}/sendConnector/{ids[0]}")
    assert conn["displayName"] == "testconnector" and conn["state"] == "ok", conn
    assert conn["taskPendingId"] == 0 and "password" not in conn and "user" not in conn, conn
    assert c.put(f"{P}/sendConnector/{ids[0]}", port=2525) is None
    deadline = time.time() + 20
    while c.get(f"{P}/sendConnector/{ids[0]}")["port"] != 2525:
        assert time.time() < deadline, "port never changed"
        time.sleep(0.1)
    auth_task = c.post(f"{P}/sendConnector/{ids[0]}/changeAuthentication", smartHostAuthMechanism="basicAuth", user="u2", password="p2")
    assert "id" in auth_task and auth_task["status"] in ("todo", "doing"), auth_task
    wait_task(c, auth_task["id"])
    # The guide's account PUT (with the @ unescaped, as python-ovh sends it) and domain default.
    assert c.put(f"{P}/account/newsletter@mydomain.ovh", sendConnectorId=ids[0]) is None
    deadline = time.time() + 20
    while c.get(f"{P}/account/newsletter@mydomain.ovh")["sendConnectorId"] != ids[0]:
        assert time.time() < deadline, "account never attached"
        time.sleep(0.1)
    assert c.put(f"{P}/domain/mydomain.ovh/changeDefaultSBR", sendConnectorIdDefault=ids[0]) is None

    # Errors, with OVH's status codes, texts and error codes (reference §6 and §10.7).
    expect_error(ovh.exceptions.BadParametersError, lambda: client(as_="wrong").get(f"{P}/sendConnector"), 400, "Invalid signature", "INVALID_SIGNATURE")
    expect_error(ovh.exceptions.InvalidCredential, lambda: client(ck="unknown-ck").get(f"{P}/sendConnector"), 403, "This credential is not valid", "INVALID_CREDENTIAL")
    expect_error(ovh.exceptions.InvalidKey, lambda: client(ak="unknown-ak").get(f"{P}/sendConnector"), 403, "This application key is invalid", "INVALID_KEY")
    expect_error(
        ovh.exceptions.NotGrantedCall,
        lambda: client(ak="ak-ro", as_="as-ro", ck="ck-ro").put(f"{P}/sendConnector/{ids[0]}", port=25),
        403,
        "This call has not been granted",
        "NOT_GRANTED_CALL",
    )
    expect_error(ovh.exceptions.ResourceNotFoundError, lambda: c.get("/email/exchange/nope/service/nope/sendConnector"), 404, "This service does not exist")
    expect_error(ovh.exceptions.ResourceNotFoundError, lambda: c.get(f"{P}/sendConnector/999999"), 404, "The requested object (id = 999999) does not exist")
    e = expect_error(
        ovh.exceptions.BadParametersError,
        lambda: c.put(f"{P}/sendConnector/{ids[0]}", port=25, colour="blue"),
        400,
        "Received not described parameters: (colour) while calling ",
        prefix=True,
    )
    assert e.response.json().get("class") == "Client::BadRequest", e.response.json()
    # Read-only still works for what it was granted.
    assert client(ak="ak-ro", as_="as-ro", ck="ck-ro").get(f"{P}/sendConnector") == ids

    # OAuth2 service account: bearer tokens instead of signatures.
    o = ovh.Client(endpoint="simulator", client_id="sa-client", client_secret="sa-secret")
    assert o.get(f"{P}/sendConnector") == ids
    bad = ovh.Client(endpoint="simulator", client_id="sa-client", client_secret="wrong")
    try:
        bad.get(f"{P}/sendConnector")
        raise AssertionError("a wrong client secret was accepted")
    except ovh.exceptions.OAuth2FailureError:
        pass
    print("python-ovh: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"check failed: {e}", file=sys.stderr)
        sys.exit(1)
