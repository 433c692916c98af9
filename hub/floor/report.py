"""The nightly floor report: heatmap.png, zones.csv, insights.json and a one-page report.html.

Reads the hub database (grid, visits, POS revenue), computes with ``hub.floor.insights`` and draws
with matplotlib (Agg, no display). The heatmap sits over the floor plan image from the config
(``floor.plan_image`` at ``floor.plan_px_per_m``), or over a schematic plan drawn from the
floor size and zones when there is no image. Reports land in ``HOME/reports/<date>/``;
``latest_report`` finds the newest for the hub's web app to serve.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hub.floor.insights import ZoneStats, insights, transition_counts, zone_stats
from hub.floor.occupancy import load_grid
from hub.shop.pos_store import revenue_by_category_range
from storesense.config import StoreConfig
from storesense.floor_config import FloorConfig, ZoneConfig

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

REPORT_FILES = ("heatmap.png", "zones.csv", "insights.json", "report.html")
CMAP = "YlOrRd"  # light → dark red: low traffic stays readable over a light plan


class ReportError(ValueError):
    """The report cannot be made as asked (bad plan image, no such day …)."""


def reports_root(home: Path) -> Path:
    return home / "reports"


def latest_report(home: Path) -> Path | None:
    """The newest complete report folder under ``HOME/reports`` (for HTTP serving), or None."""
    root = reports_root(home)
    if not root.is_dir():
        return None
    done = [d for d in root.iterdir() if d.is_dir() and (d / "report.html").is_file()]
    return max(done, key=lambda d: d.name) if done else None


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    days: list[str]
    observed_s: float
    zones: list[ZoneStats]
    insights: dict[str, list[dict]]
    colorbar_label: str


def _sales(conn: sqlite3.Connection, first: date, last: date, n_days: int) -> dict | None:
    """Revenue per category per day from the POS tables (hub/shop/pos_store), None if none."""
    try:
        total = revenue_by_category_range(conn, first, last)
    except sqlite3.Error as exc:
        log.warning("no POS revenue for the report: %s", exc)
        return None
    if not total:
        return None
    return {cat: v / max(n_days, 1) for cat, v in total.items()}


def build_report(
    conn: sqlite3.Connection,
    cfg: StoreConfig,
    day: date,
    out_dir: Path,
    *,
    days: int = 1,
    sales_per_day: dict[str, float] | None = None,
    plan_image: Path | None = None,
) -> ReportResult:
    """Write the four report files for ``days`` days ending on ``day`` into ``out_dir``.

    ``sales_per_day`` ({category: revenue per day}) overrides the POS tables (tests, what-ifs).
    Files are written to a temporary name and renamed, so a reader never sees half a report.
    """
    if days < 1:
        raise ReportError("--days must be at least 1")
    day_list = [(day - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    floor, zones = cfg.floor, list(cfg.zones)
    grid, observed_s = load_grid(conn, floor, day_list)
    n_obs = conn.execute(
        f"SELECT count(*) FROM floor_days WHERE day IN ({','.join('?' * len(day_list))})",
        day_list,
    ).fetchone()[0]
    if sales_per_day is None:
        sales_per_day = _sales(conn, day - timedelta(days=days - 1), day, days)
    rows = conn.execute(
        f"SELECT person_key, zone, enter_t, exit_t FROM floor_visits "
        f"WHERE day IN ({','.join('?' * len(day_list))})",
        day_list,
    ).fetchall()
    dwell: dict[str, list[float]] = {}
    for r in rows:
        dwell.setdefault(r[1], []).append(r[3] - r[2])
    stats = zone_stats(floor, zones, grid, dwell, max(n_obs, 1), sales_per_day)
    ranked = insights(floor, zones, grid, stats)
    moves = transition_counts((r[0], r[1], r[2]) for r in rows)

    out_dir.mkdir(parents=True, exist_ok=True)
    label = f"person-seconds per day per {floor.cell_m:g} m cell"
    title = f"{cfg.name or cfg.store_id}: floor occupancy, {day_list[0]}"
    if days > 1:
        title += f" to {day_list[-1]} (mean of {n_obs} day(s) with data)"
    png = render_heatmap(
        out_dir / "heatmap.png", floor, zones, grid, label, title, plan_image, ranked
    )
    _atomic_text(out_dir / "zones.csv", _zones_csv(stats))
    doc = {
        "store_id": cfg.store_id,
        "days": day_list,
        "days_with_data": n_obs,
        "generated_at": time.time(),
        "observed_s_per_day": round(observed_s, 1),
        "person_s_per_day": round(float(grid.sum()), 1),
        "cell_m": floor.cell_m,
        "sales_source": "pos" if sales_per_day else None,
        "zones": [asdict(s) for s in stats],
        "transitions": [{"from": a, "to": b, "count": n} for (a, b), n in moves.most_common()],
        "insights": ranked,
    }
    _atomic_text(out_dir / "insights.json", json.dumps(doc, indent=2))
    _atomic_text(out_dir / "report.html", _html(title, png, stats, doc))
    return ReportResult(out_dir, day_list, observed_s, stats, ranked, label)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _zones_csv(stats: list[ZoneStats]) -> str:
    import io

    buf = io.StringIO()
    fields = list(ZoneStats.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for s in stats:
        w.writerow({k: ("" if v is None else v) for k, v in asdict(s).items()})
    return buf.getvalue()


def _plan_extent(
    floor: FloorConfig, plan_image: Path
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(plan_image) as im:
            img = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise ReportError(f"cannot read the floor plan image {plan_image}: {exc}") from None
    ppm = floor.plan_px_per_m or img.shape[1] / floor.width_m
    return img, (0.0, img.shape[1] / ppm, img.shape[0] / ppm, 0.0)


def render_heatmap(
    path: Path,
    floor: FloorConfig,
    zones: list[ZoneConfig],
    grid: np.ndarray,
    label: str,
    title: str,
    plan_image: Path | None,
    ranked: dict[str, list[dict]] | None = None,
) -> Path:
    """Heatmap over the plan with a colour-bar legend, a metre scale bar and zone outlines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon as MplPolygon
    from matplotlib.patches import Rectangle
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    w, h = floor.width_m, floor.height_m
    fig, ax = plt.subplots(figsize=(10, max(4.0, 10 * h / w * 0.9)), dpi=110)
    try:
        if plan_image is not None:
            img, extent = _plan_extent(floor, plan_image)
            ax.imshow(img, extent=extent, zorder=0)
        else:
            ax.add_patch(Rectangle((0, 0), w, h, fc="#f4f1ea", ec="#333333", lw=3, zorder=0))
            for z in zones:
                fc = "#d9d9d9" if z.kind == "staff" else "#e8e2d0"
                ax.add_patch(MplPolygon(z.polygon, closed=True, fc=fc, ec="none", zorder=0))
        vmax = float(grid.max()) if grid.size and grid.max() > 0 else 1.0
        shown = np.ma.masked_less_equal(grid, 0)
        c = floor.cell_m
        im = ax.imshow(
            shown,
            extent=(0.0, grid.shape[1] * c, grid.shape[0] * c, 0.0),
            cmap=CMAP,
            vmin=0,
            vmax=vmax,
            alpha=0.7,
            interpolation="nearest",
            zorder=1,
        )
        cb = fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
        cb.set_label(label)
        for z in zones:
            colour = "#1f77b4" if z.kind != "staff" else "#7f7f7f"
            ax.add_patch(MplPolygon(z.polygon, closed=True, fill=False, ec=colour, lw=2, zorder=2))
            xs, ys = zip(*z.polygon, strict=True)
            ax.text(
                sum(xs) / len(xs),
                sum(ys) / len(ys),
                z.name + (" (staff)" if z.kind == "staff" else ""),
                ha="center",
                va="center",
                fontsize=9,
                color="#0b3d91",
                bbox={"fc": "white", "alpha": 0.75, "ec": "none", "pad": 1.5},
                zorder=3,
            )
        for key, tag, colour in (("advertising", "A", "#2ca02c"), ("new_product", "N", "#d62728")):
            for item in (ranked or {}).get(key, []):
                wh = item["where"]
                ax.add_patch(
                    Rectangle(
                        (wh["x_m"], wh["y_m"]),
                        wh["w_m"],
                        wh["h_m"],
                        fill=False,
                        ec=colour,
                        lw=1.5,
                        ls="--",
                        zorder=4,
                    )
                )
                ax.text(
                    wh["x_m"] + 0.1,
                    wh["y_m"] + 0.1,
                    f"{tag}{item['rank']}",
                    color=colour,
                    fontsize=9,
                    fontweight="bold",
                    va="top",
                    zorder=4,
                )
        bar = 1.0 if w <= 12 else 2.0 if w <= 30 else 5.0
        ax.add_artist(
            AnchoredSizeBar(
                ax.transData,
                bar,
                f"{bar:g} m",
                "lower left",
                pad=0.4,
                frameon=True,
                size_vertical=0.08,
            )
        )
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_aspect("equal")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_title(title, fontsize=11)
        tmp = path.with_name(path.name + ".tmp.png")
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
    return path


def _cell(v: object) -> str:
    """A table cell: an en dash for "no figure" (no sales data, no visits), else the value."""
    return "–" if v is None else str(v)


# The section headings of the insights, in page order (keys of ``insights()``'s result).
_SECTIONS = (
    ("advertising", "Best spots for advertising"),
    ("new_product", "Spots for a new product"),
    ("rarely_visited", "Rarely visited regions"),
    ("high_footfall_low_sales", "High footfall, low sales"),
)


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """The report's Jinja2 environment, built once per process.

    Autoescaped: zone names and insight titles come from the store's YAML and end up in a page
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
    return env


def _html(title: str, png: Path, stats: list[ZoneStats], doc: dict[str, Any]) -> str:
    """One self-contained page (the PNG embedded), readable on a manager's phone."""
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            title=title,
            png_b64=base64.b64encode(png.read_bytes()).decode(),
            stats=stats,
            doc=doc,
            sections=_SECTIONS,
        )
    )


def _duration(seconds: float) -> str:
    """Hours for a shop day, minutes or seconds for a short one (a demo, a camera just added)."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
