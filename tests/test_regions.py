"""The four hosting regions, the same in the service and in the pages that run in Dataverse."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from connector.regions import all_regions, find_region
from connector.settings import REPO_ROOT, Settings


def test_the_four_regions_an_admin_chooses_from() -> None:
    assert [(r.code, r.name) for r in all_regions()] == [
        ("centralus", "Central US"),
        ("eastasia", "East Asia"),
        ("westeurope", "West Europe"),
        ("brazilsouth", "Southern Brazil"),
    ]
    assert all(r.service_url.startswith("https://") for r in all_regions())


def test_on_the_embedded_default_every_region_is_the_local_service() -> None:
    local = "http://127.0.0.1:8600"
    assert {find_region(r.code, local_url=local).service_url for r in all_regions()} == {local}  # type: ignore[union-attr]
    assert find_region("mars") is None


def test_the_settings_page_offers_the_same_service_addresses_as_presets() -> None:
    script = (REPO_ROOT / "webresources" / "settings" / "regions.js").read_text()
    presets = json.loads(re.search(r"CRMCHAT_REGIONS = (\[.*?\]);", script, re.S).group(1))  # type: ignore[union-attr]
    assert presets == [
        {"code": r.code, "name": r.name, "service_url": r.service_url} for r in all_regions()
    ]


def test_a_region_outside_the_four_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMCHAT_REGION", "mars")
    with pytest.raises(ValidationError, match="region"):
        Settings()


def test_only_https_environments_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMCHAT_DATAVERSE_URL", "http://org.crm.dynamics.com")
    with pytest.raises(ValidationError, match="https"):
        Settings()
