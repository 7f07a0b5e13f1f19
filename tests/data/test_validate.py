"""`safemt data validate`: the dialogue contract, uniqueness and images of a dialogues JSONL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from safemt.cli import main
from safemt.data.validate import validate_file
from safemt.errors import SafemtError


def dialogue(id_: str, turns: int, image: str | None = "images/bias/bias_1.png", **fields: Any) -> dict[str, Any]:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"}
                for i in range(2 * turns - 1)]
    return {"id": id_, "turns": turns, "scenario": "Bias", "source": "own", "method": "escalation",
            "method_inferred": True, "image": image, "image_sha256": None, "messages": messages,
            "question": messages[-1]["content"], **fields}


def write_dataset(folder: Path, records: list[dict[str, Any]]) -> Path:
    """Write records as JSONL in FOLDER, drawing images and filling image_sha256 where unset."""
    for rec in records:
        if rec.get("image") and not rec["image"].startswith(("/", "..")):
            path = folder / rec["image"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (6, 6), (30, 90, 160)).save(path)
            rec["image_sha256"] = rec["image_sha256"] or hashlib.sha256(path.read_bytes()).hexdigest()
    path = folder / "dialogues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def valid_records() -> list[dict[str, Any]]:
    return [dialogue("own_bias_1", 1), dialogue("own_bias_1", 2),
            dialogue("own_bias_2", 4, image="images/bias/bias_2.jpg", method=None, method_inferred=False)]


def test_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_dataset(tmp_path, valid_records())
    assert validate_file(path) == 3
    assert main(["data", "validate", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: 3 dialogues valid\n"


def test_image_root_option(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "root", valid_records())
    moved = tmp_path / "data.jsonl"
    path.rename(moved)
    with pytest.raises(SafemtError, match="not found"):
        validate_file(moved)
    assert validate_file(moved, image_root=tmp_path / "root") == 3


def test_missing_images_allowed(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, valid_records())
    (tmp_path / "images/bias/bias_2.jpg").unlink()
    assert validate_file(path, allow_missing_images=True) == 3
    assert main(["data", "validate", str(path), "--allow-missing-images"]) == 0


def test_dialogue_without_image(tmp_path: Path) -> None:
    assert validate_file(write_dataset(tmp_path, [dialogue("own_bias_3", 1, image=None)])) == 1


def _set(index: int, **fields: Any) -> Callable[[list[dict[str, Any]]], None]:
    return lambda recs: recs[index].update(fields)


def _roles(index: int, roles: list[str]) -> Callable[[list[dict[str, Any]]], None]:
    return _set(index, messages=[{"role": r, "content": "text"} for r in roles])


# (case, change to the valid records, text after the file name, reason fragment)
ERROR_CASES = [
    ("unknown role", _roles(0, ["system"]), "record 1, id own_bias_1", "unknown role 'system'"),
    ("roles not alternating", _roles(1, ["user", "user", "user"]), "record 2, id own_bias_1",
     "roles do not alternate"),
    ("wrong message count", _roles(1, ["user"]), "record 2, id own_bias_1",
     "2-turn dialogue must have 3 messages, has 1"),
    ("empty final turn", _set(0, messages=[{"role": "user", "content": " "}]), "record 1, id own_bias_1",
     "final user turn is empty"),
    ("unknown scenario", _set(2, scenario="bias"), "record 3, id own_bias_2", "unknown scenario 'bias'"),
    ("unknown method", _set(2, method="flattery"), "record 3, id own_bias_2", "unknown method 'flattery'"),
    ("turns not an integer", _set(0, turns="1"), "record 1, id own_bias_1", "turns must be a positive integer"),
    ("missing field", lambda recs: recs[2].pop("question"), "record 3, id own_bias_2", "missing field(s): question"),
    ("duplicate key", lambda recs: recs.append(dict(recs[0])), "record 4, id own_bias_1", "duplicate (id, turns, method)"),
    ("image escapes root", _set(0, image="../x.png"), "record 1, id own_bias_1", "escapes the image root"),
    ("absolute image", _set(0, image="/tmp/x.png"), "record 1, id own_bias_1", "is absolute"),
    ("bad sha format", _set(0, image_sha256="abc"), "record 1, id own_bias_1", "image_sha256 must be 64"),
    ("source not a string", _set(0, source=3), "record 1, id own_bias_1", "source must be a string or null"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_record_errors(case: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, change, where, reason = case
    records = valid_records()
    change(records)
    path = write_dataset(tmp_path, records)
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}, {where}: " in err and reason in err
    with pytest.raises(SafemtError) as info:
        validate_file(path)
    assert info.value.line() == err.removeprefix("safemt: error: ").rstrip("\n")


def _image_error(tmp_path: Path, damage: Callable[[Path], None]) -> str:
    path = write_dataset(tmp_path, valid_records())
    damage(tmp_path / "images/bias/bias_2.jpg")
    with pytest.raises(SafemtError) as info:
        validate_file(path)
    line = info.value.line()
    assert "\n" not in line and line.startswith(f"{path}, record 3, id own_bias_2: ")
    assert "'images/bias/bias_2.jpg'" in line
    return line


def test_missing_image(tmp_path: Path) -> None:
    assert "not found" in _image_error(tmp_path, Path.unlink)


def test_unreadable_image(tmp_path: Path) -> None:
    assert "not a readable image" in _image_error(tmp_path, lambda p: p.write_bytes(b"\x89PNG broken"))


def test_sha_mismatch(tmp_path: Path) -> None:
    def redraw(p: Path) -> None:
        Image.new("RGB", (6, 6), (0, 0, 0)).save(p)

    assert "image_sha256 does not match" in _image_error(tmp_path, redraw)


@pytest.mark.parametrize("text, reason", [("{not json\n", "line 1 is not JSON"),
                                          ("[1, 2]\n", "line 1 is not a JSON object")])
def test_file_errors(text: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(text)
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and reason in err


def test_file_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "validate", str(tmp_path / "absent.jsonl")]) == 2
    assert "absent.jsonl: file not found" in capsys.readouterr().err
