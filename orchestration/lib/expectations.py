"""great-expectations on the landed data, before staging: what dbt cannot check.

dbt's staging models type every landed row and quarantine the ones they cannot use;
their tests guard keys, not-null and types. What they cannot see is the batch as a
whole: how many rows stopped being readable, values outside the plausible ranges, and
whether the batch still looks like the previous one. That is checked here, on
`raw.orders`, `raw.members` and `raw.suppression` (see CHECKS and docs/data-quality.md).

How it runs (nothing is loaded into pandas, whatever the number of orders):

1. DuckDB reads each raw table once into a scratch database beside the warehouse
   (deleted afterwards), keeping per row only its provenance (file, row), the values of
   the non-personal columns (VALUES) typed with staging's own dbt macros (rendered from
   dbt_project/macros/parsing.sql: the same date and amount layouts and consent words),
   the landed text of such a value when staging cannot read it, and for every other
   column only whether it is filled. Personal data never reaches GX: not its results,
   not Data Docs, not the check metadata.
2. GX runs the suites as SQL on that scratch file and writes Data Docs to `docs_dir()`.
3. DuckDB profiles each table (rows, null shares, amount mean/median/quantiles, value
   shares). The profile is kept as JSON beside the Data Docs when the table's validation
   succeeded (no ERROR check failed); the next run's drift expectations are built from it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from orchestration.errors import CrmError
from orchestration.lib.landing import ENTITIES
from orchestration.settings import DBT_PROJECT_DIR

Table = Literal["orders", "members", "suppression"]
TABLES: tuple[Table, ...] = ("orders", "members", "suppression")

#: The columns whose values GX sees, per raw table, and how staging types them. Every
#: other column (ids, names, phones, emails, birthdays, addresses, free text) is reduced
#: to "filled or not". An allow-list, so a column added to the landing contract stays
#: hidden until someone decides it is not personal.
VALUES: dict[Table, dict[str, str]] = {
    "orders": {"ordered_at": "date", "amount": "amount", "status": "text", "channel": "text"},
    "members": {
        "registered_at": "date",
        "acquisition_cost": "amount",
        "acquisition_channel": "text",
        "marketing_consent": "consent",
    },
    "suppression": {},
}
#: The do-not-contact identifiers whose coverage must not shrink.
IDENTIFIERS = ("member_id", "phone", "email")
#: ERROR when fewer of the landed order rows have a readable date and amount.
MIN_READABLE = 0.5
#: Drift tolerances against the previous profile (rows: CRM_MAX_ROWS_DROP).
NULL_SHARE_POINTS = 0.10  # a column's share of empty values moves at most 10 points
CENTER_CHANGE = 0.25  # amount mean and median move at most 25%
VALUE_SHARE_POINTS = 0.10  # a value with >= 10% of the rows loses at most 10 points
MAX_VALUES = 50  # a text column with more distinct values is not treated as a value set
EXAMPLES = 5
MISSING = "(missing)"  # shown for a required value that was not given
QUANTILES = ("p05", "p25", "p50", "p75", "p95")
SITE = "crm_raw_data"

Kind = Literal["parse", "readable", "range", "drift"]


@dataclass(frozen=True)
class Check:
    """One Dagster asset check on `raw_<table>`: a group of GX expectations."""

    name: str
    table: Table
    kind: Kind
    severity: Literal["warn", "error"]
    description: str

    @property
    def asset(self) -> str:
        return f"raw_{self.table}"

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


CHECKS: tuple[Check, ...] = (
    Check(
        "orders_values_parse",
        "orders",
        "parse",
        "warn",
        "Landed order rows whose ordered_at or amount is missing or in a layout staging "
        "does not read (its dbt macros parse_timestamp / parse_amount), and rows the CSV "
        "reader could not split. WARN: staging quarantines these rows with the reason.",
    ),
    Check(
        "orders_mostly_readable",
        "orders",
        "readable",
        "error",
        f"At least {MIN_READABLE:.0%} of the landed order rows have a readable ordered_at "
        "and amount. ERROR and blocking: below that the export's format has changed (a new "
        "date layout, another decimal mark) and every score and list would be computed "
        "from a fraction of the orders; nothing downstream notices, because the rows are "
        "quarantined, not lost. Fix the export (or the staging macro) and run again.",
    ),
    Check(
        "orders_values_in_range",
        "orders",
        "range",
        "warn",
        "Readable order amounts within 0..CRM_MAX_ORDER_AMOUNT and order dates within "
        "CRM_MIN_ORDER_DATE..the as-of date. WARN: staging quarantines negative, too large "
        "and too early values; orders after the as-of date are ignored for that date.",
    ),
    Check(
        "orders_profile_stable",
        "orders",
        "drift",
        "warn",
        "The landed orders look like the previous successful validation: row count within "
        "CRM_MAX_ROWS_DROP, each column's share of empty values within "
        f"{NULL_SHARE_POINTS:.0%} points, amount mean and median within {CENTER_CHANGE:.0%}, "
        "no new status or channel value, no common value losing more than "
        f"{VALUE_SHARE_POINTS:.0%} points of its share. WARN: a change worth a look, not "
        "an error (the lists are held back on shrunk input by input_has_not_shrunk).",
    ),
    Check(
        "members_values_parse",
        "members",
        "parse",
        "warn",
        "Landed member rows whose registered_at is missing or unreadable, whose "
        "acquisition_cost or marketing_consent is given but unreadable (dbt macros "
        "parse_timestamp, parse_amount, parse_bool), and rows the CSV reader could not "
        "split. WARN: staging quarantines rows without a readable registered_at; an "
        "unreadable consent counts as unknown (not contacted where consent is required).",
    ),
    Check(
        "members_values_in_range",
        "members",
        "range",
        "warn",
        "Registration dates within CRM_MIN_ORDER_DATE..the as-of date and acquisition "
        "costs within 0..CRM_MAX_ORDER_AMOUNT. WARN: earlier registrations are quarantined, "
        "later ones are not members yet at the as-of date.",
    ),
    Check(
        "members_profile_stable",
        "members",
        "drift",
        "warn",
        "The landed members look like the previous successful validation (same rules as "
        "orders_profile_stable, on acquisition cost, channel and marketing consent). "
        "WARN: members are also derived from orders, so a changed members file degrades "
        "attributes, not the customer base.",
    ),
    Check(
        "suppression_has_not_shrunk",
        "suppression",
        "drift",
        "error",
        "The do-not-contact list did not lose more than CRM_MAX_ROWS_DROP of its rows, nor "
        "of its rows with a member_id, phone or email, against the previous successful "
        "validation. ERROR and blocking: a truncated or emptied list would let people who "
        "asked not to be contacted onto the send files. Land the complete list, or accept "
        "the change once with --accept-input-change (CRM_ACCEPT_INPUT_CHANGE=true).",
    ),
)


@dataclass(frozen=True)
class Params:
    as_of: date
    min_date: date
    max_amount: float
    max_rows_drop: float = 0.2
    accept_input_change: bool = False
    dbt_vars: Mapping[str, object] = field(default_factory=dict)  # var() of the macros
    docs: Path | None = None  # Data Docs and profiles; None = docs_dir(warehouse)
    memory_limit: str = "3GB"  # DuckDB's cap on the scratch file (CRM_DUCKDB_MEMORY_LIMIT)


@dataclass(frozen=True)
class Outcome:
    """The result of one check."""

    check: Check
    passed: bool
    sentence: str
    rows: int = 0
    unexpected: dict[str, int] = field(default_factory=dict)  # expectation -> rows failing
    examples: list[dict[str, Any]] = field(default_factory=list)
    observed: list[dict[str, Any]] = field(default_factory=list)  # aggregate expectations
    profile: dict[str, Any] | None = None  # this run's profile (drift checks)
    docs_url: str | None = None


def docs_dir(warehouse: Path) -> Path:
    """`gx_docs` beside the warehouse (`gx_docs-cdnow` beside cdnow.duckdb, like
    DAGSTER_HOME); the settings' `data_docs_dir` (CRM_DATA_DOCS_DIR) defaults to it."""
    stem = Path(warehouse).stem
    return Path(warehouse).parent / ("gx_docs" if stem == "warehouse" else f"gx_docs-{stem}")


