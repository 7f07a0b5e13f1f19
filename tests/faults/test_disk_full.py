"""A disk that fills up mid-write (an injected OSError(ENOSPC), in the journal or in the output's
atomic write): one clear line on stderr, exit 1, earlier outputs byte-for-byte intact, no temporary
file left behind, and a rerun once space returns completes and equals an undisturbed run."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from safemt import files, journal
from safemt.cli import main
from tests.faults.support import lines, params_dict, write_params, without_latency


def full(path: object) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def fill_disk(monkeypatch: pytest.MonkeyPatch, where: str, at_batch: int) -> None:
    """ENOSPC at the `at_batch`-th journal append, or at the fsync of the stage output's atomic write."""
    if where == "journal":
        append, calls = journal.Journal.append_batch, []

        def append_batch(self, records):
            calls.append(1)
            if len(calls) == at_batch:
                raise full(self.path)
            return append(self, records)

        monkeypatch.setattr(journal.Journal, "append_batch", append_batch)
    else:
        atomic = files.atomic_write_bytes

        def atomic_write_bytes(path, data):
            if ".journal" in str(path):  # provenance sidecars, not the output
                return atomic(path, data)
            real = os.fsync
            monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(full(path)))
            try:
                return atomic(path, data)
            finally:
                monkeypatch.setattr(os, "fsync", real)

        monkeypatch.setattr(files, "atomic_write_bytes", atomic_write_bytes)


def run(params: Path, dataset: Path, folder: Path) -> dict[str, int]:
    """Inference then keyword judging into `folder`; their exit codes."""
    gens, judged = folder / "gen.jsonl", folder / "judged.jsonl"
    base = ["--params", str(params), "--dataset", str(dataset)]
    codes = {"infer": main(["infer", *base, "--model", "tiny-vlm-a", "-o", str(gens)])}
    codes["judge"] = main(["judge", *base, "--judge", "keyword", "-i", str(gens), "-o", str(judged)])
    return codes


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["journal", "output"])
def test_disk_full_mid_write_is_one_line_keeps_outputs_and_a_rerun_completes(
        where, tmp_path, dataset, tiny_models, monkeypatch, capsys) -> None:
    v1 = write_params(tmp_path, params_dict(tiny_models))
    changed = params_dict(tiny_models)
    changed["models"]["tiny-vlm-a"]["max_new_tokens"] = 3  # the next run must regenerate everything
    v2 = write_params(tmp_path, changed)
    folder = tmp_path / "results"
    assert run(v1, dataset, folder) == {"infer": 0, "judge": 0}
    earlier = {name: (folder / name).read_bytes() for name in ("gen.jsonl", "judged.jsonl")}

    for stage, at_batch, cmd in (("infer", 2, "infer"), ("judge", 1, "judge")):
        with monkeypatch.context() as m:
            fill_disk(m, where, at_batch)
            base = ["--params", str(v2), "--dataset", str(dataset)]
            if stage == "infer":
                argv = [cmd, *base, "--model", "tiny-vlm-a", "-o", str(folder / "gen.jsonl")]
            else:
                argv = [cmd, *base, "--judge", "keyword", "-i", str(folder / "gen.jsonl"),
                        "-o", str(folder / "judged.jsonl")]
            before = snapshot(folder)
            capsys.readouterr()
            assert main(argv) == 1
            stderr = capsys.readouterr().err
            err = [ln for ln in stderr.splitlines() if ln.startswith("safemt: error")]
        assert "Traceback" not in stderr
        assert len(err) == 1 and "No space left on device" in err[0] and "rerun" in err[0], err
        assert str(folder) in err[0]  # names the file it could not write
        out = folder / ("gen.jsonl" if stage == "infer" else "judged.jsonl")
        assert out.read_bytes() == earlier[out.name]  # the earlier output is intact
        assert not [p for p in folder.rglob("*.tmp")]  # the atomic writer cleaned up
        after = snapshot(folder)
        for name, data in before.items():  # journals only grew (finished work kept), nothing rewritten
            assert after[name].startswith(data) if "/.journal/" in f"/{name}" else after[name] == data
        # Space returns: the same command completes.
        assert main(argv) == 0
        earlier[out.name] = out.read_bytes()

    assert run(v2, dataset, tmp_path / "clean") == {"infer": 0, "judge": 0}
    assert without_latency(lines(folder / "gen.jsonl")) == without_latency(lines(tmp_path / "clean" / "gen.jsonl"))
    assert (folder / "judged.jsonl").read_bytes() == (tmp_path / "clean" / "judged.jsonl").read_bytes()
