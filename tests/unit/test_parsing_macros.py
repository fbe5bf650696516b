"""The parsing and identifier macros' fast paths never change a result.

dbt_project/macros/parsing.sql and identifiers.sql first test a value for its common,
already-clean shape and take it as it is. REFERENCE below is each macro as it was before
the fast paths (the full regex rewriting for every value); both are run by DuckDB on
hostile values and on random text and must agree on every one, NULL included.
"""

from __future__ import annotations

import random

import duckdb
import jinja2
import pytest

from orchestration.settings import DBT_PROJECT_DIR

TIMEZONE = "Asia/Shanghai"
INVISIBLE = r"\x{200b}-\x{200d}\x{2060}\x{feff}"
LAYOUTS = (
    "['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M', '%Y-%m-%d', "
    "'%Y/%m/%d %H:%M:%S', '%Y/%m/%d %H:%M', '%Y/%m/%d', '%Y%m%d', '%Y%m%d%H%M%S', "
    "'%Y.%m.%d', '%Y.%m.%d %H:%M:%S']"
)


def _ref_clean_text(c: str) -> str:
    return rf"nullif(trim(regexp_replace({c}, '[\s\x{{00a0}}\x{{3000}}]+', ' ', 'g')), '')"


def _ref_parse_timestamp(c: str) -> str:
    return (
        rf"case when regexp_matches(trim({c}), '(Z|[+-]\d{{2}}(:?\d{{2}})?)$') "
        rf"and regexp_matches(trim({c}), '^\d{{4}}-\d{{2}}-\d{{2}}[ T]\d') "
        f"then timezone('{TIMEZONE}', try_cast(trim({c}) as timestamptz)) "
        rf"else try_strptime(regexp_replace(trim({c}), '(:\d{{2}})\.\d+$', '\1'), {LAYOUTS}) end"
    )


def _ref_parse_amount(c: str) -> str:
    s = rf"regexp_replace(upper({c}), '[\s\x{{00a0}}\x{{3000}}\x{{202f}}¥￥$元]|RMB|CNY', '', 'g')"
    return (
        "try_cast(case "
        f"when {s} ~ '^-?[0-9]+([.][0-9]+)?$' then {s} "
        f"when {s} ~ '^-?[0-9]{{1,3}}(,[0-9]{{3}})+([.][0-9]+)?$' then replace({s}, ',', '') "
        f"when {s} ~ '^-?[0-9]{{1,3}}([.][0-9]{{3}})+(,[0-9]+)?$' "
        f"then replace(replace({s}, '.', ''), ',', '.') "
        f"when {s} ~ '^-?[0-9]+,[0-9]{{1,2}}$' then replace({s}, ',', '.') "
        "end as decimal(18, 2))"
    )


def _ref_normalise_member_id(c: str) -> str:
    return (
        f"nullif(regexp_replace(regexp_replace({c}, "
        rf"'[{INVISIBLE}\x{{00a0}}\x{{202f}}\x{{3000}}]', '', 'g'), '^\s+|\s+$', '', 'g'), '')"
    )


def _ref_normalise_phone(c: str) -> str:
    unwrapped = (
        f"regexp_replace(translate({c}, '０１２３４５６７８９＋', '0123456789+'), "
        r"'^[=''\"\s]+|[''\"\s]+$|\(0\)', '', 'g')"
    )
    s = (
        f"regexp_replace({unwrapped}, '[\\s\\x{{00a0}}\\x{{202f}}\\x{{3000}}{INVISIBLE}"
        r"().\-\x{2010}-\x{2015}\x{2212}－（）/]', '', 'g')"
    )
    return (
        f"case when regexp_full_match({s}, '0?1[3-9][0-9]{{9}}') then '+86' || right({s}, 11) "
        rf"when regexp_full_match({s}, '(\+|00)?860?1[3-9][0-9]{{9}}') "
        f"then '+86' || right({s}, 11) "
        rf"when regexp_full_match({s}, '(\+|00)[1-9][0-9]{{6,14}}') "
        rf"then '+' || regexp_replace({s}, '^(\+|00)', '') end"
    )


def _ref_normalise_email(c: str) -> str:
    s = (
        f"regexp_replace(lower(regexp_replace({c}, '[{INVISIBLE}"
        r"\x{00a0}\x{202f}\x{3000}<>]|^\s+|\s+$', '', 'g')), '^mailto:', '')"
    )
    return rf"case when regexp_full_match({s}, '[^@\s]+@[^@\s]+\.[^@\s.]+') then {s} end"