def profile_path(docs: Path, table: Table) -> Path:
    return docs / "profiles" / f"raw_{table}.json"


def not_run(check: Check, reason: str) -> Outcome:
    return Outcome(check, passed=False, sentence=f"Validation could not run: {reason}")


def validate(warehouse: Path, params: Params, tables: Iterable[Table] = TABLES) -> list[Outcome]:
    """Validate the raw tables, write Data Docs, keep the profiles of successful tables."""
    warehouse = Path(warehouse).resolve()
    if not warehouse.exists():
        raise CrmError(f"warehouse {warehouse} does not exist yet; run `crm run` first")
    tables = [t for t in TABLES if t in set(tables)]
    docs = params.docs or docs_dir(warehouse)
    shutil.rmtree(docs / "validations", ignore_errors=True)  # the index lists this run only
    with tempfile.TemporaryDirectory(prefix=".gx-", dir=warehouse.parent) as tmp:
        scratch = Path(tmp) / "raw.duckdb"
        profiles = _stage(warehouse, scratch, tables, params)
        previous = {t: _read_profile(docs, t) for t in tables}
        suites = {t: _suite(t, params, previous[t]) for t in tables}
        results = _run_gx(scratch, suites, docs, params.memory_limit)
    outcomes: list[Outcome] = []
    for t in tables:
        result, url = results[t]
        found = [_fold(c, result, url, profiles[t], previous[t], params) for c in _checks(t)]
        if all(o.passed for o in found if o.check.severity == "error"):
            _write_json(profile_path(docs, t), profiles[t])
        outcomes += found
    return outcomes


