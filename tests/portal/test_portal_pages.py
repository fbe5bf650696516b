"""What each page shows (contract ids), explanatory pages for missing data, run status, and
the labels in both languages."""

from __future__ import annotations

import re
import shutil
import string
from pathlib import Path

import dagster as dg
import pytest

from orchestration.errors import CrmError
from orchestration.portal import i18n
from orchestration.portal.store import Store
from tests.portal.world import DAY, OLD_DAY, PASSWORDS, World, make_settings, sign_in

PNG = b"\x89PNG\r\n\x1a\n"
#: An i18n key handed to Refused / DataUnavailable / DownloadRefused / error_page.
KEY_ARGUMENT = (
    r"(?:Refused|Unavailable|error_page)\([^)]*?['\"]"
    r"((?:error|unavail|refused|mark)\.[a-z_0-9]+)['\"]"
)


def test_home_shows_the_latest_day_with_one_row_per_list(world: World, as_user) -> None:
    html = as_user("mia").get("/").text
    assert f"as of {DAY}" in html
    table = html[html.index('id="lists"') : html.index("</table>")]
    assert re.findall(r'<tr data-list="([^"]+)">', table) == ["win_back", "retention"]
    assert f'class="list-link" href="/days/{DAY}/lists/win_back"' in table
    row = table[table.index('data-list="win_back"') : table.index('data-list="retention"')]
    assert "30 yuan off orders from 199 yuan" in row  # offer
    assert "Silent and churned customers" in row  # purpose, from the playbook
    assert "SMS" in row and "email" in row  # channel mix
    assert "(" in row and "–" in row  # forecast buyers with interval
    assert f"{DAY}_abcd1234" in row  # model version


def test_latest_follows_the_LATEST_file(world: World, as_user) -> None:
    (world.export_dir / "LATEST").write_text(f"{OLD_DAY}\n", encoding="utf-8")
    assert f"as of {OLD_DAY}" in as_user("mia").get("/").text


def test_days_lists_every_published_day(as_user) -> None:
    html = as_user("mia").get("/days").text
    assert 'id="days"' in html
    assert re.findall(r'<tr data-day="([^"]+)">', html) == [DAY, OLD_DAY]
    assert f'href="/days/{OLD_DAY}"' in html
    day = as_user("mia").get(f"/days/{OLD_DAY}").text
    assert 'id="lists"' in day and f"as of {OLD_DAY}" in day


def test_list_page_has_the_contract_elements(as_user) -> None:
    client = as_user("mia")
    html = client.get(f"/days/{DAY}/lists/win_back").text
    for fragment in (
        'id="list-title"',
        'id="groups"',
        f'<img id="group-chart" src="/days/{DAY}/lists/win_back/chart.png"',
        'id="preview"',
        f'class="download" data-file="win_back.csv" href="/download/{DAY}/win_back.csv"',
        'data-file="win_back.xlsx"',
        'data-file="win_back.parquet"',
        f'id="mark-sent" method="post" action="/days/{DAY}/lists/win_back/sent"',
        'id="marks"',
    ):
        assert fragment in html, fragment
    groups = html[html.index('id="groups"') : html.index("</table>", html.index('id="groups"'))]
    assert re.findall(r'data-group="(\d+)"', groups) == ["1", "2", "3", "4"]
    chart = client.get(f"/days/{DAY}/lists/win_back/chart.png")
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
    assert chart.content.startswith(PNG)


def test_results_show_totals_and_priority_groups_over_all_channels(as_user) -> None:
    client = as_user("mia")
    html = client.get("/results").text
    table = html[html.index('id="results"') : html.index("</table>")]
    rows = re.findall(r'<tr data-campaign="([^"]+)" data-group="([^"]+)"', table)
    assert rows == [("win_back-20260501", g) for g in ("all", "1", "2", "3")]  # no channel rows
    assert "+6.1 (+1.2 … +10.3)" in table  # uplift in points with its interval
    assert "3.30" in table  # ROI
    assert "closed" in table
    assert '<img id="where-to-stop" src="/results/where-to-stop.png"' in html
    png = client.get("/results/where-to-stop.png")
    assert png.status_code == 200 and png.content.startswith(PNG)