REFERENCE = {
    "clean_text": _ref_clean_text,
    "parse_timestamp": _ref_parse_timestamp,
    "parse_amount": _ref_parse_amount,
    "normalise_member_id": _ref_normalise_member_id,
    "normalise_phone": _ref_normalise_phone,
    "normalise_email": _ref_normalise_email,
}

HOSTILE = [
    None, "", " ", "  ", "\t", "\n", "\r\n", "\v", "\f", "\x00", "\x1f", "\u00a0", "\u3000",
    "\u202f", "\u2003", "\u200b", "\ufeff", "x", " x", "x ", " x ", "a  b", "a\u00a0b",
    "a\u3000", "\u3000a", "a\u2003", "a\u200b", "\u200bM001", "M001\ufeff", "M001\v", "M001\x85",
    "paid", " PAID ", "已支付", "O000000001", "M0000215",
    # amounts
    "0", "-0", "118.59", "-3.00", "12.345", "1e3", "1E3", "+5", ".5", "5.", "-", "--5", "5-",
    "1,299.00", "¥1,299.00", "￥1299", "1 299,00", "1.299,00", "RMB 12", "12元", "12,5",
    "12,50", "12,505", "1_000", "0x10", "99999999999999999999", "9999999999999999.99",
    "١٢٣", "１２３", "12 ", " 12", "nan", "inf", "NaN", "-.5", "00012", "1.", "1..2",
    # times
    "2024-07-01", "2024-07-01 00:12:27", "2024-07-01T00:12:27", "2024-07-01 00:12",
    "2024-07-01 00:12:27Z", "2024-07-01T00:12:27+08:00", "2024-07-01T00:12:27+0800",
    "2024-07-01 00:12:27-05", "2024-07-01 00:12:27.123", "2024-07-01 00:12:27.123+08:00",
    " 2024-07-01 ", "2024/07/01", "2024/07/01 08:00", "20240701", "20240701081530",
    "2024.07.01", "2024-02-30", "2024-02-29", "2023-02-29", "2024-07-01 25:00:00",
    "2024-07-01 23:59:60", "2024-07-01 00:00:00 ", "2024-13-01", "0000-01-01", "9999-12-31",
    "2024-7-1", "31/12/2024", "2024-07-01\u00a000:12:27", "２０２４-07-01", "2024-07-01T",
    "2024-07-01 00:12:27+25:00", "2024-07-01-01", "2024-07-01 00:12:-1",
    # phones
    "13900000002", "139 0000 0002", "139-0000-0002", "+8613900000002", "008613900000002",
    "8613900000002", "013900000002", "1390000000２", "＋86 139 0000 0002", '="13900000002"',
    "'13900000002", "(0)13900000002", "1.39E+10", "12900000002", "139000000021",
    "+4420794600", "0044207946000", "+1", "13900000002 ", "\u200b13900000002",
    # emails
    "a@b.com", "A@B.COM", "mailto:a@b.com", "MAILTO:A@B.CN", "a@b", "a b@c.com", " a@b.com ",
    "a@b.c", "a@b.", "@b.com", "a@@b.com", "a@b..com", "a.b+c%d-e_f@x-y.z.cn", "a@b.com.",
    "<a@b.com>", "a@b.co1", "a@b.c-m", "张@例子.中国", "a@b.com\u200b", "a\u00a0@b.com",
]  # fmt: skip

ALPHABET = list("0123456789-+.,:/ TZ@aAbBeEmx_%元¥$'\"=()") + [
    "\t", "\n", "\v", "\u00a0", "\u3000", "\u202f", "\u2003", "\u200b", "\ufeff", "２", "＋",
]  # fmt: skip


def _random_values(n: int, seed: int = 20261202) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        shape = rng.random()
        if shape < 0.3:  # near a valid value, with a character changed
            base = list(rng.choice([v for v in HOSTILE if v]))
            base[rng.randrange(len(base))] = rng.choice(ALPHABET)
            out.append("".join(base))
        else:
            out.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 22))))
    return out


