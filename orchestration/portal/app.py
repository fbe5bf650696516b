"""The portal's web app: `create_app(settings)` builds it; `crm serve` runs it with uvicorn.

Every page but /login and /static/* needs a session; roles are marketer < analyst < admin.
Every POST carries the session's CSRF token (the sign-in form a pre-session one). Every
response carries the security headers (CSP default-src 'self', no framing, no sniffing, no
referrer) and pages are not cached. URLs and element ids are a contract with the browser
tests: docs/portal.md.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pandas as pd
from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestration.errors import CrmError
from orchestration.portal import charts, data
from orchestration.portal.auth import (
    ROLES,
    Authenticator,
    Session,
    SignInOutcome,
    new_token,
    role_at_least,
    same_token,
)
from orchestration.portal.i18n import LANGUAGES, choose_language, translate
from orchestration.portal.store import Store, utc_now
from orchestration.settings import Settings, load_settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "crm_session"
LOGIN_CSRF_COOKIE = "crm_login_csrf"
LANG_COOKIE = "lang"
CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MEDIA_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".parquet": "application/vnd.apache.parquet",
}
#: The "mark as sent" form's choice for every channel of the list (stored as NULL).
ALL_CHANNELS = "all"
_PLATFORM_ID = re.compile(r"[^\x00-\x1f\x7f]{0,100}")
_AUDIT_TEXT = re.compile(r"[\x00-\x1f\x7f]")


class SignInRequired(Exception):
    """No live session: redirect to the sign-in page, then back to `next`."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class Refused(Exception):
    """An explained refusal rendered as the error page (status, i18n key, params)."""

    def __init__(self, status: int, key: str, **params: object) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.params = params


def local_path(value: str | None) -> str:
    """`value` if it is a path on this site (no scheme, host or backslash), else '/'."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return "/"
    return value


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


# --- formatting (also used by the templates) ---------------------------------------------


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA."""
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array is a value
        return False


def fmt_int(value: Any) -> str:
    if _missing(value):
        return "—"
    return f"{int(round(float(value))):,}"


def fmt_num(value: Any, digits: int = 0) -> str:
    if _missing(value):
        return "—"
    return f"{float(value):,.{digits}f}"


def fmt_interval(mean: Any, low: Any, high: Any, digits: int = 0) -> str:
    """'1,234 (1,100–1,370)'; the mean alone when the interval is missing."""
    if _missing(mean):
        return "—"
    if _missing(low) or _missing(high):
        return fmt_num(mean, digits)
    return f"{fmt_num(mean, digits)} ({fmt_num(low, digits)}–{fmt_num(high, digits)})"


def fmt_points(value: Any, low: Any = None, high: Any = None) -> str:
    """A rate difference in percentage points, with its interval: '+3.1 (+0.8 to +5.4)'."""
    if _missing(value):
        return "—"
    text = f"{100 * float(value):+.1f}"
    if not _missing(low) and not _missing(high):
        text += f" ({100 * float(low):+.1f} … {100 * float(high):+.1f})"
    return text


