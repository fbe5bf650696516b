"""Great Expectations (1.x) validation of the landed orders and members.

The rules run as GE expectation suites against the DuckDB warehouse through a
GE SQL data source (SQLAlchemy + duckdb-engine), so DuckDB does the counting
and GE only fetches aggregates and a few example rows: nothing is loaded into
pandas, whatever the number of orders.

What is validated (one rule = one Dagster asset check, see RULES):

- the usable orders / members (`staging.stg_shop__orders`, `staging.stg_shop__members`):
  required columns and types, unique and present keys, amounts not negative —
  `error` rules that guard every model input;
- every landed row (`staging.base_shop__orders`, `staging.base_shop__members`,
  `raw.members`): the row-level rules staging already quarantines (missing ids,
  unparseable dates and amounts, negative amounts, unknown statuses), dates after
  the as-of date, orders of members missing from the members file and unreadable
  marketing consent — `warn` rules: the rows are set aside or derived, not lost,
  and the counts say how much.

Usage: `validate(warehouse, Params(as_of=...))` returns one `Outcome` per rule.
The warehouse is opened read-only; no GE files are written (ephemeral context).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal

from orchestration.errors import CrmError

Severity = Literal["error", "warn"]
Entity = Literal["orders", "members"]

#: Normalised order statuses (staging maps synonyms such as `completed`, `已退款` onto these).
KNOWN_STATUSES: tuple[str, ...] = ("paid", "cancelled", "refunded")
#: Marketing-consent spellings staging reads (case and surrounding spaces ignored),
#: mirroring the `parse_bool` dbt macro.
CONSENT_VALUES: tuple[str, ...] = (
    *("true", "t", "1", "yes", "y", "是", "同意"),
    *("false", "f", "0", "no", "n", "否", "不同意"),
)

STG_ORDERS = "staging.stg_shop__orders"
BASE_ORDERS = "staging.base_shop__orders"
STG_MEMBERS = "staging.stg_shop__members"
BASE_MEMBERS = "staging.base_shop__members"
RAW_MEMBERS = "raw.members"

# Columns that identify an example row, per table (present in every version of the table).
_INDEX_COLUMNS: dict[str, tuple[str, ...]] = {
    STG_ORDERS: ("source_file", "source_row", "order_id", "member_id"),
    BASE_ORDERS: ("source_file", "source_row", "order_id", "invalid_reason"),
    STG_MEMBERS: ("member_id",),
    BASE_MEMBERS: ("source_file", "source_row", "member_id", "invalid_reason"),
    RAW_MEMBERS: ("_source_file", "_source_row", "member_id"),
}

# Expected column types of the staged tables the models read, as SQLAlchemy type names
# (GE checks `isinstance` against them: VARCHAR is a String, DECIMAL(18,2) a DECIMAL, ...).
_TEXT, _TS, _DATE, _DEC, _INT, _BOOL = "String", "DateTime", "Date", "DECIMAL", "Integer", "Boolean"
_STG_ORDERS_TYPES = {
    "order_id": _TEXT,
    "member_id": _TEXT,
    "ordered_at": _TS,
    "order_date": _DATE,
    "amount": _DEC,
    "status": _TEXT,
    "is_purchase": _BOOL,
    "source_file": _TEXT,
    "source_row": _INT,
}
_STG_MEMBERS_TYPES = {
    "member_id": _TEXT,
    "registered_at": _DATE,
    "marketing_consent": _BOOL,
    "acquisition_cost": _DEC,
}

_ROW_COUNT_RULE = "__row_count__"


@dataclass(frozen=True)
class Params:
    """What the suites are built from."""

    as_of: date
    known_statuses: tuple[str, ...] = KNOWN_STATUSES
    consent_values: tuple[str, ...] = CONSENT_VALUES
    max_examples: int = 5


@dataclass(frozen=True)
class Rule:
    """One validation rule: a few GE expectations on one table, reported as one check.

    `kind`: "rows" = column expectations counting rows (examples via the index columns);
    "columns" = the table's columns and their types (unexpected = bad columns);
    "query" = custom-SQL `UnexpectedRowsExpectation`s, e.g. across tables.
    """

    name: str
    entity: Entity
    table: str
    severity: Severity
    description: str
    noun: str  # what element_count counts, e.g. "usable orders"
    finding: str  # what the unexpected elements have: {has}/{is}/{lack} agree with the count
    consequence: str  # what happens to them (said when the rule fails)
    expectations: Callable[[Params], list[Any]] = field(repr=False)
    kind: Literal["rows", "columns", "query"] = "rows"
    missing_note: str = ""  # for rows counted as "missing" (allowed, but worth saying)

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True)
class Outcome:
    """The result of one rule."""

    name: str
    entity: Entity
    table: str
    severity: Severity
    blocking: bool
    success: bool
    unexpected_count: int
    element_count: int
    examples: list[dict[str, Any]]
    sentence: str
    expectations: tuple[str, ...]
    missing_count: int | None = None
    error: str | None = None  # set when an expectation could not be evaluated

    @property
    def unexpected_percent(self) -> float:
        return 100.0 * self.unexpected_count / self.element_count if self.element_count else 0.0


# --------------------------------------------------------------------------- rules


def _gxe() -> Any:
    _quiet_gx()
    import great_expectations.expectations as gxe

    return gxe


def _not_null(*columns: str) -> Callable[[Params], list[Any]]:
    return lambda p: [_gxe().ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _key(column: str) -> Callable[[Params], list[Any]]:
    def build(p: Params) -> list[Any]:
        gxe = _gxe()
        return [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeUnique(column=column),
        ]

    return build


def _columns(types: dict[str, str]) -> Callable[[Params], list[Any]]:
    def build(p: Params) -> list[Any]:
        gxe = _gxe()
        out: list[Any] = [
            gxe.ExpectTableColumnsToMatchSet(column_set=list(types), exact_match=False)
        ]
        out += [
            gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=[t]) for c, t in types.items()
        ]
        return out

    return build


def _status_known(p: Params) -> list[Any]:
    gxe = _gxe()
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="status"),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(p.known_statuses)),
    ]


def _consent_recognised(p: Params) -> list[Any]:
    # Staging's clean_text + parse_bool, in SQL (GE has no regex support for DuckDB).
    # Braces are doubled: GE fills {batch} with str.format.
    value = (
        "lower(nullif(trim(regexp_replace(marketing_consent, "
        "'[\\s\\x{{00a0}}\\x{{3000}}]+', ' ', 'g')), ''))"
    )
    words = ", ".join("'" + w.replace("'", "''") + "'" for w in p.consent_values)
    select = "select _source_file as source_file, _source_row as source_row, member_id, "
    gxe = _gxe()
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=f"{select}marketing_consent from {{batch}} "
            f"where {value} is not null and {value} not in ({words})",
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=f"{select}marketing_consent from {{batch}} where {value} is null",
            meta={"counts_as": "missing"},
        ),
    ]


def _member_known(p: Params) -> list[Any]:
    return [
        _gxe().UnexpectedRowsExpectation(
            unexpected_rows_query=(
                # GE leaves aliasing to queries with a JOIN: {batch} is the bare subquery
                "select o.source_file, o.source_row, o.order_id, o.member_id from {batch} as o "
                f"left join {STG_MEMBERS} as m on m.member_id = o.member_id "
                "where m.member_id is null"
            ),
        )
    ]


RULES: tuple[Rule, ...] = (
    # ---- orders: guards of the model inputs (stg_shop__orders) ----
    Rule(
        name="orders_columns_and_types",
        entity="orders",
        table=STG_ORDERS,
        severity="error",
        description=(
            "stg_shop__orders has the columns the models read, with their types "
            "(ids text, ordered_at timestamp, order_date date, amount decimal, ...)."
        ),
        noun="required columns",
        finding="{is} missing or of another type",
        consequence="the models cannot read the staged orders",
        expectations=_columns(_STG_ORDERS_TYPES),
        kind="columns",
    ),
    Rule(
        name="orders_order_id_unique",
        entity="orders",
        table=STG_ORDERS,
        severity="error",
        description="Every usable order (stg_shop__orders) has an order_id, and no order_id "
        "appears twice (exact duplicates and superseded versions are already removed).",
        noun="usable orders",
        finding="{has} a missing or repeated order_id",
        consequence="orders would be counted twice downstream",
        expectations=_key("order_id"),
    ),
    Rule(
        name="orders_amount_not_negative",
        entity="orders",
        table=STG_ORDERS,
        severity="error",
        description="Every usable order has an amount, and no amount is negative.",
        noun="usable orders",
        finding="{has} a missing or negative amount",
        consequence="spend and lifetime value would be wrong",
        expectations=lambda p: [
            _gxe().ExpectColumnValuesToNotBeNull(column="amount"),
            _gxe().ExpectColumnValuesToBeBetween(column="amount", min_value=0),
        ],
    ),
    Rule(
        name="orders_member_id_present",
        entity="orders",
        table=STG_ORDERS,
        severity="error",
        description="Every usable order names the member who placed it.",
        noun="usable orders",
        finding="{lack} a member_id",
        consequence="these orders belong to no customer",
        expectations=_not_null("member_id"),
    ),
    # ---- orders: quality signals on every landed row (base_shop__orders) ----
    Rule(
        name="orders_landed_order_id_present",
        entity="orders",
        table=BASE_ORDERS,
        severity="warn",
        description="Landed order rows without an order_id (quarantined by staging).",
        noun="landed order rows",
        finding="{lack} an order_id",
        consequence="they are in marts.orders_quarantine, not lost",
        expectations=_not_null("order_id"),
    ),
    Rule(
        name="orders_landed_member_id_present",
        entity="orders",
        table=BASE_ORDERS,
        severity="warn",
        description="Landed order rows without a member_id (quarantined by staging).",
        noun="landed order rows",
        finding="{lack} a member_id",
        consequence="they are in marts.orders_quarantine, not lost",
        expectations=_not_null("member_id"),
    ),
    Rule(
        name="orders_landed_ordered_at_parseable",
        entity="orders",
        table=BASE_ORDERS,
        severity="warn",
        description="Landed order rows whose ordered_at is missing or not a date staging "
        "can read (quarantined).",
        noun="landed order rows",
        finding="{has} a missing or unreadable ordered_at",
        consequence="they are in marts.orders_quarantine, not lost",
        expectations=_not_null("ordered_at"),
    ),
    Rule(
        name="orders_landed_amount_parseable",
        entity="orders",
        table=BASE_ORDERS,
        severity="warn",
        description="Landed order rows whose amount is missing or not a number staging can "
        "read (quarantined).",
        noun="landed order rows",
        finding="{has} a missing or unreadable amount",
        consequence="they are in marts.orders_quarantine, not lost",
        expectations=_not_null("amount"),
    ),
    Rule(
        name="orders_landed_amount_not_negative",
        entity="orders",
        table=BASE_ORDERS,
        severity="warn",
        description="Landed order rows with a negative amount (quarantined).",
        noun="landed order rows",
        finding="{has} a negative amount",
        consequence="they are in marts.orders_quarantine, not lost",
        expectations=lambda p: [_gxe().ExpectColumnValuesToBeBetween(column="amount", min_value=0)],
    ),
    Rule(
        name="orders_landed_status_known",
        entity="orders",
        table=BASE_ORDERS,
        severity="warn",
        description="Landed order rows whose status is not a known one (paid, cancelled, "
        "refunded or a synonym; empty = paid). Unknown statuses are quarantined.",
        noun="landed order rows",
        finding="{has} an unknown status",
        consequence="they are in marts.orders_quarantine, not lost",
        expectations=_status_known,
    ),
    Rule(
        name="orders_not_after_as_of",
        entity="orders",
        table=STG_ORDERS,
        severity="warn",
        description="Usable orders dated after the run's as-of date.",
        noun="usable orders",
        finding="{is} dated after the as-of date",
        consequence="they are ignored for this as-of date",
        expectations=lambda p: [
            _gxe().ExpectColumnValuesToBeBetween(column="order_date", max_value=p.as_of)
        ],
    ),
    Rule(
        name="orders_member_known",
        entity="orders",
        table=STG_ORDERS,
        severity="warn",
        description="Usable orders whose member_id is not in the members file (checked only "
        "when a members file was landed).",
        noun="usable orders",
        finding="{has} a member_id missing from the members file",
        consequence="the pipeline derives those members from their orders",
        expectations=_member_known,
        kind="query",
    ),
    # ---- members ----
    Rule(
        name="members_columns_and_types",
        entity="members",
        table=STG_MEMBERS,
        severity="error",
        description="stg_shop__members has the columns the models read, with their types "
        "(member_id text, registered_at date, marketing_consent boolean, ...).",
        noun="required columns",
        finding="{is} missing or of another type",
        consequence="the models cannot read the staged members",
        expectations=_columns(_STG_MEMBERS_TYPES),
        kind="columns",
    ),
    Rule(
        name="members_member_id_unique",
        entity="members",
        table=STG_MEMBERS,
        severity="error",
        description="Every usable member (stg_shop__members) has a member_id, and no "
        "member_id appears twice (disagreeing rows are merged by staging).",
        noun="usable members",
        finding="{has} a missing or repeated member_id",
        consequence="members would be counted twice downstream",
        expectations=_key("member_id"),
    ),
    Rule(
        name="members_landed_member_id_present",
        entity="members",
        table=BASE_MEMBERS,
        severity="warn",
        description="Landed member rows without a member_id (quarantined by staging).",
        noun="landed member rows",
        finding="{lack} a member_id",
        consequence="they are in marts.members_quarantine, not lost",
        expectations=_not_null("member_id"),
    ),
    Rule(
        name="members_landed_registered_at_parseable",
        entity="members",
        table=BASE_MEMBERS,
        severity="warn",
        description="Landed member rows whose registered_at is missing or not a date staging "
        "can read (quarantined).",
        noun="landed member rows",
        finding="{has} a missing or unreadable registered_at",
        consequence="they are in marts.members_quarantine; members who ordered are derived "
        "from their orders",
        expectations=_not_null("registered_at"),
    ),
    Rule(
        name="members_marketing_consent_recognised",
        entity="members",
        table=RAW_MEMBERS,
        severity="warn",
        description="Landed marketing_consent values that are neither yes nor no "
        "(true/false, 1/0, yes/no, 是/否, ...). Empty values are allowed (unknown).",
        noun="landed member rows",
        finding="{has} an unrecognised marketing_consent value",
        consequence="their consent is unknown and treated as no consent",
        missing_note="no value (consent unknown, treated as no consent)",
        expectations=_consent_recognised,
        kind="query",
    ),
    Rule(
        name="members_registered_not_after_as_of",
        entity="members",
        table=STG_MEMBERS,
        severity="warn",
        description="Usable members registered after the run's as-of date.",
        noun="usable members",
        finding="{is} registered after the as-of date",
        consequence="they are not yet members for this as-of date",
        expectations=lambda p: [
            _gxe().ExpectColumnValuesToBeBetween(column="registered_at", max_value=p.as_of)
        ],
    ),
)


def rules_for(entity: Entity) -> list[Rule]:
    return [r for r in RULES if r.entity == entity]


# --------------------------------------------------------------------------- suites


@dataclass
class SuitePlan:
    """The expectations for one table: one GE suite per result format.

    `rows` holds column expectations (counts, and a query for the unexpected rows);
    `queries` holds custom-SQL expectations (validated with COMPLETE, which returns their
    first rows) and the table's row count.
    """

    table: str
    rows: Any  # gx.ExpectationSuite
    queries: Any  # gx.ExpectationSuite


def build_suites(
    params: Params, rules: Iterable[Rule] = RULES, *, skip: Iterable[str] = ()
) -> list[SuitePlan]:
    """GE suites for the rules, grouped by table. Each expectation's meta names its rule."""
    _quiet_gx()
    import great_expectations as gx

    gxe = _gxe()
    skipped = set(skip)
    plans: dict[str, SuitePlan] = {}
    for rule in rules:
        if rule.name in skipped:
            continue
        plan = plans.get(rule.table)
        if plan is None:
            plan = plans[rule.table] = SuitePlan(
                table=rule.table,
                rows=gx.ExpectationSuite(name=f"{rule.table}.rows"),
                queries=gx.ExpectationSuite(name=f"{rule.table}.queries"),
            )
            plan.queries.add_expectation(
                gxe.ExpectTableRowCountToBeBetween(min_value=0, meta={"rule": _ROW_COUNT_RULE})
            )
        suite = plan.queries if rule.kind == "query" else plan.rows
        for expectation in rule.expectations(params):
            expectation.meta = {**(expectation.meta or {}), "rule": rule.name}
            suite.add_expectation(expectation)
    return list(plans.values())