def test_exclusions_are_counts_per_list_and_reason(as_user) -> None:
    html = as_user("ann").get("/exclusions").text
    table = html[html.index('id="exclusions"') : html.index("</table>")]
    assert "no marketing consent" in table
    consent = table[table.index("no marketing consent") :]
    assert re.search(r'<td class="num">2</td>', consent)
    assert "X0" not in table  # no member ids


def test_model_card_page(as_user) -> None:
    client = as_user("ann")
    html = client.get("/model").text
    assert 'id="model-card"' in html and "2026-06-30_abcd1234" in html
    assert 'src="/model/plots/decile_lift.png"' in html
    assert client.get("/model/plots/decile_lift.png").content.startswith(PNG)
    assert client.get("/model/plots/..%2F..%2Fsecret.txt").status_code == 404
    assert client.get("/model/plots/model_card.md").status_code == 404


# --- explanatory pages ---------------------------------------------------------------------


@pytest.fixture
def empty_world(tmp_path: Path) -> World:
    """No exports, no warehouse, no models, no runs: only a user."""
    from orchestration.portal.auth import create_user
    from tests.portal.world import open_world

    store = Store(make_settings(tmp_path).portal_db)  # type: ignore[arg-type]
    create_user(store, "mia", "marketer", PASSWORDS["mia"])
    create_user(store, "ada", "admin", PASSWORDS["ada"])
    return open_world(tmp_path)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/", "No lists are published yet"),
        ("/days", "No published days yet"),
        ("/results", "The warehouse does not exist yet"),
        ("/exclusions", "The warehouse does not exist yet"),
        ("/model", "No published model yet"),
        ("/status", "No pipeline run is recorded"),
    ],
)
def test_missing_data_gives_an_explanation_not_a_500(
    empty_world: World, path: str, text: str
) -> None:
    client = empty_world.make_client()
    sign_in(client, "ada")
    response = client.get(path)
    assert response.status_code == 200
    assert text in response.text
    assert not (empty_world.root / "warehouse.duckdb").exists()  # nothing was created
    assert not (empty_world.root / "exports").exists()


def test_where_to_stop_without_results_is_still_an_image(empty_world: World) -> None:
    client = empty_world.make_client()
    sign_in(client, "mia")
    response = client.get("/results/where-to-stop.png")
    assert response.status_code == 200 and response.content.startswith(PNG)


def test_a_warehouse_without_the_results_table_is_explained(world: World, as_user) -> None:
    import duckdb

    con = duckdb.connect(str(world.settings.warehouse))
    con.execute("drop table marts.campaign_results")
    con.close()
    html = as_user("mia").get("/results").text
    assert "has no marts.campaign_results yet" in html


def test_a_damaged_manifest_is_explained(world: World, as_user) -> None:
    (world.export_dir / OLD_DAY / "manifest.json").write_text("{not json", encoding="utf-8")
    client = as_user("mia")
    assert "cannot be read" in client.get(f"/days/{OLD_DAY}").text
    assert "cannot be read" in client.get("/days").text
    assert client.get(f"/download/{OLD_DAY}/win_back.xlsx").status_code == 404


def test_a_busy_warehouse_is_explained(world: World, as_user, monkeypatch) -> None:
    from orchestration.lib import warehouse

    def busy(*args, **kwargs):
        raise warehouse.WarehouseBusyError("the warehouse is open in another program")

    monkeypatch.setattr(warehouse, "open_warehouse", busy)
    response = as_user("mia").get("/results")
    assert response.status_code == 503 and "try again" in response.text


def test_unknown_url_is_a_404_page(as_user) -> None:
    response = as_user("mia").get("/no/such/page")
    assert response.status_code == 404 and 'id="error-message"' in response.text


# --- run status -----------------------------------------------------------------------------


def _run_job(world: World, fail: bool) -> None:
    @dg.op
    def step() -> None:
        if fail:
            raise CrmError("orders.csv: required column amount is missing")

    @dg.job(name="crm_job")
    def crm_job() -> None:
        step()

    home = world.settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        crm_job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={"crm/as_of": DAY, "crm/warehouse": str(world.settings.warehouse),
                  "crm/trigger": "cli"},
        )  # fmt: skip


