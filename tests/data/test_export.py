"""`safemt data export --format release`: back to <N>_turn.json + images, exact round trip."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from safemt.cli import main
from safemt.data.export import META_FILE, export_release
from safemt.data.importer import import_release
from safemt.records import Dialogue
from safemt.errors import SafemtError
from safemt.files import read_jsonl, write_jsonl

FIXTURE = Path(__file__).parent / "fixtures" / "release"


def imported_fixture(tmp_path: Path) -> Path:
    """Import the fixture release (images drawn) and return the dialogues JSONL."""
    src = tmp_path / "src"
    src.mkdir()
    for f in FIXTURE.glob("*_turn.json"):
        shutil.copy(f, src / f.name)
        for rec in json.loads(f.read_text()):
            path = src / rec["image_path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (120, 60, 10)).save(path)
    out = tmp_path / "dataset" / "dialogues.jsonl"
    import_release(src, out)
    return out


def test_release_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = imported_fixture(tmp_path)
    out_dir = tmp_path / "release"
    assert main(["data", "export", str(dataset), "--format", "release", "-o", str(out_dir)]) == 0
    assert "exported 7 dialogues (1:4 2:2 4:1)" in capsys.readouterr().out
    assert sorted(p.name for p in out_dir.iterdir()) == ["1_turn.json", "2_turn.json", "4_turn.json",
                                                           "images", META_FILE]
    text = (out_dir / "2_turn.json").read_text()
    records = json.loads(text)
    assert text == json.dumps(records, indent=4)
    assert [list(r) for r in records] == [["id", "scenario", "image_path", "dialogue", "question"]] * 2
    original = json.loads((FIXTURE / "2_turn.json").read_text())
    assert sorted(records, key=lambda r: r["id"]) == sorted(original, key=lambda r: r["id"])
    for rec in records:
        assert (out_dir / rec["image_path"]).read_bytes() == (dataset.parent / rec["image_path"]).read_bytes()


def test_round_trip_is_exact(tmp_path: Path) -> None:
    """Fields the release cannot hold (source, method, method_inferred, question_inferred) come back
    from the sidecar."""
    dataset = imported_fixture(tmp_path)
    records = read_jsonl(dataset)
    records[0].update(method="roleplay", method_inferred=True, source="own")
    records[1].update(method="in_context+image_anchor", question_inferred=True)
    write_jsonl(dataset, [Dialogue.from_dict(r).to_dict() for r in records])
    export_release(dataset, tmp_path / "release")
    import_release(tmp_path / "release", tmp_path / "again" / "dialogues.jsonl")
    assert (tmp_path / "again" / "dialogues.jsonl").read_bytes() == dataset.read_bytes()


def test_without_sidecar_only_release_fields_survive(tmp_path: Path) -> None:
    dataset = imported_fixture(tmp_path)
    records = read_jsonl(dataset)
    records[0].update(method="roleplay", method_inferred=True)
    write_jsonl(dataset, records)
    export_release(dataset, tmp_path / "release")
    (tmp_path / "release" / META_FILE).unlink()
    import_release(tmp_path / "release", tmp_path / "again.jsonl")
    again = read_jsonl(tmp_path / "again.jsonl")
    assert again[0]["method"] is None and again[0]["method_inferred"] is False
    release_fields = ("id", "turns", "scenario", "source", "image", "image_sha256", "messages", "question")
    assert [[r[k] for k in release_fields] for r in again] == [[r[k] for k in release_fields] for r in records]


def test_stale_turn_files_removed(tmp_path: Path) -> None:
    dataset = imported_fixture(tmp_path)
    out_dir = tmp_path / "release"
    out_dir.mkdir()
    (out_dir / "8_turn.json").write_text("[]")
    (out_dir / "notes.txt").write_text("kept")
    assert export_release(dataset, out_dir) == {1: 4, 2: 2, 4: 1}
    assert not (out_dir / "8_turn.json").exists() and (out_dir / "notes.txt").exists()


def test_missing_image_with_recorded_hash_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = imported_fixture(tmp_path)
    (dataset.parent / "images/bias/bias_2.jpg").unlink()
    out_dir = tmp_path / "release"
    assert main(["data", "export", str(dataset), "-o", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "record 2, id jbv_bias_2: image 'images/bias/bias_2.jpg' not found" in err
    assert not out_dir.exists()


def test_bad_record_writes_nothing(tmp_path: Path) -> None:
    dataset = imported_fixture(tmp_path)
    records = read_jsonl(dataset)
    records[5]["messages"].pop()
    write_jsonl(dataset, records)
    with pytest.raises(SafemtError, match=r"record 6, id mm_fraud_1: dialogue does not end with a user"):
        export_release(dataset, tmp_path / "release")
    assert not (tmp_path / "release").exists()


def test_dataset_imported_without_images(tmp_path: Path) -> None:
    dataset = imported_fixture(tmp_path)
    records = [dataclasses.replace(Dialogue.from_dict(r), image_sha256=None).to_dict() for r in read_jsonl(dataset)]
    write_jsonl(dataset, records)
    shutil.rmtree(dataset.parent / "images")
    export_release(dataset, tmp_path / "release")
    assert not (tmp_path / "release" / "images").exists()
    import_release(tmp_path / "release", tmp_path / "again.jsonl", allow_missing_images=True)
    assert (tmp_path / "again.jsonl").read_bytes() == dataset.read_bytes()


def test_real_excerpt_round_trip(shared_sample: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    import_release(shared_sample, first, allow_missing_images=True)
    export_release(first, tmp_path / "release")
    import_release(tmp_path / "release", tmp_path / "second.jsonl", allow_missing_images=True)
    assert (tmp_path / "second.jsonl").read_bytes() == first.read_bytes()
    for turns in (1, 2, 4):
        source = json.loads((shared_sample / f"{turns}_turn.json").read_text(encoding="utf-8"))
        exported = json.loads((tmp_path / "release" / f"{turns}_turn.json").read_text(encoding="utf-8"))
        assert sorted(exported, key=lambda r: r["id"]) == sorted(source, key=lambda r: r["id"])
    digest = hashlib.sha256((tmp_path / "release" / META_FILE).read_bytes()).hexdigest()
    export_release(first, tmp_path / "release")
    assert hashlib.sha256((tmp_path / "release" / META_FILE).read_bytes()).hexdigest() == digest


def test_an_all_mode_build_survives_export_and_import(tmp_path, repo_root):
    """Several methods share (id, turns) in `method_assignment: all`: the sidecar tells them apart."""
    import yaml

    from safemt.stages.dataset import build_options
    from safemt.data.build import build_dataset
    from safemt.data.importer import import_release

    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    params["dataset"]["method_assignment"] = "all"
    params["turns"] = [1, 2]
    built = tmp_path / "built" / "d.jsonl"
    build_dataset(repo_root / "resources" / "seeds" / "seeds.jsonl", built, build_options(params))
    export_release(built, tmp_path / "release")
    back = tmp_path / "back" / "d.jsonl"
    import_release(tmp_path / "release", back)
    def key(r):
        return (r["turns"], r["id"], r["method"] or "")
    fields = ("id", "turns", "method", "messages", "question", "image_sha256")
    original = sorted(({f: r[f] for f in fields} for r in map(json.loads, built.read_text().splitlines())), key=key)
    again = sorted(({f: r[f] for f in fields} for r in map(json.loads, back.read_text().splitlines())), key=key)
    assert again == original