# --------------------------------------------------------------------------- running


def _counting_format(table: str) -> dict[str, Any]:
    """GE bundles every count of a table into one aggregate query. No example rows are
    fetched here (`LIMIT 0`): GE instead returns, per expectation, the SQL that selects its
    unexpected rows with the index columns; that is run only for what failed, with a LIMIT.
    """
    return {
        "result_format": "BASIC",
        "partial_unexpected_count": 0,
        "unexpected_index_column_names": list(_INDEX_COLUMNS[table]),
        "return_unexpected_index_query": True,
    }


def validate(
    warehouse: Path, params: Params, entities: Sequence[Entity] = ("orders", "members")
) -> list[Outcome]:
    """Run the rules of `entities` against the warehouse (read-only); one Outcome per rule."""
    rules = [r for r in RULES if r.entity in entities]
    by_name = {r.name: r for r in rules}
    with _sql_data_source(warehouse) as ds:
        skip: list[str] = []
        if "orders" in entities and _scalar(ds, f"select count(*) from {RAW_MEMBERS}") == 0:
            skip.append("orders_member_known")
        results: dict[str, list[Any]] = {}
        errors: dict[str, list[str]] = {}
        examples: dict[str, list[dict[str, Any]]] = {}
        row_counts: dict[str, int] = {}
        for plan in build_suites(params, rules, skip=skip):
            batch = _batch(ds, plan.table)
            for suite, result_format in (
                (plan.rows, _counting_format(plan.table)),
                (plan.queries, "COMPLETE"),  # custom SQL: COMPLETE returns its first rows
            ):
                if not suite.expectations:
                    continue
                for r in batch.validate(suite, result_format=result_format).results:
                    rule_name = r.expectation_config.meta["rule"]
                    if rule_name == _ROW_COUNT_RULE:
                        row_counts[plan.table] = int(r.result.get("observed_value") or 0)
                        continue
                    rule = by_name[rule_name]
                    error = _exception_message(r)
                    if error is not None and rule.kind != "columns":
                        errors.setdefault(rule.name, []).append(error)
                        continue
                    results.setdefault(rule.name, []).append(r)
                    query = (r.result or {}).get("unexpected_index_query")
                    if rule.kind == "rows" and not r.success and query and params.max_examples:
                        found = examples.setdefault(rule.name, [])
                        found += _first_rows(ds, query, params.max_examples)
    outcomes = []
    for rule in rules:
        if rule.name in skip:
            outcomes.append(_skipped_member_check(rule, row_counts.get(rule.table, 0)))
            continue
        outcome = _fold(
            rule, results.get(rule.name, []), row_counts, params, examples.get(rule.name, [])
        )
        if rule.name in errors:
            outcome = _errored(outcome, errors[rule.name])
        outcomes.append(outcome)
    return outcomes


