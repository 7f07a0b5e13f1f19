"""The record contracts: one module, and docs/contracts.md says what it says."""

from __future__ import annotations

import re
from pathlib import Path

from safemt import records
from safemt.layout import METRICS_FILES

CONTRACTS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"


def test_contracts_page_is_generated_from_the_module():
    text = CONTRACTS_PAGE.read_text(encoding="utf-8")
    block = re.search(r"<!-- contracts:start -->\n(.*?)<!-- contracts:end -->", text, re.DOTALL)
    assert block, "docs/contracts.md lacks the contracts block"
    assert block.group(1) == records.render_markdown(), "docs/contracts.md is stale: paste `python -m safemt.records`"


def test_labels_are_the_contracts():
    # docs/contracts.md: a judge says safe or unsafe; unreadable is invalid
    assert records.VERDICTS == ("safe", "unsafe")
    assert records.LABELS == ("safe", "unsafe", "invalid")


def test_newer_fields_are_in_the_contracts():
    for name in ("blocked_by", "refused_by", "defense_verdict", "policy_id"):
        assert name in records.GENERATION.names
    for name in ("parse", "raw", "error", "judge_error", "judge_hash"):
        assert name in records.JUDGMENT.names
    assert records.DEFENSE_FIELDS == ("blocked_by", "defense_verdict", "policy_id", "target_response")


def test_no_versioned_record_holds_a_measured_time():
    """Two runs never measure the same seconds: times live in the Timing contract, beside the outputs."""
    for contract in (records.GENERATION, records.JUDGMENT):
        assert not [n for n in contract.names if "latency" in n or n.endswith("_s")], contract.name
    assert {"latency_s", "defense_latency_s"} <= set(records.TIMING.names)


def test_every_key_field_is_a_field_and_every_metrics_file_has_a_row_contract():
    for contract in records.CONTRACTS:
        assert set(contract.key) <= set(contract.names), contract.name
        assert len(set(contract.names)) == len(contract.names), contract.name
    files = {c.file.rsplit("/", 1)[-1] for c in records.METRICS_ROWS}
    assert set(METRICS_FILES.values()) - {METRICS_FILES["summary"]} <= files


def test_help_lists_the_commands_in_pipeline_order(capsys):
    import pytest

    from safemt import cli
    from safemt.stages import STAGES

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.split("positional arguments:")[1].split("options:")[0].splitlines()[2:]
              if line.startswith("    ") and not line.startswith("     ")]
    assert list(cli.STAGE_COMMANDS) == list(STAGES)
    assert listed == [c for stage in STAGES for c in cli.STAGE_COMMANDS[stage]] + ["dvc-profile"]
    for stage in STAGES:  # every stage has an entry module with run()
        module = __import__(f"safemt.stages.{stage}", fromlist=["run"])
        assert callable(module.run), stage
        assert f"safemt/stages/{stage}.py" in out