def _checks(table: Table) -> list[Check]:
    return [c for c in CHECKS if c.table == table]


# --------------------------------------------------------------------- DuckDB: stage, profile


def _macros(dbt_vars: Mapping[str, object]) -> Any:
    """`sql(macro, column)`: the SQL staging's dbt macro (macros/parsing.sql) renders."""
    import jinja2

    def var(name: str, default: object = None) -> object:
        if name not in dbt_vars and default is None:
            raise CrmError(f"the parsing macros need the dbt var {name!r}")
        return dbt_vars.get(name, default)

    path = DBT_PROJECT_DIR / "macros" / "parsing.sql"
    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    module = env.from_string(path.read_text(encoding="utf-8")).make_module({"var": var})

    def sql(name: str, col: str) -> str:  # what adapter.dispatch would pick for DuckDB
        for candidate in (f"duckdb__{name}", f"default__{name}", name):
            if hasattr(module, candidate):
                return str(getattr(module, candidate)(col))
        raise CrmError(f"no dbt macro {name} in {path}")

    return sql


def _projection(table: Table, sql: Any) -> str:
    """The scratch table's SELECT over raw.<table>: see the module docstring."""
    typed = {
        "date": lambda c: f"cast({sql('parse_timestamp', c)} as date)",
        "amount": lambda c: f"cast({sql('parse_amount', c)} as double)",
        "text": lambda c: f"lower({sql('clean_text', c)})",
        "consent": lambda c: f"cast({sql('parse_bool', c)} as varchar)",
    }
    inner = ["_source_file as source_file", "_source_row as source_row", "_reject_reason"]
    outer = ["source_file", "source_row", "_reject_reason as reject_reason"]
    required = ENTITIES[table].required
    for col in ENTITIES[table].columns:
        kind = VALUES[table].get(col)
        if kind is None:  # personal or free text: only whether it is filled
            outer.append(f"case when {sql('has_text', col)} then true end as {col}")
            inner.append(col)
            continue
        # a row the reader could not split may have its fields shifted (a name in the
        # channel column): its values are not read, the row is counted as rejected
        inner += [
            f"case when _reject_reason is null then {typed[kind](col)} end as {col}",
            f"{col} as {col}__text",
        ]
        outer.append(col)
        if kind != "text":  # what landed where staging reads no value (examples)
            text = sql("clean_text", f"{col}__text")  # cleaned only where it is shown
            landed = f"coalesce({text}, '{MISSING}')" if col in required else text
            outer.append(
                f"case when {col} is null and _reject_reason is null then {landed} end "
                f"as {col}_landed"
            )
    return f"select {', '.join(outer)} from (select {', '.join(inner)} from wh.raw.{table})"


def _stage(
    warehouse: Path, scratch: Path, tables: list[Table], params: Params
) -> dict[Table, dict[str, Any]]:
    from orchestration.lib.warehouse import connect

    sql = _macros(params.dbt_vars)
    profiles = {}
    with connect(scratch, memory_limit=params.memory_limit) as con:
        con.execute(f"attach '{str(warehouse).replace(chr(39), chr(39) * 2)}' as wh (read_only)")
        for t in tables:
            con.execute(f"create table {t} as {_projection(t, sql)}")
        con.execute("detach wh")
        for t in tables:
            profiles[t] = _profile(con, t, params)
    return profiles


