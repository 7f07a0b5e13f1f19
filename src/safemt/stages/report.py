"""Report stage: provenance of the run and one self-contained HTML page of the results.

Inputs: the whole results root of the params. Outputs: `<results>/provenance.json`,
`<results>/report/index.html`. Helpers: `safemt.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(params: dict[str, Any], output: str | Path) -> Path:
    """The HTML report (`safemt report`)."""
    from safemt.report.html import write_report

    return write_report(params, output)


def provenance(params: dict[str, Any], params_file: str, output: str | Path) -> dict[str, Any]:
    """What produced this run's results (`safemt provenance`)."""
    from safemt.report.provenance import write_provenance

    return write_provenance(params, params_file, output)
