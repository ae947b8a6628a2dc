"""The numbers Dataverse gives records of its numbered standard tables.

Cases (`incident.ticketnumber`) are autonumbered by the platform: a three-character prefix,
a sequence that starts at 1000, and a suffix, e.g. ``CAS-01001-X1Y2Z3`` (Power Platform
admin, "Change auto-numbering prefixes for contracts, cases, ..."; the default suffix
alternates letters and digits). The column is not valid for create or update
(`ValidForCreateApi` 0 in the standard metadata), so the number is always the server's.
"""

from __future__ import annotations

import secrets
import string

from connector.dataverse_local.store import Store

__all__ = ["AUTONUMBERED", "next_number"]

# table -> (column, prefix): the platform's defaults.
AUTONUMBERED: dict[str, tuple[str, str]] = {"incident": ("ticketnumber", "CAS")}
# "If you haven't set a numbering format before, the Number box displays 1000."
FIRST_NUMBER = 1000


def _suffix() -> str:
    letters = string.ascii_uppercase
    return "".join(secrets.choice(letters) + secrets.choice(string.digits) for _ in range(3))


def next_number(store: Store, table_name: str) -> tuple[str, str] | None:
    """(column, the next number) for an autonumbered table, else None.

    Call inside the create's store transaction, so a failed create gives its number back.
    """
    numbered = AUTONUMBERED.get(table_name)
    if numbered is None:
        return None
    column, prefix = numbered
    key = f"autonumber:{table_name}"
    with store.transaction() as db:
        db.execute(
            "INSERT OR IGNORE INTO _meta (key, value) VALUES (?, ?)", (key, str(FIRST_NUMBER - 1))
        )
        row = db.execute(
            "UPDATE _meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ? RETURNING value",
            (key,),
        ).fetchone()
    return column, f"{prefix}-{int(row[0]):05d}-{_suffix()}"