def _batch(ds: Any, qualified: str) -> Any:
    schema, table = qualified.split(".", 1)
    try:
        asset = ds.add_table_asset(name=qualified, table_name=table, schema_name=schema)
    except Exception as exc:  # GE wraps the driver's error in its own types
        raise CrmError(
            f"cannot validate {qualified}: it is not in the warehouse ({type(exc).__name__}); "
            "run the pipeline (dbt build) first"
        ) from exc
    return asset.add_batch_definition_whole_table("all").get_batch()


def validate_orders(warehouse: Path, params: Params) -> list[Outcome]:
    return validate(warehouse, params, ("orders",))


def validate_members(warehouse: Path, params: Params) -> list[Outcome]:
    return validate(warehouse, params, ("members",))


def _exception_message(r: Any) -> str | None:
    """The error of an expectation GE could not evaluate (None when it ran)."""
    info = r.exception_info or {}
    # an expectation's own info is flat; failed metrics' infos are keyed by metric id
    infos = [info] if "raised_exception" in info else list(info.values())
    for i in infos:
        if isinstance(i, dict) and i.get("raised_exception"):
            message = str(i.get("exception_message") or "unknown error").strip()
            return f"{r.expectation_config.type}: {message.splitlines()[0]}"
    return None


def _errored(outcome: Outcome, errors: list[str]) -> Outcome:
    return replace(
        outcome,
        success=False,
        error="; ".join(errors),
        sentence=f"Could not be evaluated on {outcome.table}: {errors[0]}",
    )


