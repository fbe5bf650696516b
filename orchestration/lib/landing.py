"""Landing files → DuckDB `raw` tables.

Every landed row is kept as text, with the file it came from and its row
number, so later stages can quarantine a bad row and say exactly where it was.
Typing and cleaning happen in dbt staging models, not here.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.errors import CrmError


@dataclass(frozen=True)
class Entity:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    file_required: bool
    any_of: tuple[str, ...] = ()  # at least one of these columns must be present

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


ORDERS = Entity(
    name="orders",
    required=("order_id", "member_id", "ordered_at", "amount"),
    optional=("status", "channel", "store_id", "coupon_code"),
    file_required=True,
)
MEMBERS = Entity(
    name="members",
    required=("member_id", "registered_at"),
    optional=(
        "name",
        "gender",
        "birthday",
        "city",
        "phone",
        "email",
        "acquisition_channel",
        "acquisition_cost",
        "marketing_consent",
    ),
    file_required=False,
)
SUPPRESSION = Entity(
    name="suppression",
    required=(),
    optional=("member_id", "phone", "email", "reason"),
    file_required=False,
    any_of=("member_id", "phone", "email"),
)
ENTITIES = {e.name: e for e in (ORDERS, MEMBERS, SUPPRESSION)}
SUFFIXES = (".csv", ".txt", ".parquet")


@dataclass
class LoadReport:
    entity: str
    files: list[str] = field(default_factory=list)
    rows: int = 0
    rows_per_file: dict[str, int] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def find_files(landing_dir: Path, entity: Entity) -> list[Path]:
    """Files for an entity: `<entity>*.csv|.txt|.parquet` in the landing folder, sorted."""
    if not landing_dir.is_dir():
        raise CrmError(
            f"landing folder {landing_dir} does not exist; create it and put orders.csv "
            "(and optionally members.csv) there, or point CRM_LANDING_DIR / --landing at it"
        )
    files = sorted(
        p
        for p in landing_dir.iterdir()
        if p.is_file() and p.name.lower().startswith(entity.name) and p.suffix.lower() in SUFFIXES
    )
    if not files and entity.file_required:
        raise CrmError(
            f"no {entity.name} file in {landing_dir}; expected {entity.name}.csv or "
            f"{entity.name}.parquet (see docs/data-contract.md)"
        )
    return files


def landing_fingerprint(landing_dir: Path) -> str:
    """A cheap fingerprint (names, sizes, mtimes) of the landing files; used by the sensor."""
    h = hashlib.sha256()
    if landing_dir.is_dir():
        for p in sorted(landing_dir.iterdir()):
            if p.is_file() and p.suffix.lower() in SUFFIXES:
                st = p.stat()
                h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def detect_encoding(path: Path, chunk_size: int = 1 << 20) -> str:
    """Return 'utf-8-sig', 'utf-8' or 'gb18030' (a superset of GBK) for a text file."""
    with path.open("rb") as fh:
        head = fh.read(3)
        if head == codecs.BOM_UTF8:
            return "utf-8-sig"
        decoder = codecs.getincrementaldecoder("utf-8")()
        data = head
        while True:
            try:
                decoder.decode(data, final=False)
            except UnicodeDecodeError:
                break
            data = fh.read(chunk_size)
            if not data:
                try:
                    decoder.decode(b"", final=True)
                    return "utf-8"
                except UnicodeDecodeError:
                    break
    # Not UTF-8: GB18030 decodes every GBK file; anything else is unreadable.
    try:
        with path.open("r", encoding="gb18030") as fh:
            while fh.read(chunk_size):
                pass
    except UnicodeDecodeError as exc:
        raise CrmError(
            f"{path.name}: cannot read the text encoding (tried UTF-8 and GBK/GB18030, "
            f"failed at byte {exc.start}); save the file as UTF-8 and land it again"
        ) from exc
    return "gb18030"


@contextmanager
def _utf8_view(path: Path, encoding: str) -> Iterator[Path]:
    """Yield a path DuckDB can read as UTF-8 (transcoding GB18030 to a temp file)."""
    if encoding in {"utf-8", "utf-8-sig"}:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="crm-transcode-") as tmp:
        out = Path(tmp) / (path.stem + ".utf8.csv")
        with (
            path.open("r", encoding=encoding, newline="") as src,
            out.open("w", encoding="utf-8", newline="") as dst,
        ):
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        yield out


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scan_sql(path: Path) -> str:
    """A SQL table expression reading one (UTF-8 or Parquet) file with all columns as text."""
    if path.suffix.lower() == ".parquet":
        return f"read_parquet({_sql_str(str(path))})"
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        header = fh.readline()
    if not header.strip():
        raise CrmError(
            f"{path.name} is empty (no header row); export it again with a header line "
            "naming the columns (see docs/data-contract.md)"
        )
    delim = _sniff_delimiter(header)
    return (
        f"read_csv({_sql_str(str(path))}, header=true, all_varchar=true, delim={_sql_str(delim)},"
        " quote='\"', escape='\"', null_padding=true, auto_detect=false, strict_mode=false,"
        " columns=" + _columns_struct(header, delim) + ")"
    )


def _columns_struct(header: str, delim: str) -> str:
    import csv

    names = next(csv.reader([header.lstrip("\ufeff").rstrip("\r\n")], delimiter=delim))
    seen: set[str] = set()
    parts = []
    for i, name in enumerate(names):
        label = name if name not in seen and name != "" else f"{name or 'column'}_{i + 1}"
        seen.add(label)
        parts.append(f"{_sql_str(label)}: 'VARCHAR'")
    return "{" + ", ".join(parts) + "}"


def _canonical(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower().replace(" ", "_")


def load_entity(
    con: duckdb.DuckDBPyConnection, entity: Entity, files: list[Path], schema: str = "raw"
) -> LoadReport:
    """Replace `<schema>.<entity>` with every row of `files` (text columns + provenance).

    Raises CrmError naming the file and column when a required column is missing.
    The table is only replaced once every file has been read.
    """
    report = LoadReport(entity=entity.name)
    selects: list[str] = []
    with _open_all(files) as opened:
        for path, readable, encoding in opened:
            scan = _scan_sql(readable)
            try:
                described = con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()
            except duckdb.Error as exc:
                raise CrmError(
                    f"{path.name}: cannot be read as {'Parquet' if encoding == 'binary' else 'CSV'}"
                    f" ({str(exc).splitlines()[0]}); export it again as CSV or Parquet"
                ) from exc
            present = {}
            for col_name, *_ in described:
                present.setdefault(_canonical(col_name), col_name)
            missing = [c for c in entity.required if c not in present]
            if missing:
                hints = []
                for col in missing:
                    close = difflib.get_close_matches(col, list(present), n=1, cutoff=0.6)
                    hints.append(f"'{col}'" + (f" (found '{present[close[0]]}'?)" if close else ""))
                raise CrmError(
                    f"{path.name}: required column {', '.join(hints)} is missing; the file has "
                    f"{', '.join(repr(c) for c in present)}. Rename the column in the export "
                    "(see docs/data-contract.md)"
                )
            if entity.any_of and not any(c in present for c in entity.any_of):
                raise CrmError(
                    f"{path.name}: needs at least one of the columns "
                    f"{', '.join(entity.any_of)}; the file has {', '.join(map(repr, present))}"
                )
            extra = sorted(set(present) - set(entity.columns))
            if extra:
                report.notes.append(f"{path.name}: ignored extra columns {', '.join(extra)}")
            cols = [
                f"CAST({_quote_ident(present[c])} AS VARCHAR) AS {c}"
                if c in present
                else f"CAST(NULL AS VARCHAR) AS {c}"
                for c in entity.columns
            ]
            selects.append(
                f"SELECT {', '.join(cols)}, {_sql_str(path.name)} AS _source_file, "
                f"CAST(ordinality AS BIGINT) AS _source_row FROM {scan} WITH ORDINALITY"
            )
            report.files.append(path.name)
            report.encodings[path.name] = encoding
        if selects:
            body = " UNION ALL ".join(selects)
        else:
            cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in entity.columns)
            body = (
                f"SELECT {cols}, CAST(NULL AS VARCHAR) AS _source_file, "
                "CAST(NULL AS BIGINT) AS _source_row WHERE false"
            )
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        tmp = f"{schema}._load_{entity.name}"
        try:
            con.execute(f"CREATE OR REPLACE TABLE {tmp} AS {body}")
        except duckdb.Error as exc:
            raise CrmError(
                f"{entity.name} files {', '.join(report.files)} could not be parsed: "
                f"{str(exc).splitlines()[0]}; check quoting and delimiters, then land them again"
            ) from exc
    counts = con.sql(f"SELECT _source_file, count(*) FROM {tmp} GROUP BY 1").fetchall()
    report.rows_per_file = {name: n for name, n in counts}
    report.rows = sum(report.rows_per_file.values())
    for name in report.files:
        if report.rows_per_file.get(name, 0) == 0:
            report.notes.append(f"{name}: header only, no data rows")
    if entity.file_required and report.rows == 0:
        con.execute(f"DROP TABLE {tmp}")
        raise CrmError(
            f"the {entity.name} file(s) {', '.join(report.files)} contain no data rows; "
            "nothing was replaced — land a complete export and run again"
        )
    con.execute("BEGIN TRANSACTION")
    con.execute(f"DROP TABLE IF EXISTS {schema}.{entity.name}")
    con.execute(f"ALTER TABLE {tmp} RENAME TO {entity.name}")
    con.execute("COMMIT")
    return report


@contextmanager
def _open_all(files: list[Path]) -> Iterator[list[tuple[Path, Path, str]]]:
    """Detect encodings and make each file readable as UTF-8 for the duration."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        opened = []
        for path in files:
            encoding = "binary" if path.suffix.lower() == ".parquet" else detect_encoding(path)
            readable = (
                stack.enter_context(_utf8_view(path, encoding)) if encoding != "binary" else path
            )
            opened.append((path, readable, encoding))
        yield opened
