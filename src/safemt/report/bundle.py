"""Run bundles: one deterministic archive of a finished profile, read back safely (`safemt bundle`).

An archive (gzip-compressed tar) holds, under fixed names:
- `bundle.json`: what the bundle is (format, safemt version, params hash, the run's cells); no time;
- `SHA256SUMS`: `sha256  name` of every other member, sorted (its own sha256 is the bundle's digest);
- `RECORDS.jsonl`: for every JSON Lines member, a short hash of each line, so that a changed record is
  named by file and record, not only by file;
- `IMAGES.sha256`: `sha256  name` of every dataset image (the images themselves only on request);
- `params/<stem>.yaml` (and `<stem>.lock.yaml`): the params file the run used and its revision lock;
- `results/...`: result files at their paths under the results root (`INCLUDED` says which).

Same results give the same bytes: members sorted, headers with fixed mtime, mode, owner; gzip mtime 0.
Reading refuses, before writing anything, a member that is not a regular file (links, devices,
folders), an absolute name, a `..` step, a name outside the fixed ones, and a duplicate.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from safemt.errors import SafemtError
from safemt.files import atomic_open
from safemt.hashing import sha256_stream

FORMAT = 1
MANIFEST = "bundle.json"
SUMS = "SHA256SUMS"
RECORDS = "RECORDS.jsonl"
IMAGES = "IMAGES.sha256"
PARAMS = "params"
RESULTS = "results"
TOP_FILES = (MANIFEST, SUMS, RECORDS, IMAGES)
# Where a bundle's own files go in a results root it is imported into (the marker the workflow reads).
IMPORT_DIR = "bundle"
# The released dialogues are not redistributed: a bundle of an imported dataset holds this instead,
# one {id, turns, method, scenario, sha256} a line (sha256: safemt.hashing.stable_hash of the record).
DIALOGUE_IDS = "dataset/dialogues.ids.jsonl"

# What of a results root a bundle holds (paths relative to it): the data, answers, verdicts and
# numbers, the measured times and the provenance. Not: logs (a command's stderr may hold anything its
# environment held), the report and figures (redrawn from the metrics), journals (resume state and
# verdict caches) except the generations' measured times, shard files (merged into the generations).
INCLUDED = ("dataset/", "generations/", "judgments/", "live/generations/", "live/judgments/", "metrics/", "scores/",
            "tables/", "timings/", "paper/numbers.tex", "paper/numbers.json", "provenance.json")
# Folders of an imported results root whose files only the bundle provides: the workflow gives them no
# job (workflow/rules/bundle.smk), so neither the dataset nor inference runs there.
BUNDLED_FOLDERS = {"bundle_dataset": "dataset", "bundle_generations": "generations",
                   "bundle_live_generations": "live/generations"}
IMAGE_DIRS = ("dataset/images/", "dataset/benign/images/")
HEADER_MTIME = 0
CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One archive member: its name and where its bytes come from (a file, or bytes made here)."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def open(self) -> Any:
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")  # noqa: SIM115

    def size(self) -> int:
        return len(self.data) if self.data is not None else os.stat(self.path).st_size


def sha256_of(member: Member) -> str:
    with member.open() as fh:
        return sha256_stream(fh, CHUNK)


def line_hashes(data: bytes) -> list[str]:
    """A short hash of each line (the record a change is in; the file's sha256 is in SHA256SUMS)."""
    return [hashlib.sha256(line).hexdigest()[:16] for line in data.splitlines()]


# --- which files of a results root ------------------------------------------------------------------

def _included(rel: str) -> bool:
    parts = rel.split("/")
    if not any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in INCLUDED):
        return False
    generations = parts[0] == "generations" or parts[:2] == ["live", "generations"]
    if ".journal" in parts:  # only the generations' measured times (the moderation stage reads them)
        return generations and rel.endswith(".timings.jsonl")
    return not (generations and "shards" in parts)


def result_files(root: Path, released: bool) -> tuple[list[str], list[str]]:
    """(files, images) of ROOT a bundle takes, as sorted paths relative to ROOT. RELEASED: the
    dataset's own dialogue files are left out (the ids file stands for them)."""
    files, images = [], []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            rel = Path(folder, name).relative_to(root).as_posix()
            if not Path(folder, name).is_file():
                continue
            if rel.startswith(IMAGE_DIRS):
                images.append(rel)
            elif _included(rel) and not (released and rel.startswith("dataset/") and rel.count("/") == 1
                                         and rel.endswith(".jsonl")):
                files.append(rel)
    return sorted(files), sorted(images)


# --- writing ------------------------------------------------------------------------------------------

