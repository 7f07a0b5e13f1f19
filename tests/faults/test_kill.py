"""SIGKILL of an inference job and of a judge job at three points each, then a rerun: the final output
equals an undisturbed run's (latency aside), with nothing lost or duplicated, in outputs or journals."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from safemt.cli import main
from tests.faults.support import lines, make_dataset, params_dict, safemt, write_params, without_latency

# After the 1st journalled batch; mid-way, inside the 3rd batch's write (a torn line); before the output.
# Two of the six runs (one per stage) are in the quick suite, the rest are `slow` (a subprocess each
# loads torch and a model: ~15 s of CPU).
SLOW = pytest.mark.slow
INFER_POINTS = [pytest.param("kill-after:1", marks=SLOW), "torn:3", pytest.param("kill-final", marks=SLOW)]
JUDGE_POINTS = ["kill-after:1", pytest.param("torn:3", marks=SLOW), pytest.param("kill-final", marks=SLOW)]


def infer(params: Path, dataset: Path, out: Path, fault: str | None = None):
    return safemt("infer", "--params", str(params), "--model", "tiny-vlm-a", "--dataset", str(dataset),
                  "-o", str(out), fault=fault)


def judge(params: Path, dataset: Path, gens: Path, out: Path, fault: str | None = None):
    return safemt("judge", "--params", str(params), "--judge", "tiny-llm", "--dataset", str(dataset),
                  "-i", str(gens), "-o", str(out), fault=fault)


def killed(proc) -> bool:
    return proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def clean(tmp_path_factory, tiny_models: Path) -> dict[str, Path]:
    """Dataset, params, and the generations and tiny-LLM judgments of a run without faults (in-process:
    the killed runs and reruns are subprocesses)."""
    folder = tmp_path_factory.mktemp("clean")
    dataset, params = make_dataset(folder), write_params(folder, params_dict(tiny_models))
    gens, judged = folder / "clean" / "gen.jsonl", folder / "clean" / "judged.jsonl"
    base = ["--params", str(params), "--dataset", str(dataset)]
    assert main(["infer", *base, "--model", "tiny-vlm-a", "-o", str(gens)]) == 0
    assert main(["judge", *base, "--judge", "tiny-llm", "-i", str(gens), "-o", str(judged)]) == 0
    return {"dataset": dataset, "params": params, "gens": gens, "judged": judged}


def assert_journal_holds_each_key_once(journal: Path, key) -> None:
    keys = [key(r) for r in lines(journal)]  # every line parses: a torn line was repaired
    assert len(keys) == len(set(keys)), "a journalled item was redone although it was finished"


@pytest.mark.parametrize("point", INFER_POINTS)
def test_inference_killed_then_rerun_equals_an_undisturbed_run(point, clean, tmp_path) -> None:
    params_file, dataset = clean["params"], clean["dataset"]
    out = tmp_path / "run" / "gen.jsonl"
    first = infer(params_file, dataset, out, fault=point)
    assert killed(first), (first.returncode, first.stderr[-2000:])
    assert not out.exists()  # the output is written once, whole, at the end
    journal = out.parent / ".journal" / out.name
    before = journal.read_bytes()
    assert before  # the kill came after work was journalled
    second = infer(params_file, dataset, out)
    assert second.returncode == 0, second.stderr
    assert without_latency(lines(out)) == without_latency(lines(clean["gens"]))
    after = journal.read_bytes()
    if point.startswith("torn"):
        assert "dropped a torn last line" in second.stderr
        assert after.startswith(before[:before.rfind(b"\n") + 1])
    else:
        assert after.startswith(before)  # finished work kept as it was, then appended to
    assert_journal_holds_each_key_once(journal, lambda r: (r["id"], r["turns"], r["method"]))
    assert len(lines(journal)) == 12


@pytest.mark.parametrize("point", JUDGE_POINTS)
def test_judging_killed_then_rerun_equals_an_undisturbed_run(point, clean, tmp_path) -> None:
    params_file, dataset, gens, clean = clean["params"], clean["dataset"], clean["gens"], clean["judged"]
    out = tmp_path / "run" / "judged.jsonl"
    first = judge(params_file, dataset, gens, out, fault=point)
    assert killed(first), (first.returncode, first.stderr[-2000:])
    assert not out.exists()
    journal = out.parent / ".journal" / out.name
    assert journal.read_bytes()
    second = judge(params_file, dataset, gens, out)
    assert second.returncode == 0, second.stderr
    assert lines(out) == lines(clean)  # judgments carry no timing: byte-for-byte equal records
    assert out.read_bytes() == clean.read_bytes()
    assert_journal_holds_each_key_once(journal, lambda r: (r["judge_hash"], r["item_hash"]))
    assert len(lines(journal)) == 12