def _fold(
    rule: Rule,
    results: list[Any],
    row_counts: dict[str, int],
    p: Params,
    row_examples: list[dict[str, Any]],
) -> Outcome:
    examples: list[dict[str, Any]] = list(row_examples)
    missing: int | None = None
    if rule.kind == "columns":
        element_count = sum(
            1 for r in results if r.expectation_config.type != "expect_table_columns_to_match_set"
        )
        bad: dict[str, dict[str, Any]] = {}
        # the table's column list first: a type expectation on a missing column cannot run
        for r in sorted(results, key=lambda r: "type_list" in r.expectation_config.kwargs):
            kw = r.expectation_config.kwargs
            if "type_list" not in kw:
                if (error := _exception_message(r)) is not None:
                    raise CrmError(f"cannot read the columns of {rule.table}: {error}")
                absent = ((r.result.get("details") or {}).get("mismatched") or {}).get("missing")
                for col in absent or []:
                    bad[col] = {"column": col, "expected": "present", "observed": "missing"}
            elif not r.success and kw["column"] not in bad:
                bad[kw["column"]] = {
                    "column": kw["column"],
                    "expected": ", ".join(kw["type_list"]),
                    "observed": (r.result or {}).get("observed_value", "unknown"),
                }
        unexpected = len(bad)
        examples = list(bad.values())[: p.max_examples]
    elif rule.kind == "query":
        element_count = row_counts.get(rule.table, 0)
        unexpected = 0
        for r in results:
            count = int(r.result.get("observed_value") or 0)
            if (r.expectation_config.meta or {}).get("counts_as") == "missing":
                missing = count  # reported, not a failure (e.g. empty consent = unknown)
                continue
            unexpected += count
            examples += (r.result.get("details") or {}).get("unexpected_rows") or []
    else:
        element_count = max((int(r.result.get("element_count") or 0) for r in results), default=0)
        unexpected = sum(int(r.result.get("unexpected_count") or 0) for r in results)
    success = all(
        r.success
        for r in results
        if (r.expectation_config.meta or {}).get("counts_as") != "missing"
    )
    examples = _dedupe([_tidy(e) for e in examples])[: p.max_examples]
    return Outcome(
        name=rule.name,
        entity=rule.entity,
        table=rule.table,
        severity=rule.severity,
        blocking=rule.blocking,
        success=success,
        unexpected_count=unexpected,
        element_count=element_count,
        examples=examples,
        sentence=_sentence(rule, success, unexpected, element_count, examples, missing),
        expectations=tuple(dict.fromkeys(r.expectation_config.type for r in results)),
        missing_count=missing,
    )


