"""The data-set protocols: who is enrolled, who is probed, who is a stranger.

Each rule is fixed and written into the report (``Protocol.rule``), so a reader can tell
exactly which images every figure counts.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from storesense_tools.face_eval import lfw_split


@dataclass(frozen=True)
class Protocol:
    """Which images are enrolled, which are probes; strangers are probe people not in the gallery.

    ``embed_paths`` is the embedding order (it is the cache key), a superset of the enrol and
    probe images, so several protocols over one data folder share one embedding pass.
    """

    key: str
    title: str
    enrol: tuple[tuple[str, Path], ...]
    probes: tuple[tuple[str, Path], ...]
    embed_paths: tuple[Path, ...]
    rule: str  # the protocol in words, for the report
    quotable: bool = True
    caveat: str = ""
    family: str = ""  # protocols of one family differ only in the number of enrolment images
    n_enrol: int = 1


def read_manifest(folder: Path) -> list[tuple[str, Path]]:
    """``(identity, path)`` of every labelled image in ``folder/manifest.csv``, file order."""
    with (folder / "manifest.csv").open(newline="") as fh:
        return [(r["identity"], folder / r["path"]) for r in csv.DictReader(fh) if r["identity"]]


def split_by_identity(
    pairs: Sequence[tuple[str, Path]],
    enrolled: Iterable[str],
    n_enrol: int = 1,
    min_images: int = 1,
    first_probe: int | None = None,
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """Enrol the first ``n_enrol`` images of each ``enrolled`` person, probe the rest.

    Everybody else is a stranger and all their images are probes. ``first_probe`` (0-based)
    skips images so that protocols with different ``n_enrol`` probe exactly the same images;
    people with fewer than ``min_images`` images are left out altogether.
    """
    by_id: dict[str, list[Path]] = defaultdict(list)
    for ident, path in pairs:
        by_id[ident].append(path)
    enrolled = set(enrolled)
    start = n_enrol if first_probe is None else first_probe
    enrol, probes = [], []
    for ident, paths in by_id.items():
        if len(paths) < min_images and ident in enrolled:
            continue
        if ident in enrolled:
            enrol += [(ident, p) for p in paths[:n_enrol]]
            probes += [(ident, p) for p in paths[start:]]
        else:
            probes += [(ident, p) for p in paths]
    return enrol, probes


def orl_protocol(
    orl: Path,
    enrolled: Sequence[int],
    strangers: Sequence[int],
    enrol_images: Sequence[int],
    probe_images: Sequence[int],
    *,
    key: str = "orl",
    title: str = "ORL",
    embed_all: bool = False,
    family: str = "",
) -> Protocol:
    """ORL subjects ``s<N>``: ``enrol_images`` of ``enrolled`` are enrolled, ``probe_images``
    of them are genuine probes, all 10 images of ``strangers`` are stranger probes.

    ``embed_all`` embeds all 400 images (one cache shared by every ORL protocol of the report);
    a test on a few subjects leaves it off and embeds only what it uses.
    """

    def path(s: int, i: int) -> Path:
        return orl / f"s{s}" / f"{i}.pgm"

    enrol = tuple((f"orl_s{s}", path(s, i)) for s in enrolled for i in enrol_images)
    probes = tuple((f"orl_s{s}", path(s, i)) for s in enrolled for i in probe_images) + tuple(
        (f"orl_s{s}", path(s, i)) for s in strangers for i in range(1, 11)
    )
    if embed_all:
        embed = tuple(p for _, p in read_manifest(orl))
    else:
        embed = tuple(dict.fromkeys(p for _, p in enrol + probes))
    return Protocol(
        key=key,
        title=title,
        enrol=enrol,
        probes=probes,
        embed_paths=embed,
        rule=(
            f"`s{enrolled[0]}`–`s{enrolled[-1]}` enrolled with image(s) "
            f"{_ranges(enrol_images)}, their images {_ranges(probe_images)} are genuine probes; "
            f"`s{strangers[0]}`–`s{strangers[-1]}` are never enrolled, all 10 images each are "
            "stranger probes (the data README's split)."
        ),
        quotable=True,
        caveat="40 lab volunteers, 1992–94, frontal, dark background: too easy to rank models.",
        family=family,
        n_enrol=len(enrol_images),
    )


def _ranges(xs: Sequence[int]) -> str:
    xs = list(xs)
    if len(xs) > 2 and xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}–{xs[-1]}"
    return ", ".join(map(str, xs))


def lfw_protocols(lfw: Path) -> list[Protocol]:
    """LFW folds 1-5: the calibration protocol (``face_eval.lfw_split``) and an enrolment variant.

    Main: the first image of each person with >= 2 images is enrolled, the rest are genuine
    probes; single-image people are strangers. Variant (people with >= 4 images only): 1 or 3
    enrolment images, genuine probes are images 4+ in both, so the two rows differ only in
    the number of enrolment photos.
    """
    enrol, probes, all_paths = lfw_split(lfw)
    embed = tuple(all_paths)
    caveat = (
        "press photos of public figures, 2002–03; LFW's own disclaimer warns against using it to "
        "conclude commercial suitability"
    )
    main = Protocol(
        key="lfw",
        title="LFW folds 1–5",
        enrol=tuple(enrol),
        probes=tuple(probes),
        embed_paths=embed,
        rule=(
            "the first image (by file name) of each person with ≥ 2 images is enrolled; their "
            "other images are genuine probes; every single-image person is a stranger "
            "(docs/calibration.md's protocol, `storesense_tools.face_eval.lfw_split`)."
        ),
        caveat=caveat,
    )
    pairs = [(p.parent.name, p) for p in all_paths]
    counts = Counter(i for i, _ in pairs)
    many = sorted(i for i, c in counts.items() if c >= 4)
    singles = {i for i, c in counts.items() if c == 1}
    out = [main]
    for k in (1, 3):
        e, p = split_by_identity(
            [(i, q) for i, q in pairs if i in singles or counts[i] >= 4], many, k, 4, first_probe=3
        )
        out.append(
            Protocol(
                key=f"lfw-enrol{k}",
                title=f"LFW, people with ≥ 4 images, {k} enrolment image{'s' * (k > 1)}",
                enrol=tuple(e),
                probes=tuple(p),
                embed_paths=embed,
                rule=(
                    f"the first {k} image(s) of each person with ≥ 4 images enrolled; images "
                    "4+ are genuine probes; single-image people are strangers; people with 2–3 "
                    "images are left out."
                ),
                caveat=caveat,
                family="LFW",
                n_enrol=k,
            )
        )
    return out


def held_out_split(pairs: Sequence[tuple[str, Path]]) -> tuple[list[str], list[str]]:
    """Sorted identities: the last third (rounded) are never enrolled, the rest enrolled.

    A fixed, written-down rule instead of a random draw: the small sets have 8-13 people, and
    the report must say exactly who is a stranger.
    """
    ids = sorted(dict.fromkeys(i for i, _ in pairs))
    n_strangers = max(1, round(len(ids) / 3))
    return ids[:-n_strangers], ids[-n_strangers:]


def small_set_protocol(
    folder: Path, key: str, title: str, extra_strangers: Sequence[Path] = ()
) -> Protocol:
    """deepface / face-api.js: first image (manifest order) of two thirds of the people enrolled.

    ``extra_strangers`` are unlabelled single-person images known not to show any labelled
    person; they become stranger probes with an identity of their own (their file stem).
    """
    pairs = read_manifest(folder)
    enrolled, strangers = held_out_split(pairs)
    enrol, probes = split_by_identity(pairs, enrolled)
    probes += [(f"unlabelled:{p.stem}", p) for p in extra_strangers]
    rule = (
        f"enrolled: {', '.join(f'`{i}`' for i in enrolled)} with their first image "
        f"(manifest order), their other images are genuine probes; never enrolled: "
        f"{', '.join(f'`{i}`' for i in strangers)} (the last third of the sorted identities), "
        "all their images are stranger probes"
    )
    return Protocol(
        key=key,
        title=title,
        enrol=tuple(enrol),
        probes=tuple(probes),
        embed_paths=tuple(dict.fromkeys([p for _, p in pairs] + list(extra_strangers))),
        rule=rule,
        quotable=False,
        caveat=(
            "celebrities who may be in the dlib model's training data and a handful of people: "
            "the data README says not to quote accuracy from this set; shown as a smoke check"
        ),
    )


def standard_protocols(data: Path) -> list[Protocol]:
    """Every protocol of the report, for the data sets present under ``data``."""
    out: list[Protocol] = []
    if (data / "orl").is_dir():
        orl = data / "orl"
        s_enrol, s_strange = list(range(1, 31)), list(range(31, 41))
        out.append(orl_protocol(orl, s_enrol, s_strange, [1, 2], range(3, 11), embed_all=True))
        for k in (1, 2, 3):
            out.append(
                orl_protocol(
                    orl,
                    s_enrol,
                    s_strange,
                    list(range(1, k + 1)),
                    range(4, 11),
                    key=f"orl-enrol{k}",
                    title=f"ORL, {k} enrolment image{'s' * (k > 1)}",
                    embed_all=True,
                    family="ORL",
                )
            )
    if (data / "lfw-dev").is_dir():
        out += lfw_protocols(data / "lfw-dev")
    if (data / "deepface").is_dir():
        p = small_set_protocol(data / "deepface", "deepface", "deepface")
        out.append(
            _with_rule(
                p,
                p.rule + "; the two group photos (`couple.jpg`, `selfie-many-people.jpg`) are left "
                "out: nobody knows who is in them. Note `img11_reflection.jpg` is a mirrored "
                "`img11.jpg` (both genuine probes of `deepface_id01`).",
            )
        )
    if (data / "faceapi-bbt").is_dir():
        bbt = data / "faceapi-bbt"
        expressions = sorted(p for p in bbt.glob("*.jpg") if not p.name.startswith("bbt"))
        p = small_set_protocol(bbt, "bbt", "face-api.js BBT crops", expressions)
        out.append(
            _with_rule(
                p,
                p.rule + f"; plus the {len(expressions)} unlabelled expression samples "
                f"({', '.join(f'`{q.name}`' for q in expressions)}: stock portraits of "
                f"{len(expressions)} other people, checked by eye, none of them a cast member) "
                "as strangers. The group "
                "stills `bbt1–5.jpg` are left out: they show the cast.",
            )
        )
    return out


def _with_rule(p: Protocol, rule: str) -> Protocol:
    return replace(p, rule=rule)


def lfw_folds(lfw: Path) -> dict[str, int]:
    """Identity -> View 2 fold (1-5) from ``people-folds1-5.txt`` (count, then name<TAB>n)."""
    path = lfw / "people-folds1-5.txt"
    if not path.exists():
        return {}
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    out: dict[str, int] = {}
    pos, fold = 1, 0
    while pos < len(lines):
        fold += 1
        count = int(lines[pos])
        for ln in lines[pos + 1 : pos + 1 + count]:
            out[ln.split("\t")[0]] = fold
        pos += 1 + count
    return out
