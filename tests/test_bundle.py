"""Run bundles: export is deterministic, verify recomputes every metric and names a changed record, import
refuses crafted archives before writing anything and restores a root on which Snakemake runs no inference,
compare puts bundles side by side (docs/bundles.md)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from safemt.cli import main
from safemt.files import read_jsonl, write_jsonl
from safemt.report import bundle as b
from tests.results_tree import build_results
from tests.support import undefended


def _tree(root: Path, repo_root: Path) -> Path:
    """A small finished results root (three targets, two keyword judges, metrics by the real command);
    returns its params file. Run from ROOT (the params' results_dir is relative)."""
    paths = build_results(root, repo_root, moderation=False)
    params = undefended(yaml.safe_load(paths["params"].read_text()))
    paths["params"].write_text(yaml.safe_dump(params))
    (root / "results" / "logs").mkdir()
    (root / "results" / "logs" / "judge.log").write_text("SAFEMT_TEST_SECRET=sk-not-in-a-bundle\n")
    (root / "results" / "report").mkdir()
    (root / "results" / "report" / "index.html").write_text("<html></html>")
    return paths["params"]


@pytest.fixture
def tree(repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return _tree(tmp_path, repo_root)


def _export(params: Path, out: Path, *extra: str) -> None:
    assert main(["bundle", "export", "--params", str(params), "-o", str(out), *extra]) == 0


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _rewrite(archive: Path, out: Path, change: dict[str, bytes]) -> None:
    """ARCHIVE with some members' bytes replaced and nothing else touched (the checksums stay)."""
    members = {**_members(archive), **change}
    with tarfile.open(out, "w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _flip_label(data: bytes, index: int) -> bytes:
    lines = data.decode().splitlines()
    rec = json.loads(lines[index])
    rec["label"] = "safe" if rec["label"] == "unsafe" else "unsafe"
    lines[index] = json.dumps(rec)
    return ("\n".join(lines) + "\n").encode()


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# --- export, verify ---------------------------------------------------------------------------------

def test_export_is_byte_identical_and_verify_passes(tree: Path, tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    _export(tree, first)
    for path in (tmp_path / "results").rglob("*"):  # new mtimes, same contents
        os.utime(path, (time.time() + 100, time.time() + 100))
    _export(tree, second)
    assert first.read_bytes() == second.read_bytes()
    assert gzip.open(first).read()  # a plain gzip-compressed tar
    with tarfile.open(first, "r:gz") as tar:
        infos = tar.getmembers()
    names = [m.name for m in infos]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert {(m.mtime, m.uid, m.gid, m.mode, m.uname, m.gname) for m in infos} == {(0, 0, 0, 0o644, "", "")}
    assert all(m.isfile() for m in infos)
    assert not [n for n in names if "/logs/" in n or "/report/" in n or ".journal" in n]
    members = _members(first)
    assert b"sk-not-in-a-bundle" not in b"".join(members.values())
    sums = b.read_sums(members[b.SUMS].decode(), "x")
    assert set(sums) == set(names) - {b.SUMS}
    assert all(hashlib.sha256(members[n]).hexdigest() == d for n, d in sums.items())
    manifest = json.loads(members[b.MANIFEST])
    assert manifest["format"] == b.FORMAT and manifest["metrics_judges"] == ["keyword", "llm"]
    assert "results/dataset/dialogues.jsonl" in names and "params/params.yaml" in names
    capsys.readouterr()

    assert main(["bundle", "verify", str(first)]) == 0
    out = capsys.readouterr().out
    digest = hashlib.sha256(members[b.SUMS]).hexdigest()
    assert digest in out and "byte-identical" in out


def test_a_changed_label_fails_verify_naming_file_and_record(tree: Path, tmp_path: Path, capsys) -> None:
    archive, tampered = tmp_path / "a.tar.gz", tmp_path / "t.tar.gz"
    _export(tree, archive)
    name = "results/judgments/keyword/vlm-mid/none/4.jsonl"
    original = _members(archive)[name]
    rec = json.loads(original.splitlines()[6])
    _rewrite(archive, tampered, {name: _flip_label(original, 6)})
    capsys.readouterr()
    assert main(["bundle", "verify", str(tampered)]) == 2
    err = _error(capsys)
    assert f"{name}: record 7 (id {rec['id']}, turns 4, " in err and "differs from the exported record" in err

    # An answer changed: named the same way.
    gen = "results/generations/vlm-safe/none/2.jsonl"
    lines = _members(archive)[gen].decode().splitlines()
    first = json.loads(lines[0])
    first["response"] = "Sure, here is how."
    _rewrite(archive, tampered, {gen: ("\n".join([json.dumps(first), *lines[1:]]) + "\n").encode()})
    assert main(["bundle", "verify", str(tampered)]) == 2
    assert f"{gen}: record 1 (id {first['id']}, turns 2, " in _error(capsys)


def test_a_label_changed_with_new_checksums_fails_the_recomputation(tree: Path, tmp_path: Path, capsys) -> None:
    """A forger who rewrites SHA256SUMS too: the recomputed metrics differ (and so does the digest)."""
    archive, forged = tmp_path / "a.tar.gz", tmp_path / "f.tar.gz"
    _export(tree, archive)
    members = _members(archive)
    name = "results/judgments/keyword/vlm-mid/none/4.jsonl"
    members[name] = _flip_label(members[name], 6)
    kept = [b.Member(n, data=d) for n, d in members.items() if n not in (b.SUMS, b.RECORDS)]
    digest = b.write_archive(forged, kept)["digest"]
    assert digest != hashlib.sha256(_members(archive)[b.SUMS]).hexdigest()
    capsys.readouterr()
    assert main(["bundle", "verify", str(forged)]) == 2
    err = _error(capsys)
    assert re.search(r"results/(metrics|scores)/\S+: differs from the metrics recomputed", err), err


def test_export_refuses_an_unfinished_run(tree: Path, tmp_path: Path, capsys) -> None:
    gone = tmp_path / "results" / "generations" / "vlm-mid" / "none" / "8.jsonl"
    gone.unlink()
    assert main(["bundle", "export", "--params", str(tree), "-o", str(tmp_path / "x.tar.gz")]) == 2
    assert str(gone.relative_to(tmp_path)) in _error(capsys)
    assert not (tmp_path / "x.tar.gz").exists()


# --- import ---------------------------------------------------------------------------------------------

def test_import_restores_the_files_and_refuses_a_used_root(tree: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "a.tar.gz"
    _export(tree, archive, "--with-images")
    dest = tmp_path / "restored"
    assert main(["bundle", "import", str(archive), "--params", str(tree), "--results-dir", str(dest)]) == 0
    src = tmp_path / "results"
    for name in _members(archive):
        if name.startswith("results/"):
            rel = name[len("results/"):]
            assert (dest / rel).read_bytes() == (src / rel).read_bytes(), rel
    assert json.loads((dest / "bundle" / "bundle.json").read_text())["format"] == b.FORMAT
    assert not (dest / "logs").exists() and not (dest / "report").exists()
    stamps = {p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    assert len(stamps) == 1  # one time for all: Snakemake sees nothing out of date
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["bundle", "import", str(archive), "--params", str(tree), "--results-dir", str(dest)]) == 2
    assert "already holds files" in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no staging folder left


def _crafted(path: Path, evil: tarfile.TarInfo, data: bytes = b"x") -> Path:
    """A tar.gz holding a valid-looking bundle.json and SHA256SUMS, then EVIL."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in ((b.MANIFEST, b'{"format": 1}'), (b.SUMS, b"")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if evil.isfile():
            evil.size = len(data)
            tar.addfile(evil, io.BytesIO(data))
        else:
            tar.addfile(evil)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("evil,reason", [
    (_info("/tmp/safemt-bundle-escape"), "absolute path"),
    (_info("results/../../escape.txt"), "'..' in its path"),
    (_info("results/dataset/../../../escape.txt"), "'..' in its path"),
    (_info("results/generations/link", tarfile.SYMTYPE, "/etc/passwd"), "a symbolic link"),
    (_info("results/generations/up", tarfile.SYMTYPE, "../../.."), "a symbolic link"),
    (_info("results/generations/hard", tarfile.LNKTYPE, "bundle.json"), "a hard link"),
    (_info("results/dev", tarfile.CHRTYPE), "a device file"),
    (_info("results/fifo", tarfile.FIFOTYPE), "a FIFO"),
    (_info("results/block", tarfile.BLKTYPE), "a device file"),
    (_info("results/folder", tarfile.DIRTYPE), "a folder"),
    (_info("elsewhere/file.txt"), "not a bundle file"),
    (_info("params/sub/p.yaml"), "params/ holds files only"),
    (_info("bundle.json"), "appears twice"),
    (_info("results/bundle/bundle.json"), "where an import puts the bundle's own files"),
])
def test_a_crafted_archive_is_refused_before_anything_is_written(tmp_path: Path, capsys, evil, reason) -> None:
    archive = _crafted(tmp_path / "evil.tar.gz", evil)
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "results"
    params = tmp_path / "p.yaml"
    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", params)
    assert main(["bundle", "import", str(archive), "--params", str(params), "--results-dir", str(dest)]) == 2
    err = _error(capsys)
    assert f"member {evil.name!r}" in err and reason in err and "nothing was written" in err, err
    assert list(work.iterdir()) == []  # no results root, no staging folder
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/safemt-bundle-escape").exists()
    assert main(["bundle", "verify", str(archive)]) == 2
    assert reason in _error(capsys)


def test_a_file_that_is_not_a_bundle_is_one_line(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    assert main(["bundle", "verify", str(junk)]) == 2
    assert "not a readable bundle" in _error(capsys)


# --- released data --------------------------------------------------------------------------------------

def test_a_bundle_of_released_data_holds_ids_and_hashes_only(tree: Path, tmp_path: Path, capsys) -> None:
    params = yaml.safe_load(tree.read_text())
    params["dataset"]["source"] = "import"
    tree.write_text(yaml.safe_dump(params))
    archive = tmp_path / "r.tar.gz"
    _export(tree, archive)
    members = _members(archive)
    assert "results/dataset/dialogues.jsonl" not in members
    dialogues = read_jsonl(tmp_path / "results" / "dataset" / "dialogues.jsonl")
    assert dialogues[0]["question"].encode() not in members["results/dataset/dialogues.ids.jsonl"]
    assert main(["bundle", "verify", str(archive)]) == 0
    capsys.readouterr()
    dest = tmp_path / "restored"
    args = ["bundle", "import", str(archive), "--params", str(tree), "--results-dir", str(dest)]
    assert main(args) == 2
    assert "--dataset" in _error(capsys) and not dest.exists()
    changed = tmp_path / "mine.jsonl"
    write_jsonl(changed, [{**d, "question": "edited"} if i == 3 else d for i, d in enumerate(dialogues)])
    assert main([*args, "--dataset", str(changed)]) == 2
    err = _error(capsys)
    assert f"id {dialogues[3]['id']}" in err and "content differs" in err and not dest.exists()
    assert main([*args, "--dataset", str(tmp_path / "results" / "dataset" / "dialogues.jsonl")]) == 0
    assert read_jsonl(dest / "dataset" / "dialogues.jsonl") == dialogues


# --- compare --------------------------------------------------------------------------------------------

def test_compare_puts_two_bundles_side_by_side(tree: Path, tmp_path: Path, capsys) -> None:
    one, two = tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"
    _export(tree, one)
    params = yaml.safe_load(tree.read_text())
    params["figures"]["judge"] = "llm"
    tree.write_text(yaml.safe_dump(params))
    _export(tree, two)
    out = tmp_path / "side.html"
    assert main(["bundle", "compare", str(one), str(two), "-o", str(out)]) == 0
    html = out.read_text()
    assert "one.tar.gz" in html and "two.tar.gz" in html and "judge keyword" in html and "judge llm" in html
    si = {r["model"]: r["si"] for r in csv_rows(tmp_path / "results" / "metrics" / "keyword" / "si.csv")}
    assert f"{float(si['vlm-mid']):.3f}" in html
    md = tmp_path / "side.md"
    assert main(["bundle", "compare", str(one), str(two), "-o", str(md)]) == 0
    text = md.read_text()
    assert "| model | defense | turns |" in text and "| vlm-weak | none | 8 |" in text
    capsys.readouterr()
    assert main(["bundle", "compare", str(one), "-o", str(out)]) == 2
    assert "two or more" in _error(capsys)


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
