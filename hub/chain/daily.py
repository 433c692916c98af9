"""A settled store day as the chain's ``daily_summary``: the store report's figures, top advice
and a small heatmap picture (``chain.send: [daily_summaries]``, docs/chain.md).

One definition of every figure: the summary is built from ``hub.floor.analysis.analyse`` for
that one day, the same call the store's own daily report makes, so head office's footfall,
sales and conversion are the store page's numbers. What crosses is aggregate only: counts,
amounts, advice sentences about zones and floor spots, and the mean person-seconds per floor
cell drawn at most ``MAX_THUMBNAIL_PX`` wide. No person key, track, position or customer.
"""

from __future__ import annotations

import base64
import io
import sqlite3
from datetime import date
from pathlib import Path

import numpy as np

from hub.floor import analysis as floor_analysis
from hub.floor.report import CMAP
from hub.shop.pos_store import receipt_count
from storesense import chain_messages as cm
from storesense.config import StoreConfig

THUMB_WIDTH_PX = 180


def heatmap_thumbnail(cfg: StoreConfig, grid: np.ndarray) -> bytes:
    """The day's occupancy grid as a small PNG (y up, as the store report draws it), with the
    zone outlines so head office can tell the floor's parts apart. Empty cells stay white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon as MplPolygon

    floor = cfg.floor
    w, h = floor.width_m, floor.height_m
    dpi = 60
    fig_w = THUMB_WIDTH_PX / dpi
    fig_h = min(max(fig_w * h / w, 0.5), 2 * fig_w)
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    try:
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        vmax = float(grid.max()) if grid.size and grid.max() > 0 else 1.0
        c = floor.cell_m
        extent = (0.0, grid.shape[1] * c, 0.0, grid.shape[0] * c)
        ax.imshow(
            np.ma.masked_less_equal(grid, 0), extent=extent, origin="lower", cmap=CMAP,
            vmin=0, vmax=vmax, interpolation="nearest",
        )  # fmt: skip
        for z in cfg.zones:
            ax.add_patch(MplPolygon(z.polygon, closed=True, fill=False, lw=0.8, ec="#555555"))
        ax.add_patch(MplPolygon([(0, 0), (w, 0), (w, h), (0, h)], fill=False, lw=1.2, ec="#333"))
        ax.set_xlim(-0.01 * w, 1.01 * w)  # the outline's right and top edges stay in the picture
        ax.set_ylim(-0.01 * h, 1.01 * h)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def top_advice(a: floor_analysis.Analysis) -> list[cm.AdviceItem]:
    """The best item of each kind of advice, in the report's order, at most ``MAX_ADVICE``."""
    out: list[cm.AdviceItem] = []
    for i in a.insights:
        if i.rank != 1 or len(out) >= cm.MAX_ADVICE:
            continue
        item = cm.AdviceItem(
            kind=i.kind, rank=i.rank, zone=i.zone, advice=i.advice[:400],
            confidence=i.confidence,
        )  # fmt: skip
        out.append(item)
    return out


def daily_summary(
    conn: sqlite3.Connection, cfg: StoreConfig, day: date, now: float, *,
    base_dir: Path | None = None,
) -> cm.DailySummary:  # fmt: skip
    """The store report's day ``day`` as a chain message (its id is the store, day, revision 0:
    made twice, it is the same message)."""
    a = floor_analysis.analyse(conn, cfg, day, day, base_dir=base_dir)
    k = a.kpis
    selling = [z for z in k.zones if z.sales is not None and z.observed]
    receipts = receipt_count(conn, day, day) if a.sales_known else None
    png = heatmap_thumbnail(cfg, a.grid) if a.has_floor_cameras else None
    return cm.DailySummary(
        msg_id=cm.chain_msg_id(cfg.store_id, "daily_summary", day.isoformat(), 0),
        store_id=cfg.store_id, day=day, observed_s=round(a.observed_s, 1),
        footfall=k.footfall, people_seen=k.people, visits=k.visits,
        selling_visits=sum(z.visits for z in selling), sales=k.sales, receipts=receipts,
        currency=cfg.loyalty.currency, conversion=k.conversion, provisional=a.provisional,
        advice=top_advice(a),
        heatmap_png=base64.b64encode(png).decode() if png is not None else None, sent_at=now,
    )  # fmt: skip