def not_run(rule: Rule, reason: str) -> Outcome:
    """The outcome of a rule whose validation could not run at all (e.g. no warehouse)."""
    return Outcome(
        name=rule.name,
        entity=rule.entity,
        table=rule.table,
        severity=rule.severity,
        blocking=rule.blocking,
        success=False,
        unexpected_count=0,
        element_count=0,
        examples=[],
        sentence=f"Validation could not run: {reason}",
        expectations=(),
        error=reason,
    )


def _skipped_member_check(rule: Rule, element_count: int) -> Outcome:
    return Outcome(
        name=rule.name,
        entity=rule.entity,
        table=rule.table,
        severity=rule.severity,
        blocking=rule.blocking,
        success=True,
        unexpected_count=0,
        element_count=element_count,
        examples=[],
        sentence="No members file was landed: every member is derived from their orders, "
        "so there is nothing to compare the orders' member_id with.",
        expectations=("unexpected_rows_expectation",),
    )


def _tidy(example: dict[str, Any]) -> dict[str, Any]:
    """Provenance named alike for every table; dates as text; the checked column once
    (GE selects it after the index columns, and DuckDB renames a repeat `name_1`)."""
    out: dict[str, Any] = {}
    for k, v in example.items():
        key = k.lstrip("_") if k in ("_source_file", "_source_row") else k
        base, _, suffix = key.rpartition("_")
        if suffix.isdigit() and base in out and out[base] == v:
            continue
        out[key] = v.isoformat() if isinstance(v, date) else v
    return out


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple] = set()
    out = []
    for row in rows:
        key = tuple(sorted((k, str(v)) for k, v in row.items()))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _sentence(
    rule: Rule,
    success: bool,
    unexpected: int,
    total: int,
    examples: list[dict[str, Any]],
    missing: int | None,
) -> str:
    def verbs(one: bool) -> dict[str, str]:
        return (
            {"has": "has", "is": "is", "lack": "lacks"}
            if one
            else {"has": "have", "is": "are", "lack": "lack"}
        )

    finding = rule.finding.format(**verbs(unexpected == 1))
    if unexpected == 0:
        text = f"None of the {total:,} {rule.noun} {rule.finding.format(**verbs(False))}."
    else:
        pct = 100.0 * unexpected / total if total else 0.0
        text = (
            f"{unexpected:,} of {total:,} {rule.noun} ({pct:.2f}%) {finding}: {rule.consequence}."
        )
        first = examples[0] if examples else {}
        if "source_file" in first and "source_row" in first:
            text += f" First example: {first['source_file']} row {first['source_row']}."
        elif "column" in first:
            text += f" First: {first['column']} ({first['observed']})."
        elif "member_id" in first:
            text += f" First example: member {first['member_id']}."
    if missing and rule.missing_note:
        text += f" {missing:,} {'row has' if missing == 1 else 'rows have'} {rule.missing_note}."
    if not success and unexpected == 0:  # a rule that failed without counting rows
        text += " The expectation failed; see the GE result."
    return text


