"""Settings and the secret word through the service API, signed in by the handshake.

The "browser" creates the handshake row through the embedded Dataverse's Web API with the
user's own token, exactly as `Xrm.WebApi.createRecord` does inside a model-driven app.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.app import create_app
from connector.crm import secret_word
from connector.crm.handshake import HandshakeRefused, redeem_handshake
from connector.services import services_of

SignIn = Callable[[str], dict[str, str]]
Handshake = Callable[[FlaskClient, Flask, str], dict[str, str]]  # the conftest fixtures


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setattr(secret_word, "WRONG_GUESS_BASE_DELAY_SECS", 0.0)
    return create_app({"data_dir": tmp_path, "secret_key": "test-secret-key"})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def users(app: Flask) -> dict[str, str]:
    """User ids by nickname: admin (System Administrator), crmadmin, agent, appuser, nobody."""
    from connector.dataverse_local import add_user, find_user, open_store
    from connector.solution.reader import load_schema

    schema = load_schema()
    role = {r.name: r.id for r in schema.roles}
    settings = services_of(app).settings
    store = open_store(settings.embedded_db, schema)
    try:
        ids = {"admin": find_user(store, "admin") or ""}
        for nick, (email, first, last, role_name) in {
            "crmadmin": ("ada@contoso.test", "Ada", "Admin", "CRM Chat Administrator"),
            "agent": ("sam@contoso.test", "Sam", "Support", "CRM Chat Agent"),
            "appuser": ("una@contoso.test", "Una", "User", "CRM Chat App User"),
        }.items():
            ids[nick] = add_user(
                store,
                domain_name=email,
                first_name=first,
                last_name=last,
                role_ids=[role[role_name]],
            )
    finally:
        store.close()
    return ids


@pytest.fixture
def sign_in(
    client: FlaskClient, app: Flask, users: dict[str, str], handshake_headers: Handshake
) -> SignIn:
    return lambda who: handshake_headers(client, app, users[who])


def test_an_admin_picks_the_region_and_it_is_stored_in_dataverse(
    client: FlaskClient, sign_in: SignIn
) -> None:
    headers = sign_in("crmadmin")
    before = client.get("/api/admin/settings", headers=headers).get_json()
    assert before["region"] == "centralus"
    # On the embedded default every region is this local service.
    assert {r["service_url"] for r in before["regions"]} == {"http://127.0.0.1:8600"}
    assert [r["name"] for r in before["regions"]] == [
        "Central US",
        "East Asia",
        "West Europe",
        "Southern Brazil",
    ]
    saved = client.put("/api/admin/settings/region", json={"region": "westeurope"}, headers=headers)
    assert saved.status_code == 200 and saved.get_json()["region"] == "westeurope"
    # A second admin (the built-in System Administrator) sees the same stored choice.
    again = client.get("/api/admin/settings", headers=sign_in("admin")).get_json()
    assert again["region"] == "westeurope"


def test_an_unknown_region_is_refused_and_nothing_changes(
    client: FlaskClient, sign_in: SignIn
) -> None:
    headers = sign_in("crmadmin")
    bad = client.put("/api/admin/settings/region", json={"region": "mars"}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "unknown_region"
    assert client.get("/api/admin/settings", headers=headers).get_json()["region"] == "centralus"


def test_support_checks_the_word_a_caller_gives(client: FlaskClient, sign_in: SignIn) -> None:
    admin, agent = sign_in("crmadmin"), sign_in("agent")
    set_word = client.put("/api/admin/secret-word", json={"word": "Blue Tiger"}, headers=admin)
    assert set_word.status_code == 200 and set_word.get_json()["has_secret_word"] is True
    check = "/api/support/secret-word/check"
    assert client.post(check, json={"word": "blue  tiger"}, headers=agent).get_json() == {
        "match": True
    }
    assert client.post(check, json={"word": "red tiger"}, headers=agent).get_json() == {
        "match": False
    }


def test_the_word_is_stored_only_as_a_salted_hash(
    client: FlaskClient, sign_in: SignIn, app: Flask
) -> None:
    client.put("/api/admin/secret-word", json={"word": "Blue Tiger"}, headers=sign_in("crmadmin"))
    settings_file = services_of(app).settings.embedded_db
    raw = b"".join(p.read_bytes() for p in settings_file.parent.glob("dataverse.sqlite*"))
    assert b"Blue Tiger" not in raw and b"blue tiger" not in raw
    assert b"scrypt$" in raw


def test_repeated_wrong_guesses_lock_checking(client: FlaskClient, sign_in: SignIn) -> None:
    client.put("/api/admin/secret-word", json={"word": "Blue Tiger"}, headers=sign_in("crmadmin"))
    agent = sign_in("agent")
    check = "/api/support/secret-word/check"
    for _ in range(secret_word.MAX_WRONG_GUESSES):
        assert client.post(check, json={"word": "guess"}, headers=agent).status_code == 200
    locked = client.post(check, json={"word": "Blue Tiger"}, headers=agent)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "match" not in locked.get_json()  # not even the right word is answered now


def test_a_weak_word_is_refused_with_a_clear_error(client: FlaskClient, sign_in: SignIn) -> None:
    answer = client.put("/api/admin/secret-word", json={"word": "abc"}, headers=sign_in("crmadmin"))
    assert answer.status_code == 400
    assert "4 to 128 characters" in answer.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status"),
    [
        ("agent", "get", "/api/admin/settings", None, 403),
        ("agent", "put", "/api/admin/secret-word", {"word": "new word"}, 403),
        ("appuser", "post", "/api/support/secret-word/check", {"word": "x x x x"}, 403),
        (None, "post", "/api/support/secret-word/check", {"word": "x x x x"}, 401),
        (None, "get", "/api/admin/settings", None, 401),
    ],
)
def test_roles_decide_who_may_do_what(
    client: FlaskClient,
    sign_in: SignIn,
    who: str | None,
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    headers = sign_in(who) if who else {}
    answer = getattr(client, method)(path, json=body, headers=headers)
    assert answer.status_code == status
    assert set(answer.get_json()["error"]) >= {"code", "message"}


def test_a_forged_token_is_refused(client: FlaskClient) -> None:
    answer = client.get("/api/admin/settings", headers={"Authorization": "Bearer abc.def.ghi"})
    assert answer.status_code == 401


def test_a_handshake_can_be_redeemed_only_once_and_only_with_its_nonce(
    client: FlaskClient, app: Flask, users: dict[str, str]
) -> None:
    from connector.dataverse_local import issue_token, open_store
    from connector.solution.reader import load_schema

    store = open_store(services_of(app).settings.embedded_db, load_schema())
    token = issue_token(store.signing_secret, user_id=users["agent"])
    store.close()
    auth = {"Authorization": f"Bearer {token}"}

    def new_handshake(nonce: str) -> str:
        made = client.post(
            "/api/data/v9.2/crmchat_handshakes", json={"crmchat_name": nonce}, headers=auth
        )
        return made.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

    nonce = secrets.token_urlsafe(24)
    row = new_handshake(nonce)
    wrong = client.post(
        "/api/auth/handshake", json={"handshake_id": row, "nonce": secrets.token_urlsafe(24)}
    )
    assert wrong.status_code == 401
    # The failed attempt consumed the row: a stolen id is worth one try at most.
    assert (
        client.post("/api/auth/handshake", json={"handshake_id": row, "nonce": nonce}).status_code
        == 401
    )

    row = new_handshake(nonce)
    first = client.post("/api/auth/handshake", json={"handshake_id": row, "nonce": nonce})
    assert first.status_code == 200
    assert first.get_json()["user"]["name"] == "Sam Support"
    assert (
        client.post("/api/auth/handshake", json={"handshake_id": row, "nonce": nonce}).status_code
        == 401
    )


def test_an_old_handshake_is_refused(
    app: Flask, client: FlaskClient, users: dict[str, str], make_handshake: Handshake
) -> None:
    made = make_handshake(client, app, users["agent"])
    later = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(HandshakeRefused, match="old"):
        redeem_handshake(services_of(app).dataverse, made["handshake_id"], made["nonce"], now=later)


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"handshake_id": "not-a-guid", "nonce": "a" * 24},
        {"handshake_id": "00000000-0000-0000-0000-000000000001", "nonce": "short"},
        {"handshake_id": "00000000-0000-0000-0000-000000000001", "nonce": "<script>" * 4},
        {"handshake_id": "00000000-0000-0000-0000-000000000001", "nonce": "a" * 24, "x": 1},
    ],
)
def test_bad_handshake_input_gets_a_clear_400(client: FlaskClient, body: Any) -> None:
    answer = client.post("/api/auth/handshake", json=body)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "invalid_input"


def test_the_settings_page_is_served_where_an_organization_serves_it(client: FlaskClient) -> None:
    with client.get("/WebResources/crmchat_/settings/index.html") as page:
        assert page.status_code == 200 and b"Secret word" in page.data
    # Only there, and only what the solution lists: no old address, no stand-in files,
    # nothing outside the folder.
    for path in (
        "/webresources/settings/index.html",
        "/WebResources/settings/index.html",
        "/WebResources/crmchat_/standin/shell.js",
        "/WebResources/crmchat_/../pyproject.toml",
        "/WebResources/crmchat_/settings/missing.js",
    ):
        with client.get(path) as outside:
            assert outside.status_code == 404, path


def test_parallel_wrong_guesses_are_limited_atomically(
    app: Flask, client: FlaskClient, sign_in: SignIn
) -> None:
    client.put("/api/admin/secret-word", json={"word": "Blue Tiger"}, headers=sign_in("crmadmin"))
    agent = sign_in("agent")

    def guess(n: int) -> int:
        answer = app.test_client().post(
            "/api/support/secret-word/check", json={"word": f"guess {n}"}, headers=agent
        )
        return answer.status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(guess, range(40)))
    # Each guess took its place before the word was checked: only the window's places
    # were checked at all, every other guess was refused unchecked.
    assert statuses.count(200) == secret_word.MAX_WRONG_GUESSES
    assert statuses.count(429) == 40 - secret_word.MAX_WRONG_GUESSES


def test_one_persons_wrong_guesses_do_not_lock_out_the_others(
    client: FlaskClient, sign_in: SignIn
) -> None:
    client.put("/api/admin/secret-word", json={"word": "Blue Tiger"}, headers=sign_in("crmadmin"))
    check = "/api/support/secret-word/check"
    guesser = sign_in("agent")
    for _ in range(secret_word.MAX_WRONG_GUESSES):
        client.post(check, json={"word": "guess"}, headers=guesser)
    assert client.post(check, json={"word": "Blue Tiger"}, headers=guesser).status_code == 429

    colleague = client.post(check, json={"word": "Blue Tiger"}, headers=sign_in("crmadmin"))
    assert colleague.status_code == 200 and colleague.get_json() == {"match": True}


@pytest.mark.parametrize("change", ["disable", "remove_role"])
def test_a_disabled_or_demoted_user_loses_access_within_a_minute(
    app: Flask,
    client: FlaskClient,
    sign_in: SignIn,
    users: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(services_of(app).standing, "_clock", lambda: now[0])
    agent = sign_in("agent")
    check = "/api/support/secret-word/check"
    assert client.post(check, json={"word": "some word"}, headers=agent).status_code == 200

    from connector.dataverse_local import ADMIN_USER_ID, issue_token

    store = services_of(app).standin.store
    admin = {"Authorization": f"Bearer {issue_token(store.signing_secret, user_id=ADMIN_USER_ID)}"}
    user = f"/api/data/v9.2/systemusers({users['agent']})"
    if change == "disable":
        answer = client.patch(user, json={"isdisabled": True}, headers=admin)
    else:
        role = client.get(f"{user}/systemuserroles_association", headers=admin).get_json()
        role_id = role["value"][0]["roleid"]
        answer = client.delete(f"{user}/systemuserroles_association({role_id})/$ref", headers=admin)
    assert answer.status_code == 204

    now[0] += 61  # the service token itself is still good for hours
    refused = client.post(check, json={"word": "some word"}, headers=agent)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
