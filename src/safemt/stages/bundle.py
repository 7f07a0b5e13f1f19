"""Bundle stage: a finished profile as one archive others can check, re-judge and compare (`safemt bundle`).

Inputs: the results root of the params after a finished run. Outputs: one archive (`export`, this
module's `run`); a verdict on an archive, every metric recomputed from its judgments (`verify`); a results
root restored from an archive on which the workflow runs judges and metrics only, never inference
(`import_bundle`); a side-by-side table of two or more archives' headline numbers (`compare`).
Helpers: `safemt.report.bundle` (the archive), `safemt.report.compare` (the table).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from safemt.errors import SafemtError


def _cells(params: dict[str, Any]) -> dict[str, Any]:
    """The run's cells as the workflow plans them (workflow/rules/common.smk)."""
    from safemt.config import figures_judge, fill_defaults, metrics_judges
    from safemt.stages import params as safemt_params

    full = fill_defaults(params)
    judges = metrics_judges(full)
    settings = safemt_params.moderation(full)
    return {"targets": list(full["targets"]), "defenses": list(full.get("defenses") or ["none"]),
            "turns": list(full["turns"]), "judges": sorted(full["judges"]), "metrics_judges": judges,
            "figure_judge": figures_judge(full),
            "benign": bool(settings.benign_seeds), "refusal_judge": settings.refusal_judge}


def _files(layout: Any, cells: dict[str, Any]) -> dict[str, Any]:
    """The files the workflow writes for CELLS under LAYOUT, in the order its rules pass them."""
    runs = [(m, d) for m in cells["targets"] for d in cells["defenses"]]

    def judgments(judge: str) -> list[str]:
        return [layout.judgments.format(judge=judge, model=m, defense=d, turns=t) for m, d in runs for t in cells["turns"]]

    benign = cells["benign"]
    return {
        "runs": runs,
        "generations": [layout.generations.format(model=m, defense=d, turns=t) for m, d in runs for t in cells["turns"]],
        "benign_generations": [layout.benign_generations.format(model=m, defense=d) for m, d in runs] if benign else [],
        "benign_judgments": ([layout.benign_judgments.format(judge=cells["refusal_judge"], model=m, defense=d)
                              for m, d in runs] if benign else []),
        "judgments": {j: judgments(j) for j in cells["metrics_judges"]},
    }


def _kept(rel: str, cells: dict[str, Any]) -> bool:
    """Only the profile's own cells: a folder an earlier configuration left behind stays out."""
    parts = rel.split("/")
    if parts[0] == "generations":
        return len(parts) > 2 and parts[1] in cells["targets"] and parts[2] in cells["defenses"]
    if parts[0] == "judgments":
        return (len(parts) > 3 and parts[1] in cells["judges"] and parts[2] in cells["targets"]
                and parts[3] in cells["defenses"])
    if parts[0] == "live":  # live/generations/<model>/..., live/judgments/<judge>/<model>/...
        return parts[1] != "judgments" or (len(parts) > 2 and parts[2] in cells["judges"])
    if parts[0] in ("metrics", "scores", "timings") and len(parts) > 2:
        return parts[1] in cells["metrics_judges"]
    return True


# --- export -------------------------------------------------------------------------------------------

