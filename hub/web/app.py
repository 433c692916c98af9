"""``create_app(cfg)``: the FastAPI application for phones, managers and the till.

A stateless gateway: no database, no template key, no hub credentials and no state folder of
the hub's. Routers per resource (auth, alerts + WebSocket, customers, manager, POS webhook,
privacy, reports) check the HTTP input and ask the hub through the gateway
(``hub.web.gateway``, started and stopped with the app), which is this process's only channel
to the hub. Static files are plain modern JS/CSS written for this app, no third-party
front-end code.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import segno
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from hub.web.gateway import Gateway
from hub.web.hub_schemas import SCHEMAS as HUB_SCHEMAS
from hub.web.routers import alerts as routes_alerts
from hub.web.routers import auth as routes_auth
from hub.web.routers import customers as routes_customers
from hub.web.routers import manager as routes_manager
from hub.web.routers import pos as routes_pos
from hub.web.routers import privacy as routes_privacy
from hub.web.routers import reports as routes_reports  # nightly floor reports (hub/floor/report.py)
from hub.web.security import BodyLimit, SecurityHeaders
from storesense.config import MqttConfig, StoreConfig
from storesense.topics import Topics

log = logging.getLogger(__name__)
# The front end is package data (pyproject [tool.setuptools.package-data]), found through the
# package rather than __file__ so a wheel install and a checkout resolve it the same way.
STATIC = Path(str(resources.files("hub.web") / "static"))


def create_app(
    cfg: StoreConfig,
    *,
    mqtt: MqttConfig | None = None,
    gateway_client_id: str | None = None,
    timeout_s: float | None = None,
    ca_cert: Path | None = None,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """The app for one store. ``mqtt`` overrides ``cfg.mqtt`` (the gateway's own account,
    e.g. from ``broker-config``'s ``credentials/phone-gateway.yaml``); ``timeout_s`` is the
    deadline given to each request to the hub (``storesense.rpc.DEFAULT_TIMEOUT_S``);
    ``ca_cert`` is the store CA the onboarding page hands to phones; ``allowed_hosts``
    overrides ``cfg.app.allowed_hosts`` (``web run`` passes the certificate's names when the
    config names none; empty: no Host check, as for tests' ``testserver``)."""
    mqtt_cfg = mqtt or cfg.mqtt
    entrances = {c.id: cfg.entrance_name(c.id) for c in cfg.cameras if c.role == "entrance"}
    gateway = Gateway(
        Topics(cfg.store_id), mqtt_cfg, client_id=gateway_client_id, entrances=entrances
    )
    if timeout_s is not None:
        gateway.timeout_s = timeout_s

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        log.info("phone app for store %s; gateway → %s:%d", cfg.store_id, *_addr(mqtt_cfg))
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title=f"Storesense {cfg.name or cfg.store_id}",
        lifespan=lifespan,
        docs_url=None,  # the OpenAPI JSON stays for tests/fuzzers; no CDN-loaded docs page
        redoc_url=None,
    )
    app.state.cfg = cfg
    app.state.gateway = gateway
    app.state.ca_cert = ca_cert

    for module in (
        routes_auth,
        routes_alerts,
        routes_customers,
        routes_manager,
        routes_pos,
        routes_privacy,
        routes_reports,
    ):
        app.include_router(module.router)
    app.add_middleware(SecurityHeaders, hsts_max_age_s=cfg.app.hsts_max_age_s)
    app.add_middleware(BodyLimit, timeout_s=cfg.app.body_timeout_s)
    hosts = cfg.app.allowed_hosts if allowed_hosts is None else allowed_hosts
    if hosts:  # outermost: a request for a foreign Host (DNS rebinding) reaches nothing
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """One readable line instead of pydantic's full error list (and no echo of input)."""
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse({"detail": f"{where}: {first['msg']}"}, status_code=422)

    @app.get("/", include_in_schema=False)
    def phone_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/manager", include_in_schema=False)
    def manager_page() -> FileResponse:
        return FileResponse(STATIC / "manager.html")

    # at the root so the service worker's scope covers the whole app
    @app.get("/sw.js", include_in_schema=False)
    def service_worker() -> FileResponse:
        return FileResponse(STATIC / "sw.js", media_type="text/javascript")

    @app.get("/manifest.webmanifest", include_in_schema=False)
    def manifest() -> FileResponse:
        return FileResponse(STATIC / "manifest.webmanifest", media_type="application/manifest+json")

    @app.get("/icons/icon-{size}.png", include_in_schema=False)
    def icon(size: int) -> Response:
        if size not in (192, 512):
            raise HTTPException(404, "icons come in 192 and 512 px")
        return Response(_icon_png(size), media_type="image/png")

    @app.get("/onboarding", include_in_schema=False)
    def onboarding_page() -> FileResponse:
        return FileResponse(STATIC / "onboarding.html")

    @app.get("/onboarding/store-ca.crt", include_in_schema=False)
    def store_ca() -> Response:
        """The store CA certificate (public) in DER, the type Android and iOS install from."""
        return Response(
            _store_ca(app).public_bytes(serialization.Encoding.DER),
            media_type="application/x-x509-ca-cert",
            headers={"content-disposition": 'attachment; filename="storesense-store-ca.crt"'},
        )

    @app.get("/onboarding/store-ca.json", include_in_schema=False)
    def store_ca_info() -> dict[str, str]:
        ca = _store_ca(app)
        return {"sha256": ca_fingerprint(ca), "subject": ca.subject.rfc4514_string()}

    @app.get("/onboarding/qr.svg", include_in_schema=False)
    def onboarding_qr(request: Request) -> Response:
        """The QR code the manager page shows: this server's onboarding page, under the name
        the manager's browser used (the Host allow-list keeps that name one of ours)."""
        url = f"{request.url.scheme}://{request.url.netloc}/onboarding"
        return Response(qr_svg(url), media_type="image/svg+xml")

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, object]:
        return {
            "gateway_online": gateway.connected,
            "hub_online": gateway.hub_reachable,
            "hub_answering": gateway.hub_answering,
            # exceptions the loops survived, by step: this process's and the hub's
            "errors": gateway.guard.snapshot(),
            # what this process refused (bad MQTT payloads, hostile WebSocket frames), by reason
            "rejected": dict(gateway.stats.rejected),
            "hub_errors": gateway.hub_errors,
        }

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _document_hub_models(app)
    return app


