"""Personal data stays in the warehouse and the send files.

Which columns are personal is declared once, in dbt (`meta: {pii: true}` on a
column of a source or model). Everything that leaves the warehouse for
Dagster's storage (previews, check examples) goes through `mask_frame`, which
masks every column with a personal name: `+86139****0002`, `h***@example.com`,
`欧**`. If the dbt manifest cannot be read, every text column is masked (fail
closed).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

import pandas as pd

from orchestration.settings import DBT_PROJECT_DIR

_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-.]{6,}$")


@lru_cache(maxsize=1)
def _declared() -> tuple[frozenset[str], dict[str, frozenset[str]]] | None:
    """From dbt's manifest: names marked `pii: true` (personal in any table), and per table
    the names marked `pii: table` (personal there only, e.g. the do-not-contact list's
    member ids). None when the manifest cannot be read."""
    try:
        manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    everywhere: set[str] = set()
    per_table: dict[str, set[str]] = {}
    for group in ("nodes", "sources"):
        for node in manifest.get(group, {}).values():
            for col in (node.get("columns") or {}).values():
                meta = {**(col.get("config") or {}).get("meta", {}), **(col.get("meta") or {})}
                flag = meta.get("pii")
                if flag is True:
                    everywhere.add(str(col["name"]).lower())
                elif flag == "table":
                    table = str(node.get("alias") or node.get("identifier") or node["name"])
                    per_table.setdefault(table.lower(), set()).add(str(col["name"]).lower())
    return frozenset(everywhere), {t: frozenset(c) for t, c in per_table.items()}


def personal_columns(table: str | None = None) -> frozenset[str] | None:
    """Personal column names (in `table`, if given); None when unknown (mask everything)."""
    declared = _declared()
    if declared is None:
        return None
    everywhere, per_table = declared
    name = (table or "").rsplit(".", 1)[-1].lower()
    return everywhere | per_table.get(name, frozenset())


def mask_value(value: object) -> object:
    """A masked stand-in that shows the shape of a value but not the value."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return value
    text = str(value)
    if not text:
        return text
    if "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    if _PHONE.match(text) and sum(ch.isdigit() for ch in text) >= 7:
        return text[: max(len(text) - 8, 1)] + "****" + text[-4:]
    return text[:1] + "*" * min(max(len(text) - 1, 1), 3)


def mask_frame(df: pd.DataFrame, table: str | None = None) -> pd.DataFrame:
    """A copy of `df` whose personal columns are masked (all text columns if unknown)."""
    known = personal_columns(table)
    out = df.copy()
    for col in out.columns:
        if known is None:
            personal = out[col].dtype == object or pd.api.types.is_string_dtype(out[col])
        else:
            personal = str(col).lower() in known
        if personal:
            out[col] = out[col].map(mask_value).astype(object)
    return out