def run(params: dict[str, Any], params_file: str | Path, out: str | Path, with_images: bool = False) -> dict[str, Any]:
    """Write OUT, the bundle of the finished run under the params' results root (`safemt bundle export`)."""
    from safemt import __version__
    from safemt.files import dumps, read_jsonl
    from safemt.hashing import stable_hash
    from safemt.layout import METRICS_FILES, Layout
    from safemt.models.lock import lock_path
    from safemt.report import bundle as b

    layout = Layout.of(params)
    root = Path(layout.root)
    cells = _cells(params)
    files = _files(layout, cells)
    needed = [layout.dataset, *files["generations"], *files["benign_generations"], *files["benign_judgments"],
              *[f for j in cells["metrics_judges"] for f in files["judgments"][j]],
              *[layout.metrics_file(METRICS_FILES["summary"]).format(judge=j) for j in cells["metrics_judges"]]]
    for path in needed:
        if not Path(path).is_file():
            raise SafemtError("not a finished run: this file is missing (run `snakemake` first)", file=path)
    released = params["dataset"]["source"] == "import"
    rels, images = b.result_files(root, released)
    members = [b.Member(f"{b.RESULTS}/{rel}", root / rel) for rel in rels if _kept(rel, cells)]
    if released:
        ids = [dumps({"id": r.get("id"), "turns": r.get("turns"), "method": r.get("method"),
                      "scenario": r.get("scenario"), "sha256": stable_hash(r)}) + "\n"
               for r in read_jsonl(layout.dataset)]
        members.append(b.Member(f"{b.RESULTS}/{b.DIALOGUE_IDS}", data="".join(ids).encode("utf-8")))
    image_members = [b.Member(f"{b.RESULTS}/{rel}", (root / rel).resolve()) for rel in images]
    members.append(b.Member(b.IMAGES, data="".join(f"{b.sha256_of(m)}  {m.name}\n" for m in image_members).encode()))
    if with_images:
        members += image_members
    params_file = Path(params_file)
    members.append(b.Member(f"{b.PARAMS}/{params_file.name}", params_file))
    lock = lock_path(params_file)
    if lock.is_file():
        members.append(b.Member(f"{b.PARAMS}/{lock.name}", lock))
    manifest = {"format": b.FORMAT, "safemt": __version__, "params_file": f"{b.PARAMS}/{params_file.name}",
                "params_sha256": stable_hash(params), "results_dir": layout.root,
                "dataset": {"source": params["dataset"]["source"],
                            "dialogues": f"{b.RESULTS}/{b.DIALOGUE_IDS if released else 'dataset/dialogues.jsonl'}",
                            "images": len(images), "with_images": with_images},
                **{k: cells[k] for k in ("targets", "defenses", "turns", "metrics_judges", "figure_judge")},
                "judges": sorted({rel.split("/")[1] for rel in rels if rel.startswith("judgments/") and _kept(rel, cells)})}
    members.append(b.Member(b.MANIFEST, data=(json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()))
    return {**b.write_archive(out, members), "manifest": manifest}


# --- verify ---------------------------------------------------------------------------------------------

def _open(archive: str | Path, root: Path) -> tuple[dict[str, Any], str, int]:
    """ARCHIVE restored under ROOT (checked member by member, then against its checksums)."""
    from safemt.report import bundle as b

    digests = b.extract(archive, root)
    digest, n = b.check_sums(archive, root, digests)
    return b.read_manifest(root, archive), digest, n


def _bundle_params(root: Path, manifest: dict[str, Any], archive: str | Path) -> dict[str, Any]:
    from safemt.errors import ConfigError
    from safemt.report import bundle as b
    from safemt.stages import params as safemt_params

    try:
        return safemt_params.load(root / b.destination(manifest["params_file"]))
    except ConfigError as exc:
        raise SafemtError(f"{manifest['params_file']}: {exc.reason}", file=str(archive), key=exc.key) from None


def recompute(params: dict[str, Any], root: Path, out_root: Path) -> None:
    """Every metrics file of the run under ROOT recomputed under OUT_ROOT by the stages' own code, as the
    workflow calls it (moderation, metrics, agreement, tables, numbers)."""
    from safemt.layout import MODERATION_FILES, Layout
    from safemt.stages import metrics, moderation, paper

    have, out = Layout(str(root)), Layout(str(out_root))
    cells = _cells(params)
    files = _files(have, cells)
    with contextlib.redirect_stdout(io.StringIO()):
        for judge in cells["metrics_judges"]:
            out_dir = out.metrics_dir.format(judge=judge)
            section = None
            if Path(have.metrics_file(MODERATION_FILES["section"]).format(judge=judge)).is_file():
                moderation.run(params, files["judgments"][judge], files["generations"], out_dir,
                               benign_judgments=files["benign_judgments"],
                               benign_generations=files["benign_generations"])
                section = out.metrics_file(MODERATION_FILES["section"]).format(judge=judge)
            # A calibration section (from gold labels, which a bundle does not hold) is read as shipped.
            calibrated = out.metrics_file("calibration.json").format(judge=judge)
            extra = {"calibration": calibrated} if Path(calibrated).is_file() else {}
            metrics.run(params, files["judgments"][judge], out_dir, scores_dir=out.scores_dir.format(judge=judge),
                        moderation=section, **extra)
        if len(cells["metrics_judges"]) > 1:
            metrics.agreement(params, [f for j in cells["metrics_judges"] for f in files["judgments"][j]],
                              out.judge_agreement)
        if Path(have.tables_dir).is_dir():
            paper.run(params, out.metrics_dir.format(judge=cells["figure_judge"]), out.tables_dir)
        if Path(have.numbers_json).is_file():
            paper.numbers(params, out.metrics_dir.format(judge=cells["figure_judge"]), out.numbers_tex,
                          out.numbers_json)


# What verify compares with a recomputation: every file of these under the results root.
RECOMPUTED = ("metrics/", "scores/", "tables/", "paper/numbers.tex", "paper/numbers.json")


def verify(archive: str | Path) -> dict[str, Any]:
    """Check ARCHIVE: its members, their checksums (a changed record named by file and record), and every
    metric recomputed from its judgments with its params, byte for byte (`safemt bundle verify`)."""
    from safemt.report import bundle as b

    with tempfile.TemporaryDirectory(prefix="safemt-verify-") as tmp:
        root, again = Path(tmp, "bundle"), Path(tmp, "recomputed")
        root.mkdir()
        manifest, digest, n = _open(archive, root)
        params = _bundle_params(root, manifest, archive)
        shipped = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                         and p.relative_to(root).as_posix().startswith(RECOMPUTED))
        # Metrics files this recomputation does not write (a live cell's, a calibration's) are placed as
        # shipped, so that what reads them (tables, numbers) reads the same; they are checked by checksum.
        for rel in shipped:
            (again / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, again / rel)
        placed = {rel: _stamp(again / rel) for rel in shipped}
        try:
            recompute(params, root, again)
        except SafemtError as exc:
            raise SafemtError(f"recomputing the metrics: {exc.line()}", file=str(archive)) from None
        done = sorted(p.relative_to(again).as_posix() for p in again.rglob("*")
                      if p.is_file() and placed.get(p.relative_to(again).as_posix()) != _stamp(p))
        for rel in done:
            if rel not in placed:
                raise SafemtError(f"{b.RESULTS}/{rel}: recomputed but missing from the archive", file=str(archive))
            want, found = (again / rel).read_bytes(), (root / rel).read_bytes()
            if want != found:
                raise SafemtError(f"{b.RESULTS}/{rel}: differs from the metrics recomputed from the archive's "
                                  f"judgments ({b.first_difference(want, found)})", file=str(archive))
    return {"digest": digest, "files": n, "recomputed": len(done), "checksum_only": sorted(set(shipped) - set(done)),
            "judges": manifest["metrics_judges"]}