def _profile(con: Any, table: Table, params: Params) -> dict[str, Any]:
    """Rows, null shares, amount mean/median/quantiles, value shares: no personal data."""
    columns = list(ENTITIES[table].columns)
    counts = con.execute(
        f"select count(*), {', '.join(f'count({c})' for c in columns)} from {table}"
    ).fetchone()
    rows = int(counts[0])
    out: dict[str, Any] = {
        "table": f"raw.{table}",
        "as_of": params.as_of.isoformat(),
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "null_share": {c: _r(1 - n / rows) for c, n in zip(columns, counts[1:], strict=True)}
        if rows
        else {},
    }
    for col, kind in VALUES[table].items():
        if kind == "amount":
            mean, median, qs = con.execute(
                f"select avg({col}), median({col}), "
                f"quantile_cont({col}, [0.05, 0.25, 0.5, 0.75, 0.95]) from {table}"
            ).fetchone()
            out[col] = {
                "mean": _r(mean),
                "median": _r(median),
                "quantiles": dict(zip(QUANTILES, map(_r, qs), strict=True)) if qs else {},
            }
        elif kind in ("text", "consent"):
            found = con.execute(
                f"select {col}, count(*) from {table} where {col} is not null "
                f"group by 1 order by 2 desc, 1 limit {MAX_VALUES + 1}"
            ).fetchall()
            filled = sum(n for _, n in found)
            if len(found) <= MAX_VALUES and filled:
                out.setdefault("shares", {})[col] = {str(v): _r(n / filled) for v, n in found}
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _read_profile(docs: Path, table: Table) -> dict[str, Any] | None:
    try:
        return json.loads(profile_path(docs, table).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------- GX: suites


def _suite(table: Table, p: Params, before: dict[str, Any] | None) -> list[Any]:
    """The expectations of a table, each tagged with its check and a readable label."""
    gxe = _gx().expectations
    out: list[Any] = []

    def add(check: str, label: str, expectation: Any) -> None:
        expectation.meta = {"check": check, "label": label}
        out.append(expectation)

    name = {c.kind: c.name for c in _checks(table)}
    required = ENTITIES[table].required
    if table != "suppression":
        add(
            name["parse"],
            "rows the CSV reader could split",
            gxe.ExpectColumnValuesToBeNull(column="reject_reason"),
        )
    for col, kind in VALUES[table].items():
        if kind == "text":
            continue
        given = "present and readable" if col in required else "readable when given"
        add(name["parse"], f"{col} {given}", gxe.ExpectColumnValuesToBeNull(column=f"{col}_landed"))
        if kind == "date":
            add(
                name["range"],
                f"{col} within {p.min_date}..{p.as_of}",
                gxe.ExpectColumnValuesToBeBetween(
                    column=col, min_value=p.min_date, max_value=p.as_of
                ),
            )
        elif kind == "amount":
            add(
                name["range"],
                f"{col} within 0..{p.max_amount:,.0f}",
                gxe.ExpectColumnValuesToBeBetween(column=col, min_value=0, max_value=p.max_amount),
            )
        if "readable" in name and col in required:
            add(
                name["readable"],
                f"{col} readable in at least {MIN_READABLE:.0%} of the rows",
                gxe.ExpectColumnValuesToNotBeNull(column=col, mostly=MIN_READABLE),
            )
    if before is not None:
        _drift(table, p, before, lambda label, e: add(name["drift"], label, e))
    return out


def _drift(table: Table, p: Params, before: dict[str, Any], add: Any) -> None:
    """Expectations built from the previous profile (the suppression list: shrinking only)."""
    gxe = _gx().expectations
    rows, drop = int(before["rows"]), p.max_rows_drop
    filled = {c: 1 - share for c, share in before.get("null_share", {}).items()}
    if table == "suppression":
        add(
            f"rows: at least {int(rows * (1 - drop)):,} (was {rows:,})",
            gxe.ExpectTableRowCountToBeBetween(min_value=int(rows * (1 - drop))),
        )
        for col in IDENTIFIERS:
            if filled.get(col):
                low = _r(filled[col] * (1 - drop))
                add(
                    f"rows with {col}: at least {low:.1%} (was {filled[col]:.1%})",
                    gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(column=col, min_value=low),
                )
        return
    low, high = int(rows * (1 - drop)), int(rows * (1 + drop)) + 1
    add(
        f"rows: {low:,}..{high:,} (was {rows:,})",
        gxe.ExpectTableRowCountToBeBetween(min_value=low, max_value=high),
    )
    for col, share in filled.items():
        low, high = _r(max(0.0, share - NULL_SHARE_POINTS)), _r(min(1.0, share + NULL_SHARE_POINTS))
        add(
            f"{col} filled: {low:.1%}..{high:.1%} of the rows (was {share:.1%})",
            gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
                column=col, min_value=low, max_value=high
            ),
        )
    for col, kind in VALUES[table].items():
        centers = {
            "mean": gxe.ExpectColumnMeanToBeBetween,
            "median": gxe.ExpectColumnMedianToBeBetween,
        }
        for stat, expect in centers.items() if kind == "amount" else ():
            was = (before.get(col) or {}).get(stat)
            if was is not None:
                low, high = _r(was * (1 - CENTER_CHANGE)), _r(was * (1 + CENTER_CHANGE))
                add(
                    f"{col} {stat}: {low:,.2f}..{high:,.2f} (was {was:,.2f})",
                    expect(column=col, min_value=low, max_value=high),
                )
        shares = before.get("shares", {}).get(col)
        if shares:
            add(
                f"{col}: only values seen before",
                gxe.ExpectColumnDistinctValuesToBeInSet(column=col, value_set=sorted(shares)),
            )
        for value, share in (shares or {}).items():
            if share >= VALUE_SHARE_POINTS:
                low = _r(share - VALUE_SHARE_POINTS)
                add(
                    f"{col} = {value!r}: at least {low:.1%} of the filled rows (was {share:.1%})",
                    gxe.ExpectColumnValuesToBeInSet(column=col, value_set=[value], mostly=low),
                )


