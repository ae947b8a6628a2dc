"""The embedded Dataverse numbers cases as the real platform does ("CAS-01001-X1Y2Z3")."""

from __future__ import annotations

import re

import requests

CASE_NUMBER = re.compile(r"CAS-(\d{5})-[A-Z]\d[A-Z]\d[A-Z]\d")


def test_each_new_case_gets_the_next_case_number(dataverse_url: str, admin_token: str) -> None:
    api = requests.Session()
    api.headers.update(
        {
            "Accept": "application/json",
            "OData-Version": "4.0",
            "Authorization": f"Bearer {admin_token}",
        }
    )
    contact = api.post(f"{dataverse_url}/contacts", json={"lastname": "Lee"}, timeout=10)
    customer = contact.headers["OData-EntityId"].removeprefix(dataverse_url)
    numbers = []
    for title in ("First", "Second"):
        body = {"title": title, "customerid_contact@odata.bind": customer}
        made = api.post(
            f"{dataverse_url}/incidents",
            json=body,
            headers={"Prefer": "return=representation"},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        match = CASE_NUMBER.fullmatch(made.json()["ticketnumber"])
        assert match is not None, made.json()["ticketnumber"]
        numbers.append(int(match.group(1)))
    assert numbers[0] >= 1000  # the platform's default first number
    assert numbers[1] == numbers[0] + 1
