"""The solution's environment variable definitions (`solution/environmentvariabledefinitions/`).

A real export keeps each definition in its own file,
`environmentvariabledefinitions/<schemaname>/environmentvariabledefinition.xml`, outside
customizations.xml, and lists it in solution.xml as a type-380 `RootComponent`
(microsoft/coe-starter-kit, `CenterofExcellenceCoreComponents/SolutionPackage/src/
environmentvariabledefinitions/*`). The type codes are the platform's
(`environmentvariabledefinition.type`: String 100000000 ... Secret 100000005).

CRM Chat ships one: `crmchat_ServiceUrl`, the address of the service the web resources
talk to (`SERVICE_URL_VARIABLE`). What a page reads is the value record when there is
one, else the definition's default (Microsoft Learn, "Environment variables overview":
"a value ... overrides the default value").

Errors:

    ValueError
     └── EnvironmentVariableError   a definition file that is not well-formed or misses its
                                    schema name, or one named unlike its folder
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from connector.solution.paths import SOLUTION_DIR

__all__ = [
    "DEFINITIONS_FOLDER",
    "DEFINITION_FILE",
    "ROOT_COMPONENT_ENVIRONMENT_VARIABLE",
    "SERVICE_URL_VARIABLE",
    "TYPE_NAMES",
    "EnvironmentVariable",
    "EnvironmentVariableError",
    "definition_entry",
    "environment_variable_problems",
    "read_environment_variables",
]

DEFINITIONS_FOLDER = "environmentvariabledefinitions"
DEFINITION_FILE = "environmentvariabledefinition.xml"
ROOT_COMPONENT_ENVIRONMENT_VARIABLE = "380"
SERVICE_URL_VARIABLE = "crmchat_ServiceUrl"
# environmentvariabledefinition.type, as the platform numbers it.
TYPE_NAMES = {
    100000000: "String",
    100000001: "Number",
    100000002: "Boolean",
    100000003: "JSON",
    100000004: "Data source",
    100000005: "Secret",
}
_STRING = 100000000


class EnvironmentVariableError(ValueError):
    """A definition file that a real import could not read."""


@dataclass(frozen=True)
class EnvironmentVariable:
    schema_name: str  # "crmchat_ServiceUrl"
    display_name: str
    description: str
    type: int  # a key of TYPE_NAMES
    default_value: str | None
    is_required: bool
    source: Path


def _label(element: ET.Element, name: str) -> str:
    found = element.find(name)
    if found is None:
        return ""
    return (found.get("default") or found.findtext("label") or "").strip()


def _read(path: Path) -> EnvironmentVariable:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise EnvironmentVariableError(f"{path}: not well-formed XML: {exc}") from exc
    schema_name = (root.get("schemaname") or "").strip()
    if root.tag != "environmentvariabledefinition" or not schema_name:
        raise EnvironmentVariableError(
            f"{path}: the root must be <environmentvariabledefinition schemaname=...>"
        )
    if schema_name != path.parent.name:
        # Exports name the folder after the schema name; the import pairs them.
        raise EnvironmentVariableError(
            f"{path}: schemaname {schema_name} differs from its folder {path.parent.name}"
        )
    type_text = (root.findtext("type") or str(_STRING)).strip()
    if not type_text.isdigit() or int(type_text) not in TYPE_NAMES:
        raise EnvironmentVariableError(f"{path}: unknown <type> {type_text!r}")
    default = root.findtext("defaultvalue")
    return EnvironmentVariable(
        schema_name=schema_name,
        display_name=_label(root, "displayname"),
        description=_label(root, "description"),
        type=int(type_text),
        default_value=default.strip() if default is not None else None,
        is_required=(root.findtext("isrequired") or "0").strip() == "1",
        source=path,
    )


def read_environment_variables(solution_dir: Path = SOLUTION_DIR) -> list[EnvironmentVariable]:
    """Every definition under `solution_dir`, sorted by schema name."""
    folder = solution_dir / DEFINITIONS_FOLDER
    if not folder.is_dir():
        return []
    return [_read(path) for path in sorted(folder.glob(f"*/{DEFINITION_FILE}"))]


def definition_entry(variable: EnvironmentVariable) -> str:
    """The zip entry of `variable`'s file, as exports place it."""
    return f"{DEFINITIONS_FOLDER}/{variable.schema_name}/{DEFINITION_FILE}"


def environment_variable_problems(solution_dir: Path, *, prefix: str) -> list[str]:
    """What `crmchat solution check` says about the definitions; [] when they are fine."""
    try:
        variables = read_environment_variables(solution_dir)
    except EnvironmentVariableError as exc:
        return [str(exc)]
    problems: list[str] = []
    names = {v.schema_name for v in variables}
    if SERVICE_URL_VARIABLE not in names:
        problems.append(
            f"{DEFINITIONS_FOLDER}: no {SERVICE_URL_VARIABLE}: the web resources read the "
            "service address from it"
        )
    for variable in variables:
        where = f"{DEFINITIONS_FOLDER}/{variable.schema_name}"
        if not variable.schema_name.startswith(prefix + "_"):
            problems.append(f"{where}: schemaname lacks the publisher prefix {prefix}_")
        if not variable.display_name:
            problems.append(f"{where}: no <displayname>")
        if variable.schema_name == SERVICE_URL_VARIABLE and not (
            variable.type == _STRING and (variable.default_value or "").startswith("https://")
        ):
            problems.append(f"{where}: must be a String whose default is an https:// address")
    return problems
