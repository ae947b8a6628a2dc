"""Command-bar buttons of the solution's forms, as `RibbonDiffXml` declares them.

`read_commands` gives, per table, the buttons a form's command bar gains: label, the
JavaScript function and library its command runs, and whether a display rule hides it on
the create form (`FormStateRule State="Create" InvertResult="true"`). The stand-in draws
them on its record pages; `ribbon_problems` is what `crmchat solution check` reports:
a button naming no command, a label naming no LocLabel, a command whose library is not a
listed web resource or whose file does not define the function, a display rule that does
not exist.

A command may list more than one `JavaScriptFunction`: the platform loads each library and
calls each function in order, so the ribbon idiom for "load this library first" is one
with `FunctionName="isNaN"` (a function every browser has, harmless to call). The button
runs the last one; `libraries` are all of them, in order.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RibbonCommand", "read_commands", "ribbon_problems"]

_WEBRESOURCE = "$webresource:"
_LOCLABEL = "$LocLabels:"
# A JavaScriptFunction that only loads its library (see above).
LOAD_ONLY = "isNaN"


@dataclass(frozen=True)
class RibbonCommand:
    id: str  # the Button's Id
    label: str  # the LocLabel's 1033 title, or the LabelText itself
    function: str  # "CRMChat.WidgetRibbon.openDesigner"
    library: str  # web resource name, "crmchat_/ribbon/widget.js"
    hidden_on_create: bool  # a display rule hides it until the record is saved
    libraries: tuple[str, ...] = ()  # every library the command loads, `library` last


def _table(entity: ET.Element) -> str:
    return (entity.findtext("Name") or "").strip().lower()


def _labels(ribbon: ET.Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for label in ribbon.iterfind("LocLabels/LocLabel"):
        title = label.find("Titles/Title[@languagecode='1033']")
        found[label.get("Id", "")] = title.get("description", "") if title is not None else ""
    return found


def _hidden_on_create(ribbon: ET.Element, rule_ids: list[str]) -> bool:
    for rule in ribbon.iterfind("RuleDefinitions/DisplayRules/DisplayRule"):
        if rule.get("Id") not in rule_ids:
            continue
        for state in rule.iterfind("FormStateRule"):
            if state.get("State") == "Create" and state.get("InvertResult") == "true":
                return True
    return False


def read_commands(customizations: ET.Element) -> dict[str, list[RibbonCommand]]:
    """The command-bar buttons per table (logical name), in their Sequence order."""
    found: dict[str, list[RibbonCommand]] = {}
    for entity in customizations.iterfind("Entities/Entity"):
        ribbon = entity.find("RibbonDiffXml")
        if ribbon is None:
            continue
        labels = _labels(ribbon)
        commands = {
            c.get("Id", ""): c for c in ribbon.iterfind("CommandDefinitions/CommandDefinition")
        }
        buttons = sorted(
            ribbon.iterfind("CustomActions/CustomAction/CommandUIDefinition/Button"),
            key=lambda b: int(b.get("Sequence") or 0),
        )
        for button in buttons:
            command = commands.get(button.get("Command", ""))
            actions = [] if command is None else command.findall("Actions/JavaScriptFunction")
            if command is None or not actions:
                continue
            action = actions[-1]
            libraries = tuple(a.get("Library", "").removeprefix(_WEBRESOURCE) for a in actions)
            text = button.get("LabelText", "")
            rules = [r.get("Id", "") for r in command.iterfind("DisplayRules/DisplayRule")]
            found.setdefault(_table(entity), []).append(
                RibbonCommand(
                    id=button.get("Id", ""),
                    label=labels.get(text.removeprefix(_LOCLABEL), text),
                    function=action.get("FunctionName", ""),
                    library=libraries[-1],
                    hidden_on_create=_hidden_on_create(ribbon, rules),
                    libraries=libraries,
                )
            )
    return found


def ribbon_problems(customizations: ET.Element, resources: dict[str, Path | None]) -> list[str]:
    """What is broken in the ribbons; `resources` maps listed web resource names to files."""
    problems: list[str] = []
    for entity in customizations.iterfind("Entities/Entity"):
        ribbon = entity.find("RibbonDiffXml")
        if ribbon is None:
            continue
        where = f"ribbon of {_table(entity)}"
        labels = _labels(ribbon)
        commands = {
            c.get("Id", ""): c for c in ribbon.iterfind("CommandDefinitions/CommandDefinition")
        }
        rules = {
            r.get("Id", "") for r in ribbon.iterfind("RuleDefinitions/DisplayRules/DisplayRule")
        }
        for button in ribbon.iterfind("CustomActions/CustomAction/CommandUIDefinition/Button"):
            name = button.get("Id", "")
            if button.get("Command", "") not in commands:
                problems.append(f"{where}: button {name} names no CommandDefinition")
            text = button.get("LabelText", "")
            if text.startswith(_LOCLABEL) and text.removeprefix(_LOCLABEL) not in labels:
                problems.append(f"{where}: button {name} names no LocLabel {text}")
        for command_id, command in commands.items():
            for rule in command.iterfind("DisplayRules/DisplayRule"):
                if rule.get("Id", "") not in rules:
                    problems.append(f"{where}: {command_id} names no display rule {rule.get('Id')}")
            for action in command.iterfind("Actions/JavaScriptFunction"):
                library = action.get("Library", "").removeprefix(_WEBRESOURCE)
                function = action.get("FunctionName", "")
                if library not in resources:
                    problems.append(
                        f"{where}: {command_id}: {library} is not a listed web resource"
                    )
                    continue
                if function == LOAD_ONLY:
                    continue
                path = resources[library]
                last = function.rsplit(".", 1)[-1]
                text = path.read_text(encoding="utf-8") if path and path.is_file() else ""
                if not last or not re.search(rf"\b{re.escape(last)}\s*[(:=]", text):
                    problems.append(f"{where}: {command_id}: {library} does not define {function}")
    return problems