@pytest.fixture(scope="module")
def macros():
    """The project's macros, rendered as dbt would for DuckDB (adapter.dispatch → default__)."""
    source = "\n".join(
        (DBT_PROJECT_DIR / "macros" / name).read_text(encoding="utf-8")
        for name in ("parsing.sql", "identifiers.sql")
    )
    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    module = env.from_string(source).make_module(
        {"var": lambda name, default=None: {"timezone": TIMEZONE}.get(name, default)}
    )

    def sql(name: str, col: str) -> str:
        for candidate in (f"default__{name}", name):
            if hasattr(module, candidate):
                return str(getattr(module, candidate)(col))
        raise AssertionError(f"no macro {name}")

    return sql


@pytest.fixture(scope="module")
def values() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create table v (i integer, v varchar)")
    rows = HOSTILE + _random_values(20_000)
    con.executemany("insert into v values (?, ?)", list(enumerate(rows)))
    return con


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_fast_path_gives_the_reference_result(macros, values, name):
    new, ref = macros(name, "v"), REFERENCE[name]("v")
    assert new != ref, "the macro should differ from the reference (it has a fast path)"
    differ = values.execute(
        f"select v, cast(({new}) as varchar), cast(({ref}) as varchar) from v "
        f"where ({new}) is distinct from ({ref}) order by i limit 10"
    ).fetchall()
    assert not differ, f"{name}: fast path and reference disagree on {differ}"


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("clean_text", "O000000001", "O000000001"),
        ("clean_text", " a\u3000 b ", "a b"),
        ("parse_amount", "118.59", "118.59"),
        ("parse_amount", "¥1,299.00", "1299.00"),
        ("parse_timestamp", "2024-07-01 00:12:27", "2024-07-01 00:12:27"),
        ("parse_timestamp", "2024-07-01T00:12:27+00:00", "2024-07-01 08:12:27"),
        ("parse_timestamp", "2024.07.01", "2024-07-01 00:00:00"),  # a documented layout
        ("parse_timestamp", "2024-07-01 00:12:27.123", "2024-07-01 00:12:27"),
        ("parse_timestamp", "2024/07/01 08:00", "2024-07-01 08:00:00"),
        ("parse_timestamp", "20240701", "2024-07-01 00:00:00"),
        ("normalise_member_id", "M0000215", "M0000215"),
        ("normalise_phone", "13900000002", "+8613900000002"),
        ("normalise_email", "a@b.com", "a@b.com"),
        ("normalise_email", "MAILTO:A@B.CN", "a@b.cn"),
    ],
)
def test_known_answers(macros, name, value, expected):
    got = duckdb.sql(f"select cast(({macros(name, '$v')}) as varchar)", params={"v": value})
    assert got.fetchall()[0][0] == expected


def test_has_text_is_clean_text_not_null(macros, values):
    """has_text (validation's "filled", the invalid phone / email flags) never builds the
    cleaned text; it must say true exactly where clean_text gives a value, on every hostile
    and random value and on every code point alone (the spaces trim() and \\s know)."""
    new, ref = macros("has_text", "v"), f"({macros('clean_text', 'v')}) is not null"
    differ = values.execute(
        f"select v from v where ({new}) is distinct from ({ref}) order by i limit 10"
    ).fetchall()
    assert not differ, f"has_text and clean_text disagree on {differ}"
    points = duckdb.connect()
    points.execute(  # every Unicode scalar value (no surrogates)
        "create table v as select chr(i::integer) as v from range(1, 1114112) t(i) "
        "where i < 55296 or i > 57343"
    )
    differ = points.execute(f"select v from v where ({new}) is distinct from ({ref}) limit 10")
    assert not differ.fetchall(), "has_text and clean_text disagree on a single code point"
    blank = points.execute(f"select list(unicode(v) order by v) from v where not ({new})")
    # \t \n \f \r and the 17 space separators (Zs), space and no-break space among them
    assert len(blank.fetchone()[0]) == 4 + 17


def test_bare_as_of_date_is_one_expression():
    """Without an as_of_date var (a bare `dbt build`) the as-of date is yesterday in the
    business time zone. dbt's datediff appends `::timestamp` to it, so it must be one
    expression: `... - 1::timestamp` did not bind (customer_rfm, campaign_members)."""
    source = (DBT_PROJECT_DIR / "macros" / "as_of.sql").read_text(encoding="utf-8")
    module = (
        jinja2.Environment()
        .from_string(source)
        .make_module({"var": lambda name, default=None: {"timezone": TIMEZONE}.get(name, default)})
    )
    expr = str(module.as_of_date())
    got = duckdb.sql(
        f"select {expr}::timestamp = cast(timezone('{TIMEZONE}', now()) as date) - 1"
    ).fetchall()
    assert got == [(True,)]