def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, HEADER_MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_archive(out: str | Path, members: Iterable[Member]) -> dict[str, Any]:
    """Write OUT: SHA256SUMS and RECORDS.jsonl computed over MEMBERS, everything sorted by name, fixed
    headers, gzip mtime 0; atomically (temp file + rename). Returns the digest, size and member count."""
    members = sorted(members, key=lambda m: m.name)
    sums, records = [], []
    for m in members:
        sums.append(f"{sha256_of(m)}  {m.name}\n")
        if m.name.endswith(".jsonl"):
            with m.open() as fh:
                records.append(json.dumps({"file": m.name, "lines": line_hashes(fh.read())}) + "\n")
    records_member = Member(RECORDS, data="".join(records).encode("utf-8"))
    sums.append(f"{sha256_of(records_member)}  {RECORDS}\n")
    sums_member = Member(SUMS, data="".join(sorted(sums, key=lambda s: s.split("  ", 1)[1])).encode("utf-8"))
    members = sorted([*members, records_member, sums_member], key=lambda m: m.name)
    out = Path(out)
    with atomic_open(out) as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for m in members:
                    with m.open() as fh:
                        tar.addfile(_tarinfo(m.name, m.size()), fh)
    return {"digest": hashlib.sha256(sums_member.data).hexdigest(), "size": out.stat().st_size,
            "members": len(members)}


# --- reading --------------------------------------------------------------------------------------------

def _refuse(archive: str | Path, name: str, reason: str) -> SafemtError:
    return SafemtError(f"member {name!r}: {reason}; refused, nothing was written", file=str(archive))


def destination(name: str) -> str:
    """Where member NAME goes, relative to the results root it is restored into."""
    return name[len(RESULTS) + 1:] if name.startswith(f"{RESULTS}/") else f"{IMPORT_DIR}/{name}"


def check_members(tar: tarfile.TarFile, archive: str | Path) -> list[tarfile.TarInfo]:
    """Every member, checked before anything is written: regular files only, under a fixed name."""
    seen: set[str] = set()
    members = []
    for m in tar.getmembers():
        name = m.name
        kind = ("a symbolic link" if m.issym() else "a hard link" if m.islnk() else "a FIFO" if m.isfifo()
                else "a device file" if m.isdev() else "a folder" if m.isdir() else None if m.isfile()
                else "not a regular file")
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise _refuse(archive, name, "absolute path")
        if ".." in parts or ".." in name.replace("\\", "/").split("/"):
            raise _refuse(archive, name, "'..' in its path")
        if kind is not None:
            raise _refuse(archive, name, f"{kind} (a bundle holds regular files only)")
        if "\\" in name or "\0" in name or PurePosixPath(name).as_posix() != name:
            raise _refuse(archive, name, "not a plain relative path")
        if not (name in TOP_FILES or (parts[0] in (PARAMS, RESULTS) and len(parts) > 1)):
            raise _refuse(archive, name, f"not a bundle file ({', '.join(TOP_FILES)}, {PARAMS}/, {RESULTS}/)")
        if parts[0] == PARAMS and len(parts) != 2:
            raise _refuse(archive, name, f"{PARAMS}/ holds files only")
        if parts[0] == RESULTS and parts[1] == IMPORT_DIR:
            raise _refuse(archive, name, f"{RESULTS}/{IMPORT_DIR}/ is where an import puts the bundle's own files")
        if name in seen:
            raise _refuse(archive, name, "appears twice")
        seen.add(name)
        members.append(m)
    if MANIFEST not in seen or SUMS not in seen:
        raise SafemtError(f"not a safemt bundle (no {MANIFEST} or {SUMS})", file=str(archive))
    return members


def open_archive(archive: str | Path) -> tarfile.TarFile:
    path = Path(archive)
    if not path.is_file():
        raise SafemtError("bundle not found", file=str(archive))
    try:
        tar = tarfile.open(path, mode="r:gz")
        tar.getmembers()
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise SafemtError(f"not a readable bundle (gzip-compressed tar): {exc}", file=str(archive)) from None
    return tar


def extract(archive: str | Path, root: Path) -> dict[str, str]:
    """Write every member of ARCHIVE under ROOT (results/X to X, the rest under bundle/), after checking
    every member and every destination; returns each member's sha256. ROOT must be a new, empty folder."""
    with open_archive(archive) as tar:
        members = check_members(tar, archive)
        base = os.path.realpath(root)
        targets, taken = {}, set()
        for m in members:
            dest = os.path.realpath(os.path.join(base, destination(m.name)))
            if os.path.commonpath([base, dest]) != base or dest == base:
                raise _refuse(archive, m.name, "its destination leaves the results root")
            if dest in taken:
                raise _refuse(archive, m.name, "its destination is another member's")
            targets[m.name] = dest
            taken.add(dest)
        digests = {}
        for m in members:
            dest = Path(targets[m.name])
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            src = tar.extractfile(m)
            with open(dest, "xb") as fh:  # x: never through a file or link already there
                for block in iter(lambda: src.read(CHUNK), b""):
                    digest.update(block)
                    fh.write(block)
            digests[m.name] = digest.hexdigest()
    return digests


