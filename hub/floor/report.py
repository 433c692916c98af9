"""The manager's floor report of a day, a week or a month: report.html, report.pdf,
heatmap.png, zones.csv and insights.json in one folder.

What is computed is R1's (``hub.floor.analysis``: insights with reasons, evidence and
confidence, KPIs, the unobserved floor); this module presents it: KPI tiles first, trends
against the previous period, busiest hours, plain advice, the plan with every overlay named in
a legend (``hub.floor.plan``), a "provisional" banner when the cameras saw too little, and a
clear page for a store without floor cameras. The HTML is one self-contained page (Jinja2,
the heatmap embedded) that fits a 390 px phone and a desktop; the PDF comes from matplotlib's
PDF backend (already the hub's plotting library: no second renderer, no system libraries).

Folders under ``HOME/reports``: ``YYYY-MM-DD`` (a day), ``YYYY-Www`` (an ISO week, Monday to
Sunday), ``YYYY-MM`` (a month). The nightly job writes yesterday's day and refreshes the week
and the month holding it, so the history is kept. Files are written to a temporary name and
renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from shapely.geometry import Polygon

from hub.floor import analysis as floor_analysis
from hub.floor import camera_trust
from hub.floor import kpis as floor_kpis
from hub.floor import plan as floor_plan
from hub.floor.insights import ZoneStats, zone_masks
from hub.shop.money import money_text
from storesense.config import StoreConfig

if TYPE_CHECKING:
    from collections.abc import Iterable

    import jinja2
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

REPORT_FILES = ("heatmap.png", "zones.csv", "insights.json", "report.html", "report.pdf")
CMAP = "YlOrRd"  # light → dark red: low traffic stays readable over a light plan
Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
# Folder names, one pattern per period: the only names the hub serves (hub/api/dispatch.py).
FOLDER_RE = {
    "day": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "week": re.compile(r"^\d{4}-W\d{2}$"),
    "month": re.compile(r"^\d{4}-\d{2}$"),
}
KIND_TITLES = {
    "advertising": "Where to advertise",
    "new_product": "Where to put a new product",
    "cold_region": "Rarely visited areas, and why",
    "high_footfall_low_sales": "Busy but selling little",
}
# The mapping caveat has one definition, the analysis's (it decides how sales meet zones).
SALES_CAVEAT = floor_analysis.SALES_CAVEAT

NO_FOOTFALL = (
    "No zone of kind entrance is configured, so footfall is not measured: the first tile "
    "counts the people seen in any zone."
)


class ReportError(ValueError):
    """The report cannot be made as asked (bad plan image, no such day …)."""


class NoFloorData(ReportError):
    """The store has floor cameras but none of them sent anything in the period: the page
    says so, and ``storesense report`` exits non-zero so the nightly job's failure is seen."""


def reports_root(home: Path) -> Path:
    return home / "reports"


# -- periods ------------------------------------------------------------------------------
def period_bounds(period: Period, day: date) -> tuple[date, date, str]:
    """(first day, last day inclusive, folder name) of the ``period`` holding ``day``."""
    if period == "day":
        return day, day, day.isoformat()
    if period == "week":
        first = day - timedelta(days=day.weekday())
        iso = day.isocalendar()
        return first, first + timedelta(days=6), f"{iso.year}-W{iso.week:02d}"
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1), f"{day.year}-{day.month:02d}"


def period_of_folder(name: str) -> Period | None:
    """Which period a folder name under ``HOME/reports`` is, or None (not a report)."""
    for p in PERIODS:
        if FOLDER_RE[p].match(name):
            return p
    return None


def latest_report(home: Path, period: Period = "day") -> Path | None:
    """The newest complete report folder of ``period`` (for HTTP serving), or None."""
    root = reports_root(home)
    if not root.is_dir():
        return None
    done = [
        d
        for d in root.iterdir()
        if d.is_dir() and period_of_folder(d.name) == period and (d / "report.html").is_file()
    ]
    return max(done, key=lambda d: d.name) if done else None


def history(home: Path) -> dict[str, list[str]]:
    """The report folders kept, newest first, per period (the manager's archive)."""
    out: dict[str, list[str]] = {p: [] for p in PERIODS}
    root = reports_root(home)
    if root.is_dir():
        for d in root.iterdir():
            p = period_of_folder(d.name)
            if p and (d / "report.html").is_file():
                out[p].append(d.name)
    return {p: sorted(v, reverse=True) for p, v in out.items()}


