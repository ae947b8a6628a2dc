"""Pack `solution/` and `webresources/` into a zip that Dataverse can import.

The zip holds, as a real export does:

- `[Content_Types].xml`: one line, UTF-8 with BOM, one `Override` per web resource;
- `solution.xml`: the source manifest plus a type-61 `RootComponent` per web resource, with
  `Version` set to `connector.__version__` (the one place the version lives) and `Managed`
  1 for the managed package, 0 for the unmanaged one;
- `customizations.xml`: the source with each `WebResource/FileName` pointing at its entry;
- `WebResources/<FileName>`: each web resource's bytes, exactly as in `webresources/`;
- `environmentvariabledefinitions/<schemaname>/environmentvariabledefinition.xml`: each
  environment variable definition as in `solution/` (`environment_variables`).

A web resource named `crmchat_/settings/index.html` is the file
`webresources/settings/index.html`; its entry is `WebResources/crmchat_settingsindexhtml<ID>`
(the name without `/` and `.`, then its id in upper case), the pattern exports use.

Every entry carries a fixed timestamp and mode, so packing the same sources twice gives
byte-identical zips.

Errors:

    Exception
     └── PackError   a web resource's file is missing or its name does not map to a file,
                     solution.xml / customizations.xml is not well-formed, or an
                     environment variable definition cannot be read
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from connector import __version__
from connector.solution.environment_variables import (
    EnvironmentVariableError,
    definition_entry,
    read_environment_variables,
)
from connector.solution.paths import SOLUTION_DIR, WEBRESOURCES_DIR

__all__ = [
    "WEBRESOURCE_PREFIX",
    "PackError",
    "WebResource",
    "pack_solution",
    "read_web_resources",
    "web_resource_file",
    "zip_entry_name",
]

WEBRESOURCE_PREFIX = "crmchat_/"  # publisher prefix + "/": names mirror webresources/ paths
# Zip entries need some date; 1980-01-01 is the earliest a zip can hold.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_MODE = 0o644
CONTENT_TYPES_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
OCTET_STREAM = "application/octet-stream"
ROOT_COMPONENT_WEB_RESOURCE = "61"
_NOT_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9_]")
_XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'


class PackError(Exception):
    """The solution source cannot be packed."""


@dataclass(frozen=True)
class WebResource:
    """One `<WebResource>` of customizations.xml."""

    id: str  # lower case, no braces
    name: str  # "crmchat_/settings/index.html"
    type: int  # WebResourceType: 1 HTML, 2 CSS, 3 JS, 11 SVG, ...
    display_name: str


def read_web_resources(customizations: ET.Element) -> list[WebResource]:
    """The web resources a parsed customizations.xml lists, in document order."""
    found: list[WebResource] = []
    for element in customizations.iterfind("WebResources/WebResource"):
        found.append(
            WebResource(
                id=(element.findtext("WebResourceId") or "").strip().strip("{}").lower(),
                name=(element.findtext("Name") or "").strip(),
                type=int((element.findtext("WebResourceType") or "0").strip() or "0"),
                display_name=(element.findtext("DisplayName") or "").strip(),
            )
        )
    return found


def web_resource_file(name: str, webresources_dir: Path) -> Path | None:
    """The source file of web resource `name`, or None when the name maps to no file path.

    `crmchat_/settings/index.html` -> `<webresources_dir>/settings/index.html`. Names
    without the prefix, with `..`, or with backslashes are refused.
    """
    if not name.startswith(WEBRESOURCE_PREFIX) or "\\" in name:
        return None
    relative = PurePosixPath(name[len(WEBRESOURCE_PREFIX) :])
    if not relative.parts or any(part in ("", ".", "..") for part in relative.parts):
        return None
    return webresources_dir.joinpath(*relative.parts)


def zip_entry_name(resource: WebResource) -> str:
    """The zip entry of `resource`: `WebResources/<name without / and .><ID upper case>`."""
    return f"WebResources/{_NOT_IN_FILE_NAME.sub('', resource.name)}{resource.id.upper()}"


def pack_solution(
    *,
    out_dir: Path,
    solution_dir: Path = SOLUTION_DIR,
    webresources_dir: Path = WEBRESOURCES_DIR,
    managed: bool = False,
) -> Path:
    """Write the importable solution zip into `out_dir` and return its path.

    The zip is named `<UniqueName>_<version with underscores>.zip` (`CRMChat_1_0_0_0.zip`),
    `..._managed.zip` for the managed package, as exports name them. Raises `PackError`
    when a listed web resource has no file or the XML is not well-formed; this is not a
    full check (see `check_solution`).
    """
    customizations = _parse(solution_dir / "customizations.xml")
    manifest = _parse(solution_dir / "solution.xml")
    resources = read_web_resources(customizations)

    payloads: list[tuple[str, bytes]] = []
    for resource, element in zip(
        resources, customizations.iterfind("WebResources/WebResource"), strict=True
    ):
        source = web_resource_file(resource.name, webresources_dir)
        if source is None:
            raise PackError(
                f"web resource {resource.name!r}: the name must be "
                f"{WEBRESOURCE_PREFIX}<path under webresources/>"
            )
        if not source.is_file():
            raise PackError(f"web resource {resource.name!r}: no file {source}")
        entry = zip_entry_name(resource)
        _set_file_name(element, "/" + entry)
        payloads.append((entry, source.read_bytes()))
    _add_web_resource_root_components(manifest, resources)
    try:
        variables = read_environment_variables(solution_dir)
    except EnvironmentVariableError as exc:
        raise PackError(str(exc)) from exc
    definitions = [(definition_entry(v), v.source.read_bytes()) for v in variables]

    unique_name = (manifest.findtext("SolutionManifest/UniqueName") or "").strip()
    version_element = manifest.find("SolutionManifest/Version")
    managed_element = manifest.find("SolutionManifest/Managed")
    if not unique_name or version_element is None or managed_element is None:
        raise PackError("solution.xml: SolutionManifest needs UniqueName, Version and Managed")
    version_element.text = __version__
    managed_element.text = "1" if managed else "0"
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "_managed" if managed else ""
    target = out_dir / f"{unique_name}_{__version__.replace('.', '_')}{suffix}.zip"

    entries = [
        ("[Content_Types].xml", _content_types([entry for entry, _ in payloads])),
        ("solution.xml", _serialize(manifest)),
        ("customizations.xml", _serialize(customizations)),
        *payloads,
        *definitions,
    ]
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0  # same bytes whichever OS packs it
            info.external_attr = ZIP_FILE_MODE << 16
            archive.writestr(info, data)
    return target


def _parse(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise PackError(f"{path.name}: not well-formed XML: {exc}") from exc
    except OSError as exc:
        raise PackError(f"{path}: {exc.strerror or exc}") from exc


def _set_file_name(web_resource: ET.Element, value: str) -> None:
    # FileName is the last child the XSD allows in a WebResource.
    element = web_resource.find("FileName")
    if element is None:
        element = ET.SubElement(web_resource, "FileName")
    element.text = value


def _add_web_resource_root_components(manifest: ET.Element, resources: list[WebResource]) -> None:
    components = manifest.find("SolutionManifest/RootComponents")
    if components is None:
        raise PackError("solution.xml: SolutionManifest has no RootComponents")
    listed = {
        c.get("schemaName")
        for c in components.iterfind("RootComponent")
        if c.get("type") == ROOT_COMPONENT_WEB_RESOURCE
    }
    for resource in resources:
        if resource.name not in listed:
            ET.SubElement(
                components,
                "RootComponent",
                {"type": ROOT_COMPONENT_WEB_RESOURCE, "schemaName": resource.name, "behavior": "0"},
            )


def _serialize(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return (_XML_DECLARATION + "\n" + ET.tostring(root, encoding="unicode") + "\n").encode()


def _content_types(entries: list[str]) -> bytes:
    overrides = "".join(
        f'<Override PartName="/{entry}" ContentType="{OCTET_STREAM}" />' for entry in entries
    )
    text = (
        f'{_XML_DECLARATION}<Types xmlns="{CONTENT_TYPES_NS}">'
        f'<Default Extension="xml" ContentType="{OCTET_STREAM}" />{overrides}</Types>'
    )
    return "\ufeff".encode() + text.encode()
