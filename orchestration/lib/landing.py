"""Landing files → DuckDB `raw` tables.

Every landed row is kept as text, with the file it came from and its row
number, so later stages can quarantine a bad row and say exactly where it was.
Typing and cleaning happen in dbt staging models, not here.
"""

from __future__ import annotations

import codecs
import difflib
import io
import re
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
# Feedback from the campaign systems (optional): the send platform's log and the coupon
# system's events. They close the loop: campaign_results reads them (docs/data-contract.md).
CAMPAIGN_SENDS = Entity(
    name="campaign_sends",
    required=("campaign_id", "member_id", "channel", "sent_at"),
    optional=("status", "is_control", "coupon_code", "list_name", "priority_group", "cost"),
    file_required=False,
)
COUPON_EVENTS = Entity(
    name="coupon_events",
    required=("coupon_code", "member_id", "event", "event_at"),
    optional=("campaign_id", "channel_code", "order_id", "face_value", "threshold"),
    file_required=False,
)
ENTITIES = {e.name: e for e in (ORDERS, MEMBERS, SUPPRESSION, CAMPAIGN_SENDS, COUPON_EVENTS)}
SUFFIXES = (".csv", ".txt", ".parquet")


@dataclass
class LoadReport:
    entity: str
    files: list[str] = field(default_factory=list)
    rows: int = 0
    rows_per_file: dict[str, int] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


#: Longest CSV line DuckDB reads; a longer line is quarantined ("line too long").
MAX_LINE_BYTES = 2 << 20
#: Bytes read at a time by the line counters (a test makes it small to cross chunk ends).
_CHUNK = 1 << 22

_REJECT_REASONS = {
    "MISSING COLUMNS": "too few fields: {fields} of {expected} on line {line}; "
    "the row looks cut short",
    "TOO MANY COLUMNS": "too many fields: {fields} of {expected} on line {line}; "
    "an unquoted delimiter inside a value?",
    "UNQUOTED VALUE": "unterminated or misplaced quote: lines {line}-{last} were read as "
    "one value ({span} lines); fix the quote and land the file again",
    "LINE SIZE OVER MAXIMUM": "line too long: line {line} is longer than "
    + f"{MAX_LINE_BYTES // (1 << 20)} MB",
    "INVALID UNICODE": "invalid characters for the file's encoding on line {line}",
}


@dataclass
class RecordScan:
    """An independent count of a CSV file's records (a second reader, not DuckDB's).

    `records` excludes the header and blank lines. `lines` maps a line number as DuckDB
    reports it (records and blank lines counted, quoted line breaks not) to the record's
    number and its first and last physical line; it is filled for the lines asked for.
    """

    records: int
    physical_lines: int
    lines: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    tail: list[tuple[int, int, int]] = field(default_factory=list)  # the last records


def scan_records(path: Path, delim: str, want: set[int] | None = None) -> RecordScan:
    """Count the data records of a UTF-8 CSV file the way RFC 4180 defines them.

    Files without a quote character are counted from their line breaks (fast); others,
    and whenever line positions are wanted, are read with Python's csv module.
    """
    if not want:
        fast = _count_unquoted(path)
        if fast is not None:
            return fast
    import csv
    import sys
    from collections import deque

    csv.field_size_limit(sys.maxsize)
    want = want or set()
    found: dict[int, tuple[int, int, int]] = {}
    tail: deque[tuple[int, int, int]] = deque(maxlen=8)
    records = rows = 0
    last_line = 0
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delim, quotechar='"', doublequote=True)
        for row in reader:
            rows += 1  # DuckDB's line number of this row
            first, last_line = last_line + 1, reader.line_num
            if rows == 1 or not row:  # header, blank line
                continue
            records += 1
            entry = (records, first, last_line)
            tail.append(entry)
            if rows in want:
                found[rows] = entry
    return RecordScan(records, last_line, found, list(tail))