def folder_end(name: str) -> date | None:
    """The last day of the period a report folder holds (None: not a report folder)."""
    p = period_of_folder(name)
    try:
        if p == "day":
            return date.fromisoformat(name)
        if p == "week":
            year, week = name.split("-W")
            return date.fromisocalendar(int(year), int(week), 7)
        if p == "month":
            year, month = name.split("-")
            return period_bounds("month", date(int(year), int(month), 1))[1]
    except ValueError:  # 2026-W54, 2026-13: the right shape, not a real period
        return None
    return None


def prune_reports(home: Path, keep_days: int, today: date, spare: Iterable[str] = ()) -> list[str]:
    """Delete the report folders whose period ended more than ``keep_days`` before ``today``
    (``floor.report_keep_days``; the nightly ``storesense report`` runs it after writing),
    except those named in ``spare`` (what the run just wrote: an old day rebuilt on purpose
    stays).

    Only folders named as a day, an ISO week or a month are ever touched (anything else under
    ``HOME/reports`` is left alone, symlinks included); a week or a month goes only once all
    of it is past the limit. Returns the names removed, oldest first."""
    root = reports_root(home)
    if keep_days < 1:
        raise ValueError("keep_days must be at least 1")
    if not root.is_dir():
        return []
    cutoff = today - timedelta(days=keep_days)
    keep = set(spare)
    gone = []
    for d in sorted(root.iterdir(), key=lambda p: p.name):
        end = folder_end(d.name)
        if end is None or end >= cutoff or d.name in keep or d.is_symlink() or not d.is_dir():
            continue
        shutil.rmtree(d)
        gone.append(d.name)
    if gone:
        log.info("report retention: %d folders older than %d days removed", len(gone), keep_days)
    return gone


# -- the numbers --------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    days: list[str]
    observed_s: float
    zones: list[ZoneStats]
    insights: list[dict]
    colorbar_label: str
    provisional: bool = False
    no_floor_cameras: bool = False
    doc: dict[str, Any] = field(default_factory=dict)


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def zone_rows(cfg: StoreConfig, a: floor_analysis.Analysis) -> list[ZoneStats]:
    """The zone table and ``zones.csv``: each zone's figures from the analysis's KPIs
    (``hub.floor.kpis``, the one definition) plus its area and person-seconds from the grid."""
    masks = zone_masks(cfg.floor, list(cfg.zones), a.grid.shape)
    n = max(a.days_with_data, 1)
    out = []
    for z in cfg.zones:
        k = a.kpis.zone(z.name)
        assert k is not None  # period_kpis has a row for every configured zone
        out.append(
            ZoneStats(
                zone=z.name,
                kind=z.kind,
                area_m2=round(Polygon(z.polygon).area, 2),
                visits_per_day=k.visits_per_day,
                median_dwell_s=k.dwell_median_s,
                p90_dwell_s=k.dwell_p90_s,
                person_s_per_day=round(float(a.grid[masks[z.name]].sum()), 1),
                revenue_per_day=None if k.sales is None else round(k.sales / n, 2),
                revenue_per_visit=k.conversion,
                categories=" ".join(z.categories),
                observed=k.observed,
            )
        )
    return out


