"""Where the solution source, the web resources, the regions and the standard tables live.

From a checkout (and an editable install) that is the repository itself. An installed
wheel carries the same folders as `connector/_checkout/` (see setup.py), used when no
checkout is beside the package.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CONFIG_DIR",
    "CUSTOMIZATIONS_XML",
    "FILES_ROOT",
    "REPO_ROOT",
    "SOLUTION_DIR",
    "SOLUTION_XML",
    "STANDARD_XML",
    "DYNAMICS365_XML",
    "DYNAMICS365_SOLUTION_DIR",
    "WEBRESOURCES_DIR",
]

_PACKAGE = Path(__file__).resolve().parents[1]
REPO_ROOT = _PACKAGE.parent
# The folder holding config/, solution/ and webresources/.
FILES_ROOT = REPO_ROOT if (REPO_ROOT / "solution").is_dir() else _PACKAGE / "_checkout"
CONFIG_DIR = FILES_ROOT / "config"
SOLUTION_DIR = FILES_ROOT / "solution"
CUSTOMIZATIONS_XML = SOLUTION_DIR / "customizations.xml"
SOLUTION_XML = SOLUTION_DIR / "solution.xml"
# The second solution, "CRM Chat for Dynamics 365": what needs Sales / Customer Service.
DYNAMICS365_SOLUTION_DIR = SOLUTION_DIR / "dynamics365"
WEBRESOURCES_DIR = FILES_ROOT / "webresources"
# Shipped as package data next to the embedded Dataverse that needs it.
STANDARD_XML = _PACKAGE / "dataverse_local" / "standard.xml"
# The tables the Dynamics 365 Sales and Customer Service apps add (lead, incident, ...).
DYNAMICS365_XML = _PACKAGE / "dataverse_local" / "standard_dynamics365.xml"
