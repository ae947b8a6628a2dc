"""Where the solution source, the web resources and the standard tables live."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CUSTOMIZATIONS_XML",
    "REPO_ROOT",
    "SOLUTION_DIR",
    "SOLUTION_XML",
    "STANDARD_XML",
    "WEBRESOURCES_DIR",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLUTION_DIR = REPO_ROOT / "solution"
CUSTOMIZATIONS_XML = SOLUTION_DIR / "customizations.xml"
SOLUTION_XML = SOLUTION_DIR / "solution.xml"
WEBRESOURCES_DIR = REPO_ROOT / "webresources"
# Shipped as package data next to the embedded Dataverse that needs it.
STANDARD_XML = Path(__file__).resolve().parents[1] / "dataverse_local" / "standard.xml"