def build_report(
    conn: sqlite3.Connection,
    cfg: StoreConfig,
    day: date,
    out_dir: Path,
    *,
    days: int = 1,
    period: Period | None = None,
    sales_per_day: dict[str, float] | None = None,
    plan_image: Path | None = None,
    base_dir: Path | None = None,
    demo_note: str | None = None,
) -> ReportResult:
    """Write the report files for the ``period`` holding ``day`` (or, without a period,
    ``days`` days ending on ``day``) into ``out_dir``.

    ``sales_per_day`` ({category: revenue per day}) overrides the POS tables (tests, what-ifs);
    ``base_dir`` resolves relative paths of the store YAML (plan image, calibrations);
    ``demo_note`` labels the page as demo data.
    """
    if days < 1:
        raise ReportError("--days must be at least 1")
    if period is None:
        first, last = day - timedelta(days=days - 1), day
        kind = "day" if days == 1 else f"{days} days"
    else:
        first, last, _ = period_bounds(period, day)
        kind = period
    day_list = _days(first, last)
    floor = cfg.floor
    floor_cams = [c.id for c in cfg.cameras if c.role == "floor"]
    span = len(day_list)
    sales_total = (
        {c: v * span for c, v in sales_per_day.items()} if sales_per_day is not None else None
    )
    # every figure comes from the analysis (hub.floor.analysis / hub.floor.kpis): one
    # definition of each; this module only presents them
    a = floor_analysis.analyse(conn, cfg, first, last, sales=sales_total, base_dir=base_dir)
    analysed: dict[str, Any] = floor_analysis.insights_json(a)
    grid, n_obs = a.grid, a.days_with_data
    stats = zone_rows(cfg, a)
    views = a.cameras
    provisional = a.provisional
    items = list(analysed["insights"])
    unobserved = [[(float(x), float(y)) for x, y in p] for p in analysed["not_observed"]]
    no_cams = not floor_cams and n_obs == 0
    observed_per_day = a.observed_s / n_obs if n_obs else 0.0

    out_dir.mkdir(parents=True, exist_ok=True)
    label = f"seconds people spent a day in each {floor.cell_m:g} m square"
    name = cfg.name or cfg.store_id
    when = day_list[0] if span == 1 else f"{day_list[0]} to {day_list[-1]}"
    title = f"{name}: floor report, {when}"
    doc: dict[str, Any] = {
        "store_id": cfg.store_id,
        **analysed,
        "period": {**analysed["period"], "kind": kind},
        "notes": list(a.notes),
        "demo_data": demo_note,
        "days": day_list,
        "days_with_data": n_obs,
        "generated_at": time.time(),
        "observed_s_per_day": round(observed_per_day, 1),
        "person_s_per_day": round(float(grid.sum()), 1),
        "cell_m": floor.cell_m,
        "floor_cameras": floor_cams,
        "sales_source": None if not a.sales_known else "given" if sales_per_day else "pos",
        "money": {"currency": cfg.loyalty.currency, "locale": cfg.loyalty.locale},
        "kpis": floor_kpis.summary(a.kpis),
        "previous": floor_kpis.summary(a.kpis.previous) if a.kpis.previous else None,
        "trends": floor_kpis.trends(a.kpis),
        "zones": [asdict(s) for s in stats],
        "transitions": [{"from": x, "to": y, "count": c} for x, y, c in a.transitions],
        "camera_trust": camera_trust.report_section(conn, day_list),  # None: no sizes sent
    }
    fig_path = out_dir / "heatmap.png"
    parts = MapParts(cfg, grid, title, plan_image, items, views, unobserved, not no_cams)
    _save(_with_legend(_map_figure(parts), label), fig_path)
    pictures = page_pictures(parts, label)
    _atomic_text(out_dir / "zones.csv", _zones_csv(stats))
    _atomic_text(out_dir / "insights.json", json.dumps(doc, indent=2))
    links = web_links(period, day) if period is not None else {}
    _atomic_text(
        out_dir / "report.html", _html(title, fig_path, stats, doc, no_cams, links, pictures)
    )
    write_pdf(out_dir / "report.pdf", title, fig_path, stats, doc, no_cams)
    result = ReportResult(
        out_dir, day_list, observed_per_day, stats, items, label, provisional, no_cams, doc
    )
    if floor_cams and n_obs == 0:
        raise NoFloorData(
            f"no floor camera data for {when}: the report says so; check the cameras "
            f"({', '.join(floor_cams)}) and the hub ({out_dir / 'report.html'})"
        )
    return result


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _zones_csv(stats: list[ZoneStats]) -> str:
    buf = io.StringIO()
    fields = list(ZoneStats.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for s in stats:
        w.writerow({k: ("" if v is None else v) for k, v in asdict(s).items()})
    return buf.getvalue()


# -- the picture --------------------------------------------------------------------------
INSIGHT_STYLE = {  # tag, colour: the picture's markers and their legend entries
    "advertising": ("A", "#2ca02c", "A = advertising spot"),
    "new_product": ("N", "#d62728", "N = new-product spot"),
    "cold_region": ("C", "#1f77b4", "C = rarely visited area"),
}
TWIN_TEXT = "A and N overlapping: one display there serves both"


def heatmap_figure(
    cfg: StoreConfig,
    grid: np.ndarray,
    label: str,
    title: str,
    plan_image: Path | None,
    items: list[dict[str, Any]],
    views: list[floor_plan.CameraView],
    unobserved: list[list[tuple[float, float]]],
    *,
    occupancy: bool = True,
) -> Figure:
    """The plan (image or drawn), the occupancy heatmap with its colour bar, the zones, the
    insight markers, a metre scale bar and a legend naming every overlay drawn. y is up."""
    parts = MapParts(cfg, grid, title, plan_image, items, views, unobserved, occupancy)
    return _with_legend(_map_figure(parts), label)


@dataclass(frozen=True)
class MapParts:
    """What the plan picture is drawn from (one set for ``heatmap.png`` and the page's)."""

    cfg: StoreConfig
    grid: np.ndarray
    title: str
    plan_image: Path | None
    items: list[dict[str, Any]]
    views: list[floor_plan.CameraView]
    unobserved: list[list[tuple[float, float]]]
    occupancy: bool = True  # False: no floor cameras, the plan and zones only


def _with_legend(drawn: tuple[Figure, list[Any], Any], label: str) -> Figure:
    """``heatmap.png``: the map with its colour bar and the legend under it."""
    fig, handles, im = drawn
    if im is not None:
        cb = fig.colorbar(im, ax=fig.axes[0], fraction=0.035, pad=0.02)
        cb.set_label(label)
    fig.axes[0].legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    return fig


def _map_figure(
    m: MapParts, *, width_in: float = 10.0, dpi: int = 110
) -> tuple[Figure, list[Any], Any]:
    """The map without colour bar or legend: (figure, legend handles of every overlay drawn,
    the occupancy image or None). ``heatmap_figure`` adds both for ``heatmap.png``; the page
    shows them apart (``key_figure``), at a size a phone can read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.patches import Polygon as MplPolygon
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    cfg, grid, title, items = m.cfg, m.grid, m.title, m.items
    occupancy = m.occupancy
    floor = cfg.floor
    w, h = floor.width_m, floor.height_m
    fig_w = width_in
    fig, ax = plt.subplots(figsize=(fig_w, max(0.45 * fig_w, fig_w * h / w * 0.8)), dpi=dpi)
    try:
        handles = floor_plan.draw_plan(ax, cfg, m.views, m.unobserved, m.plan_image)
    except floor_plan.PlanError as exc:
        plt.close(fig)
        raise ReportError(str(exc)) from None
    im = None
    if occupancy:  # without floor cameras: the plan and zones only, no empty colour bar
        vmax = float(grid.max()) if grid.size and grid.max() > 0 else 1.0
        shown = np.ma.masked_less_equal(grid, 0)
        c = floor.cell_m
        im = ax.imshow(
            shown,
            extent=(0.0, grid.shape[1] * c, 0.0, grid.shape[0] * c),
            origin="lower",
            cmap=CMAP,
            vmin=0,
            vmax=vmax,
            alpha=0.7,
            interpolation="nearest",
            zorder=1,
        )
        handles.append(Patch(fc="#f03b20", alpha=0.7, label="time people spent (colour bar)"))
    for z in cfg.zones:
        colour = floor_plan.ZONE_EDGE if z.kind != "staff" else "#7f7f7f"
        ax.add_patch(MplPolygon(z.polygon, closed=True, fill=False, ec=colour, lw=2, zorder=2.5))
        xs, ys = zip(*z.polygon, strict=True)
        ax.text(
            sum(xs) / len(xs),
            sum(ys) / len(ys),
            z.name + (" (staff)" if z.kind == "staff" else ""),
            ha="center",
            va="center",
            fontsize=9,
            color="#0b3d91",
            bbox={"fc": "white", "alpha": 0.8, "ec": "none", "pad": 1.5},
            zorder=5,
        )
    if cfg.zones:
        handles.append(Line2D([], [], color=floor_plan.ZONE_EDGE, lw=2, label="zone"))
    used: set[str] = set()
    twins = False
    drawn: list[list[tuple[float, float]]] = []  # the spots so far: one on them is a twin
    for item in items:
        style = INSIGHT_STYLE.get(item["kind"])
        poly = floor_plan.clip_to_floor(floor, item["polygon"]) if item.get("polygon") else []
        if style is None or not poly:
            continue
        tag, colour, _ = style
        used.add(item["kind"])
        # an N spot on the square of an A spot (the advice says "one display serves both"):
        # its box is drawn just inside the other and its tag at the bottom, so both show
        twin = floor_analysis.same_spot(poly, drawn) is not None
        # overlapping only in part: the box as it is, but its tag at the bottom too, so the
        # two tags never sit on each other
        low_tag = floor_analysis.same_spot(poly, drawn, 0.0) is not None
        drawn.append(poly)
        twins |= low_tag
        if twin:
            inset = Polygon(poly).buffer(-0.12, join_style="mitre")
            if isinstance(inset, Polygon) and not inset.is_empty:
                poly = [(x, y) for x, y in list(inset.exterior.coords)[:-1]]
        ax.add_patch(
            MplPolygon(poly, closed=True, fill=False, ec=colour, lw=1.8, ls="--", zorder=4)
        )
        xs, ys = zip(*poly, strict=True)
        # the tag inside the polygon's top-left (an overlapping N's bottom-left), clipped to
        # the floor so it never runs off
        tx = min(max(min(xs) + 0.1, 0.1), w - 0.4)
        if low_tag:
            ty = min(max(min(ys) + 0.1, 0.1), h - 0.4)
        else:
            ty = min(max(max(ys) - 0.1, 0.4), h - 0.1)
        ax.text(
            tx,
            ty,
            f"{tag}{item['rank']}",
            color=colour,
            fontsize=9,
            fontweight="bold",
            va="bottom" if low_tag else "top",
            zorder=6,
            clip_on=True,
            bbox={"fc": "white", "alpha": 0.8, "ec": "none", "pad": 0.8},
        )
    for kind in INSIGHT_STYLE:
        if kind in used:
            _, colour, text = INSIGHT_STYLE[kind]
            handles.append(Line2D([], [], color=colour, ls="--", lw=1.8, label=text))
    if twins:
        handles.append(Line2D([], [], ls="", label=TWIN_TEXT))
    bar = 1.0 if w <= 12 else 2.0 if w <= 30 else 5.0
    ax.add_artist(
        AnchoredSizeBar(
            ax.transData, bar, f"{bar:g} m", "lower left", pad=0.4, frameon=True, size_vertical=0.08
        )
    )
    ax.set_xlim(-0.05 * w, 1.05 * w)
    ax.set_ylim(-0.05 * h, 1.05 * h)  # y up: the plan as drawn on paper
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title if occupancy else f"{title} (plan only: no floor cameras)", fontsize=11)
    return fig, handles, im


def key_figure(handles: list[Any], im: Any, label: str) -> Figure:
    """The plan's key for the page: one entry a line and the colour scale across, drawn
    360 px wide at 1:1 so a 390 px phone shows it at full size (the legend inside
    ``heatmap.png`` shrinks with the plan to a few pixels there)."""
    import textwrap

    import matplotlib.pyplot as plt

    labels = [textwrap.fill(str(h.get_label()), 34) for h in handles]  # 360 px at 10 pt
    rows = sum(1 + t.count("\n") for t in labels)
    dpi = 110
    width = 360 / dpi
    scale_label = textwrap.fill(label, 40)
    bar_h = 0.6 + 0.16 * scale_label.count("\n") if im is not None else 0.0
    fig = plt.figure(figsize=(width, 0.205 * rows + bar_h + 0.1), dpi=dpi)
    top = 1 - bar_h / fig.get_figheight() if im is not None else 1.0
    fig.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(0.0, top),
        ncol=1,
        fontsize=10,
        frameon=False,
        borderaxespad=0.2,
        handlelength=2.2,
    )
    if im is not None:
        h = fig.get_figheight()
        cax = fig.add_axes((0.05, 1 - (bar_h - 0.3) / h, 0.9, 0.16 / h))
        from matplotlib.cm import ScalarMappable

        scale = ScalarMappable(norm=im.norm, cmap=im.get_cmap())  # the plan's colours
        cb = fig.colorbar(scale, cax=cax, orientation="horizontal", alpha=im.get_alpha())
        cb.ax.tick_params(labelsize=9)
        cb.ax.xaxis.set_ticks_position("bottom")
        cb.set_label(scale_label, fontsize=9.5, labelpad=2)
        cb.ax.xaxis.set_label_position("top")
    return fig


@dataclass(frozen=True)
class PagePictures:
    """The page's plan (no legend, no colour bar) and its key (``key_figure``) as PNG bytes,
    with the key's labels for the picture's alt text."""

    plan: bytes
    key: bytes
    labels: list[str]


def page_pictures(m: MapParts, label: str) -> PagePictures:
    """The plan and its key for report.html (``heatmap.png`` keeps its own legend)."""
    import matplotlib.pyplot as plt

    # narrower and sharper than heatmap.png: its labels stay larger when a phone shrinks it
    fig, handles, im = _map_figure(m, width_in=6.5, dpi=170)
    try:
        key = key_figure(handles, im, label)
        try:
            key_png = _png_bytes(key, tight=False)
        finally:
            plt.close(key)
        return PagePictures(_png_bytes(fig), key_png, [h.get_label() for h in handles])
    finally:
        plt.close(fig)


def _png_bytes(fig: Figure, *, tight: bool = True) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight" if tight else None)
    return buf.getvalue()


def _save(fig: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        tmp = path.with_name(path.name + ".tmp.png")
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)


# -- the page ---------------------------------------------------------------------------
def _cell(v: object) -> str:
    """A table cell: an en dash for "no figure" (no sales data, no visits), else the value."""
    return "–" if v is None else str(v)


def _trend(v: float | None) -> str:
    if v is None:
        return "no earlier data"
    if abs(v) < 0.005:
        return "same as the week before"
    return f"{'▲' if v > 0 else '▼'} {abs(v):.0%} on the week before"  # per hour watched


def _hour(h: int) -> str:
    return f"{h:02d}:00–{(h + 1) % 24:02d}:00"


def _number(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".strip()


_MONEY_UNIT = re.compile(r"^([A-Z]{3})(?:/(day|visit))?$")
_MONEY_PER = {None: "", "day": " a day", "visit": " per visit"}


# Evidence names a manager reads without the plan's axes in mind; the rest: "_" → " ".
EVIDENCE_NAMES = {
    "position_x": "on the plan, metres from the left wall (x)",
    "position_y": "on the plan, metres from the bottom wall (y)",
}


def evidence_name(key: str) -> str:
    return EVIDENCE_NAMES.get(key, key.replace("_", " "))


def money(doc: dict[str, Any], v: float | None) -> str:
    """An amount in the store's currency and locale (``hub.shop.money``, the customer card's
    format); an en dash when there is no figure."""
    if v is None:
        return "–"
    m = doc.get("money") or {}
    return money_text(v, m.get("currency", "GBP"), m.get("locale", "en_GB"))


def value(doc: dict[str, Any], v: float | None, unit: str = "") -> str:
    """An evidence figure with its unit: amounts (unit ``GBP``, ``GBP/day``, ``GBP/visit``:
    the currency code) as money, the rest as a number with its unit."""
    hit = _MONEY_UNIT.match(unit)
    if hit and hit.group(1) == (doc.get("money") or {}).get("currency", "GBP"):
        return "–" if v is None else money(doc, v) + _MONEY_PER[hit.group(2)]
    return _number(v, unit)


def tiles(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The KPI tiles (label, value, trend) shared by the page and the PDF, from
    ``hub.floor.kpis.summary``. Without an entrance zone footfall is not measured: the tile
    then says what it counts, people seen in any zone."""
    k, t = doc["kpis"], doc["trends"]
    dwell = k.get("median_dwell_s")
    by_door = k.get("footfall_source") == "entrance zones"
    return [
        {
            "label": "Footfall a day" if by_door else "People seen a day",
            "value": _number(k.get("footfall_per_day")),
            "trend": _trend(t.get("footfall_per_day")),
        },
        {
            "label": "Zone visits a day",
            "value": _number(k.get("visits_per_day")),
            "trend": _trend(t.get("visits_per_day")),
        },
        {
            "label": "Sales per visit",
            "value": money(doc, k.get("conversion")),
            "trend": _trend(t.get("conversion")),
        },
        {
            "label": "Median stay in a zone",
            "value": "–" if dwell is None else _duration(dwell),
            "trend": _trend(t.get("median_dwell_s")),
        },
    ]