def read_sums(text: str, archive: str | Path) -> dict[str, str]:
    sums = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise SafemtError(f"{SUMS} line {lineno} is not `sha256  name`", file=str(archive))
        sums[name] = digest
    return sums


def _record_label(line: bytes) -> str:
    """A record named by its key fields (id, turns, method, model, defense, judge), as far as readable."""
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "(not readable JSON)"
    if not isinstance(rec, dict):
        return "(not a JSON object)"
    keys = [f"{k} {rec[k]}" for k in ("id", "turns", "method", "model", "defense", "judge") if rec.get(k) is not None]
    return ", ".join(keys) or "(no id)"


def check_sums(archive: str | Path, root: Path, digests: dict[str, str]) -> tuple[str, int]:
    """Every member against SHA256SUMS (and a changed JSON Lines member's records against RECORDS.jsonl):
    the first difference is one line naming the file and, for records, the record. Returns the digest."""
    sums_bytes = (root / destination(SUMS)).read_bytes()
    sums = read_sums(sums_bytes.decode("utf-8", errors="replace"), archive)
    unlisted = sorted(set(digests) - set(sums) - {SUMS})
    if unlisted:
        raise SafemtError(f"{unlisted[0]}: in the archive but not in {SUMS}", file=str(archive))
    absent = sorted(set(sums) - set(digests))
    if absent:
        raise SafemtError(f"{absent[0]}: listed in {SUMS} but not in the archive", file=str(archive))
    if sums.get(RECORDS) == digests.get(RECORDS):
        records = {r["file"]: r["lines"] for r in map(json.loads, (root / destination(RECORDS)).read_text("utf-8").splitlines())}
    else:
        records = {}
    for name in sorted(sums):
        if sums[name] == digests[name]:
            continue
        if name in records:
            data = (root / destination(name)).read_bytes()
            lines = data.splitlines()
            for i, (was, now, line) in enumerate(zip(records[name], line_hashes(data), lines), 1):
                if now != was:
                    raise SafemtError(f"{name}: record {i} ({_record_label(line)}) differs from the exported "
                                      f"record (checksum mismatch)", file=str(archive))
            if len(lines) != len(records[name]):
                raise SafemtError(f"{name}: {len(lines)} records, the exported file had {len(records[name])}",
                                  file=str(archive))
        raise SafemtError(f"{name}: content differs from its sha256 in {SUMS}", file=str(archive))
    return hashlib.sha256(sums_bytes).hexdigest(), len(sums)


def first_difference(expected: bytes, found: bytes) -> str:
    """Where two text files first differ: `line N` with the two lines, shortened."""
    a, b = expected.splitlines(), found.splitlines()
    for i, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return f"line {i}: recomputed {x.decode('utf-8', 'replace')[:120]!r}, archive {y.decode('utf-8', 'replace')[:120]!r}"
    return f"recomputed {len(a)} lines, archive {len(b)}"


def read_manifest(root: Path, archive: str | Path) -> dict[str, Any]:
    try:
        manifest = json.loads((root / destination(MANIFEST)).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SafemtError(f"{MANIFEST} is not readable JSON ({exc})", file=str(archive)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SafemtError(f"{MANIFEST}: not a bundle of format {FORMAT}", file=str(archive))
    return manifest


def imported(root: str | Path) -> dict[str, Any] | None:
    """The manifest of the bundle a results root was imported from, or None (not imported)."""
    path = Path(root, IMPORT_DIR, MANIFEST)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def missing_from_import(root: str | Path, needed: Iterable[str]) -> str | None:
    """For a results root imported from a bundle: one line naming the first file of NEEDED (paths under
    the root: the dataset, every planned generations file) that the bundle did not bring, else None.
    Inference never runs on an imported root, so such a file can only come from another run."""
    if imported(root) is None:
        return None
    for path in needed:
        if not Path(path).is_file():
            return (f"{path}: not in the bundle imported into {root} ({Path(root, IMPORT_DIR, MANIFEST)}); "
                    f"inference never runs on an imported results root: plan only judges, metrics and reports "
                    f"over the bundle's targets, defenses and lengths, or use another results_dir")
    return None
