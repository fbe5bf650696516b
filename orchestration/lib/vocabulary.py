"""The values a categorical column may take, read from the dbt project's own
`accepted_values` tests (dbt_project/models/**/_*.yml): the one place each vocabulary
(lifecycle stages, RFM segments and groups, order statuses, channels) is written. The
playbook's audience filters and the data-quality checks take them from here."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from orchestration.errors import CrmError
from orchestration.settings import DBT_PROJECT_DIR

MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


@cache
def _all(manifest: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    if not manifest.exists():
        raise CrmError(
            f"{manifest} is missing: dbt's manifest is written by `crm run`, `crm ui` or "
            "`make test` (dbt parse); run one of them first"
        )
    nodes = json.loads(manifest.read_text(encoding="utf-8"))["nodes"].values()
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for node in nodes:
        meta = node.get("test_metadata") or {}
        if node["resource_type"] != "test" or meta.get("name") != "accepted_values":
            continue
        model = (node.get("attached_node") or "").rsplit(".", 1)[-1]
        values = meta.get("kwargs", {}).get("values") or []
        # YAML quotes a SQL literal's apostrophe by doubling it ("Can''t Lose")
        out[(model, node["column_name"])] = tuple(str(v).replace("''", "'") for v in values)
    return out


def accepted_values(model: str, column: str, manifest: Path = MANIFEST) -> tuple[str, ...]:
    """The accepted values of `model.column` as its dbt test states them."""
    try:
        return _all(manifest)[(model, column)]
    except KeyError:
        raise CrmError(
            f"dbt states no accepted_values for {model}.{column}; add the test to the model's YAML"
        ) from None