def busiest_text(doc: dict[str, Any]) -> str:
    """ "Busiest hours: 11:00–12:00 (41 people arriving a day), …" or "" without arrivals."""
    hours = (doc.get("kpis") or {}).get("busiest_hours") or []
    if not hours:
        return ""
    busy = ", ".join(
        f"{_hour(b['hour'])} ({_number(b['arrivals_per_day'])} people arriving a day)"
        for b in hours
    )
    return f"Busiest hours: {busy}."


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """The report's Jinja2 environment, built once per process.

    Autoescaped: zone names and insight text come from the store's YAML and end up in a page
    a browser opens. StrictUndefined: a renamed field fails the report (and its test) instead
    of printing an empty cell. The template is package data (``hub/floor/templates``), found
    through the package, so a wheel install finds it as a checkout does.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hub.floor", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = _cell
    env.filters["duration"] = _duration
    env.filters["hour"] = _hour
    env.filters["number"] = _number
    env.filters["evidence_name"] = evidence_name
    return env


def web_links(period: Period, day: date) -> dict[str, str]:
    """The hub web app's URLs of this report's files and of the other periods holding ``day``
    (hub/web/routers/reports.py). Absolute paths: the page is served at several URLs
    (``/reports/latest`` too), where a relative link would point elsewhere."""
    prefix = {"day": "/reports/", "week": "/reports/weeks/", "month": "/reports/months/"}
    folder = {p: period_bounds(p, day)[2] for p in PERIODS}
    own = prefix[period] + folder[period]
    out = {name: f"{own}/{name}" for name in REPORT_FILES}
    out |= {f"{p} report": f"{prefix[p]}{folder[p]}/report.html" for p in PERIODS if p != period}
    return out


def _html(
    title: str,
    png: Path,
    stats: list[ZoneStats],
    doc: dict[str, Any],
    no_floor_cameras: bool = False,
    links: dict[str, str] | None = None,
    pictures: PagePictures | None = None,
) -> str:
    """One self-contained page (the PNGs embedded), readable on a manager's phone: the plan
    and, under it, its key at full size (``pictures``; without them ``png``, legend inside)."""
    doc = {
        "kpis": {},
        "trends": {},
        "insights": [],
        "transitions": [],
        "provisional": False,
        "provisional_reason": None,
        "demo_data": None,
        "floor_cameras": [],
        "period": {"kind": "day"},
        "days_with_data": 1,
        "camera_trust": None,
        **doc,
    }
    items = doc["insights"] if isinstance(doc["insights"], list) else []
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            title=title,
            png_b64=base64.b64encode(pictures.plan if pictures else png.read_bytes()).decode(),
            key_b64=base64.b64encode(pictures.key).decode() if pictures else None,
            key_labels=", ".join(pictures.labels) if pictures else "",
            stats=stats,
            doc=doc,
            # no floor cameras: no tiles of zeros, the banner says why there are no figures
            tiles=tiles(doc) if doc["kpis"] and not no_floor_cameras else [],
            busiest=busiest_text(doc) if doc["kpis"] and not no_floor_cameras else "",
            money=lambda v: money(doc, v),
            value=lambda v, unit="": value(doc, v, unit),
            conf_reason=conf_reason,
            by_kind=[(k, t, [i for i in items if i["kind"] == k]) for k, t in KIND_TITLES.items()],
            caveat=SALES_CAVEAT,
            caveat_under=KIND_TITLES["high_footfall_low_sales"],
            no_footfall=NO_FOOTFALL.rstrip("."),
            no_floor_cameras=no_floor_cameras,
            links=links or {},
        )
    )


def _duration(seconds: float) -> str:
    """Hours for a shop day, minutes or seconds for a short one (a demo, a camera just added)."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


