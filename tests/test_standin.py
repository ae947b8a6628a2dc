"""The local app stand-in's server side and the demo records (no browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from connector.app import create_app, stop_app
from connector.crm.connection import SERVICE_USER_ID
from connector.dataverse_local import ADMIN_USER_ID
from connector.demo import (
    BEA_USER_ID,
    SALES_TOPIC_ID,
    SALES_WIDGET_ID,
    SAM_USER_ID,
    SUPPORT_WIDGET_ID,
    admin_client,
    seed_demo,
)
from connector.services import services_of
from connector.solution.paths import CUSTOMIZATIONS_XML
from connector.solution.reader import load_schema
from connector.web.standin import read_sitemap


def _app(tmp_path: Path, **overrides: str) -> Flask:
    return create_app({"data_dir": tmp_path, "log_level": "WARNING", **overrides}, start=False)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    app = _app(tmp_path)
    yield app
    stop_app(app)


def test_the_user_list_offers_the_people_but_not_the_service_account(app: Flask) -> None:
    users = app.test_client().get("/app/api/users").get_json()
    by_name = {user["name"]: user for user in users}
    assert set(by_name) == {"CRM Chat Admin", "Sam Sales", "Bea Support"}
    assert SERVICE_USER_ID not in {user["id"] for user in users}
    assert [role["name"] for role in by_name["Sam Sales"]["roles"]] == ["CRM Chat Agent"]


def test_a_session_token_is_accepted_by_the_embedded_dataverse_as_that_user(app: Flask) -> None:
    client = app.test_client()
    answer = client.post("/app/api/session", json={"user_id": BEA_USER_ID}).get_json()
    assert answer["user"]["name"] == "Bea Support"
    who = client.get(
        "/api/data/v9.2/WhoAmI", headers={"Authorization": f"Bearer {answer['token']}"}
    ).get_json()
    assert who["UserId"] == BEA_USER_ID


def test_signing_in_is_refused_from_another_machine_and_for_the_service_account(
    app: Flask,
) -> None:
    client = app.test_client()
    remote = client.post(
        "/app/api/session",
        json={"user_id": ADMIN_USER_ID},
        environ_base={"REMOTE_ADDR": "192.0.2.10"},
    )
    assert remote.status_code == 403
    assert "token" not in remote.get_json()
    listing = client.get("/app/api/users", environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert listing.status_code == 403
    assert "admin@crmchat.local" not in listing.get_data(as_text=True)
    assert client.post("/app/api/session", json={"user_id": SERVICE_USER_ID}).status_code == 404
    assert client.post("/app/api/session", json={"user_id": "nope"}).status_code == 400


def test_there_is_no_stand_in_or_demo_site_on_a_real_dataverse(tmp_path: Path) -> None:
    app = _app(
        tmp_path,
        dataverse_url="https://contoso.crm.dynamics.com",
        tenant_id="00000000-0000-0000-0000-000000000001",
        client_id="00000000-0000-0000-0000-000000000002",
        client_secret="not-used",
    )
    client = app.test_client()
    for path in ("/app/", "/app/main", "/app/api/users", "/demo/"):
        assert client.get(path).status_code == 404, path
    assert client.post("/app/api/session", json={"user_id": ADMIN_USER_ID}).status_code == 404
    stop_app(app)


def test_the_demo_pages_carry_their_widget(app: Flask) -> None:
    client = app.test_client()
    for path, widget_id in (
        ("/demo/", SALES_WIDGET_ID),
        ("/demo/pricing", SALES_WIDGET_ID),
        ("/demo/support", SUPPORT_WIDGET_ID),
    ):
        html = client.get(path).get_data(as_text=True)
        assert f'src="http://localhost/widget/loader.js" data-widget-id="{widget_id}"' in html


def test_the_shell_carries_the_sitemap_and_the_entity_sets(app: Flask) -> None:
    html = app.test_client().get("/app/main").get_data(as_text=True)
    assert '"sub_settings"' in html and '"/WebResources/crmchat_/settings/index.html"' in html
    assert '"crmchat_agent": {"set": "crmchat_agents"' in html


def test_seeding_again_keeps_what_a_person_changed(app: Flask) -> None:
    dataverse = services_of(app).standin
    client = admin_client(dataverse)
    client.update("crmchat_topics", SALES_TOPIC_ID, {"crmchat_name": "Presales"})
    seed_demo(dataverse)
    topics = {row["crmchat_name"] for row in client.list("crmchat_topics", select=["crmchat_name"])}
    assert topics == {"Presales", "Support"}
    sam_topics = client.list_related(
        "crmchat_agents", "0c5a1e50-7d1c-4e0a-9b51-5a1e50000201", "crmchat_agent_topic"
    )
    assert [row["crmchat_topicid"] for row in sam_topics] == [SALES_TOPIC_ID]


def test_no_demo_records_when_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMCHAT_DEMO", "0")
    app = _app(tmp_path)
    users = app.test_client().get("/app/api/users").get_json()
    stop_app(app)
    assert [user["name"] for user in users] == ["CRM Chat Admin"]
    assert SAM_USER_ID not in {user["id"] for user in users}


def test_a_web_resource_subarea_added_to_the_sitemap_shows_up(tmp_path: Path) -> None:
    text = CUSTOMIZATIONS_XML.read_text(encoding="utf-8")
    console = '<SubArea Id="sub_console" Url="$webresource:crmchat_/console/index.html" />'
    edited = tmp_path / "customizations.xml"
    edited.write_text(
        text.replace('<SubArea Id="sub_chats"', console + '<SubArea Id="sub_chats"', 1),
        encoding="utf-8",
    )
    areas = read_sitemap(load_schema(), edited)
    first = areas[0]["groups"][0]["subareas"][0]
    assert first["id"] == "sub_console"
    assert first["url"] == "/WebResources/crmchat_/console/index.html"


def test_the_sitemap_names_privileges_as_dataverse_does() -> None:
    subareas = {
        sub["id"]: sub
        for area in read_sitemap(load_schema())
        for group in area["groups"]
        for sub in group["subareas"]
    }
    # The chat is an activity: reading the Chats list takes prvReadActivity.
    assert subareas["sub_chats"]["readPrivilege"] == "prvReadActivity"
    assert subareas["sub_settings"]["privilege"]["name"] == "prvWritecrmchat_Settings"