def _count_unquoted(path: Path) -> RecordScan | None:
    """Records of a file without any quote character: its non-blank lines minus the header.

    One vectorised pass per chunk: line breaks are LF (a CRLF counts as its LF, so the
    CRs are dropped first), and a blank line is a line break right after another one."""
    import numpy as np

    newlines = blanks = 0
    ends_in_break = False  # the previous chunk's last byte (CRs dropped) was a line break
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if b'"' in chunk:
                return None  # quotes: count with the csv reader
            text = chunk
            if b"\r" in chunk:
                if chunk.count(b"\r") != chunk.count(b"\r\n"):
                    return None  # a bare CR line end (or one split by the chunk): csv reader
                text = chunk.replace(b"\r", b"")
            breaks = np.frombuffer(text, dtype=np.uint8) == ord("\n")
            newlines += int(np.count_nonzero(breaks))
            blanks += int(np.count_nonzero(breaks[1:] & breaks[:-1]))
            blanks += int(ends_in_break and bool(breaks[0]))
            ends_in_break = bool(breaks[-1])
            last = chunk[-1:]
    lines = newlines + (1 if last not in (b"", b"\n") else 0)
    return RecordScan(records=max(lines - 1 - blanks, 0), physical_lines=lines)


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
    _refuse_latin_mojibake(path, chunk_size)
    return "gb18030"


# A Latin letter glued to a CJK character inside a word ("Ren閑" for "Renée") is what
# Windows-1252 text looks like when decoded as GBK; real Chinese text rarely has it.
_MOJIBAKE = re.compile(r"[A-Za-z][\u3400-\u9fff]|[\u3400-\u9fff][a-z]")


def _refuse_latin_mojibake(path: Path, chunk_size: int) -> None:
    """Stop when a 'GBK' file only decodes by guessing: it is really Windows-1252."""
    with path.open("rb") as fh:
        raw = fh.read(8 * chunk_size)
    text = raw.decode("gb18030", errors="ignore")
    found = _MOJIBAKE.search(text)
    if found is None:
        return
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return
    line = text.count("\n", 0, found.start()) + 1
    raise CrmError(
        f"{path.name}: the text encoding looks like Windows-1252 (Western European), not "
        f"UTF-8 or GBK: line {line} has Latin letters that only decode as Chinese "
        "characters by guessing. Save the file as UTF-8 and land it again"
    )


@contextmanager
def _utf8_view(path: Path, encoding: str) -> Iterator[Path]:
    """Yield a path DuckDB can read strictly: UTF-8 with one kind of line ending.

    GB18030 files are transcoded, and files that mix CRLF and LF line endings (one
    program wrote the header, another the rows) get LF throughout, in a temp copy.
    """
    mixed = _mixed_line_endings(path)
    if encoding in {"utf-8", "utf-8-sig"} and not mixed:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="crm-transcode-") as tmp:
        out = Path(tmp) / (path.stem + ".utf8.csv")
        with (
            path.open("r", encoding=encoding, newline="") as src,
            out.open("w", encoding="utf-8", newline="") as dst,
        ):
            carry = ""
            while chunk := src.read(1 << 20):
                chunk = carry + chunk
                carry = "\r" if chunk.endswith("\r") else ""
                chunk = chunk[:-1] if carry else chunk
                dst.write(chunk.replace("\r\n", "\n") if mixed else chunk)
            dst.write(carry)
        yield out


def _mixed_line_endings(path: Path) -> bool:
    """True when some lines end in CRLF and others in a bare LF.

    A chunk without a CR has only bare LFs; only chunks with one are counted (the common
    LF-only export is read at the speed of a byte search, not of counting every line)."""
    has_crlf = has_bare_lf = False
    prev = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if prev != b"\r" and b"\r" not in chunk:
                has_bare_lf = has_bare_lf or b"\n" in chunk
            else:  # a CRLF may span the chunks: prev is the last byte before this chunk
                crlf = (prev + chunk).count(b"\r\n")
                has_crlf = has_crlf or crlf > 0
                has_bare_lf = has_bare_lf or chunk.count(b"\n") > crlf
            if has_crlf and has_bare_lf:
                return True
            prev = chunk[-1:]
    return False


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scan_sql(path: Path, rejects: str | None = None) -> str:
    """A SQL table expression reading one (UTF-8 or Parquet) file with all columns as text.

    CSV is read strictly (RFC 4180 quoting, exact field count): a record that does not
    parse is not guessed at but recorded in the `rejects` table (when given) with its
    line, and quarantined by `load_entity`.
    """
    if path.suffix.lower() == ".parquet":
        return f"read_parquet({_sql_str(str(path))})"
    header = _header_line(path)
    delim = _sniff_delimiter(header)
    options = (
        f"header=true, all_varchar=true, delim={_sql_str(delim)}, quote='\"', escape='\"', "
        f"auto_detect=false, strict_mode=true, max_line_size={MAX_LINE_BYTES}, "
        f"columns={_columns_struct(header, delim)}"
    )
    if rejects:
        options += (
            f", store_rejects=true, rejects_table={_sql_str(rejects)}, "
            f"rejects_scan={_sql_str(rejects + '_scans')}"
        )
    return f"read_csv({_sql_str(str(path))}, {options})"


