"""A damaged journal: a torn or zero-filled last line (what SIGKILL or power loss leaves) in a
generations shard journal and in a judgment journal is dropped and its work redone; a corrupted line
before the end is one clear error naming the file and line, exit 2, outputs untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from safemt.cli import main
from tests.faults.support import lines, without_latency

TAILS = {"torn": lambda line: line[: len(line) // 2], "zeros": lambda line: b"\0" * len(line)}


def infer_shard(params: Path, dataset: Path, out: Path) -> int:
    return main(["infer", "--params", str(params), "--model", "tiny-vlm-a", "--dataset", str(dataset),
                 "--shard", "0/2", "-o", str(out)])


def judge(params: Path, dataset: Path, gens: Path, out: Path) -> int:
    return main(["judge", "--params", str(params), "--judge", "keyword", "--dataset", str(dataset),
                 "-i", str(gens), "-o", str(out)])


def damage_last_line(journal: Path, how: str) -> None:
    body = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(body[:-1]) + TAILS[how](body[-1].rstrip(b"\n")))


def corrupt_line(journal: Path, lineno: int) -> None:
    body = journal.read_bytes().splitlines(keepends=True)
    body[lineno - 1] = b'{"id": "own_case_1", "turns": 2, "respo\n'  # complete (newline) but not JSON
    journal.write_bytes(b"".join(body))


@pytest.fixture
def shard(params_file: Path, dataset: Path, tmp_path: Path) -> dict[str, Path]:
    """Shard 0 of 2 of the generations and its keyword judgments, each with its journal."""
    gens, judged = tmp_path / "gen" / "shard0.jsonl", tmp_path / "judged" / "shard0.jsonl"
    assert infer_shard(params_file, dataset, gens) == 0
    assert judge(params_file, dataset, gens, judged) == 0
    return {"gens": gens, "judged": judged, "gens_journal": gens.parent / ".journal" / gens.name,
            "judged_journal": judged.parent / ".journal" / judged.name}


@pytest.mark.parametrize("how", sorted(TAILS))
def test_a_damaged_last_line_in_a_shard_journal_is_redone(how, shard, params_file, dataset, capsys) -> None:
    clean, journal = lines(shard["gens"]), shard["gens_journal"]
    assert len(clean) >= 2
    damage_last_line(journal, how)
    shard["gens"].unlink()
    capsys.readouterr()
    assert infer_shard(params_file, dataset, shard["gens"]) == 0
    assert "dropped a torn last line" in capsys.readouterr().err
    assert without_latency(lines(shard["gens"])) == without_latency(clean)
    keys = [(r["id"], r["turns"]) for r in lines(journal)]  # every line parses again
    assert sorted(keys) == sorted((r["id"], r["turns"]) for r in clean)  # one each: only the lost one redone


@pytest.mark.parametrize("how", sorted(TAILS))
def test_a_damaged_last_line_in_a_judgment_journal_is_redone(how, shard, params_file, dataset, capsys) -> None:
    clean, journal = shard["judged"].read_bytes(), shard["judged_journal"]
    entries = lines(journal)
    damage_last_line(journal, how)
    shard["judged"].unlink()
    capsys.readouterr()
    assert judge(params_file, dataset, shard["gens"], shard["judged"]) == 0
    assert "dropped a torn last line" in capsys.readouterr().err
    assert shard["judged"].read_bytes() == clean
    assert lines(journal) == entries  # the lost verdict was redone, the others reused


@pytest.mark.parametrize("stage", ["gens", "judged"])
def test_a_corrupted_middle_line_is_one_error_naming_file_and_line(stage, shard, params_file, dataset,
                                                                    capsys) -> None:
    journal = shard[f"{stage}_journal"]
    assert len(lines(journal)) >= 3
    corrupt_line(journal, 2)
    damaged = journal.read_bytes()
    before = shard[stage].read_bytes()
    capsys.readouterr()
    if stage == "gens":
        code = infer_shard(params_file, dataset, shard["gens"])
    else:
        code = judge(params_file, dataset, shard["gens"], shard["judged"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("safemt: error: ")
    assert str(journal) in err[0] and "line 2 is not JSON" in err[0]
    assert shard[stage].read_bytes() == before and journal.read_bytes() == damaged  # nothing touched