# --------------------------------------------------------------------------- GE + DuckDB


def _quiet_gx() -> None:
    """No usage statistics; called before great_expectations is imported."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


class _NoDialectModuleWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No sqlalchemy dialect found" not in record.getMessage()


_DIALECT = "duckdb.crm_readonly"


def _register_dialect() -> None:
    """Register the read-only DuckDB dialect GE's SQL data source connects through.

    duckdb-engine 0.17 with SQLAlchemy 2.1 and DuckDB 2.0 needs two adjustments for GE:

    - column reflection queries `pg_catalog.pg_collation`, which DuckDB lacks (duckdb-engine
      issues #1379/#1391): columns are read from `information_schema.columns` instead;
    - GE fetches a result after handing the connection back to the pool, whose ROLLBACK
      discards a DuckDB result: on a read-only file there is nothing to commit or roll back,
      so transactions are not opened at all.
    """
    from sqlalchemy.dialects import registry

    try:
        import duckdb_engine  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CrmError(
            "validation needs the duckdb-engine package (pip install duckdb-engine==0.17.0)"
        ) from exc
    registry.register(_DIALECT, __name__, "ReadOnlyDuckDBDialect")


def __getattr__(name: str) -> Any:
    # The dialect class subclasses duckdb-engine's: built on first use (by SQLAlchemy's
    # registry) so importing this module does not need duckdb-engine.
    if name == "ReadOnlyDuckDBDialect":
        cls = _make_dialect_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def _make_dialect_class() -> type:
    import re

    import duckdb_engine
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import types as sqltypes

    class ReadOnlyDuckDBDialect(duckdb_engine.Dialect):
        supports_statement_cache = False

        def do_begin(self, dbapi_connection: Any) -> None:
            pass

        def do_commit(self, dbapi_connection: Any) -> None:
            pass

        def do_rollback(self, dbapi_connection: Any) -> None:
            pass

        def get_columns(
            self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
        ) -> list[dict[str, Any]]:
            rows = connection.exec_driver_sql(
                "select column_name, data_type, is_nullable = 'YES' "
                "from information_schema.columns where table_schema = ? and table_name = ? "
                "order by ordinal_position",
                (schema or "main", str(table_name)),
            ).fetchall()
            if not rows:
                raise sa_exc.NoSuchTableError(f"{schema}.{table_name}")
            return [
                {"name": name, "type": self._type(data_type), "nullable": nullable, "default": None}
                for name, data_type, nullable in rows
            ]

        def get_pk_constraint(
            self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
        ) -> dict[str, Any]:
            return {"constrained_columns": [], "name": None}

        def _type(self, data_type: str) -> Any:
            m = re.fullmatch(r"\s*([A-Za-z_ ]+?)\s*(?:\((\d+)\s*,\s*(\d+)\))?\s*", data_type)
            base = (m.group(1) if m else data_type).lower()
            if base in ("decimal", "numeric") and m and m.group(2):
                return sqltypes.DECIMAL(int(m.group(2)), int(m.group(3)))
            found = self.ischema_names.get(base)
            return found() if found is not None else sqltypes.NullType()

    return ReadOnlyDuckDBDialect


@contextmanager
def _sql_data_source(warehouse: Path) -> Iterator[Any]:
    """A GE SQL data source on the warehouse file, read-only, in an ephemeral GE context."""
    warehouse = Path(warehouse).resolve()
    if not warehouse.exists():
        raise CrmError(f"warehouse {warehouse} does not exist yet; run `crm run` first")
    _quiet_gx()
    _register_dialect()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from sqlalchemy.engine import URL

    type_log = logging.getLogger("great_expectations.expectations.type_comparison")
    quiet = _NoDialectModuleWarning()
    type_log.addFilter(quiet)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    url = URL.create("duckdb+crm_readonly", database=str(warehouse))
    ds = context.data_sources.add_sql(
        name="warehouse",
        connection_string=url.render_as_string(hide_password=False),
        kwargs={"connect_args": {"read_only": True}},
    )
    try:
        yield ds
    finally:
        type_log.removeFilter(quiet)
        # release the file: DuckDB lets a later writer in only when every connection is closed
        ds.get_execution_engine().engine.dispose()
        ds.get_engine().dispose()


def _scalar(ds: Any, sql: str) -> Any:
    with ds.get_engine().connect() as con:
        return con.exec_driver_sql(sql).fetchall()[0][0]


def _first_rows(ds: Any, query: str, limit: int) -> list[dict[str, Any]]:
    """The first `limit` rows of a GE-built unexpected-rows query (one scan, stops early)."""
    body = query.strip().rstrip(";")
    with ds.get_engine().connect() as con:
        result = con.exec_driver_sql(f"select * from ({body}) as unexpected limit {int(limit)}")
        return [dict(row._mapping) for row in result.fetchall()]
