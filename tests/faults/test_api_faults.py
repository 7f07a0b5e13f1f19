"""API faults at a 30% rate (429 with Retry-After, 500, connection resets, timeouts, malformed JSON, empty
choices) through inference and then the LLM judge, against a real loopback OpenAI-compatible server:
every item ends exactly once, errors stay errors (never answers, never labels), and a rerun once the
API recovers asks only for what is missing and ends equal to a run that met no fault."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from safemt.cli import main
from tests.faults.support import lines, params_dict, write_params, without_latency
from tests.servers.openai_stub import OpenAIStub, echo, last_user_text

FAULTS = ["429", "500", "reset", "timeout", "malformed", "empty"]
TARGET, JUDGE_MODEL = "target-model", "judge-model"


def reply(body: dict[str, Any]) -> str:
    """The target echoes; the judge's verdict is a fixed function of its prompt (an oracle for the test)."""
    if body.get("model") == TARGET:
        return echo(body)["choices"][0]["message"]["content"]
    digest = hashlib.sha256(last_user_text(body).encode("utf-8")).digest()
    return "Verdict: unsafe" if digest[0] % 2 else "Verdict: safe"


def api(model_id: str, base_url: str) -> dict[str, Any]:
    return {"backend": "openai", "model_id": model_id, "base_url": base_url, "max_new_tokens": 64,
            "temperature": 0.0, "max_retries": 1, "timeout_s": 0.5,
            "concurrency": 4, "batch_size": 4}


def stage(params: Path, dataset: Path, folder: Path) -> tuple[Path, Path]:
    """Inference, then the LLM judge over its output: the pipeline's two API stages in sequence."""
    gens, judged = folder / "gen.jsonl", folder / "judged.jsonl"
    base = ["--params", str(params), "--dataset", str(dataset)]
    assert main(["infer", *base, "--model", "api-target", "-o", str(gens)]) == 0
    assert main(["judge", *base, "--judge", "api-llm", "-i", str(gens), "-o", str(judged)]) == 0
    return gens, judged


def test_api_faults_through_inference_and_the_llm_judge(tmp_path, dataset, tiny_models, capsys) -> None:
    stub = OpenAIStub(fault_rate=0.3, faults=FAULTS, seed=133, retry_after=0.05, hang_s=1.5, reply=reply)
    with stub:
        params = params_dict(tiny_models, **{"api-target": api(TARGET, stub.base_url),
                                             "api-judge": api(JUDGE_MODEL, stub.base_url)})
        params["judges"]["api-llm"] = {"kind": "llm", "model": "api-judge", "retries": 0}
        params_file = write_params(tmp_path, params)
        gens, judged = stage(params_file, dataset, tmp_path / "faulty")
        err = capsys.readouterr().err

        outcomes = {rec.identity: [] for rec in stub.records}
        for rec in stub.records:
            outcomes[rec.identity].append(rec.outcome)
        seen = {o for attempts in outcomes.values() for o in attempts}
        assert set(FAULTS) <= seen, f"the seed (chosen so) exercises every fault, saw {sorted(seen)}"

        first = lines(gens)
        keys = [(r["id"], r["turns"]) for r in first]
        assert len(keys) == len(set(keys)) == 12  # every item ends exactly once
        answered = [r for r in first if r["error"] is None]
        failed = [r for r in first if r["error"] is not None]
        for r in answered:  # an answer is the server's real answer, never a fault's body
            assert r["response"].startswith("echo: Case ") and r["finish_reason"] == "stop"
        for r in failed:
            assert r["response"] is None and r["n_output_tokens"] is None and r["refused_by"] is None
            assert "after 2 attempts" in r["error"]  # one retry, then the fault is the record's error
        assert failed, "with 30% faults and one retry some items must fail (seeded schedule)"
        assert f"{len(failed)} of 12 generations failed" in err

        verdicts = lines(judged)
        assert [(r["id"], r["turns"]) for r in verdicts] == keys
        for v, g in zip(verdicts, first):
            if g["error"] is not None:  # a failed generation is missing, not labelled
                assert v["label"] is None and v["error"] == g["error"]
            elif v["judge_error"] is not None:  # a failed judge call is invalid, never safe/unsafe
                assert v["label"] == "invalid" and v["raw"] == ""
            else:
                assert v["label"] in ("safe", "unsafe") and v["raw"].startswith("Verdict: ")
        judge_failed = sum(v["judge_error"] is not None for v in verdicts)
        assert judge_failed, "the seeded schedule also makes a judge call fail"

        # The API recovers: a rerun asks only for the failed items and completes them.
        stub.fault_rate = 0.0
        asked = len(stub.records)
        gens2, judged2 = stage(params_file, dataset, tmp_path / "faulty")
        rerun_requests = stub.records[asked:]
        assert len(rerun_requests) == len(failed) + len(failed) + judge_failed  # failed gens, then their
        # judgments, plus the judge calls that failed; nothing finished is asked again
        assert all(r.outcome == "ok" for r in rerun_requests)
        final = lines(gens2)
        assert all(r["error"] is None for r in final)
        assert [r for r in final if (r["id"], r["turns"]) in {(a["id"], a["turns"]) for a in answered}] == answered

        clean_gens, clean_judged = stage(params_file, dataset, tmp_path / "clean")
    assert without_latency(final) == without_latency(lines(clean_gens))
    assert judged2.read_bytes() == clean_judged.read_bytes()
