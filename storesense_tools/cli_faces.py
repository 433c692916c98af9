"""``storesense faces review``: the store's own operating point, and a manager's change of it.

Reads the "not this person" reports and the distances of confirmed matches through the alerts
room (``hub.alerts.review``), shows them as a text histogram with the counts, and recommends a
threshold with its reasons (``storesense_tools.threshold_review``: tighter or keep, never
looser). ``--apply`` writes a new threshold (the recommended one, ``--threshold T``, or
``--reset`` to the config's) through the face room (``hub.faces.threshold.apply``): only for an
active manager account whose password is given, only after the value is typed back (or passed
as ``--confirm T``), audited. The running hub rebuilds its recognizer with it within one tick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from storesense.errors import CliError
from storesense_tools.common import HUB_EXTRA, read_password, recognition_config

DAY_S = 86400.0


def _configured(args: argparse.Namespace, home: Path) -> tuple[float, str]:
    """The store config's threshold and the model it is a distance of."""
    rc = recognition_config(args, home)
    return rc.threshold, rc.model


def _confirmed(args: argparse.Namespace, value: float) -> bool:
    typed = args.confirm
    if typed is None:
        if not sys.stdin.isatty():
            raise CliError(f"no terminal to confirm: pass --confirm {value:.3f}")
        typed = input(f"type {value:.3f} to apply it: ")
    try:
        return abs(float(typed) - value) < 5e-4
    except ValueError:
        return False


def cmd_faces_review(args: argparse.Namespace, home: Path) -> int:
    from hub.alerts.review import match_evidence
    from hub.faces import profiles, threshold
    from hub.staff import accounts
    from hub.store import db
    from storesense.paths import hub_db_path
    from storesense_tools.threshold_review import histogram, recommend

    if not hub_db_path(home).exists():
        raise CliError(f"no hub database in {home}: run this on the hub (or pass --home)")
    conn = db.open_db(hub_db_path(home))
    configured, model = _configured(args, home)
    setting = threshold.current(conn, model)
    current = threshold.effective_threshold(conn, configured, model)
    since = time.time() - args.days * DAY_S
    evidence = match_evidence(conn, since)
    rec = recommend(evidence, current, target=args.target)
    bad_ids = profiles.ids_breaking_rule(conn)
    if args.json:
        print(json.dumps({
            "threshold_in_force": current, "configured": configured, "days": args.days,
            "unanswered": evidence.unanswered, "no_distance": evidence.no_distance,
            "rejected_customers": evidence.rejected_customers,
            "recommendation": rec.as_dict(), "ids_breaking_rule": bad_ids,
        }, indent=2))  # fmt: skip
    else:
        origin = (
            f"applied {time.strftime('%Y-%m-%d %H:%M', time.localtime(setting.applied_at))} by "
            f"{setting.staff_id}"
            if setting is not None and setting.threshold is not None
            else "the store config's recognition.threshold"
        )
        print(f"threshold in force: {current:.3f} ({origin}); config says {configured:.3f}")
        print(
            f"last {args.days:g} days: {rec.confirmed} confirmed matches, {rec.reports} 'not this "
            f"person' reports ({evidence.rejected_customers} customers), {evidence.unanswered} "
            f"unanswered alerts, {evidence.no_distance} without a distance"
        )
        print(histogram(evidence, current, rec.threshold))
        verdict = "keep" if rec.action == "keep" else f"tighten to {rec.threshold:.3f}"
        print(f"recommendation: {verdict}")
        for reason in rec.reasons:
            print(f"  - {reason}")
        if bad_ids:
            print(
                f"{len(bad_ids)} enrolled id(s) break the customer-id rule and are not matched: "
                + ", ".join(map(repr, bad_ids))
                + " (erase and re-enrol under a valid id)"
            )
    if not args.apply:
        if args.threshold is not None or args.reset:
            raise CliError("--threshold/--reset change nothing without --apply")
        return 0
    if args.reset:
        new: float | None = None
    elif args.threshold is not None:
        new = args.threshold
    elif rec.action == "tighten":
        new = rec.threshold
    else:
        raise CliError("nothing to apply: the recommendation is to keep (give --threshold T)")
    value = configured if new is None else new
    if not 0 < value < 2:
        raise CliError(f"threshold {value} out of range: distances lie between 0 and 2")
    if value == current:
        raise CliError(f"the threshold in force is already {current:.3f}")
    if not args.manager:
        raise CliError("--apply needs --manager ID: a manager account confirms the change")
    prompt = f"password for manager {args.manager}: "
    password = read_password(args, prompt, what="the manager's password")
    staff = accounts.authenticate(conn, args.manager, password)
    if staff is None or staff.role != "manager":
        raise CliError(f"{args.manager!r} is not an active manager account with that password")
    if value > current:
        print(
            f"WARNING: {value:.3f} is LOOSER than {current:.3f}: more strangers will be taken "
            "for customers; nothing in this store's alerts supports that"
        )
    if not _confirmed(args, value):
        raise CliError("not confirmed: nothing changed")
    reason = args.reason or (
        "; ".join(rec.reasons[:-1]) if new == rec.threshold else "manager's decision"
    )
    evidence_doc = {
        "days": args.days, "target": args.target, "recommendation": rec.as_dict(),
        "unanswered": evidence.unanswered, "rejected_customers": evidence.rejected_customers,
    }  # fmt: skip
    after = threshold.apply(
        conn, threshold=new, configured=configured, staff_id=staff.staff_id, reason=reason,
        evidence=evidence_doc, actor=os.environ.get("USER", "cli"), model=model,
    )  # fmt: skip
    print(
        f"threshold {current:.3f} -> {after:.3f}, confirmed by {staff.staff_id} (audited); "
        "the running hub uses it from its next tick"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``faces review`` to the top-level parser."""
    fa = sub.add_parser("faces", help="the store's face matching").add_subparsers(
        dest="action", required=True
    )
    rv = fa.add_parser(
        "review",
        help="where the store's match threshold stands (false-match reports, confirmed "
        "distances) and what to change; --apply with a manager",
    )
    rv.add_argument("--days", type=float, default=30.0, help="evidence window (default 30)")
    rv.add_argument(
        "--target", type=float, default=0.02,
        help="acceptable share of 'not this person' among answered alerts (default 0.02)",
    )  # fmt: skip
    rv.add_argument("--json", action="store_true", help="print the review as JSON")
    rv.add_argument("--apply", action="store_true", help="apply the recommended threshold")
    group = rv.add_mutually_exclusive_group()
    group.add_argument("--threshold", type=float, help="with --apply: apply this value instead")
    group.add_argument("--reset", action="store_true", help="with --apply: the config's value")
    rv.add_argument("--manager", help="with --apply: the manager account confirming it")
    rv.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    rv.add_argument("--confirm", help="with --apply: the value being applied, typed back")
    rv.add_argument("--reason", help="with --apply: why (audited; default: the review's reasons)")
    rv.set_defaults(func=cmd_faces_review, extra=HUB_EXTRA)
