"""The four hosting regions a CRM admin chooses from (`config/regions.json`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from connector.solution.paths import CONFIG_DIR

__all__ = ["Region", "all_regions", "find_region"]

REGIONS_FILE = CONFIG_DIR / "regions.json"


@dataclass(frozen=True)
class Region:
    code: str  # "westeurope"
    name: str  # "West Europe"
    service_url: str  # where that region's CRM Chat service answers


@cache
def all_regions() -> tuple[Region, ...]:
    """The regions in the order an admin sees them."""
    data = json.loads(REGIONS_FILE.read_text(encoding="utf-8"))
    return tuple(Region(r["code"], r["name"], r["service_url"]) for r in data["regions"])


def find_region(code: str, *, local_url: str | None = None) -> Region | None:
    """The region with `code`; on the embedded default (`local_url` given) it points there."""
    for region in all_regions():
        if region.code == code:
            if local_url:
                return Region(region.code, region.name, local_url)
            return region
    return None