def fmt_bytes(size: Any) -> str:
    value = float(size or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


def offer_text(offer: dict[str, Any], lang: str) -> str:
    kind = str(offer.get("type", ""))
    amount = fmt_num(offer.get("amount"), 0)
    threshold = fmt_num(offer.get("threshold"), 0)
    key = f"offer.{kind}"
    try:
        text = translate(key, lang, amount=amount, threshold=threshold)
    except KeyError:
        text = translate("offer.other", lang, type=kind, amount=amount)
    days = offer.get("validity_days")
    if days:
        text += ", " + translate("offer.valid", lang, days=int(days))
    return text


def label_or(key: str, fallback: str, lang: str) -> str:
    try:
        return translate(key, lang)
    except KeyError:
        return fallback


# --- the app ----------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    """The portal on `settings` (default: load_settings(), i.e. CRM_* and .env)."""
    settings = settings or load_settings()
    store = Store(settings.portal_db)  # type: ignore[arg-type]  # filled by Settings
    auth = Authenticator(store, settings.portal_session_hours)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    chart_cache: dict[tuple[Any, ...], bytes] = {}
    chart_lock = threading.Lock()

    def remember(key: tuple[Any, ...], png: bytes) -> None:
        """Keep a drawn chart; the cache holds at most 256 (any request can add keys)."""
        with chart_lock:
            if len(chart_cache) >= 256:
                chart_cache.clear()
            chart_cache[key] = png

    app = FastAPI(title="CRM marketing portal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.store = store
    app.state.auth = auth
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def tz_time(value: Any) -> str:
        """A stored UTC time (ISO text or datetime) in the business time zone."""
        if value is None or value == "":
            return "—"
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")

    def today() -> date:
        return datetime.now(settings.tz).date()

    # --- request plumbing -------------------------------------------------------------

    @app.middleware("http")
    async def frame(request: Request, call_next: Callable) -> Response:
        query_lang = request.query_params.get("lang")
        cookie_lang = request.cookies.get(LANG_COOKIE)
        request.state.lang = choose_language(
            query_lang, cookie_lang, request.headers.get("accept-language")
        )
        try:
            response = await call_next(request)
        except Exception:  # a bug: log it, answer with the error page (and the headers)
            log.exception("portal: unexpected error on %s", request.url.path)
            response = error_page(request, 500, "error.500")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if settings.portal_secure_cookie:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        if query_lang in LANGUAGES and query_lang != cookie_lang:
            set_cookie(response, LANG_COOKIE, query_lang, max_age=365 * 24 * 3600)
        return response

    def set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="strict",
            secure=settings.portal_secure_cookie,
        )

    def clear_cookie(response: Response, name: str) -> None:
        response.delete_cookie(
            name, path="/", httponly=True, samesite="strict", secure=settings.portal_secure_cookie
        )

    def current_session(request: Request) -> Session:
        session = auth.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            # back to the page after signing in; a form post cannot be repeated by a redirect
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target if request.method == "GET" else "/")
        request.state.session = session
        return session

    signed_in = Depends(current_session)

    def needs(role: str) -> Callable[[Request], Session]:
        def check(request: Request, session: Session = signed_in) -> Session:
            if not session.may(role):
                store.audit(
                    "refused",
                    user=session.user,
                    address=client_address(request),
                    detail=f"{request.method} {request.url.path} needs {role}",
                )
                raise Refused(403, "error.403", role=session.role)
            return session

        return check

    marketer = Depends(needs("marketer"))
    analyst = Depends(needs("analyst"))
    admin = Depends(needs("admin"))

    def check_csrf(request: Request, session: Session, token: str) -> None:
        if not same_token(token, session.csrf_token):
            store.audit(
                "refused",
                user=session.user,
                address=client_address(request),
                detail=f"{request.method} {request.url.path}: missing or wrong CSRF token",
            )
            raise Refused(403, "error.csrf")

    def render(
        request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        lang = request.state.lang
        session: Session | None = getattr(request.state, "session", None)
        nav = []
        if session is not None:
            nav = [
                ("/", "nav.lists", "marketer"),
                ("/days", "nav.days", "marketer"),
                ("/results", "nav.results", "marketer"),
                ("/status", "nav.status", "marketer"),
                ("/exclusions", "nav.exclusions", "analyst"),
                ("/model", "nav.model", "analyst"),
                ("/admin/users", "nav.users", "admin"),
                ("/admin/audit", "nav.audit", "admin"),
            ]
            nav = [(href, key) for href, key, role in nav if session.may(role)]
        return templates.TemplateResponse(
            request,
            template,
            {
                "lang": lang,
                "t": partial(translate, lang=lang),
                "label_or": partial(label_or, lang=lang),
                "session": session,
                "nav": nav,
                "path": request.url.path,
                "fmt_int": fmt_int,
                "fmt_num": fmt_num,
                "fmt_interval": fmt_interval,
                "fmt_points": fmt_points,
                "fmt_bytes": fmt_bytes,
                "tz_time": tz_time,
                "offer_text": partial(offer_text, lang=lang),
                **context,
            },
            status_code=status_code,
        )

    def error_page(request: Request, status: int, key: str, **params: Any) -> HTMLResponse:
        lang = request.state.lang
        help_key = {403: "error.403_help", 409: "error.409_help"}.get(status)
        if key == "error.csrf":
            help_key = None
        if params.get("role") in ROLES:
            params["role"] = translate(f"role.{params['role']}", lang)
        return render(
            request,
            "error.html",
            status_code=status,
            message=translate(key, lang, **params),
            help=translate(help_key, lang) if help_key else None,
        )

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='')}", status_code=303)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return error_page(request, exc.status, exc.key, **exc.params)

    @app.exception_handler(data.DataUnavailable)
    async def _unavailable(request: Request, exc: data.DataUnavailable) -> Response:
        return error_page(request, 404 if exc.key in ("unavail.day", "unavail.list") else 200,
                          exc.key, **exc.params)  # fmt: skip

    @app.exception_handler(CrmError)
    async def _crm_error(request: Request, exc: CrmError) -> Response:
        if type(exc).__name__ == "WarehouseBusyError":
            return error_page(request, 503, "error.busy")
        log.error("portal: %s", exc)
        return error_page(request, 500, "error.500")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        key = {404: "error.404", 400: "error.400"}.get(exc.status_code, "error.400")
        return error_page(request, exc.status_code, key)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_page(request, 400, "error.400")

    # --- sign-in ----------------------------------------------------------------------

    def login_page(
        request: Request,
        next_url: str,
        *,
        status_code: int = 200,
        error: str | None = None,
        notice: str | None = None,
    ) -> HTMLResponse:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
        response = render(
            request,
            "login.html",
            status_code=status_code,
            csrf_token=token,
            next_url=next_url,
            error=error,
            notice=notice,
        )
        if request.cookies.get(LOGIN_CSRF_COOKIE) != token:
            set_cookie(response, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None, bye: int = 0) -> Response:
        next_url = local_path(next)
        if auth.session(request.cookies.get(SESSION_COOKIE)) is not None:
            return RedirectResponse(next_url, status_code=303)
        notice = translate("login.signed_out", request.state.lang) if bye else None
        return login_page(request, next_url, notice=notice)

    @app.post("/login", response_class=HTMLResponse)
    def login_submit(
        request: Request,
        username: str = Form(""),
        password: str = Form(""),
        csrf_token: str = Form(""),
        next: str = Form("/"),
    ) -> Response:
        if not same_token(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
            raise Refused(403, "error.csrf")
        next_url = local_path(next)
        result = auth.sign_in(username, password, client_address(request))
        lang = request.state.lang
        if result.outcome is SignInOutcome.THROTTLED:
            minutes = max(1, -(-result.retry_after_seconds // 60))
            response = login_page(
                request,
                next_url,
                status_code=429,
                error=translate("login.throttled", lang, minutes=minutes),
            )
            response.headers["Retry-After"] = str(max(result.retry_after_seconds, 1))
            return response
        if result.outcome is SignInOutcome.FAILED:
            return login_page(request, next_url, error=translate("login.error", lang))
        assert result.token is not None
        response = RedirectResponse(next_url, status_code=303)
        set_cookie(
            response, SESSION_COOKIE, result.token, max_age=settings.portal_session_hours * 3600
        )
        clear_cookie(response, LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    def logout(
        request: Request, session: Session = signed_in, csrf_token: str = Form("")
    ) -> Response:
        check_csrf(request, session, csrf_token)
        auth.sign_out(session, client_address(request))
        response = RedirectResponse("/login?bye=1", status_code=303)
        clear_cookie(response, SESSION_COOKIE)
        return response

    # --- lists ------------------------------------------------------------------------

    def day_page(request: Request, as_of: str | None) -> HTMLResponse:
        purposes = data.list_purposes(settings)
        day = data.load_day(settings, as_of, purposes) if as_of else None
        days = data.published_days(settings.export_dir)
        return render(
            request,
            "day.html",
            day=day,
            days=days[:10],
            latest=data.latest_day(settings.export_dir),
        )

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, session: Session = marketer) -> Response:
        latest = data.latest_day(settings.export_dir)
        return day_page(request, latest.isoformat() if latest else None)

    @app.get("/days", response_class=HTMLResponse)
    def days(request: Request, session: Session = marketer) -> Response:
        rows = []
        for day in data.published_days(settings.export_dir):
            try:
                loaded = data.load_day(settings, day.isoformat())
            except data.DataUnavailable:
                rows.append({"as_of": day, "damaged": True})
                continue
            rows.append(
                {
                    "as_of": day,
                    "damaged": False,
                    "lists": len(loaded.lists),
                    "send": loaded.totals.get("send"),
                    "control": loaded.totals.get("control"),
                    "budget": loaded.totals.get("budget_yuan"),
                    "published_at": loaded.published_at,
                    "model_version": loaded.model_version,
                }
            )
        return render(request, "days.html", rows=rows, latest=data.latest_day(settings.export_dir))

    @app.get("/days/{as_of}", response_class=HTMLResponse)
    def one_day(request: Request, as_of: str, session: Session = marketer) -> Response:
        return day_page(request, as_of)

    def detail_of(as_of: str, name: str) -> data.ListDetail:
        day = data.load_day(settings, as_of, data.list_purposes(settings))
        detail = data.list_detail(day, name)
        if detail is None:
            raise data.DataUnavailable("unavail.list", list=name, as_of=as_of)
        return detail

    def list_page(
        request: Request,
        session: Session,
        detail: data.ListDetail,
        *,
        status_code: int = 200,
        mark_error: str | None = None,
        form: dict[str, str] | None = None,
    ) -> HTMLResponse:
        manifest = detail.day.manifest
        downloads = []
        for file in detail.summary.files:
            kind, _ = data.file_kind(manifest, file)
            if not role_at_least(session.role, data.FILE_ROLES[kind]):
                continue
            downloads.append(
                {
                    "file": file,
                    "kind": kind,
                    "rows": data.file_rows(manifest, file),
                    "bytes": (manifest["files"].get(file) or {}).get("bytes"),
                    "intact": detail.intact.get(file, False),
                }
            )
        channels = list(detail.summary.channels) or list(data.CHANNELS)
        marks = store.marks(detail.day.as_of.isoformat(), detail.summary.name)
        preview = None
        if detail.preview is not None:
            preview = {
                "columns": [str(c) for c in detail.preview.columns],
                "rows": [
                    ["" if _missing(v) else v for v in r]
                    for r in detail.preview.itertuples(index=False)
                ],
            }
        return render(
            request,
            "list.html",
            status_code=status_code,
            detail=detail,
            day=detail.day,
            summary=detail.summary,
            downloads=downloads,
            preview=preview,
            channels=channels,
            marks=marks,
            mark_error=mark_error,
            form=form
            or {
                "sent_on": today().isoformat(),
                "channel": ALL_CHANNELS if len(channels) > 1 else channels[0],
            },
            today=today().isoformat(),
        )

    @app.get("/days/{as_of}/lists/{name}", response_class=HTMLResponse)
    def one_list(request: Request, as_of: str, name: str, session: Session = marketer) -> Response:
        return list_page(request, session, detail_of(as_of, name))

    @app.get("/days/{as_of}/lists/{name}/chart.png")
    def list_chart(as_of: str, name: str, session: Session = marketer) -> Response:
        detail = detail_of(as_of, name)
        key = ("group", str(detail.day.folder.resolve()), name)
        with chart_lock:
            png = chart_cache.get(key)
        if png is None:
            if detail.groups:
                title = f"{name}: forecast buyers by priority group ({detail.day.as_of})"
                png = charts.group_chart(detail.groups, title)
            else:
                png = charts.message_chart("no priority groups in this list")
            remember(key, png)
        return Response(png, media_type="image/png")

    @app.post("/days/{as_of}/lists/{name}/sent")
    def mark_sent(
        request: Request,
        as_of: str,
        name: str,
        session: Session = marketer,
        csrf_token: str = Form(""),
        sent_on: str = Form(""),
        channel: str = Form(""),
        platform_campaign_id: str = Form(""),
    ) -> Response:
        check_csrf(request, session, csrf_token)
        detail = detail_of(as_of, name)
        lang = request.state.lang
        channels = list(detail.summary.channels) or list(data.CHANNELS)
        form = {
            "sent_on": sent_on,
            "channel": channel,
            "platform_campaign_id": platform_campaign_id,
        }
        day = detail.day.as_of
        error = None
        try:
            sent = date.fromisoformat(sent_on.strip())
        except ValueError:
            sent = None
        platform_id = platform_campaign_id.strip()
        if sent is None or not (day <= sent <= today()):
            error = translate("mark.bad_date", lang, as_of=day.isoformat(), today=today())
        elif channel not in channels and channel != ALL_CHANNELS:
            error = translate("mark.bad_channel", lang, channels=", ".join(channels))
        elif not _PLATFORM_ID.fullmatch(platform_id):
            error = translate("mark.bad_platform_id", lang)
        if error is not None:
            return list_page(request, session, detail, status_code=400, mark_error=error, form=form)
        assert sent is not None
        mark_id = store.add_mark(
            as_of=day.isoformat(),
            list_name=detail.summary.name,
            campaign_id=detail.campaign_id,
            sent_on=sent.isoformat(),
            channel=None if channel == ALL_CHANNELS else channel,  # NULL: every channel
            platform_campaign_id=platform_id or None,
            marked_by=session.user,
        )
        store.audit(
            "mark_sent",
            user=session.user,
            address=client_address(request),
            detail=f"mark {mark_id}: {detail.campaign_id} sent on {sent.isoformat()} by "
            f"{'every channel' if channel == ALL_CHANNELS else channel}"
            + (f", platform campaign {platform_id}" if platform_id else ""),
            file=f"{day.isoformat()}/{detail.summary.name}",
            rows=detail.summary.send
            if channel == ALL_CHANNELS
            else detail.summary.channels.get(channel),
        )
        return RedirectResponse(
            f"/days/{day.isoformat()}/lists/{quote(detail.summary.name)}#marks", status_code=303
        )

    @app.post("/days/{as_of}/lists/{name}/sent/{mark_id}/revoke")
    def revoke_mark(
        request: Request,
        as_of: str,
        name: str,
        mark_id: int,
        session: Session = marketer,
        csrf_token: str = Form(""),
    ) -> Response:
        check_csrf(request, session, csrf_token)
        detail = detail_of(as_of, name)
        day = detail.day.as_of.isoformat()
        mark = next((m for m in store.marks(day, detail.summary.name) if m.id == mark_id), None)
        if mark is None or mark.revoked:
            raise Refused(404, "mark.not_found")
        if mark.marked_by != session.user and not session.may("admin"):
            raise Refused(403, "error.403", role=session.role)
        store.revoke_mark(mark_id, day, detail.summary.name)
        store.audit(
            "mark_revoked",
            user=session.user,
            address=client_address(request),
            detail=f"mark {mark_id}: {mark.campaign_id} sent on {mark.sent_on} by "
            f"{mark.channel or 'every channel'}",
            file=f"{day}/{detail.summary.name}",
        )
        return RedirectResponse(
            f"/days/{day}/lists/{quote(detail.summary.name)}#marks", status_code=303
        )

    # --- downloads --------------------------------------------------------------------

    @app.get("/download/{as_of}/{file:path}")
    def download(request: Request, as_of: str, file: str, session: Session = marketer) -> Response:
        address = client_address(request)
        try:
            checked = data.open_checked(settings, as_of, file, session.role)
        except data.DownloadRefused as refused:
            asked = refused.file or _AUDIT_TEXT.sub("?", f"{as_of[:40]}/{file[:200]}")
            named = f"{as_of}/{refused.file}" if refused.file else asked
            store.audit(
                "download_refused",
                user=session.user,
                address=address,
                detail=f"HTTP {refused.status}: {refused.reason}",
                file=named,
            )
            key = {403: "error.403", 409: "error.409"}.get(refused.status, "error.404")
            return error_page(request, refused.status, key, role=session.role)
        store.audit(
            "download",
            user=session.user,
            address=address,
            detail=f"{checked.kind} file, {fmt_bytes(checked.size)}",
            file=f"{as_of}/{checked.name}",
            rows=checked.rows,
        )

        def chunks() -> Iterator[bytes]:
            try:
                while block := checked.handle.read(1 << 16):
                    yield block
            finally:
                checked.handle.close()

        return StreamingResponse(
            chunks(),
            media_type=MEDIA_TYPES.get(Path(checked.name).suffix, "application/octet-stream"),
            headers={
                "Content-Disposition": f'attachment; filename="{checked.name}"',
                "Content-Length": str(checked.size),
            },
        )

    # --- results, status --------------------------------------------------------------

    @app.get("/results", response_class=HTMLResponse)
    def results(request: Request, session: Session = marketer) -> Response:
        table = data.campaign_results(settings)
        rows = [
            {k: None if _missing(v) else v for k, v in row.items()}
            for row in table.to_dict("records")
        ]
        for row in rows:
            row["sent_on"] = str(row["sent_on"])[:10] if row["sent_on"] is not None else None
        return render(request, "results.html", rows=rows)

    @app.get("/results/where-to-stop.png")
    def where_to_stop(campaign: str | None = None, session: Session = marketer) -> Response:
        try:
            stamp = settings.warehouse.stat().st_mtime_ns
        except OSError:
            stamp = 0
        key = ("stop", stamp, campaign)
        with chart_lock:
            png = chart_cache.get(key)
        if png is None:
            try:
                groups = data.where_to_stop_groups(settings, campaign)
            except data.DataUnavailable:
                groups = pd.DataFrame()
            png = (
                charts.where_to_stop_chart(groups)
                if not groups.empty
                else charts.message_chart("no campaign results yet")
            )
            remember(key, png)
        return Response(png, media_type="image/png")

    @app.get("/status", response_class=HTMLResponse)
    def status(request: Request, session: Session = marketer) -> Response:
        run = data.last_run(settings)
        return render(request, "status.html", run=run, latest=data.latest_day(settings.export_dir))

    # --- analysts ---------------------------------------------------------------------

    @app.get("/exclusions", response_class=HTMLResponse)
    def exclusions(request: Request, session: Session = analyst) -> Response:
        rows = data.exclusion_counts(settings).to_dict("records")
        return render(request, "exclusions.html", rows=rows)

    @app.get("/model", response_class=HTMLResponse)
    def model(request: Request, session: Session = analyst) -> Response:
        card = data.model_card(settings)
        return render(request, "model.html", card=card, card_html=markdown.render(card.markdown))

    @app.get("/model/plots/{name}")
    def model_plot(name: str, session: Session = analyst) -> Response:
        png = data.model_plot(settings, name)
        if png is None:
            raise Refused(404, "unavail.plot")
        return Response(png, media_type="image/png")

    # --- admins -----------------------------------------------------------------------

    @app.get("/admin/users", response_class=HTMLResponse)
    def users(request: Request, session: Session = admin) -> Response:
        return render(
            request,
            "users.html",
            users=store.users(),
            sessions=store.session_counts(utc_now()),
            roles=ROLES,
        )

    @app.get("/admin/audit", response_class=HTMLResponse)
    def audit(request: Request, before: int | None = None, session: Session = admin) -> Response:
        rows = store.audit_rows(limit=200, before_id=before)
        older = rows[-1].id if len(rows) == 200 else None
        return render(request, "audit.html", rows=rows, older=older)

    return app
