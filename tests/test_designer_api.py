"""The widget designer's API: admins read and save a widget; the widget's config follows.

Signs in by the handshake as a browser does (the handshake row is created through the
embedded Dataverse's Web API with the user's own token), on a service seeded with the
demo records (Sales and Support widgets, one topic each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connector.app import create_app, stop_app
from connector.dataverse_local import ADMIN_USER_ID
from connector.demo import (
    SALES_TOPIC_ID,
    SALES_WIDGET_ID,
    SAM_AGENT_ID,
    SAM_USER_ID,
    SUPPORT_TOPIC_ID,
    SUPPORT_WIDGET_ID,
)
from connector.services import services_of

Headers = dict[str, str]
SignIn = Callable[[str], Headers]
Handshake = Callable[[FlaskClient, Flask, str], Headers]  # the conftest fixtures
WIDGET = f"/api/admin/widgets/{SALES_WIDGET_ID}"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "data_dir": tmp_path,
            "secret_key": "test-secret-key",
            "demo": True,
            "log_level": "WARNING",
        },
        start=False,
    )
    yield app
    stop_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sign_in(client: FlaskClient, app: Flask, handshake_headers: Handshake) -> SignIn:
    """`sign_in("admin")` or `sign_in("agent")`: bearer headers for the service API."""
    return lambda who: handshake_headers(
        client, app, ADMIN_USER_ID if who == "admin" else SAM_USER_ID
    )


def _config(client: FlaskClient, widget_id: str = SALES_WIDGET_ID) -> dict[str, Any]:
    answer = client.get(f"/api/widgets/{widget_id}/config")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.get_json()
    return body


def test_an_admin_reads_the_widget_with_every_option_and_the_script_to_paste(
    client: FlaskClient, sign_in: SignIn
) -> None:
    admin = sign_in("admin")
    listed = client.get("/api/admin/widgets", headers=admin).get_json()
    names = [w["name"] for w in listed]
    assert names == sorted(names, key=str.casefold)
    assert {"id": SALES_WIDGET_ID, "name": "Sales chat", "enabled": True} in listed
    assert {"id": SUPPORT_WIDGET_ID, "name": "Support chat", "enabled": True} in listed

    widget = client.get(WIDGET, headers=admin).get_json()
    assert widget["name"] == "Sales chat"
    assert widget["design"]["title"] == "Questions before you buy?"
    # Options the stored JSON never mentioned come with their defaults.
    assert widget["design"]["colors"]["primary"] == "#0f6cbd"
    assert widget["design"]["confirm_end"] == {
        "message": "End this chat?",
        "yes": "Yes",
        "no": "No",
    }
    assert widget["topic_ids"] == [SALES_TOPIC_ID]
    assert {t["name"] for t in widget["all_topics"]} == {"Sales", "Support"}
    assert widget["script"] == (
        f'<script src="http://localhost/widget/loader.js" '
        f'data-widget-id="{SALES_WIDGET_ID}" async></script>'
    )


def test_agents_may_not_read_or_save_widgets(client: FlaskClient, sign_in: SignIn) -> None:
    agent = sign_in("agent")
    assert client.get("/api/admin/widgets", headers=agent).status_code == 403
    assert client.get(WIDGET, headers=agent).status_code == 403
    saved = client.put(WIDGET, json={"design": {"title": "Hacked"}}, headers=agent)
    assert saved.status_code == 403
    assert client.get(WIDGET).status_code == 401
    assert _config(client)["design"]["title"] == "Questions before you buy?"


def test_a_saved_design_is_read_back_and_published_at_once(
    client: FlaskClient, sign_in: SignIn
) -> None:
    admin = sign_in("admin")
    # The config is cached in the service's Directory: read it once so a stale copy exists.
    assert _config(client)["design"]["title"] == "Questions before you buy?"

    design = client.get(WIDGET, headers=admin).get_json()["design"]
    design["title"] = "Talk to sales"
    design["colors"]["primary"] = "#AA3300"
    design["end"] = {"type": "link", "link": "https://shop.example/thanks"}
    design["initial_state"] = "open"
    design["delay_ms"] = 5000
    design["fields"] = [{"name": "email", "label": "Your email", "type": "email", "required": True}]
    design["display_name_template"] = "{email}"
    saved = client.put(WIDGET, json={"design": design, "name": "Sales (shop)"}, headers=admin)
    assert saved.status_code == 200, saved.get_data(as_text=True)

    again = client.get(WIDGET, headers=admin).get_json()
    assert again["name"] == "Sales (shop)"
    assert again["design"]["title"] == "Talk to sales"
    assert again["design"]["colors"]["primary"] == "#aa3300"  # stored lower case
    assert again["design"]["end"]["link"] == "https://shop.example/thanks"
    assert [f["label"] for f in again["design"]["fields"]] == ["Your email"]

    published = _config(client)["design"]
    assert published["title"] == "Talk to sales"
    assert published["colors"]["primary"] == "#aa3300"
    assert (published["initial_state"], published["delay_ms"]) == ("open", 5000)


def test_a_bad_colour_is_refused_naming_the_option_and_nothing_is_saved(
    client: FlaskClient, sign_in: SignIn
) -> None:
    admin = sign_in("admin")
    design = client.get(WIDGET, headers=admin).get_json()["design"]
    design["title"] = "Never saved"
    design["colors"]["agent_bubble"] = "red"
    bad = client.put(WIDGET, json={"design": design}, headers=admin)
    assert bad.status_code == 400
    error = bad.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert [f["field"] for f in error["fields"]] == ["design.colors.agent_bubble"]
    assert "#rgb or #rrggbb" in error["message"]

    unsafe = client.put(
        WIDGET,
        json={"design": {"end": {"type": "link", "link": "javascript:alert(1)"}}},
        headers=admin,
    )
    assert unsafe.status_code == 400
    assert unsafe.get_json()["error"]["fields"][0]["field"] == "design.end.link"
    assert client.get(WIDGET, headers=admin).get_json()["design"]["title"] == (
        "Questions before you buy?"
    )


def test_the_widgets_topics_are_set_and_routing_follows(
    client: FlaskClient, sign_in: SignIn, app: Flask
) -> None:
    admin = sign_in("admin")
    both = client.put(WIDGET, json={"topic_ids": [SALES_TOPIC_ID, SUPPORT_TOPIC_ID]}, headers=admin)
    assert both.status_code == 200
    assert both.get_json()["topic_ids"] == sorted([SALES_TOPIC_ID, SUPPORT_TOPIC_ID])

    only_support = client.put(WIDGET, json={"topic_ids": [SUPPORT_TOPIC_ID]}, headers=admin)
    assert only_support.get_json()["topic_ids"] == [SUPPORT_TOPIC_ID]
    widget = services_of(app).directory.widget(SALES_WIDGET_ID)
    assert widget.topic_ids == frozenset({SUPPORT_TOPIC_ID})

    related = client.get(f"/api/admin/topics/{SUPPORT_TOPIC_ID}/related", headers=admin).get_json()
    assert {"id": SALES_WIDGET_ID, "name": "Sales chat"} in related["widgets"]
    assert {"id": SUPPORT_WIDGET_ID, "name": "Support chat"} in related["widgets"]
    assert [a["name"] for a in related["agents"]] == ["Bea"]
    sales = client.get(f"/api/admin/topics/{SALES_TOPIC_ID}/related", headers=admin).get_json()
    assert SALES_WIDGET_ID not in {w["id"] for w in sales["widgets"]}

    unknown = client.put(
        WIDGET, json={"topic_ids": ["0c5a1e50-7d1c-4e0a-9b51-5a1e50009999"]}, headers=admin
    )
    assert unknown.status_code == 400
    assert unknown.get_json()["error"]["fields"][0]["field"] == "topic_ids.0"


def test_switching_a_widget_off_reaches_its_config(client: FlaskClient, sign_in: SignIn) -> None:
    admin = sign_in("admin")
    assert _config(client, SUPPORT_WIDGET_ID)["enabled"] is True
    off = client.put(
        f"/api/admin/widgets/{SUPPORT_WIDGET_ID}", json={"enabled": False}, headers=admin
    )
    assert off.status_code == 200 and off.get_json()["enabled"] is False
    assert _config(client, SUPPORT_WIDGET_ID)["enabled"] is False


def test_an_unknown_widget_is_not_found(client: FlaskClient, sign_in: SignIn) -> None:
    admin = sign_in("admin")
    missing = "/api/admin/widgets/0c5a1e50-7d1c-4e0a-9b51-5a1e50009999"
    assert client.get(missing, headers=admin).status_code == 404
    assert client.put(missing, json={"name": "x"}, headers=admin).status_code == 404
    assert client.get("/api/admin/widgets/not-a-guid", headers=admin).status_code == 404


def test_an_agents_record_lists_their_topics_and_the_widgets_they_answer(
    client: FlaskClient, sign_in: SignIn
) -> None:
    admin = sign_in("admin")
    url = f"/api/admin/agents/{SAM_AGENT_ID}/related"
    before = client.get(url, headers=admin).get_json()
    assert [t["name"] for t in before["topics"]] == ["Sales"]
    assert {"id": SALES_WIDGET_ID, "name": "Sales chat"} in before["widgets"]
    assert SUPPORT_WIDGET_ID not in {w["id"] for w in before["widgets"]}

    client.put(WIDGET, json={"topic_ids": [SUPPORT_TOPIC_ID]}, headers=admin)
    after = client.get(url, headers=admin).get_json()
    assert SALES_WIDGET_ID not in {w["id"] for w in after["widgets"]}
    assert client.get(url, headers=sign_in("agent")).status_code == 403
