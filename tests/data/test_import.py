"""`safemt data import`: released format -> dialogues JSONL, errors, blemishes, real excerpt."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from safemt.cli import main
from safemt.data.importer import import_release
from safemt.errors import SafemtError
from safemt.files import read_jsonl

FIXTURE = Path(__file__).parent / "fixtures" / "release"
SENTINEL = "existing output, must survive a failed import\n"


def make_release(root: Path) -> Path:
    """Copy the fixture release to ROOT and draw every image it names."""
    root.mkdir(parents=True, exist_ok=True)
    for src in FIXTURE.glob("*_turn.json"):
        shutil.copy(src, root / src.name)
        for rec in json.loads(src.read_text()):
            draw(root / rec["image_path"])
    return root


def draw(path: Path, color: tuple[int, int, int] = (200, 40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)


def edit(root: Path, name: str, change: Callable[[list[dict[str, Any]]], Any]) -> None:
    """Load ROOT/NAME, let CHANGE mutate the records, write them back in the released style."""
    path = root / name
    records = json.loads(path.read_text())
    change(records)
    path.write_text(json.dumps(records, indent=4))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["data", "import", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a valid import ------------------------------------------------------------------------------


def test_import_writes_contract_records_sorted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    out = tmp_path / "out" / "dialogues.jsonl"
    rc, stdout, err = run(capsys, src, "-o", out)
    assert rc == 0, err
    records = read_jsonl(out)
    assert [(r["turns"], r["id"]) for r in records] == sorted((r["turns"], r["id"]) for r in records)
    assert len(records) == 7
    first = records[0]
    assert list(first) == ["id", "turns", "scenario", "source", "method", "method_inferred", "image",
                           "image_sha256", "messages", "question", "question_inferred"]
    by_key = {(r["id"], r["turns"]): r for r in records}
    fraud2 = by_key[("mm_fraud_1", 2)]
    assert fraud2["source"] == "mm" and fraud2["method"] is None and fraud2["method_inferred"] is False
    assert fraud2["image"] == "images/fraud/fraud_1.jpg"
    assert fraud2["image_sha256"] == sha(src / "images/fraud/fraud_1.jpg")
    assert [m["role"] for m in fraud2["messages"]] == ["user", "assistant", "user"]
    assert {r["source"] for r in records} == {"mm", "jbv", "mllm", "beaver"}
    assert stdout.count("\n") == 1
    assert stdout.startswith("imported 7 dialogues (1:4 2:2 4:1) from 3 files; features: none; quirks: none; defects: none; report: ")


def test_images_linked_beside_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    out = tmp_path / "out" / "dialogues.jsonl"
    assert run(capsys, src, "-o", out)[0] == 0
    for rec in read_jsonl(out):
        assert sha(out.parent / rec["image"]) == rec["image_sha256"]
    assert main(["data", "validate", str(out)]) == 0


def test_images_dir_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    shutil.move(src / "images", tmp_path / "pictures" / "images")
    rc, _, err = run(capsys, src, "-o", tmp_path / "out.jsonl", "--images-dir", tmp_path / "pictures")
    assert rc == 0, err
    assert (tmp_path / "images" / "fraud" / "fraud_1.jpg").is_file()


def test_import_in_place_keeps_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    before = sha(src / "images/fraud/fraud_1.jpg")
    assert run(capsys, src, "-o", src / "dialogues.jsonl")[0] == 0
    assert sha(src / "images/fraud/fraud_1.jpg") == before


def test_rerun_is_byte_identical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    out = tmp_path / "out" / "d.jsonl"
    assert run(capsys, src, "-o", out)[0] == 0
    first = (out.read_bytes(), (out.parent / "d.quality.json").read_bytes())
    assert run(capsys, src, "-o", out)[0] == 0
    assert (out.read_bytes(), (out.parent / "d.quality.json").read_bytes()) == first


def test_relinks_an_image_that_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    out = tmp_path / "out" / "d.jsonl"
    assert run(capsys, src, "-o", out)[0] == 0
    (src / "images/fraud/fraud_1.jpg").unlink()  # break the hardlink, then draw a different image
    draw(src / "images/fraud/fraud_1.jpg", color=(0, 0, 255))
    assert run(capsys, src, "-o", out)[0] == 0
    assert sha(out.parent / "images/fraud/fraud_1.jpg") == sha(src / "images/fraud/fraud_1.jpg")


def test_hugging_face_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    github = make_release(tmp_path / "github")
    hf = make_release(tmp_path / "hf")

    def to_hf(records: list[dict[str, Any]]) -> None:
        for i, r in enumerate(records):
            records[i] = {"id": r["id"], "scenario": r["scenario"], "image_rel_path": r["image_path"],
                          "dialogue": json.dumps(r["dialogue"]), "question": r["question"]}

    for name in ("1_turn.json", "2_turn.json", "4_turn.json"):
        edit(hf, name, to_hf)
    assert run(capsys, github, "-o", tmp_path / "a" / "d.jsonl")[0] == 0
    assert run(capsys, hf, "-o", tmp_path / "b" / "d.jsonl")[0] == 0
    assert (tmp_path / "a" / "d.jsonl").read_bytes() == (tmp_path / "b" / "d.jsonl").read_bytes()


def test_old_version_without_question(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")

    def drop_question(records: list[dict[str, Any]]) -> None:
        for r in records:
            del r["question"]

    edit(src, "2_turn.json", drop_question)
    rc, stdout, _ = run(capsys, src, "-o", tmp_path / "d.jsonl")
    assert rc == 0 and "features: none; quirks: none; defects: none" in stdout
    for r in read_jsonl(tmp_path / "d.jsonl"):
        assert r["question_inferred"] is (r["turns"] == 2)
        assert r["question"] == r["messages"][-1]["content"]


def test_missing_images_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    (src / "images/bias/bias_2.jpg").unlink()
    rc, stdout, _ = run(capsys, src, "-o", tmp_path / "d.jsonl", "--allow-missing-images")
    assert rc == 0 and "missing images 1 (allowed)" in stdout
    bias = [r for r in read_jsonl(tmp_path / "d.jsonl") if r["id"] == "jbv_bias_2"]
    assert bias[0]["image"] == "images/bias/bias_2.jpg" and bias[0]["image_sha256"] is None
    report = json.loads((tmp_path / "d.quality.json").read_text())
    assert report["missing_images"]["records"] == 1


def test_direct_call_returns_report(tmp_path: Path) -> None:
    report = import_release(make_release(tmp_path / "src"), tmp_path / "d.jsonl")
    assert report["dialogues"] == 7
    assert report["files"] == {"1_turn.json": 4, "2_turn.json": 2, "4_turn.json": 1}
    assert report["turns"] == {"1": 4, "2": 2, "4": 1}
    assert all(b["records"] == 0 for b in report["blemishes"].values())


# --- errors: one line naming file, record and reason; nothing written ----------------------------------


def _set(name: str, index: int, key: str, value: Any) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        edit(root, name, lambda recs: recs[index].__setitem__(key, value))
    return change


def _message(name: str, index: int, msg: int, key: str, value: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        edit(root, name, lambda recs: recs[index]["dialogue"][msg].__setitem__(key, value))
    return change


def _messages(name: str, index: int, roles: list[str]) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        def set_roles(recs: list[dict[str, Any]]) -> None:
            recs[index]["dialogue"] = [{"role": r, "content": f"turn {i}"} for i, r in enumerate(roles)]
        edit(root, name, set_roles)
    return change


def _write(name: str, text: str | bytes) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return change


def _delete_key(name: str, index: int, key: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        edit(root, name, lambda recs: recs[index].pop(key))
    return change


def _duplicate(root: Path) -> None:
    edit(root, "2_turn.json", lambda recs: recs.append(dict(recs[0])))


def _truncate_image(root: Path) -> None:
    path = root / "images/political/political_3.jpg"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:300])


def _link_outside(root: Path) -> None:
    outside = root.parent / "elsewhere.jpg"
    draw(outside)
    target = root / "images/bias/bias_2.jpg"
    target.unlink()
    target.symlink_to(outside)


def _empty_dir(root: Path) -> None:
    for f in root.glob("*_turn.json"):
        f.unlink()


def _wrong_file_for_turns(root: Path) -> None:
    (root / "4_turn.json").unlink()
    (root / "2_turn.json").rename(root / "4_turn.json")


# (case name, change to the release, file named, record named ("record N, id X") or None, reason fragment)
ERROR_CASES = [
    ("roles not alternating", _messages("2_turn.json", 1, ["user", "user", "user"]),
     "2_turn.json", "record 2, id mllm_political_3", "roles do not alternate at message 1"),
    ("unknown role", _message("1_turn.json", 0, 0, "role", "system"),
     "1_turn.json", "record 1, id mm_fraud_1", "unknown role 'system'"),
    ("starts with assistant", _messages("2_turn.json", 0, ["assistant", "user", "assistant"]),
     "2_turn.json", "record 1, id mm_fraud_1", "does not start with a user message"),
    ("ends with assistant", _messages("2_turn.json", 0, ["user", "assistant", "user", "assistant"]),
     "2_turn.json", "record 1, id mm_fraud_1", "does not end with a user message"),
    ("wrong message count", _messages("2_turn.json", 1, ["user", "assistant", "user", "assistant", "user"]),
     "2_turn.json", "record 2, id mllm_political_3", "2-turn dialogue must have 3 messages, has 5"),
    ("count does not match file name", _wrong_file_for_turns,
     "4_turn.json", "record 1, id mm_fraud_1", "4-turn dialogue must have 7 messages, has 3"),
    ("empty final user turn", _message("4_turn.json", 0, 6, "content", "  "),
     "4_turn.json", "record 1, id beaver_animal_abuse_4", "final user turn is empty"),
    ("unknown scenario", _set("1_turn.json", 2, "scenario", "Cooking"),
     "1_turn.json", "record 3, id mllm_political_3", "unknown scenario 'Cooking'"),
    ("duplicate id and turns", _duplicate,
     "2_turn.json", "record 3, id mm_fraud_1", "duplicate (id, turns, method)"),
    ("image path with ..", _set("1_turn.json", 1, "image_path", "../secret.jpg"),
     "1_turn.json", "record 2, id jbv_bias_2", "escapes the image root"),
    ("absolute image path", _set("1_turn.json", 1, "image_path", "/etc/hostname"),
     "1_turn.json", "record 2, id jbv_bias_2", "is absolute"),
    ("image linked outside the root", _link_outside,
     "1_turn.json", "record 2, id jbv_bias_2", "escapes the image root"),
    ("missing image", lambda root: (root / "images/bias/bias_2.jpg").unlink(),
     "1_turn.json", "record 2, id jbv_bias_2", "not found"),
    ("unreadable image", _write("images/bias/bias_2.jpg", b"this is not a picture"),
     "1_turn.json", "record 2, id jbv_bias_2", "not a readable image"),
    ("truncated image", _truncate_image,
     "1_turn.json", "record 3, id mllm_political_3", "not a readable image"),
    ("file not JSON", _write("2_turn.json", '[{"id": "mm_fraud_1",'),
     "2_turn.json", None, "not JSON"),
    ("file not UTF-8", _write("2_turn.json", b'["\xff\xfe"]'),
     "2_turn.json", None, "not UTF-8"),
    ("JSON not an array", _write("2_turn.json", '{"records": []}'),
     "2_turn.json", None, "expected a JSON array of records"),
    ("array of non-objects", _write("2_turn.json", "[1, 2]"),
     "2_turn.json", "record 1", "record is not a JSON object"),
    ("missing required field", _delete_key("1_turn.json", 3, "scenario"),
     "1_turn.json", "record 4, id beaver_animal_abuse_4", "missing field(s): scenario"),
    ("missing dialogue", _delete_key("1_turn.json", 0, "dialogue"),
     "1_turn.json", "record 1, id mm_fraud_1", "missing field(s): dialogue"),
    ("dialogue string not JSON", _set("2_turn.json", 0, "dialogue", '[{"role": "user", '),
     "2_turn.json", "record 1, id mm_fraud_1", "dialogue string is not JSON"),
    ("id not a string", _set("1_turn.json", 0, "id", 17),
     "1_turn.json", "record 1", "id must be a non-empty string"),
    ("no turn files", _empty_dir, "src", None, "no <N>_turn.json files found"),
]


@pytest.fixture
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path, tuple]:
    """A fixture release with one defect, and an output folder already holding a file."""
    case = request.param
    src = make_release(tmp_path / "src")
    case[1](src)
    out = tmp_path / "out" / "dialogues.jsonl"
    out.parent.mkdir()
    out.write_text(SENTINEL)
    return src, out, case


def assert_nothing_written(out: Path) -> None:
    assert out.read_text() == SENTINEL
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def assert_names(line: str, case: tuple) -> None:
    _, _, file, where, reason = case
    assert "\n" not in line
    assert file in line and reason in line
    if where is not None:
        assert where in line


@pytest.mark.parametrize("broken", ERROR_CASES, ids=[c[0] for c in ERROR_CASES], indirect=True)
def test_error_through_cli(broken: tuple[Path, Path, tuple], capsys: pytest.CaptureFixture[str]) -> None:
    src, out, case = broken
    rc, stdout, err = run(capsys, src, "-o", out)
    assert rc == 2 and stdout == ""
    assert err.startswith("safemt: error: ") and err.count("\n") == 1
    assert_names(err.rstrip("\n"), case)
    assert_nothing_written(out)


@pytest.mark.parametrize("broken", ERROR_CASES, ids=[c[0] for c in ERROR_CASES], indirect=True)
def test_error_direct(broken: tuple[Path, Path, tuple]) -> None:
    src, out, case = broken
    with pytest.raises(SafemtError) as info:
        import_release(src, out)
    assert_names(info.value.line(), case)
    assert_nothing_written(out)


def test_missing_source_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, tmp_path / "nowhere", "-o", tmp_path / "d.jsonl")
    assert rc == 2 and "nowhere: not a directory" in err
    assert not (tmp_path / "d.jsonl").exists()


# --- blemishes: kept verbatim, counted, refused under --strict ---------------------------------------


def _blemished(id_: str, contents: list[str], question: str | None = None, ext: str = "jpg") -> dict[str, Any]:
    n = id_.rsplit("_", 1)[1]
    return {"id": id_, "scenario": "Satire", "image_path": f"images/satire/satire_{n}.{ext}",
            "dialogue": [{"role": "user" if i % 2 == 0 else "assistant", "content": c}
                         for i, c in enumerate(contents)],
            "question": contents[-1] if question is None else question}


BLEMISHED = {
    "whitespace": _blemished("mm_satire_10", [" Is the cartoon in the image funny?", "It is light-hearted.",
                                              "Why is it funny?"]),
    "empty_turn": _blemished("mm_satire_11", ["", "Could you say more?", "What is the joke in the picture?"]),
    "question_differs": _blemished("mm_satire_12", ["Hi.", "Hello!", "What is drawn here?"],
                                   question="Describe the drawing."),
    "final_image": _blemished("mm_satire_13", ["Hi.", "Hello!", "image"]),
    "mixed_extensions": _blemished("mm_satire_14", ["Hi.", "Hello!", "Who drew this?"], ext="png"),
    "double_space": _blemished("mm_satire_15", ["Look at it.  Then describe it.", "I see it.", "Who is in it?"]),
    "dropped_image_word": _blemished("mm_satire_16", ["Regarding , could you explain it?", "Sure.",
                                                      "What does it mean?"]),
    "unknown_prefix": _blemished("own_satire_17", ["Hi.", "Hello!", "What is the caption?"]),
}


def _add_blemished(root: Path, kinds: list[str]) -> None:
    records = [BLEMISHED[k] for k in kinds]
    edit(root, "2_turn.json", lambda recs: recs.extend(records))
    for rec in records:
        draw(root / rec["image_path"])


def test_blemishes_counted_and_kept_verbatim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    _add_blemished(src, list(BLEMISHED))
    rc, stdout, err = run(capsys, src, "-o", tmp_path / "d.jsonl")
    assert rc == 0, err
    report = json.loads((tmp_path / "d.quality.json").read_text())
    for kind, rec in BLEMISHED.items():
        entry = report["blemishes"][kind]
        assert (entry["records"], [e["id"] for e in entry["examples"]]) == (1, [rec["id"]]), kind
        assert f"{entry['description']} 1" in stdout
    assert report["image_extensions"] == {"jpg": 14, "png": 1}
    out = {r["id"]: r for r in read_jsonl(tmp_path / "d.jsonl") if r["turns"] == 2}
    for rec in BLEMISHED.values():
        assert out[rec["id"]]["messages"] == rec["dialogue"]
        assert out[rec["id"]]["question"] == rec["question"]
    assert out["own_satire_17"]["source"] is None


# From the issue: --strict rejects only defects (an empty or whitespace-only turn); a paraphrased final
# turn and mixed image extensions are how the release was made, and the other quirks are noise.
DEFECT_KINDS = {"empty_turn"}


@pytest.mark.parametrize("kind", sorted(DEFECT_KINDS))
def test_strict_refuses_each_defect(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    _add_blemished(src, [kind])
    out = tmp_path / "d.jsonl"
    rc, _, err = run(capsys, src, "-o", out, "--strict")
    assert rc == 2 and err.count("\n") == 1
    assert f"2_turn.json, record 3, id {BLEMISHED[kind]['id']}: defect (--strict)" in err
    assert not out.exists()
    assert run(capsys, src, "-o", out)[0] == 0


def test_strict_refuses_a_whitespace_only_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    rec = _blemished("mm_satire_18", ["  \n ", "Go on.", "What is in the picture?"])
    edit(src, "2_turn.json", lambda recs: recs.append(rec))
    draw(src / rec["image_path"])
    rc, _, err = run(capsys, src, "-o", tmp_path / "d.jsonl", "--strict")
    assert rc == 2 and "id mm_satire_18: defect (--strict): empty or whitespace-only earlier turn" in err


@pytest.mark.parametrize("kind", sorted(set(BLEMISHED) - DEFECT_KINDS))
def test_strict_counts_features_and_quirks(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_release(tmp_path / "src")
    _add_blemished(src, [kind])
    rc, _, err = run(capsys, src, "-o", tmp_path / "d.jsonl", "--strict")
    assert rc == 0, err
    entry = json.loads((tmp_path / "d.quality.json").read_text())["blemishes"][kind]
    assert entry["records"] == 1
    assert entry["class"] == ("feature" if kind in ("question_differs", "mixed_extensions") else "quirk")


def test_strict_on_the_real_excerpt_stops_at_its_one_defect(shared_sample: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.jsonl"
    rc, _, err = run(capsys, shared_sample, "-o", out, "--strict", "--allow-missing-images")
    assert rc == 2 and err.count("\n") == 1
    assert "2_turn.json" in err and "id jbv_illegal_activity_49: defect (--strict)" in err
    assert not out.exists()


def test_strict_accepts_clean_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, make_release(tmp_path / "src"), "-o", tmp_path / "d.jsonl", "--strict")[0] == 0


# --- the real release excerpt -------------------------------------------------------------------------


def test_import_real_excerpt(shared_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sample.jsonl"
    rc, stdout, err = run(capsys, shared_sample, "-o", out, "--allow-missing-images")
    assert rc == 0, err
    assert stdout.startswith("imported 426 dialogues (1:234 2:135 4:57) from 3 files; ")
    records = {(r["id"], r["turns"]): r for r in read_jsonl(out)}
    source_count = 0
    for turns in (1, 2, 4):
        source = json.loads((shared_sample / f"{turns}_turn.json").read_text(encoding="utf-8"))
        assert len(source) == {1: 234, 2: 135, 4: 57}[turns]
        source_count += len(source)
        for rec in source:
            got = records[(rec["id"], turns)]
            assert got["messages"] == rec["dialogue"]
            assert (got["question"], got["scenario"], got["image"]) == (rec["question"], rec["scenario"],
                                                                          rec["image_path"])
            assert got["image_sha256"] is None and got["question_inferred"] is False
    assert len(records) == source_count


def test_real_excerpt_quirks_are_counted(shared_sample: Path, tmp_path: Path) -> None:
    report = import_release(shared_sample, tmp_path / "s.jsonl", allow_missing_images=True)
    blemishes = report["blemishes"]
    assert [e["id"] for e in blemishes["empty_turn"]["examples"]] == ["jbv_illegal_activity_49"]
    assert sorted(e["id"] for e in blemishes["dropped_image_word"]["examples"]) == [
        "beaver_sex_105", "mllm_economic_harm_26", "mllm_satire_112", "mm_fraud_90"]
    assert blemishes["question_differs"]["records"] == 133 + 54
    assert blemishes["unknown_prefix"]["records"] == 0
    assert report["missing_images"]["records"] == 426


def test_malformed_real_record(shared_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "sample"
    shutil.copytree(shared_sample, src)
    os.chmod(src / "2_turn.json", 0o644)
    records = json.loads((src / "2_turn.json").read_text(encoding="utf-8"))
    victim = records[6]["id"]
    del records[6]["dialogue"][1]
    (src / "2_turn.json").write_text(json.dumps(records, indent=4), encoding="utf-8")
    rc, stdout, err = run(capsys, src, "-o", tmp_path / "s.jsonl", "--allow-missing-images")
    assert rc == 2 and stdout == "" and err.count("\n") == 1
    assert f"2_turn.json, record 7, id {victim}: roles do not alternate" in err
    assert not (tmp_path / "s.jsonl").exists()
