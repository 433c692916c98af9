"""The head-office roll-up page and its JSON API (``storesense central web``).

A FastAPI app of its own beside the ingest (``central run``): it only reads the summaries,
so it can be restarted, scaled or kept off the internet without touching the feed. Every
page and API call needs a session (``central.users``); what a user sees is decided here, per
request, from their role: a ``region`` user asking for a store outside their regions gets
404 (the same answer as for a store that does not exist, so store ids cannot be probed) and
the attempt is written to ``office_access_log``. The session cookie is HttpOnly and
SameSite=Strict; the only state-changing form (log out) repeats the session's CSRF token.

Server-rendered HTML (Jinja2, autoescaped) and no script: the page works in any browser a
head-office PC has.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import jinja2
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from central import db, rollups, users

log = logging.getLogger(__name__)

COOKIE = "ss_office"
MAX_FORM = 4096
KIND_WORDS = {
    "advertising": "advertising spot",
    "new_product": "new-product spot",
    "cold_region": "rarely visited",
    "high_footfall_low_sales": "busy, low sales",
}
CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
header{display:flex;gap:1rem;align-items:center;padding:.6rem 1.2rem;background:#1f3a5f;color:#fff}
header .brand{font-weight:600}header .who{margin-left:auto;opacity:.9}
main{max-width:1180px;margin:0 auto;padding:1rem 1.2rem}
h1{font-size:1.35rem;margin:0 1rem 0 0}h2{font-size:1.1rem;margin-top:1.6rem}
nav.period{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;margin-bottom:1rem}
nav.period a{padding:.25rem .6rem;border:1px solid #c5ccd6;border-radius:4px;color:#1f3a5f;
text-decoration:none;background:#fff}nav.period a.on{background:#1f3a5f;color:#fff}
nav.period a.json{margin-left:auto;font-size:.85rem}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:.8rem;margin-bottom:1rem}
.tile{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:.7rem .9rem}
.tile b{display:block;font-size:1.5rem}.tile span{color:#5a6672}
table.stores{width:100%;border-collapse:collapse;background:#fff;border:1px solid #dde2e8}
th,td{padding:.45rem .6rem;border-bottom:1px solid #e7ebef;text-align:left;vertical-align:middle}
thead th{background:#eef1f5;font-weight:600}tfoot th,tfoot td{background:#eef1f5;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
img.thumb{width:120px;height:auto;border:1px solid #ccd;border-radius:3px;display:block}
small{color:#6b7682}.warn{color:#a35200}.note{color:#5a6672;font-size:.9rem}
ol.advice{background:#fff;border:1px solid #dde2e8;border-radius:6px;
padding:.8rem 1rem .8rem 2.4rem}
ol.advice li{margin:.4rem 0}
.conf{display:inline-block;min-width:4.5em;text-align:center;border-radius:3px;font-size:.8rem;
padding:0 .3rem;color:#fff}.conf.high{background:#2e7d32}.conf.medium{background:#8d6e00}
.conf.low{background:#7a7f86}
form.inline{display:inline}form.login{display:grid;gap:.7rem;max-width:320px}
.error{color:#b00020}button{padding:.3rem .8rem}
"""


def _money(amounts: dict[str, Decimal]) -> str:
    if not amounts:
        return "—"
    return " + ".join(f"{a:,.2f} {c}" for c, a in sorted(amounts.items()))


def _conv(f: rollups.Figures) -> str:
    c = f.conversion
    if c is None:
        return "—" if len(f.sales) < 2 else "two currencies"
    (cur,) = f.sales
    return f"{c:,.2f} {cur}"


def _cells(f: rollups.Figures) -> dict[str, object]:
    """A store's row of figures as the store page prints it ("no data" for a silent day)."""
    if not f.days:
        return {"footfall": "no data", "visits": "—", "sales": "—", "receipts": "—",
                "conversion": "—"}  # fmt: skip
    return {"footfall": f.footfall, "visits": f.visits, "sales": _money(f.sales),
            "receipts": f.receipts if f.sales else "—", "conversion": _conv(f)}  # fmt: skip