def _header_line(path: Path) -> str:
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        header = fh.readline()
    if not header.strip():
        raise CrmError(
            f"{path.name} is empty (no header row); export it again with a header line "
            "naming the columns (see docs/data-contract.md)"
        )
    return header


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
    """Replace `<schema>.<entity>` with every record of `files` (text columns + provenance).

    Every record of a CSV file becomes a row: records DuckDB's strict reader rejects
    (too few / too many fields, a broken quote, an over-long line) and records it skips
    become rows with `_reject_reason` (quarantined downstream). The rows per file are
    reconciled with an independent count of the file's records (`scan_records`); a
    difference stops the load naming the file and line. Raises CrmError naming the file
    and column when a required column is missing. The table is only replaced once every
    file has been read.
    """
    report = LoadReport(entity=entity.name)
    selects: list[str] = []
    csv_files: list[tuple[Path, Path, str, str]] = []  # (path, readable, delimiter, rejects)
    with _open_all(files) as opened:
        for i, (path, readable, encoding) in enumerate(opened):
            is_csv = encoding != "binary"
            rejects = f"crm_rejects_{entity.name}_{i}" if is_csv else None
            scan = _scan_sql(readable, rejects)
            try:
                described = con.sql(f"DESCRIBE SELECT * FROM {_scan_sql(readable)}").fetchall()
            except duckdb.Error as exc:
                raise CrmError(
                    f"{path.name}: cannot be read as {'CSV' if is_csv else 'Parquet'}"
                    f" ({str(exc).splitlines()[0]}); export it again as CSV or Parquet"
                ) from exc
            present = {}
            for col_name, *_ in described:
                present.setdefault(_canonical(col_name), col_name)
            _check_columns(path, entity, present)
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
                "CAST(ordinality AS BIGINT) AS _source_row, "
                f"CAST(NULL AS VARCHAR) AS _reject_reason FROM {scan} WITH ORDINALITY"
            )
            if is_csv:
                delim = _sniff_delimiter(_header_line(readable))
                csv_files.append((path, readable, delim, rejects or ""))
            report.files.append(path.name)
            report.encodings[path.name] = encoding
        if selects:
            body = " UNION ALL ".join(selects)
        else:
            cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in entity.columns)
            body = (
                f"SELECT {cols}, CAST(NULL AS VARCHAR) AS _source_file, "
                "CAST(NULL AS BIGINT) AS _source_row, CAST(NULL AS VARCHAR) AS _reject_reason "
                "WHERE false"
            )
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        tmp = f"{schema}._load_{entity.name}"
        # Rows carry their record number (ORDINALITY, counted by the reader), so the table
        # need not keep the file's order: written in parallel without it, the load and the
        # checkpoints after it take half the time (10M orders: ~37 -> ~16 s).
        con.execute("SET preserve_insertion_order = false")
        try:
            con.execute(f"CREATE OR REPLACE TABLE {tmp} AS {body}")
        except duckdb.Error as exc:
            raise CrmError(
                f"{entity.name} files {', '.join(report.files)} could not be parsed: "
                f"{str(exc).splitlines()[0]}; check quoting and delimiters, then land them again"
            ) from exc
        finally:
            con.execute("RESET preserve_insertion_order")
        for path, readable, delim, rejects in csv_files:
            _account_for_file(con, tmp, entity, path, readable, delim, rejects, report)
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


def _check_columns(path: Path, entity: Entity, present: dict[str, str]) -> None:
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