# --------------------------------------------------------------------- GX: run, results


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # before the first import
    import great_expectations as gx

    return gx


_DIALECT = "duckdb.crm_autocommit"


def _register_dialect() -> None:
    """duckdb-engine without transactions, for GX's SQL data source.

    GX fetches a query's rows after handing its connection back to SQLAlchemy, and the
    ROLLBACK SQLAlchemy sends then makes DuckDB drop the pending result: every metric
    would come back empty. GX only reads the scratch file, so its statements run in
    DuckDB's autocommit mode instead: no BEGIN, COMMIT or ROLLBACK is sent.
    """
    import duckdb_engine
    from sqlalchemy.dialects import registry

    class AutocommitDuckDB(duckdb_engine.Dialect):
        supports_statement_cache = False

        def do_begin(self, dbapi_connection: Any) -> None:
            pass

        def do_commit(self, dbapi_connection: Any) -> None:
            pass

        def do_rollback(self, dbapi_connection: Any) -> None:
            pass

    globals()["AutocommitDuckDB"] = AutocommitDuckDB
    registry.register(_DIALECT, __name__, "AutocommitDuckDB")


def _run_gx(
    scratch: Path, suites: dict[Table, list[Any]], docs: Path, memory_limit: str
) -> dict[Table, tuple[Any, str | None]]:
    """Run each table's suite as one GX checkpoint that updates the Data Docs site."""
    gx = _gx()
    _register_dialect()
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name=SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_sql(
        name="raw",
        connection_string=f"duckdb+crm_autocommit:///{scratch}",
        kwargs={"connect_args": {"config": {"memory_limit": memory_limit}}},
    )
    out: dict[Table, tuple[Any, str | None]] = {}
    try:
        for table, expectations in suites.items():
            name = f"raw_{table}"
            batch = source.add_table_asset(name=name, table_name=table)
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(
                    name=name,
                    data=batch.add_batch_definition_whole_table("whole table"),
                    suite=context.suites.add(
                        gx.ExpectationSuite(name=name, expectations=expectations)
                    ),
                )
            )
            landed = [f"{c}_landed" for c, k in VALUES[table].items() if k != "text"]
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=name,
                    validation_definitions=[definition],
                    actions=[UpdateDataDocsAction(name="data_docs", site_names=[SITE])],
                    result_format={
                        "result_format": "SUMMARY",
                        "unexpected_index_column_names": ["source_file", "source_row", *landed],
                        "partial_unexpected_count": EXAMPLES,
                    },
                )
            )
            ((key, result),) = checkpoint.run().run_results.items()
            urls = context.get_docs_sites_urls(resource_identifier=key, site_name=SITE)
            out[table] = (result, urls[0]["site_url"] if urls else None)
    finally:  # release the scratch file
        source.get_execution_engine().engine.dispose()
        source.get_engine().dispose()
    return out