def _heading(r: rollups.Rollup, when: dt.date) -> str:
    if r.period == "day":
        return f"{when:%A %d %B %Y}"
    return f"Week {when.isocalendar().week}: {r.start:%d %b} – {r.end:%d %b %Y}"


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("central", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(money=_money, conv=_conv, kinds=KIND_WORDS)
    return env


@contextmanager
def _connection(dsn: str) -> Iterator[psycopg.Connection]:
    conn = db.connect(dsn)
    try:
        yield conn
    finally:
        conn.close()


def _conn_dep(request: Request) -> Iterator[psycopg.Connection]:
    """One short connection per request (a head-office page, not a hot path)."""
    with _connection(request.app.state.dsn) as conn:
        yield conn


# module level: FastAPI resolves these (string) annotations in the module's namespace
Conn = Annotated[psycopg.Connection, Depends(_conn_dep)]
PeriodQ = Annotated[Literal["day", "week"], Query()]
DayQ = Annotated[dt.date | None, Query()]


def create_app(dsn: str) -> FastAPI:
    """The app over the central database ``dsn`` (one short connection per request)."""
    app = FastAPI(title="Storesense head office", docs_url=None, redoc_url=None)
    env = _templates()

    app.state.dsn = dsn

    def database() -> AbstractContextManager[psycopg.Connection]:
        return _connection(dsn)

    def user_of(request: Request, conn: psycopg.Connection) -> users.OfficeUser | None:
        return users.session_user(conn, request.cookies.get(COOKIE))

    def require(request: Request, conn: psycopg.Connection) -> users.OfficeUser:
        user = user_of(request, conn)
        if user is None:
            raise HTTPException(401, "not logged in (or the session expired): log in again")
        return user

    def page(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**ctx), status_code=status)

    def store_for(conn: psycopg.Connection, user: users.OfficeUser, store_id: str
                  ) -> tuple[str, str, str]:  # fmt: skip
        for s in users.visible_stores(conn, user):
            if s[0] == store_id:
                return s
        users.audit(conn, user.user_id, "denied_store", store_id[:64])
        raise HTTPException(404, "no such store among the stores you may see")

    def default_day(conn: psycopg.Connection, stores: list[tuple[str, str, str]]) -> dt.date:
        row = conn.execute(
            "SELECT max(day) FROM daily_summaries WHERE store_id = ANY(%s)",
            ([s[0] for s in stores],),
        ).fetchone()
        if row and row[0]:
            return dt.date.fromisoformat(str(row[0]))
        return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and not request.url.path.startswith("/api/"):
            return RedirectResponse("/login", status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/static/office.css", include_in_schema=False)
    def css() -> Response:
        return Response(CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @app.get("/login", response_class=HTMLResponse)
    def login_page() -> HTMLResponse:
        return page("login.html.j2", title="Log in", user=None, error=None)

    async def form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM:
            raise HTTPException(413, "form too large")
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}

    @app.post("/login")
    async def login(request: Request) -> Response:
        fields = await form(request)
        with database() as conn:
            token = users.login(conn, fields.get("user", ""), fields.get("password", ""))
        if token is None:
            return page("login.html.j2", 401, title="Log in", user=None,
                        error="Wrong user or password.")  # fmt: skip
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, max_age=users.SESSION_S, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        fields = await form(request)
        token = request.cookies.get(COOKIE, "")
        with database() as conn:
            user = users.session_user(conn, token)
            if user is None:
                return RedirectResponse("/login", status_code=303)
            if not hmac.compare_digest(fields.get("csrf", "").encode(), user.csrf_token.encode()):
                raise HTTPException(403, "missing or wrong CSRF token")
            users.logout(conn, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    def the_rollup(conn: psycopg.Connection, user: users.OfficeUser, period: rollups.Period,
                   day: dt.date | None) -> tuple[rollups.Rollup, dt.date]:  # fmt: skip
        stores = users.visible_stores(conn, user)
        when = day or default_day(conn, stores)
        return rollups.rollup(conn, stores, period, when), when

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, conn: Conn, period: PeriodQ = "day", day: DayQ = None) -> Response:
        user = require(request, conn)
        r, when = the_rollup(conn, user, period, day)
        step = dt.timedelta(days=1 if period == "day" else 7)
        heading = _heading(r, when)
        return page(
            "rollup.html.j2", title=heading, user=user, r=r, day=when.isoformat(),
            heading=heading, n_days=(r.end - r.start).days + 1,
            reporting=sum(1 for s in r.stores if s.figures.days),
            prev_link=f"/?period={period}&day={when - step}",
            next_link=f"/?period={period}&day={when + step}",
            json_link=f"/api/rollup?period={period}&day={when}",
        )  # fmt: skip

    @app.get("/api/rollup")
    def api_rollup(request: Request, conn: Conn, period: PeriodQ = "day",
                   day: DayQ = None) -> dict[str, Any]:  # fmt: skip
        user = require(request, conn)
        r, _ = the_rollup(conn, user, period, day)
        return {"user": user.user_id, "scope": user.scope(), **r.as_json()}

    @app.get("/api/stores/{store_id}")
    def api_store(request: Request, conn: Conn, store_id: str, period: PeriodQ = "day",
                  day: DayQ = None) -> dict[str, Any]:  # fmt: skip
        user = require(request, conn)
        store = store_for(conn, user, store_id)
        when = day or default_day(conn, [store])
        return rollups.rollup(conn, [store], period, when).as_json()

    @app.get("/stores/{store_id}", response_class=HTMLResponse)
    def store_page(request: Request, conn: Conn, store_id: str, period: PeriodQ = "week",
                   day: DayQ = None) -> Response:  # fmt: skip
        user = require(request, conn)
        store = store_for(conn, user, store_id)
        when = day or default_day(conn, [store])
        r = rollups.rollup(conn, [store], period, when)
        days = []
        for d in range((r.end - r.start).days + 1):
            one = rollups.rollup(conn, [store], "day", r.start + dt.timedelta(days=d))
            days.append(_cells(one.stores[0].figures) | {
                "day": one.start.isoformat(), "label": f"{one.start:%a %d %b}",
                "png": one.stores[0].heatmap_day,
            })  # fmt: skip
        info = {"store_id": store[0], "name": store[1], "region": store[2]}
        return page("store.html.j2", title=store[1] or store[0], user=user, r=r,
                    store=info, days=days, day=when.isoformat(), heading=_heading(r, when),
                    total=_cells(r.stores[0].figures))  # fmt: skip

    @app.get("/stores/{store_id}/heatmap/{day}.png")
    def heatmap(request: Request, conn: Conn, store_id: str, day: dt.date) -> Response:
        user = require(request, conn)
        store_for(conn, user, store_id)
        png = rollups.heatmap(conn, store_id, day)
        if png is None:
            raise HTTPException(404, "no heatmap for that day")
        cache = {"Cache-Control": "private, max-age=3600"}
        return Response(png, media_type="image/png", headers=cache)

    return app