def _store_ca(app: FastAPI) -> x509.Certificate:
    path: Path | None = app.state.ca_cert
    if path is None:
        raise HTTPException(404, "this server was started without the store CA (plain HTTP)")
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        raise HTTPException(404, "the store CA certificate cannot be read") from None


def ca_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate as colon-separated hex, as phones' settings show it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def qr_svg(url: str) -> bytes:
    """The URL as an SVG QR code (segno, pure Python; error correction M, scale 6)."""
    buf = io.BytesIO()
    segno.make_qr(url, error="m").save(buf, kind="svg", scale=6, border=2, xmldecl=False)
    return buf.getvalue()


def _document_hub_models(app: FastAPI) -> None:
    """The schema names the hub's own models for what it relays (the card) and forwards (the
    receipt), from the generated copy in ``hub.web.hub_schemas``: documented and fuzzed as
    exactly, without this process importing the hub's rooms."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            comps = schema.setdefault("components", {}).setdefault("schemas", {})
            comps.update(HUB_SCHEMAS)
            card = {"$ref": "#/components/schemas/CustomerCard"}
            comps["CustomerView"]["properties"]["card"] = card
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@functools.cache
def _icon_png(size: int) -> bytes:
    """The home-screen icon as PNG (Android wants PNG sizes), drawn like static/icon.svg."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    k = size / 512
    d.rounded_rectangle((0, 0, size - 1, size - 1), radius=96 * k, fill="#17324d")
    d.ellipse((172 * k, 116 * k, 340 * k, 284 * k), fill="#f4b942")
    d.chord((104 * k, 288 * k, 408 * k, 560 * k), 180, 360, fill="#f4b942")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _addr(cfg: MqttConfig) -> tuple[str, int]:
    return cfg.host, cfg.port