def _account_for_file(
    con: duckdb.DuckDBPyConnection,
    tmp: str,
    entity: Entity,
    path: Path,
    readable: Path,
    delim: str,
    rejects: str,
    report: LoadReport,
) -> None:
    """Turn DuckDB's rejected and skipped records into quarantine rows, then reconcile the
    file's rows with an independent count of its records (blocking on any difference)."""
    import csv

    name = _sql_str(path.name)
    errors = con.execute(
        f"SELECT line, any_value(error_type), any_value(csv_line) FROM {rejects} "
        "GROUP BY line ORDER BY line"
    ).fetchall()
    con.execute(f"DROP TABLE IF EXISTS {rejects}")
    con.execute(f"DROP TABLE IF EXISTS {rejects}_scans")
    loaded = con.execute(f"SELECT count(*) FROM {tmp} WHERE _source_file = {name}").fetchall()
    loaded = loaded[0][0]
    scan = scan_records(readable, delim, want={int(e[0]) for e in errors})
    header_text = _header_line(readable).lstrip("\ufeff").rstrip("\r\n")
    header = [_canonical(h) for h in next(csv.reader([header_text], delimiter=delim))]
    expected = len(header)
    rows: list[tuple] = []
    for line, error_type, csv_line in errors:
        record, first, last = scan.lines.get(int(line), (None, int(line), int(line)))
        if record is None:
            raise CrmError(
                f"{path.name}: the CSV reader rejected line {line}, which an independent "
                "read of the file does not find; check the file's quoting and land it again"
            )
        try:  # DuckDB's csv_line may start with the blank lines before the record
            fields = next(
                csv.reader(io.StringIO((csv_line or "").lstrip("\r\n")), delimiter=delim), []
            )
        except csv.Error:
            fields = []
        reason = _REJECT_REASONS.get(str(error_type), str(error_type).lower() + " on line {line}")
        reason = reason.format(
            line=first, last=last, span=last - first + 1, fields=len(fields), expected=expected
        )
        # a row with the wrong number of fields keeps what it has (ids help find it)
        values = (
            {h: v for h, v in zip(header, fields, strict=False) if h in entity.columns}
            if error_type in {"MISSING COLUMNS", "TOO MANY COLUMNS"}
            else {}
        )
        rows.append((record, reason, values))
    # Records the reader skipped without a word (e.g. a final line over the maximum size)
    missing = scan.records - loaded - len(rows)
    if missing < 0:
        raise CrmError(
            f"{path.name}: the CSV reader returned {loaded + len(rows):,} records but the file "
            f"has {scan.records:,}; nothing was replaced. Check the file's line endings and "
            "quoting, then land it again"
        )
    if missing:
        tail = scan.tail or scan_records(readable, delim, want={0}).tail  # {0}: the slow read
        for record, first, _last in tail[-missing:] if missing <= len(tail) else []:
            rows.append(
                (record, f"not read: line {first} could not be read by the CSV reader "
                 f"(longer than {MAX_LINE_BYTES // (1 << 20)} MB or cut off?)", {})
            )  # fmt: skip
        if len(rows) != scan.records - loaded:
            raise CrmError(
                f"{path.name}: {missing:,} record(s) were not read by the CSV reader and "
                "cannot be located; nothing was replaced. Check the file and land it again"
            )
    if not rows:
        return
    rejected = sorted(r[0] for r in rows if not r[1].startswith("not read"))
    if rejected:
        # loaded rows were numbered among loaded rows only: renumber them as records
        con.execute("CREATE OR REPLACE TEMP TABLE crm_rejected (rec BIGINT, i BIGINT)")
        con.executemany(
            "INSERT INTO crm_rejected VALUES (?, ?)", [(r, i) for i, r in enumerate(rejected, 1)]
        )
        con.execute(
            f"UPDATE {tmp} SET _source_row = _source_row + (SELECT count(*) FROM crm_rejected "
            f"WHERE rec - i < {tmp}._source_row) WHERE _source_file = {name}"
        )
        con.execute("DROP TABLE crm_rejected")
    cols = list(entity.columns)
    for record, reason, values in rows:
        con.execute(
            f"INSERT INTO {tmp} ({', '.join(cols)}, _source_file, _source_row, _reject_reason) "
            f"VALUES ({', '.join('?' for _ in cols)}, ?, ?, ?)",
            [values.get(c) for c in cols] + [path.name, record, reason],
        )
    n = con.execute(f"SELECT count(*) FROM {tmp} WHERE _source_file = {name}").fetchall()[0][0]
    if n != scan.records:
        raise CrmError(
            f"{path.name}: {n:,} rows read but the file has {scan.records:,} records; "
            "nothing was replaced. Check the file and land it again"
        )
    report.notes.append(
        f"{path.name}: {len(rows):,} record(s) could not be parsed and are quarantined "
        f"(first: {rows[0][1]})"
    )


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
