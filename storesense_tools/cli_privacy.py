"""`storesense` subcommands for biometric data: enrol with consent, forget, export, audit
verify, template key rotation and the retention run; `storesense_tools.cli` calls `register`.

Heavy imports happen inside each command, as in `storesense_tools.cli`. Each command that touches a
person's data names the operator (``$USER``) in the audit log.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from storesense.errors import CliError
from storesense_tools.common import HUB_EXTRA, config_path, operator_name

if TYPE_CHECKING:
    import sqlite3

    from storesense.config import StoreConfig


_actor = operator_name


def _conn(home: Path) -> sqlite3.Connection:
    from hub.store import db
    from storesense.paths import hub_db_path

    return db.open_db(hub_db_path(home))


def _optional_config(args: argparse.Namespace, home: Path) -> StoreConfig | None:
    """The store config if one is given or installed; privacy defaults apply without one."""
    from storesense.config import load_config

    path = config_path(args, home)
    return load_config(path) if path.exists() else None


def cmd_enroll(args: argparse.Namespace, home: Path) -> int:
    from edge.entrance.face_pipeline import FacePipeline
    from hub.faces.gallery import Consent, EnrolmentRefused, Gallery
    from hub.faces.template_crypto import TemplateKeyError
    from storesense.config import RecognitionConfig
    from storesense.paths import template_key_path
    from storesense.privacy_config import PrivacyConfig
    from storesense_tools.enrolment import enrol_customer

    cfg = _optional_config(args, home)
    privacy = cfg.privacy if cfg else PrivacyConfig()
    consent = Consent(
        reference=args.consent or "",
        staff_id=args.staff or "",
        notice_version=args.notice_version or privacy.notice_version,
        method=args.consent_method,
        photo_shown=args.photo_consent,
        hint=args.hint,
        chain=args.chain_consent,
    )
    try:
        gallery = Gallery.open(_conn(home), template_key_path(home))
        done = enrol_customer(
            gallery,
            FacePipeline.for_photos(
                cfg.quality if cfg else None,
                cfg.recognition.model if cfg else RecognitionConfig().model,
            ),
            customer_id=args.customer,
            name=args.name,
            consent=consent,
            images=[Path(p) for p in args.images],
            actor=_actor(),
            keep_photo=privacy.keep_enrolment_photo,
            max_templates=privacy.max_templates_per_customer,
        )
    except (EnrolmentRefused, TemplateKeyError) as exc:
        raise CliError(f"enrolment refused: {exc}") from None
    for v in done.verdicts:
        print(f"{'ok  ' if v.accepted else 'skip'} {v.path}: {v.reason}")
    kept = " and one encrypted photo" if privacy.keep_enrolment_photo else ""
    if args.photo_consent:
        kept += " (shown to staff at arrival)"
    elif args.hint:
        kept += f"; staff see the hint {args.hint.strip()!r}"
    r = done.result
    if r.reenrolment:
        print(
            f"re-enrolled {args.customer}: {r.added} new template(s) kept, now with "
            f"{r.total} template(s) (at most {privacy.max_templates_per_customer}){kept}"
        )
        earlier = f"; earlier consent {r.earlier_consent} kept" if r.earlier_consent else ""
        print(f"consent {consent.reference.strip()} recorded as the one in force{earlier}")
    else:
        print(f"enrolled {args.customer} with {r.total} template(s){kept}")
    if args.chain_consent:
        sends = cfg is not None and cfg.chain.sends("customers")
        print("chain consent recorded: " + (
            "the template goes sealed to the chain's other stores at the hub's next chain tick"
            if sends else "nothing is sent until the store config's chain.send has customers"
        ))  # fmt: skip
    if r.dropped:
        print(
            f"dropped {len(r.dropped)} lowest-quality template(s) to stay within "
            f"privacy.max_templates_per_customer ({privacy.max_templates_per_customer}): "
            + ", ".join(f"quality {d.quality:.2f}" for d in r.dropped)
            + " (audited)"
        )
    return 0


def cmd_forget(args: argparse.Namespace, home: Path) -> int:
    from hub.privacy.erasure import erase_customer

    if not args.reason.strip():
        raise CliError("--reason must say why (it is written to the audit log)")
    report = erase_customer(_conn(home), args.customer, actor=_actor(), reason=args.reason)
    if not report.anything:
        raise CliError(f"no customer {args.customer!r} in the gallery or the purchase data")
    print(
        f"erased {args.customer}: "
        + ("profile and all face templates deleted; " if report.profile else "no profile; ")
        + f"{report.receipts_unlinked} receipts unlinked from them; "
        + f"{report.audit_rows_redacted} audit rows redacted (one tombstone row kept)"
    )
    return 0


def cmd_withdraw_photo(args: argparse.Namespace, home: Path) -> int:
    from hub.privacy.consent import withdraw_photo_consent

    if not args.reason.strip():
        raise CliError("--reason must say why (it is written to the audit log)")
    if not withdraw_photo_consent(_conn(home), args.customer, actor=_actor(), reason=args.reason):
        raise CliError(f"customer {args.customer!r} has no photo consent on file")
    print(f"{args.customer}: photo no longer shown to staff at arrival (face profile kept)")
    return 0


def cmd_export(args: argparse.Namespace, home: Path) -> int:
    from hub.privacy.export import export_customer

    if not args.reason.strip():
        raise CliError("--reason must say why (it is written to the audit log)")
    data = export_customer(_conn(home), args.customer, actor=_actor(), reason=args.reason)
    if data is None:
        raise CliError(f"the hub holds no data about customer {args.customer!r}")
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if args.out:
        out = Path(args.out)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        print(f"wrote {out}: {len(data['purchases'])} purchase lines, {len(data['visits'])} "
              f"visits, {len(data['audit'])} audit entries")  # fmt: skip
    else:
        print(text)
    return 0


def cmd_audit_verify(args: argparse.Namespace, home: Path) -> int:
    from hub.privacy import audit

    report = audit.verify(_conn(home))
    if not report.ok:
        raise CliError(
            f"audit chain BROKEN at row {report.broken_at}: {report.reason} "
            f"({report.rows} rows before it verify)"
        )
    print(f"audit chain ok: {report.rows} rows; head row {report.head_id} mac {report.head_mac}")
    if report.legacy_redactions:
        print(
            f"{report.legacy_redactions} redaction(s) date from before sealed redactions "
            "(schema 10): they were sealed as found at the upgrade, not by an erasure "
            "(docs/privacy.md, Audit)"
        )
    return 0


def cmd_keys_rotate(args: argparse.Namespace, home: Path) -> int:
    from hub.faces.template_crypto import TemplateKeyError
    from hub.faces.template_keys import rotate
    from storesense.paths import template_key_path

    try:
        n = rotate(_conn(home), template_key_path(home), actor=_actor())
    except TemplateKeyError as exc:
        raise CliError(f"key rotation refused: {exc}") from None
    print(f"template key rotated: {n} encrypted rows re-encrypted; the running hub reloads it")
    return 0


def cmd_retention_run(args: argparse.Namespace, home: Path) -> int:
    from hub.privacy import audit
    from hub.privacy.retention import run_retention
    from storesense.privacy_config import PrivacyConfig

    cfg = _optional_config(args, home)
    policy = (cfg.privacy if cfg else PrivacyConfig()).retention
    conn = _conn(home)
    report = run_retention(conn, policy, dry_run=args.dry_run, actor=_actor())
    chain = audit.verify(conn)
    out = {
        **report.as_dict(),
        "dry_run": args.dry_run,
        "policy_days": policy.model_dump(),
        "audit_chain": {"ok": chain.ok, "rows": chain.rows, "head_id": chain.head_id,
                        "head_mac": chain.head_mac, "broken_at": chain.broken_at},
    }  # fmt: skip
    if not args.dry_run:
        folder = Path(args.report_dir) if args.report_dir else home / "reports" / "retention"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(report.at).strftime("%Y-%m-%dT%H%M%S")
        (folder / f"{stamp}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    if not chain.ok:
        raise CliError(f"audit chain broken at row {chain.broken_at}: {chain.reason}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the privacy subcommands to the top-level parser."""
    en = sub.add_parser("enroll", help="enrol a consenting customer from photos")
    en.add_argument("--customer", required=True)
    en.add_argument("--name", required=True)
    en.add_argument("--consent", help="reference of the signed/recorded consent (required)")
    en.add_argument("--staff", help="staff member who took the consent (required)")
    en.add_argument("--consent-method", choices=["written", "digital"], default="written")
    en.add_argument("--notice-version", help="privacy notice shown (default: privacy config)")
    en.add_argument(
        "--photo-consent",
        action="store_true",
        help="the customer also agreed to 'photo shown to staff at arrival' (a separate "
        "consent item; needs privacy.keep_enrolment_photo)",
    )
    en.add_argument(
        "--chain-consent",
        action="store_true",
        help="the customer also agreed to be known in the chain's other stores (a separate "
        "consent item: their template goes, sealed for each store's key, to the other stores; "
        "needs chain.send: [customers]; docs/chain.md)",
    )
    en.add_argument(
        "--hint", help="the customer's own words for staff, e.g. 'usually wears glasses' (80 max)"
    )
    en.add_argument("images", nargs="+")
    en.set_defaults(func=cmd_enroll, extra=HUB_EXTRA)

    def forget_args(p: argparse.ArgumentParser, customer_flag: bool) -> None:
        if customer_flag:
            p.add_argument("--customer", required=True)
        else:
            p.add_argument("customer", metavar="ID")
        p.add_argument("--reason", default="erasure request", help="written to the audit log")
        p.set_defaults(func=cmd_forget, extra=HUB_EXTRA)

    forget_args(sub.add_parser("erase", help="erase a customer (same as `customer forget`)"), True)
    cu = sub.add_parser("customer", help="a customer's rights: erasure, export").add_subparsers(
        dest="action", required=True
    )
    forget_args(cu.add_parser("forget", help="erase a customer's face data; unlink receipts"),
                False)  # fmt: skip
    wp = cu.add_parser("withdraw-photo", help="stop showing a customer's photo to staff at arrival")
    wp.add_argument("customer", metavar="ID")
    wp.add_argument("--reason", default="consent withdrawn", help="written to the audit log")
    wp.set_defaults(func=cmd_withdraw_photo, extra=HUB_EXTRA)
    ex = cu.add_parser("export", help="everything the hub holds about a customer, as JSON")
    ex.add_argument("customer", metavar="ID")
    ex.add_argument("--reason", default="access request", help="written to the audit log")
    ex.add_argument("--out", help="file to write (0600); default: print")
    ex.set_defaults(func=cmd_export, extra=HUB_EXTRA)

    au = sub.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    au.add_parser("verify", help="check the keyed hash chain; say where it breaks").set_defaults(
        func=cmd_audit_verify, extra=HUB_EXTRA
    )
    ke = sub.add_parser("keys", help="encryption keys").add_subparsers(dest="action", required=True)
    ke.add_parser("rotate", help="new template key; re-encrypt every template").set_defaults(
        func=cmd_keys_rotate, extra=HUB_EXTRA
    )
    re_ = sub.add_parser("retention", help="the retention schedule").add_subparsers(
        dest="action", required=True
    )
    rr = re_.add_parser("run", help="delete what is past its retention time (nightly job)")
    rr.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    rr.add_argument("--report-dir", help="default HOME/reports/retention")
    rr.set_defaults(func=cmd_retention_run, extra=HUB_EXTRA)
