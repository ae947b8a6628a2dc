"""`$apply` in the embedded Dataverse: groupby and aggregate with the real wire format."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from test_emulator_app import Api, error_of

from connector.dataverse_local import DataverseApp, add_user, issue_token
from connector.dataverse_local import aggregate as aggregate_module
from connector.solution.model import Schema

FORMATTED = "OData.Community.Display.V1.FormattedValue"
ANNOTATIONS = {"Prefer": 'odata.include-annotations="*"'}


@pytest.fixture
def api(dataverse_url: str, admin_token: str) -> Api:
    return Api(dataverse_url, admin_token)


@pytest.fixture
def widgets(api: Api) -> dict[str, str]:
    ids = {name: api.create("crmchat_widgets", {"crmchat_name": name}) for name in ("Shop", "Help")}
    for widget, rating in (("Shop", 5), ("Shop", 3), ("Shop", 3), ("Help", 1), ("Help", None)):
        body: dict[str, object] = {
            "subject": f"{widget} chat",
            "crmchat_WidgetId@odata.bind": f"/crmchat_widgets({ids[widget]})",
        }
        if rating is not None:
            body["crmchat_rating"] = rating
        api.create("crmchat_chats", body)
    return ids


def apply(
    api: Api, text: str, *, extra: str = "", annotate: bool = False
) -> list[dict[str, object]]:
    reply = api.get(
        f"crmchat_chats?$apply={quote(text, safe='(),$/')}{extra}",
        headers=ANNOTATIONS if annotate else {},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["@odata.context"].endswith("/$metadata#crmchat_chats")
    return list(body["value"])


def test_aggregate_without_groupby_answers_one_row(api: Api, widgets: dict[str, str]) -> None:
    rows = apply(
        api,
        "aggregate(crmchat_rating with sum as total,crmchat_rating with average as mean,"
        "crmchat_rating with min as low,crmchat_rating with max as high,"
        "crmchat_rating with countdistinct as kinds,$count as chats)",
    )
    assert rows == [{"total": 12, "mean": 3.0, "low": 1, "high": 5, "kinds": 3, "chats": 5}]


def test_filter_then_groupby_a_lookup_with_formatted_names(
    api: Api, widgets: dict[str, str]
) -> None:
    rows = apply(
        api,
        "filter(crmchat_rating ne null)/groupby((_crmchat_widgetid_value),"
        "aggregate(crmchat_rating with average as rating,$count as chats))",
        annotate=True,
    )
    by_name = {row[f"_crmchat_widgetid_value@{FORMATTED}"]: row for row in rows}
    assert set(by_name) == {"Shop", "Help"}
    shop = by_name["Shop"]
    assert shop["_crmchat_widgetid_value"] == widgets["Shop"]
    assert shop["_crmchat_widgetid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == (
        "crmchat_widget"
    )
    assert shop["chats"] == 3 and shop[f"chats@{FORMATTED}"] == "3"
    assert shop["rating"] == pytest.approx(11 / 3)
    assert by_name["Help"]["chats"] == 1  # the chat without a rating was filtered out


def test_groupby_alone_lists_distinct_values(api: Api, widgets: dict[str, str]) -> None:
    rows = apply(api, "groupby((statuscode))", annotate=True)
    assert rows == [{f"statuscode@{FORMATTED}": "Open", "statuscode": 1}]


def test_orderby_and_top_over_grouped_properties(api: Api, widgets: dict[str, str]) -> None:
    rows = apply(
        api,
        "groupby((crmchat_rating),aggregate($count as n))",
        extra="&$orderby=crmchat_rating desc",
    )
    assert [r["crmchat_rating"] for r in rows] == [5, 3, 1, None]
    top = apply(api, "groupby((crmchat_rating))", extra="&$orderby=crmchat_rating asc&$top=2")
    assert [r["crmchat_rating"] for r in top] == [None, 1]


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("groupby((createdon))", "", "groupby with datetime values is not supported"),
        (
            "groupby((statuscode),aggregate($count as n))",
            "&$orderby=n desc",
            "SingleValueOpenPropertyAccess is not supported",
        ),
        ("aggregate(subject with sum as s)", "", "is not a number"),
        ("aggregate(crmchat_rating with median as m)", "", "not a supported aggregation"),
        ("aggregate(nosuch with max as m)", "", "Could not find a property named 'nosuch'"),
        ("groupby((statuscode))/filter(statuscode eq 1)", "", "Only filter"),
        ("filter(statuscode eq 1)", "", "must end with groupby or aggregate"),
        ("groupby((statuscode))", "&$select=subject", "not supported with $apply"),
        ("aggregate($count as n,$count as n)", "", "used twice"),
    ],
)
def test_bad_apply_is_a_400_with_the_query_code(
    api: Api, widgets: dict[str, str], text: str, extra: str, message: str
) -> None:
    reply = api.get(f"crmchat_chats?$apply={quote(text, safe='(),$/')}{extra}")
    assert reply.status_code == 400, reply.text
    code, text_of = error_of(reply)
    assert code == "0x80060888" and message in text_of


def test_an_agent_aggregates_only_the_chats_they_may_read(
    dataverse_app: DataverseApp,
    dataverse_url: str,
    schema: Schema,
    api: Api,
    widgets: dict[str, str],
) -> None:
    role = schema.role_named("CRM Chat Agent")
    assert role is not None
    user = add_user(dataverse_app.store, domain_name="ada@crmchat.local", role_ids=[role.id])
    agent = Api(dataverse_url, issue_token(dataverse_app.store.signing_secret, user_id=user))
    # Only the service writes chats: one owned by the agent.
    api.create(
        "crmchat_chats",
        {"subject": "mine", "crmchat_rating": 4, "ownerid@odata.bind": f"/systemusers({user})"},
    )
    assert apply(agent, "aggregate($count as n,crmchat_rating with sum as s)") == [{"n": 1, "s": 4}]
    assert apply(api, "aggregate($count as n)") == [{"n": 6}]


def test_more_than_the_record_limit_is_refused(
    api: Api, widgets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregate_module, "MAX_AGGREGATE_RECORDS", 4)
    reply = api.get("crmchat_chats?$apply=aggregate($count as n)")
    assert reply.status_code == 400
    assert error_of(reply) == (
        "0x8004E023",
        "The maximum record limit is exceeded. Reduce the number of records.",
    )
    assert apply(api, "filter(crmchat_rating ge 3)/aggregate($count as n)") == [{"n": 3}]
