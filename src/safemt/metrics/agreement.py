"""Judge agreement: Cohen's kappa and raw agreement per judge pair, overall and per scenario.

Numbers in safety papers move with the judge; this table makes the choice visible. Only items both
judges labelled safe or unsafe are compared; the rest, and provider refusals (labelled safe by rule,
not by a judge), are counted in `excluded`.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any

from safemt.errors import SafemtError
from safemt.files import write_csv
from safemt.metrics.labels import load_judgments, provider_refused
from safemt.records import AGREEMENT_ROW, VERDICTS

REFUSED = "refused_by_provider"  # stands in for both labels of a refused item: never a verdict
COLUMNS = list(AGREEMENT_ROW.names)


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """kappa = (p_o - p_e) / (1 - p_e); None when undefined (no items, or both judges constant alike)."""
    n = len(pairs)
    if n == 0:
        return None
    p_o = sum(a == b for a, b in pairs) / n
    p_e = sum((sum(a == lab for a, _ in pairs) / n) * (sum(b == lab for _, b in pairs) / n)
              for lab in VERDICTS)
    if p_e == 1.0:
        return None
    return (p_o - p_e) / (1 - p_e)


def agreement_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    labels: dict[str, dict[tuple, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        labels[r["judge"]][(r["model"], r["defense"], r["id"], r["turns"], r.get("method"))] = r
    judges = sorted(labels)
    if len(judges) < 2:
        raise SafemtError(f"judge agreement needs at least two judges, got {judges}")
    rows = []
    for a, b in combinations(judges, 2):
        shared = sorted(set(labels[a]) & set(labels[b]))
        groups: dict[str, list] = defaultdict(list)
        for key in shared:
            ra, rb = labels[a][key], labels[b][key]
            # a provider refusal is labelled by rule, not by either judge: excluded, not an agreement
            refused = provider_refused(ra) or provider_refused(rb)
            pair = (REFUSED, REFUSED) if refused else (ra["label"], rb["label"])
            for scope in ("(all)", ra["scenario"]):
                groups[scope].append(pair)
        for scope in sorted(groups, key=lambda s: (s != "(all)", s)):
            both = [(x, y) for x, y in groups[scope] if x in VERDICTS and y in VERDICTS]
            kappa = cohen_kappa(both)
            rows.append({"judge_a": a, "judge_b": b, "scenario": scope, "n": len(both),
                         "excluded": len(groups[scope]) - len(both),
                         "agreement": sum(x == y for x, y in both) / len(both) if both else None,
                         "kappa": kappa})
    return rows


def write_agreement(inputs: list[str], out: str, records: list[dict[str, Any]] | None = None
                    ) -> list[dict[str, Any]]:
    """OUT, the agreement of every judge pair over the labels as the judgment files hold them (RECORDS,
    when the caller has loaded INPUTS already): a graded judge's by the default rule, so that OUT does
    not depend on metrics.si_labels."""
    rows = agreement_rows(load_judgments(inputs) if records is None else records)
    write_csv(out, rows, COLUMNS)
    for row in rows:
        if row["scenario"] == "(all)":
            kappa = "n/a" if row["kappa"] is None else f"{row['kappa']:.3f}"
            print(f"agreement {row['judge_a']} vs {row['judge_b']}: kappa {kappa} over {row['n']} items")
    return rows