def _fold(
    check: Check,
    result: Any,
    url: str | None,
    profile: dict[str, Any],
    before: dict[str, Any] | None,
    p: Params,
) -> Outcome:
    rows = int(profile["rows"])
    extra = {"profile": profile} if check.kind == "drift" else {}
    if check.kind == "drift" and before is None:
        return Outcome(
            check,
            passed=True,
            sentence=f"No earlier profile of raw.{check.table}: this run's ({rows:,} rows) "
            "is the reference for the next one.",
            rows=rows,
            docs_url=url,
            **extra,
        )
    unexpected: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    observed: list[dict[str, Any]] = []
    problems: list[str] = []
    for r in result.results:
        meta = r.expectation_config.meta or {}
        if meta.get("check") != check.name:
            continue
        label, res, kwargs = meta["label"], r.result or {}, r.expectation_config.kwargs
        error = _error(r)
        if error:
            problems.append(f"{label}: could not be evaluated ({error})")
        elif "element_count" in res and check.kind != "drift":  # counts rows
            n = unexpected[label] = int(res.get("unexpected_count") or 0)
            if not r.success:
                found = [_tidy(e) for e in res.get("partial_unexpected_index_list") or []]
                examples += found
                first = f", e.g. {_where(found[0], kwargs['column'])}" if found else ""
                pct = 100 * n / rows if rows else 0.0
                problems.append(f"{label}: {n:,} of {rows:,} rows fail ({pct:.2f}%){first}")
        else:  # an aggregate: row count, share, mean, median, value set
            value = res.get("observed_value")
            if "element_count" in res:  # a value's share (ExpectColumnValuesToBeInSet, mostly)
                value = _r(1 - (res.get("unexpected_percent") or 0) / 100)
            elif res.get("partial_unexpected_list"):  # values unseen before
                value = res["partial_unexpected_list"]
            low = kwargs.get("min_value", kwargs.get("mostly"))  # mostly: a share's floor
            bounds = {"min_value": low, "max_value": kwargs.get("max_value")}
            observed.append(
                {"expectation": label, "observed": value}
                | {k: v for k, v in bounds.items() if v is not None}
                | {"passed": bool(r.success)}
            )
            if not r.success:
                problems.append(f"{label}: now {_show(value)}")
    passed = not problems
    head = f"raw.{check.table} ({rows:,} row{'s' * (rows != 1)})"
    sentence = f"{head}: {'; '.join(problems)}." if problems else f"{head}: every expectation met."
    if not passed and check.blocking and check.kind == "drift" and p.accept_input_change:
        passed, sentence = True, f"accepted by --accept-input-change: {sentence}"
    return Outcome(
        check,
        passed=passed,
        sentence=sentence,
        rows=rows,
        unexpected=unexpected,
        examples=_dedupe(examples)[:EXAMPLES],
        observed=observed,
        docs_url=url,
        **extra,
    )


def _error(r: Any) -> str | None:
    """The error of an expectation GX could not evaluate (None when it ran)."""
    info = r.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    for i in infos:
        if isinstance(i, dict) and i.get("raised_exception"):
            return (str(i.get("exception_message") or "").strip().splitlines() or ["error"])[0]
    return None


def _tidy(example: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, date) else v for k, v in example.items() if v is not None
    }


def _where(example: dict[str, Any], column: str) -> str:
    """`orders.csv row 4 ('31/12/2024')`: where a row failed and the value it failed on."""
    name = column if column.endswith("_landed") else f"{column}_landed"
    text = example.get(name, example.get(column))
    where = f"{example.get('source_file')} row {example.get('source_row')}"
    return f"{where} ({text!r})" if text is not None else where


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, list):
        return ", ".join(repr(v) for v in value)
    return str(value)


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[Any, Any]] = set()
    out = []
    for row in rows:
        key = (row.get("source_file"), row.get("source_row"))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
