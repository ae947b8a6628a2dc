"""Environment variables of the embedded Dataverse: the import's part, as a tenant does it.

A solution import creates one `environmentvariabledefinition` row per definition file
(schema name, display name, description, type, default value). The import dialog then asks
for a value of each definition without one and stores it as an `environmentvariablevalue`
row (Microsoft Learn, "Use environment variables in solutions": "enter a value during
import"); `set_value_when_missing` is that step. From then on an admin changes the value
as any other row (the settings page does, through the Web API). Readers take the value row
when there is one, else the default.
"""

from __future__ import annotations

import uuid

from connector.dataverse_local.store import Store
from connector.dataverse_local.users import ADMIN_USER_ID, ROOT_BUSINESS_UNIT_ID, insert_known
from connector.solution.environment_variables import EnvironmentVariable

__all__ = ["definition_id", "import_definitions", "set_value_when_missing"]

# Ids derived from the schema name, so a data folder imported again keeps its rows.
_IDS = uuid.UUID("3f1d2c4b-6a5e-4e0f-9b8a-7c6d5e4f3a21")
DEFINITION_TABLE = "environmentvariabledefinition"
VALUE_TABLE = "environmentvariablevalue"


def definition_id(schema_name: str) -> str:
    """The embedded Dataverse's id of the definition named `schema_name`."""
    return str(uuid.uuid5(_IDS, "definition:" + schema_name.lower()))


def _owned_by_admin() -> dict[str, object]:
    # The import runs as the administrator who imports, who then owns the rows.
    return {
        "ownerid": ADMIN_USER_ID,
        "ownerid__table": "systemuser",
        "owninguser": ADMIN_USER_ID,
        "owninguser__table": "systemuser",
        "owningbusinessunit": ROOT_BUSINESS_UNIT_ID,
        "owningbusinessunit__table": "businessunit",
    }


def import_definitions(store: Store, variables: list[EnvironmentVariable]) -> None:
    """Create the definition rows the solution brings; rows already there stay as they are."""
    with store.transaction():
        for variable in variables:
            insert_known(
                store,
                DEFINITION_TABLE,
                {
                    "environmentvariabledefinitionid": definition_id(variable.schema_name),
                    "schemaname": variable.schema_name,
                    "displayname": variable.display_name,
                    "description": variable.description,
                    "type": variable.type,
                    "defaultvalue": variable.default_value,
                    "statuscode": 1,
                    **_owned_by_admin(),
                },
            )


def set_value_when_missing(store: Store, schema_name: str, value: str) -> None:
    """Give `schema_name` the value `value` unless it has a value row already.

    An admin's later choice (a value row) is never overwritten.
    """
    table = store.schema.tables[VALUE_TABLE]
    found = store.query(
        'SELECT 1 FROM "environmentvariablevalue" WHERE "environmentvariabledefinitionid" = ?',
        (definition_id(schema_name),),
    )
    if found:
        return
    with store.transaction():
        insert_known(
            store,
            VALUE_TABLE,
            {
                table.primary_id: str(uuid.uuid5(_IDS, "value:" + schema_name.lower())),
                "schemaname": schema_name,
                "value": value,
                "environmentvariabledefinitionid": definition_id(schema_name),
                "environmentvariabledefinitionid__table": DEFINITION_TABLE,
                "statuscode": 1,
                **_owned_by_admin(),
            },
        )