def _stamp(path: Path) -> tuple[int, int]:
    """A file's inode and mtime: the stages write atomically (a new inode), so a rewrite shows."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


# --- import --------------------------------------------------------------------------------------------

def _restore_dialogues(staging: Path, dataset: str | Path, archive: str | Path) -> int:
    """The released dialogues of an ids-only bundle, from the user's own copy, each checked by its hash."""
    from safemt.files import read_jsonl, write_jsonl
    from safemt.hashing import stable_hash
    from safemt.report import bundle as b

    ids = read_jsonl(staging / b.DIALOGUE_IDS)
    mine = {}
    for rec in read_jsonl(dataset):
        mine[(rec.get("id"), rec.get("turns"), rec.get("method"))] = rec
    out = []
    for entry in ids:
        rec = mine.get((entry["id"], entry["turns"], entry["method"]))
        if rec is None:
            raise SafemtError(f"turns {entry['turns']}: a dialogue of the bundle is not in this file",
                              file=str(dataset), record_id=entry["id"])
        if stable_hash(rec) != entry["sha256"]:
            raise SafemtError(f"turns {entry['turns']}: content differs from the bundle's (sha256 "
                              f"{stable_hash(rec)[:12]}, bundle {entry['sha256'][:12]})", file=str(dataset),
                              record_id=entry["id"])
        out.append(rec)
    write_jsonl(staging / "dataset" / "dialogues.jsonl", out)
    return len(out)