# -- the PDF ----------------------------------------------------------------------------
A4 = (8.27, 11.69)


def write_pdf(
    path: Path,
    title: str,
    png: Path,
    stats: list[ZoneStats],
    doc: dict[str, Any],
    no_floor_cameras: bool = False,
) -> Path:
    """A4 pages: 1. banner, KPI tiles, busiest hours, the plan; 2+. the advice with its
    evidence and confidence, then the zone table with the sales caveat."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.patches import FancyBboxPatch
    from PIL import Image

    tmp = path.with_name(path.name + ".tmp")
    with PdfPages(tmp, metadata={"Title": title, "Creator": "Storesense"}) as pdf:
        fig = plt.figure(figsize=A4)
        y = 0.96
        heading = textwrap.fill(title, 60)
        fig.text(0.06, y, heading, fontsize=15, fontweight="bold", va="top")
        y -= 0.05 + 0.022 * heading.count("\n")  # a two-line title ran into the banner
        for note, colour in _banners(doc, no_floor_cameras):
            wrapped = textwrap.fill(note, 95)
            lines = wrapped.count("\n") + 1
            fig.patches.append(
                FancyBboxPatch(
                    (0.05, y - 0.018 * lines - 0.012),
                    0.9,
                    0.018 * lines + 0.02,
                    boxstyle="round,pad=0.004",
                    transform=fig.transFigure,
                    fc=colour,
                    ec="none",
                )
            )
            fig.text(0.07, y, wrapped, fontsize=9, va="top")
            y -= 0.018 * lines + 0.035
        if doc.get("kpis") and not no_floor_cameras:
            for i, tile in enumerate(tiles(doc)):
                x = 0.05 + i * 0.2275
                fig.patches.append(
                    FancyBboxPatch(
                        (x, y - 0.085),
                        0.21,
                        0.08,
                        boxstyle="round,pad=0.004",
                        transform=fig.transFigure,
                        fc="#eef3fb",
                        ec="#9db3d9",
                    )
                )
                fig.text(x + 0.01, y - 0.01, tile["label"], fontsize=8, va="top")
                fig.text(
                    x + 0.01, y - 0.03, tile["value"], fontsize=16, fontweight="bold", va="top"
                )
                fig.text(
                    x + 0.01, y - 0.068, tile["trend"], fontsize=6.5, va="top", color="#444444"
                )
            y -= 0.11
            busy = busiest_text(doc)
            if busy:
                fig.text(0.06, y, textwrap.fill(busy, 100), fontsize=9, va="top")
                y -= 0.03
            if doc["kpis"].get("footfall_source") != "entrance zones":
                fig.text(0.06, y, textwrap.fill(NO_FOOTFALL, 110), fontsize=8, va="top")
                y -= 0.03
            y -= 0.01
        img = np.asarray(Image.open(png).convert("RGB"))
        h_frac = min(y - 0.04, 0.88 * img.shape[0] / img.shape[1] * A4[0] / A4[1])
        ax = fig.add_axes((0.05, y - 0.01 - h_frac, 0.9, h_frac))
        ax.imshow(img)
        ax.axis("off")
        pdf.savefig(fig)
        plt.close(fig)

        advice = _advice_lines(doc, stats)
        per_page = 62
        for start in range(0, len(advice), per_page):
            fig = plt.figure(figsize=A4)
            yy = 0.95
            for text, style in advice[start : start + per_page]:
                size = {"h": 12, "b": 9.5, "t": 8.5, "s": 7.5}[style]
                fig.text(
                    0.06 if style in "hb" else 0.09,
                    yy,
                    text,
                    fontsize=size,
                    fontweight="bold" if style in "hb" else "normal",
                    va="top",
                    family="monospace" if style == "t" else "sans-serif",
                    color="#333333" if style == "s" else "black",
                )
                yy -= 0.023 if style == "h" else 0.0145
            pdf.savefig(fig)
            plt.close(fig)
    os.replace(tmp, path)
    return path


def conf_reason(item: dict[str, Any]) -> str:
    """An insight's confidence reason without its leading "medium: " (the page shows the
    level beside it already: "confidence medium medium: 2.5 h observed …" read twice)."""
    reason = str(item.get("confidence_reason") or "")
    level = f"{item.get('confidence')}: "
    return reason[len(level) :] if reason.startswith(level) else reason


def _banners(doc: dict[str, Any], no_floor_cameras: bool) -> list[tuple[str, str]]:
    out = []
    if doc.get("demo_data"):
        out.append((f"DEMO DATA: {doc['demo_data']}", "#e8dcf5"))
    if no_floor_cameras:
        out.append(
            (
                "This store has no floor cameras, so there is no floor map, no zone figures and "
                "no advice. Add a camera with role: floor to the store YAML.",
                "#fde2e1",
            )
        )
    elif doc.get("floor_cameras") and not doc.get("days_with_data"):
        out.append(
            (
                "The floor cameras sent nothing in this period: check that they are running.",
                "#fde2e1",
            )
        )
    elif doc.get("provisional"):
        out.append((f"PROVISIONAL: {doc.get('provisional_reason') or ''}", "#fff1c2"))
    return out


def _advice_lines(doc: dict[str, Any], stats: list[ZoneStats]) -> list[tuple[str, str]]:
    import textwrap

    out: list[tuple[str, str]] = []
    items = doc.get("insights") or []
    for kind, heading in KIND_TITLES.items():
        mine = [i for i in items if i["kind"] == kind]
        out.append((heading, "h"))
        if not mine:
            out.append(("Nothing to report.", "s"))
        for i in mine:
            wrapped = textwrap.wrap(f"{i['rank']}. {i['advice']}", 92)
            out.extend((w, "b") for w in wrapped)
            ev = "; ".join(
                f"{evidence_name(k)}: {value(doc, v['value'], v['unit'])}"
                for k, v in i["evidence"].items()
            )
            out.extend((w, "s") for w in textwrap.wrap(f"Evidence: {ev}", 110))
            for r in i.get("reasons") or []:
                out.extend((w, "s") for w in textwrap.wrap(f"Why: {r['text']}", 110))
            conf = f"Confidence: {i['confidence']} ({conf_reason(i)})"
            out.extend((w, "s") for w in textwrap.wrap(conf, 110))
        if kind == "high_footfall_low_sales":
            out.extend((w, "s") for w in textwrap.wrap(SALES_CAVEAT, 110))
        out.append(("", "s"))
    if doc.get("not_observed"):
        out.append(("Not observed", "h"))
        out.append(
            ("Hatched areas on the plan: no camera sees them, so nothing is said about them.", "s")
        )
        out.append(("", "s"))
    out.append(("Zones", "h"))
    out.append(
        (
            f"{'zone':<18}{'visits/day':>13}{'median s':>10}{'p90 s':>8}"
            f"{'sales/day':>13}{'sales/visit':>13}",
            "t",
        )
    )
    for s in stats:
        out.append(
            (
                f"{s.zone[:17]:<18}"
                f"{_cell(s.visits_per_day) if s.observed else 'not observed':>13}"
                f"{_cell(s.median_dwell_s):>10}{_cell(s.p90_dwell_s):>8}"
                f"{money(doc, s.revenue_per_day):>13}{money(doc, s.revenue_per_visit):>13}",
                "t",
            )
        )
    return out