def test_status_shows_a_failed_run_and_why(world: World, as_user) -> None:
    _run_job(world, fail=True)
    html = as_user("mia").get("/status").text
    section = html[html.index('id="run-status"') :]
    assert 'data-status="FAILURE"' in html
    assert "failed" in section and "Nothing was published" in section
    assert "required column amount is missing" in section
    assert DAY in section


def test_status_shows_a_published_run(world: World, as_user) -> None:
    _run_job(world, fail=False)
    html = as_user("mia").get("/status?lang=zh").text
    assert 'data-status="SUCCESS"' in html
    assert f"{DAY} 的名单已发布" in html


def test_status_ignores_runs_on_another_warehouse(world: World, as_user, tmp_path) -> None:
    elsewhere = world.settings.with_overrides(
        warehouse=tmp_path / "other.duckdb", dagster_home=world.settings.dagster_home
    )
    other = World(world.root, elsewhere, world.store, world.make_client)
    _run_job(other, fail=True)
    assert "No pipeline run is recorded" in as_user("mia").get("/status").text


# --- languages ------------------------------------------------------------------------------


def test_every_label_has_both_languages_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for key, (en, zh) in i18n.LABELS.items():
        assert en.strip() and zh.strip(), key
        names_en = {f for _, f, _, _ in fields.parse(en) if f}
        names_zh = {f for _, f, _, _ in fields.parse(zh) if f}
        assert names_en == names_zh, key


def test_every_label_used_in_templates_and_code_exists() -> None:
    root = Path(i18n.__file__).parent
    sources = [p.read_text(encoding="utf-8") for p in (root / "templates").glob("*.html")]
    sources += [p.read_text(encoding="utf-8") for p in root.glob("*.py")]
    used = set()
    for text in sources:
        used |= set(re.findall(r"""\bt\(\s*['"]([a-z_]+\.[A-Za-z0-9_.-]*[A-Za-z0-9_])['"]""", text))
        used |= set(re.findall(r"""translate\(\s*['"]([a-z_]+\.[A-Za-z0-9_.-]+)['"]""", text))
        used |= set(re.findall(KEY_ARGUMENT, text))
    missing = sorted(k for k in used if k not in i18n.LABELS)
    assert not missing
    assert len(used) > 60


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_pages_are_in_the_chosen_language(as_user, lang: str) -> None:
    client = as_user("ada")
    expected = {
        "zh": ("营销名单", "活动效果", "审计日志"),
        "en": ("Campaign lists", "Campaign results", "Audit log"),
    }[lang]
    assert expected[0] in client.get(f"/?lang={lang}").text
    assert expected[1] in client.get("/results").text
    assert expected[2] in client.get("/admin/audit").text
    html = client.get(f"/days/{DAY}/lists/win_back").text
    assert ("标记为已发送" in html) == (lang == "zh")


def test_choose_language() -> None:
    assert i18n.choose_language("zh", "en", "en") == "zh"
    assert i18n.choose_language("xx", "zh", "en") == "zh"
    assert i18n.choose_language(None, None, "zh-Hans-CN;q=0.9, en;q=0.1") == "zh"
    assert i18n.choose_language(None, None, "en, zh;q=bad") == "en"


def test_the_portal_never_writes_exports_or_warehouse(world: World, as_user) -> None:
    def snapshot() -> dict[str, tuple[int, int]]:
        out = {}
        for p in [*world.export_dir.rglob("*"), world.settings.warehouse]:
            if p.is_file():
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns)
        return out

    before = snapshot()
    client = as_user("ada")
    for path in ("/", "/days", f"/days/{DAY}/lists/win_back", "/results", "/exclusions",
                 f"/download/{DAY}/win_back.csv", "/results/where-to-stop.png"):  # fmt: skip
        client.get(path)
    assert snapshot() == before
    shutil.rmtree(world.export_dir / ".published", ignore_errors=False)
    assert client.get("/").status_code == 200  # day links now dangle: no published day


def test_a_model_plot_linking_out_of_the_model_folder_is_not_served(world, as_user) -> None:
    folder = world.settings.models_dir / "2026-06-30_abcd1234"
    (world.root / "outside.png").write_bytes(b"\x89PNG secret")
    (folder / "leak.png").symlink_to(world.root / "outside.png")
    assert as_user("ann").get("/model/plots/leak.png").status_code == 404