def import_bundle(params: dict[str, Any], archive: str | Path, results_dir: str | Path | None = None,
                  dataset: str | Path | None = None) -> dict[str, Any]:
    """Restore ARCHIVE into a new or empty results root (RESULTS_DIR, else the params' `results_dir`),
    checked in full before the root appears (`safemt bundle import`). DATASET: the user's copy of the
    released dialogues, for a bundle that holds only their ids and hashes."""
    from safemt.layout import Layout
    from safemt.report import bundle as b

    root = Path(results_dir or Layout.of(params).root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SafemtError("results root already holds files: import into a new or empty folder (--results-dir)",
                          file=str(root))
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.import-", dir=root.parent))
    try:
        manifest, digest, n = _open(archive, staging)
        released = manifest["dataset"]["dialogues"].endswith(b.DIALOGUE_IDS)
        if released and dataset is None:
            raise SafemtError("the bundle holds the released dialogues' ids and hashes only: give --dataset "
                              "DIALOGUES.jsonl, your copy (`safemt data import` then `safemt data classify`)",
                              file=str(archive))
        if released:
            _restore_dialogues(staging, dataset, archive)
        # One time for every file, newer than the project's own: Snakemake sees nothing out of date.
        now = time.time_ns()
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                os.utime(path, ns=(now, now))
        if root.exists():
            root.rmdir()
        os.rename(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"root": str(root), "digest": digest, "files": n, "manifest": manifest}


# --- compare --------------------------------------------------------------------------------------------

def compare(archives: list[str | Path], out: str | Path, judge: str | None = None) -> dict[str, Any]:
    """OUT (.html, or .md): the headline numbers of two or more bundles side by side (`safemt bundle compare`):
    SI per model and defense, ASR per model, defense and length, from each bundle's checked metrics."""
    from safemt.files import atomic_write_text, read_rows
    from safemt.layout import METRICS_FILES, Layout
    from safemt.report.compare import BundleNumbers, render

    if len(archives) < 2:
        raise SafemtError("compare needs two or more bundles")
    bundles = []
    with tempfile.TemporaryDirectory(prefix="safemt-compare-") as tmp:
        for i, archive in enumerate(archives):
            root = Path(tmp, str(i))
            root.mkdir()
            manifest, digest, _ = _open(archive, root)
            name = judge or manifest["figure_judge"]
            metrics = Path(Layout(str(root)).metrics_dir.format(judge=name))
            asr = read_rows(metrics / METRICS_FILES["asr"], required=False)
            si = read_rows(metrics / METRICS_FILES["si"], required=False)
            if asr is None or si is None:
                raise SafemtError(f"no metrics of judge {name!r} in this bundle (judges: "
                                  f"{', '.join(manifest['metrics_judges'])})", file=str(archive))
            bundles.append(BundleNumbers(label=Path(archive).name, digest=digest, judge=name, asr=asr, si=si,
                                         manifest=manifest))
    text = render(bundles, markdown=str(out).endswith(".md"))
    atomic_write_text(out, text)
    return {"out": str(out), "bundles": len(bundles)}
