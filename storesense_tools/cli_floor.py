"""`storesense` subcommands for the floor part; `storesense_tools.cli` calls `register`.

Heavy imports happen inside each command, as in `storesense_tools.cli`.

* ``calibrate``: fit a floor camera's image → floor homography from measured marks;
* ``calibrate-marks``: a self-contained page to click a still's floor marks and type metres;
* ``calibrate-check``: the installer's check of such marks on a camera still (annotated PNG,
  residuals, leave-one-out errors, people's heights; refuses maps off by more than 0.5 m);
* ``track``: the floor pipeline over a video file → MOTChallenge rows (for evaluation);
* ``occupancy``: the floor pipeline over a video file → people per floor cell per interval;
* ``report``: the hub's floor report of a day, week or month (hub/floor/report.py), nightly.

``track`` and ``occupancy`` run a detector over every frame (minutes on a long clip), so they
draw a progress bar (``storesense_tools.common.progress_bar``, also the benches') on stderr
for someone watching; their stdout line and output files are the same with or without it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from storesense.errors import CliError
from storesense_tools.common import (  # progress_bar: also the benches' bar
    HUB_EXTRA,
    config_path,
    progress_bar,
    store_config,
)

# Without --image-size the fit is the same, but the size the marks were clicked in is unknown,
# so the floor camera cannot rescale other resolutions or refuse another view. Said on stdout.
NO_IMAGE_SIZE_NOTE = (
    "note: no --image-size given, so the frame-size check is skipped: the map takes pixels as "
    "they come and is right only for frames of the resolution the marks were clicked in; frames "
    "of another resolution or aspect ratio will be neither rescaled nor refused. Pass "
    "--image-size WxH to record it."
)


def cmd_calibrate(args: argparse.Namespace, home: Path) -> int:
    """Fit, report the error in metres, write the YAML the camera's ``calibration:`` names."""
    from edge.floor.geometry import (
        CalibrationError,
        fit_homography,
        read_points_csv,
        save_calibration,
    )

    try:
        image_px, floor_m = read_points_csv(args.points)
        size = args.image_size  # None: fit anyway, skip only the frame-size check (see note)
        hom, rep = fit_homography(image_px, floor_m, size)
    except CalibrationError as exc:
        raise CliError(f"calibration refused: {exc}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_calibration(args.out, hom, rep, source=Path(args.points).name)
    where = "image size not given" if size is None else f"image {size[0]}x{size[1]} px"
    print(
        f"{rep.n_points} points, {where}: reprojection error "
        f"RMS {rep.rms_m:.3f} m, max {rep.max_m:.3f} m (row {rep.worst_index + 1} of the data)"
    )
    if size is None:
        print(NO_IMAGE_SIZE_NOTE)
    if rep.max_m > args.warn_m:
        print(f"warning: max error above {args.warn_m} m; re-measure the worst point")
    print(f"wrote {args.out}")
    return 0


def _read_boxes(path: Path) -> Any:
    """``x1,y1,x2,y2`` rows (pixels of the still; header optional, ``#`` comments)."""
    from edge.floor.geometry import CalibrationError, read_number_csv

    def ordered(box: list[float]) -> str | None:
        return None if box[2] > box[0] and box[3] > box[1] else "a box needs x2 > x1 and y2 > y1"

    try:
        return read_number_csv(path, ("x1", "y1", "x2", "y2"), ordered)
    except CalibrationError as exc:
        raise CliError(str(exc)) from None


def cmd_calibrate_marks(args: argparse.Namespace, home: Path) -> int:
    """The installer's marking page for a still (storesense_tools/calibration_marks.py)."""
    from storesense_tools.calibration_marks import write_marking_page

    try:
        w, h = write_marking_page(args.image, args.out)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(
        f"wrote {args.out} ({w}x{h} still): open it in a browser, click the floor marks, type "
        "their metres, save marks.csv (and people.csv), then run storesense calibrate-check"
    )
    return 0


def cmd_calibrate_check(args: argparse.Namespace, home: Path) -> int:
    """The installer's check: residuals, leave-one-out errors and people's heights against the
    fitted map, drawn on a still of the camera. Exit 0 accepted (and ``--calibration-out``
    written), 1 rejected (the reasons printed and drawn), 2 for unusable input."""
    import cv2

    from edge.floor.geometry import (
        CalibrationError,
        check_calibration,
        read_points_csv,
        save_calibration,
    )
    from storesense_tools.calibration_check import draw_check

    still = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if still is None:
        raise CliError(f"{args.image}: not a readable image (PNG or JPEG)")
    size = (int(still.shape[1]), int(still.shape[0]))
    boxes = _read_boxes(args.boxes) if args.boxes is not None else None
    try:
        image_px, floor_m = read_points_csv(args.points)
        check = check_calibration(
            image_px,
            floor_m,
            size,
            boxes,
            person_m=args.person_m,
            max_error_m=args.max_error_m,
        )
    except CalibrationError as exc:
        raise CliError(f"calibration refused: {exc}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture = draw_check(
        still, check, image_px, floor_m, boxes, grid_m=args.grid_m, person_m=args.person_m
    )
    if not cv2.imwrite(str(args.out), picture):
        raise CliError(f"{args.out}: cannot write the picture")
    loo = check.loo_m
    print(
        f"{check.fit.n_points} marks on a {size[0]}x{size[1]} still: residual RMS "
        f"{check.fit.rms_m:.3f} m, max {check.fit.max_m:.3f} m; leave-one-out "
        + (
            f"max {float(loo[loo == loo].max()):.3f} m (mark {int(loo.argmax()) + 1})"
            if (loo == loo).any()
            else "not possible"
        )
    )
    if check.camera is not None:
        print(
            f"camera model: {check.camera.height_m:.1f} m above the floor, focal "
            f"{check.camera.K[0, 0]:.0f} px"
        )
    if boxes is not None and len(boxes):
        h = check.implied_height_m
        ok = h[h == h]
        if len(ok):
            print(
                f"{len(boxes)} people in the still: {float(sorted(ok)[len(ok) // 2]):.2f} m tall "
                f"by this map (median; range {ok.min():.2f}-{ok.max():.2f} m)"
            )
    else:
        print("no --boxes given: people's heights were not checked against the map")
    for problem in check.problems:
        print(f"rejected: {problem}")
    print(f"wrote {args.out}")
    if not check.ok:
        return 1
    if args.calibration_out is not None:
        args.calibration_out.parent.mkdir(parents=True, exist_ok=True)
        save_calibration(
            args.calibration_out, check.homography, check.fit, source=Path(args.points).name
        )
        print(f"accepted: wrote {args.calibration_out}")
    else:
        print("accepted")
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 480x360") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError("width and height must be positive")
    return w, h


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return v


def _coast(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= v <= 2:
        raise argparse.ArgumentTypeError("coasting must be 0-2 s (the tracker forgets after 2 s)")
    return v


def _run_video(
    args: argparse.Namespace, homography: Any = None, coast_s: float = 0.0
) -> tuple[float, int | None, Iterator[tuple[int, Any]]]:
    """(fps, frames expected or None, generator of (frame index, FloorFrame)).

    The expected count (the container's, capped by ``--max-frames``) only sizes the progress
    bar; containers may lie or say 0, so nothing else relies on it.
    """
    import cv2

    from edge.floor.person_detect import make_person_detector
    from edge.floor.pipeline import DETECTOR_OPTIONS, FloorPipeline, tracker_for
    from edge.floor.smoothing import FLOOR_FILL_GAPS_S, FixedLagSmoother
    from storesense_tools.floor_offline import read_video

    if not Path(args.video).is_file():
        raise CliError(f"no video file {args.video}")
    try:
        container_fps, frames = read_video(args.video, args.max_frames)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    fps = args.fps or container_fps
    if not fps or fps <= 0:
        raise CliError(f"{args.video}: the file has no frame rate; pass --fps")
    cap = cv2.VideoCapture(str(args.video))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    if args.max_frames is not None:
        count = min(count, args.max_frames) if count > 0 else args.max_frames
    expected = count if count > 0 else None
    cv2.setNumThreads(args.threads)
    detector = make_person_detector(
        args.detector, **DETECTOR_OPTIONS[args.detector], **_threads(args)
    )
    pipeline = FloorPipeline(
        detector, homography, tracker=tracker_for(args.detector), coast_s=coast_s
    )
    fill = FLOOR_FILL_GAPS_S if args.fill_gaps_s is None else args.fill_gaps_s
    smoother = FixedLagSmoother(fill, max_gap_s=fill, drop_unresolved=False)

    def run() -> Iterator[tuple[int, Any]]:
        # the camera's own path: frames held fill s, gaps of re-found people filled
        for i, frame in enumerate(frames):
            for ff, index in smoother.push(pipeline.process(frame, i / fps), i):
                yield int(index), ff
        for ff, index in smoother.flush():
            yield int(index), ff

    return fps, expected, run()


def _threads(args: argparse.Namespace) -> dict[str, int]:
    return {"num_threads": args.threads} if args.detector == "ssdlite" else {}


def cmd_track(args: argparse.Namespace, home: Path) -> int:
    """MOTChallenge rows ``frame,id,x,y,w,h,conf,-1,-1,-1`` (frame from 1, video pixels).

    With ``--calibration`` the detector tiles the frame as that camera would (tiles planned
    from the homography); without, the fallback tiling (full frame + 2x2)."""
    from edge.floor.geometry import CalibrationError, load_calibration
    from edge.floor.tile_plan import TilePlanError

    hom = None
    if args.calibration is not None:
        try:
            hom = load_calibration(args.calibration)
        except CalibrationError as exc:
            raise CliError(str(exc)) from None
    _, expected, results = _run_video(args, hom)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = frames = 0
    ids: set[int] = set()
    with (
        open(args.out, "w", encoding="utf-8") as fh,
        progress_bar(quiet=args.quiet) as progress,
    ):
        task = progress.add_task(f"track {Path(args.video).name}", total=expected)
        try:
            for i, ff in results:
                frames += 1
                progress.advance(task)
                for p in ff.people:
                    x1, y1, x2, y2 = (float(v) for v in p.box)
                    fh.write(
                        f"{i + 1},{p.track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                        f"{p.score:.4f},-1,-1,-1\n"
                    )
                    rows += 1
                    ids.add(p.track_id)
        except (CalibrationError, TilePlanError) as exc:  # frame not a scaled copy of the view
            raise CliError(str(exc)) from None
    print(f"{frames} frames, {rows} boxes, {len(ids)} track ids -> {args.out}")
    return 0


def cmd_occupancy(args: argparse.Namespace, home: Path) -> int:
    """``interval_start_s,cell_x,cell_y,mean_persons`` for every cell someone was in."""
    from edge.floor.geometry import CalibrationError, load_calibration
    from edge.floor.pipeline import FLOOR_COAST_S
    from edge.floor.tile_plan import TilePlanError
    from storesense_tools.floor_offline import occupancy_grid

    try:
        hom = load_calibration(args.calibration)
    except CalibrationError as exc:
        raise CliError(str(exc)) from None
    coast = FLOOR_COAST_S if args.coast_s is None else args.coast_s  # default: as the camera
    fps, expected, results = _run_video(args, hom, coast_s=coast)
    samples: list[tuple[float, Any]] = []
    try:
        with progress_bar(quiet=args.quiet) as progress:
            task = progress.add_task(f"occupancy {Path(args.video).name}", total=expected)
            for i, ff in results:
                samples.append((i / fps, ff.floor_xy))
                progress.advance(task)
    except (CalibrationError, TilePlanError) as exc:  # frame not a scaled copy of the view
        raise CliError(str(exc)) from None  # (the detector's tile plan says so first)
    grid = occupancy_grid(samples, args.cell_m, args.interval_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("interval_start_s,cell_x,cell_y,mean_persons\n")
        for t0, cx, cy, mean in grid:
            fh.write(f"{t0:.3f},{cx},{cy},{mean:.4f}\n")
    print(
        f"{len(samples)} frames at {fps:g} fps, {len(grid)} occupied cell-intervals -> {args.out}"
    )
    return 0


def _report_day(text: str) -> date:
    """``YYYY-MM-DD``, ``today`` or ``yesterday`` (what the nightly timer passes)."""
    import datetime as dt

    if text in ("today", "yesterday"):
        return dt.date.today() - dt.timedelta(days=text == "yesterday")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not YYYY-MM-DD, today or yesterday"
        ) from None


def cmd_report(args: argparse.Namespace, home: Path) -> int:
    """The floor report of the day, ISO week or month holding ``--date`` (``--period all``:
    all three, what the nightly timer runs, so the week and month so far stay current and
    every period's folder is kept as history).

    Exit 0 also for a store without floor cameras (its page says so: a valid set-up); exit 1
    when the store has floor cameras and none sent anything in the period (the page says so
    too, and the nightly unit fails where an operator sees it); exit 2 for a usage error.
    """
    from hub.floor.report import (
        PERIODS,
        NoFloorData,
        ReportError,
        build_report,
        period_bounds,
        prune_reports,
        reports_root,
    )
    from hub.store import db
    from storesense.paths import hub_db_path

    cfg = store_config(args, home)
    if not hub_db_path(home).exists():
        raise CliError(f"no hub database in {home}: run this on the hub (or pass --home)")
    base = config_path(args, home).parent
    plan = cfg.floor.plan.image or cfg.floor.plan_image
    if plan is not None and not plan.is_absolute():  # relative to the store YAML
        plan = base / plan
    periods = [p for p in PERIODS if args.period in ("all", p)]
    if args.out is not None and len(periods) > 1:
        raise CliError("--out names one folder: give --period day, week or month with it")
    if args.days != 1 and args.period != "day":
        raise CliError("--days averages days ending on --date: use it with --period day only")
    conn = db.open_db(hub_db_path(home))
    rc = 0
    try:
        for period in periods:
            folder = period_bounds(period, args.date)[2]
            out = args.out or reports_root(home) / folder
            try:
                res = build_report(
                    conn,
                    cfg,
                    args.date,
                    out,
                    days=args.days,
                    period=None if args.days != 1 else period,
                    plan_image=plan,
                    base_dir=base,
                )
            except NoFloorData as exc:
                print(f"storesense: {exc}", file=sys.stderr)  # cron mails stderr
                rc = 1
                continue
            except ReportError as exc:
                raise CliError(str(exc)) from None
            if res.no_floor_cameras:
                print(
                    f"report {folder}: {len(res.zones)} zones, but this store has no floor "
                    f"cameras; the page says so "
                    f"-> {res.out_dir}/report.html"
                )
                continue
            flag = " (provisional: too little observed)" if res.provisional else ""
            print(
                f"report {res.days[0]}..{res.days[-1]}: {len(res.zones)} zones, "
                f"{len(res.insights)} insights, {res.observed_s / 3600:.1f} h observed per day"
                f"{flag} -> {res.out_dir}/report.html"
            )
        if args.out is None:  # the history under HOME/reports: keep floor.report_keep_days
            import datetime as dt

            keep = cfg.floor.report_keep_days
            written = [period_bounds(p, args.date)[2] for p in periods]
            gone = prune_reports(home, keep, dt.date.today(), spare=written)
            if gone:
                print(
                    f"removed {len(gone)} report folders older than {keep} days: {', '.join(gone)}"
                )
            from hub.floor.retention import prune_raw

            raw = cfg.floor.raw_keep_days
            pruned = prune_raw(conn, raw, dt.date.today())
            if pruned.visits or pruned.runs:
                print(
                    f"removed {pruned.visits} zone visits and {pruned.runs} camera runs from "
                    f"before {pruned.kept_from} (floor.raw_keep_days {raw}); the daily heatmap "
                    "and camera time stay"
                )
    finally:
        conn.close()
    return rc


def _video_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument(
        "--fps", type=_positive, help="the video's true frame rate if the container is wrong"
    )
    p.add_argument(
        "--detector", choices=["ssdlite", "nanodet", "ensemble", "hog"], default="ssdlite"
    )
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for the detector")
    p.add_argument(
        "--fill-gaps-s",
        type=_coast,
        help="a person missed for up to this long and then detected again is written on the "
        "line between the two sightings, s (default: the camera's floor.fill_gaps_s, 0.75; "
        "0: off)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (it is off without a TTY)"
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add this part's subcommands to the top-level parser."""
    ca = sub.add_parser(
        "calibrate", help="fit a floor camera's image→floor homography from measured marks"
    )
    ca.add_argument("--points", required=True, type=Path, help="CSV u,v,x,y (pixels, metres)")
    ca.add_argument("--out", required=True, type=Path, help="calibration YAML to write")
    ca.add_argument(
        "--image-size",
        type=_parse_size,
        help="frame size WxH the u,v pixels refer to, e.g. 480x360; recorded so the camera "
        "rescales other resolutions and refuses another view (without it that check is skipped)",
    )
    ca.add_argument("--warn-m", type=_positive, default=0.25, help="warn above this max error")
    ca.set_defaults(func=cmd_calibrate)

    cm = sub.add_parser(
        "calibrate-marks",
        help="write a page to click floor marks on a camera still and type their metres",
    )
    cm.add_argument("--image", required=True, type=Path, help="a still of the camera (PNG/JPEG)")
    cm.add_argument("--out", required=True, type=Path, help="the HTML page to write")
    cm.set_defaults(func=cmd_calibrate_marks)

    cc = sub.add_parser(
        "calibrate-check",
        help="check a floor calibration on a camera still: residuals, people's heights, a PNG",
    )
    cc.add_argument("--image", required=True, type=Path, help="a still of the camera (PNG/JPEG)")
    cc.add_argument(
        "--points", required=True, type=Path, help="CSV u,v,x,y: marks' pixels in the still, metres"
    )
    cc.add_argument(
        "--boxes", type=Path, help="CSV x1,y1,x2,y2: people standing in the still (optional)"
    )
    cc.add_argument("--out", required=True, type=Path, help="annotated PNG to write")
    cc.add_argument(
        "--calibration-out", type=Path, help="write the calibration YAML here if accepted"
    )
    cc.add_argument(
        "--max-error-m",
        type=_positive,
        default=0.5,
        help="reject if the map would misplace a mark by more than this (fit or left out)",
    )
    cc.add_argument("--person-m", type=_positive, default=1.7, help="person height for the sticks")
    cc.add_argument("--grid-m", type=_positive, default=1.0, help="floor grid spacing, metres")
    cc.set_defaults(func=cmd_calibrate_check)

    tr = sub.add_parser("track", help="track people in a video → MOTChallenge rows")
    _video_args(tr)
    tr.add_argument(
        "--calibration", type=Path, help="the camera's YAML: tile the frame as it would"
    )
    tr.set_defaults(func=cmd_track)

    oc = sub.add_parser("occupancy", help="people per floor cell per interval from a video")
    _video_args(oc)
    oc.add_argument("--calibration", required=True, type=Path, help="YAML from `calibrate`")
    oc.add_argument("--cell-m", type=_positive, default=0.5, help="cell size, metres")
    oc.add_argument("--interval-s", type=_positive, default=1.0, help="interval, seconds")
    oc.add_argument(
        "--coast-s",
        type=_coast,
        help="count a person missed for up to this long, s (default: the camera's, 0.75; 0: "
        "only people detected in the frame)",
    )
    oc.set_defaults(func=cmd_occupancy)

    rp = sub.add_parser(
        "report",
        help="floor report: report.html, report.pdf, heatmap.png, zones.csv, insights.json",
    )
    rp.add_argument("--date", required=True, type=_report_day, help="YYYY-MM-DD or yesterday")
    rp.add_argument(
        "--period",
        choices=["day", "week", "month", "all"],
        default="day",
        help="the day, ISO week (Mon-Sun) or month holding --date; all: the three (nightly)",
    )
    rp.add_argument("--days", type=int, default=1, help="average over this many days to --date")
    rp.add_argument(
        "--out", type=Path, help="folder to write (default HOME/reports/DATE, YYYY-Www, YYYY-MM)"
    )
    rp.set_defaults(func=cmd_report, extra=HUB_EXTRA)
