"""The paper's tables from the metrics CSVs, each as CSV, Markdown and LaTeX (booktabs).

SI/ASR (models x turn lengths + SI; the best value of each column marked: lowest ASR, highest SI),
dataset composition, and, when the run makes their data (`OptionalMetrics`), moderation, judge agreement,
hard and soft ASR and graded agreement.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safemt.files import atomic_write_text, read_rows
from safemt.layout import (AGREEMENT_FILE, GRADED_AGREEMENT_FILE, GRADED_FILE, METRICS_FILES, MODERATION_FILE,
                           TABLE_FORMATS, OptionalMetrics)
from safemt.metrics.moderation import pooled_moderation

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


@dataclass
class Table:
    name: str
    caption: str
    columns: list[str]
    rows: list[list[Any]]
    best: set[tuple[int, int]] = field(default_factory=set)  # (row, column) cells to mark
    digits: int = 3


def num(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def label(model: str, defense: str) -> str:
    return model if defense == "none" else f"{model} ({defense})"


def si_asr_table(asr: list[dict[str, str]], si: list[dict[str, str]]) -> Table:
    turns = sorted({int(r["turns"]) for r in asr})
    cells = {(r["model"], r["defense"], int(r["turns"])): num(r["asr"]) for r in asr}
    keys = sorted({(r["model"], r["defense"]) for r in si}, key=lambda md: (md[1] != "none", md))
    si_by = {(r["model"], r["defense"]): r for r in si}
    columns = ["model", *[f"ASR@{k}" for k in turns], "S1", "S2", "SI"]
    rows = [[label(m, d), *[cells.get((m, d, k)) for k in turns], num(si_by[(m, d)]["s1"]),
             num(si_by[(m, d)]["s2"]), num(si_by[(m, d)]["si"])] for m, d in keys]
    best = set()
    for c in range(1, len(columns)):
        values = [r[c] for r in rows if r[c] is not None]
        if not values:
            continue
        target = min(values) if columns[c].startswith("ASR") else max(values)
        best |= {(i, c) for i, r in enumerate(rows) if r[c] == target}
    return Table("si_asr", "Attack success rate per turn length, S1, S2 and the Safety Index per model "
                 "(best per column in bold: lowest ASR, highest S1, S2, SI).", columns, rows, best)


def dataset_table(comp: list[dict[str, str]]) -> Table:
    methods = sorted({r["method"] for r in comp}, key=lambda m: (m != "none", m))
    scenarios = sorted({r["scenario"] for r in comp})
    count = {}
    for r in comp:
        key = (r["scenario"], r["method"])
        count[key] = count.get(key, 0) + int(r["dialogues"])
    names = ["direct" if m == "none" else m for m in methods]
    rows = [[s, *[count.get((s, m), 0) for m in methods], sum(count.get((s, m), 0) for m in methods)]
            for s in scenarios]
    rows.append(["total", *[sum(r[i + 1] for r in rows) for i in range(len(methods))], sum(r[-1] for r in rows)])
    return Table("dataset", "Dialogues judged per scenario and jailbreak method (all turn lengths).",
                 ["scenario", *names, "total"], rows, digits=0)


def moderation_table(mod: list[dict[str, str]]) -> Table:
    pooled = pooled_moderation(mod)
    pooled.sort(key=lambda r: (r["target"], r["defense"] != "none", r["defense"]))
    columns = ["target", "defense", "ASR", "ASR 95% CI", "ASR reduction", "over-refusal", "flag rate"]
    rows = [[r["target"], r["defense"], num(r["asr"]), _interval(r["asr_lo"], r["asr_hi"]),
             num(r["asr_reduction"]), num(r["over_refusal"]), num(r["flag_rate"])]
            for r in pooled]
    return Table("moderation", "Moderator versus guards per target and defense, pooled over turn lengths "
                 "(reduction relative to no defense).", columns, rows)


def latency_table(times: list[dict[str, str]]) -> Table:
    """Measured seconds per dialogue (from the timings file, not the metrics: it differs run to run)."""
    pooled = sorted((r for r in times if r["turns"] == "all"),
                    key=lambda r: (r["target"], r["defense"] != "none", r["defense"]))
    rows = [[r["target"], r["defense"], int(r["dialogues"]), num(r["added_latency_s"]), num(r["target_latency_s"]),
             num(r["added_ratio"])] for r in pooled]
    return Table("moderation_latency", "Measured time the defense's model adds per dialogue, and the target's own "
                 "time without a defense, pooled over turn lengths (this run's machine; not a metric).",
                 ["target", "defense", "dialogues", "added (s)", "target (s)", "added / target"], rows)


def agreement_table(agree: list[dict[str, str]]) -> Table:
    rows = [[r["judge_a"], r["judge_b"], int(r["n"]), num(r["agreement"]), num(r["kappa"])]
            for r in agree if r["scenario"] == "(all)"]
    return Table("judge_agreement", "Agreement between judges over items both labelled safe or unsafe.",
                 ["judge A", "judge B", "items", "agreement", "Cohen's kappa"], rows)


def graded_table(rows: list[dict[str, str]]) -> Table:
    """Hard ASR (full) and soft ASR (full or partial) per turn length, for a graded judge."""
    turns = sorted({int(r["turns"]) for r in rows})
    keys = sorted({(r["model"], r["defense"]) for r in rows}, key=lambda md: (md[1] != "none", md))
    cells = {(r["model"], r["defense"], int(r["turns"])): r for r in rows}

    def rate(m: str, d: str, k: int, col: str) -> float | None:
        return num(cells[(m, d, k)][col]) if (m, d, k) in cells else None

    columns = ["model", *[f"{kind}@{k}" for k in turns for kind in ("hard", "soft")]]
    table_rows = [[label(m, d), *[rate(m, d, k, f"{kind}_asr") for k in turns for kind in ("hard", "soft")]]
                  for m, d in keys]
    return Table("asr_graded", "Hard ASR (replies graded full) and soft ASR (full or partial) per turn length, "
                 "over the replies the graded judge could grade.", columns, table_rows)


def graded_agreement_table(agree: list[dict[str, str]]) -> Table:
    """A binary judge's labels against a graded judge's grades: which grades its `unsafe` matches."""
    rows = [[r["judge_binary"], r["judge_graded"], int(r["n"]), int(r["unsafe_full"]), int(r["unsafe_partial"]),
             int(r["unsafe_refusal"]), int(r["safe_full"]), int(r["safe_partial"]), int(r["safe_refusal"]),
             num(r["agreement_hard"]), num(r["kappa_hard"]), num(r["agreement_soft"]), num(r["kappa_soft"])]
            for r in agree if r["scenario"] == "(all)"]
    return Table("graded_agreement", "A binary judge's labels against a graded judge's grades over items both "
                 "judged; hard: unsafe = full, soft: unsafe = partial or full.",
                 ["binary judge", "graded judge", "items", "unsafe/full", "unsafe/partial", "unsafe/refusal",
                  "safe/full", "safe/partial", "safe/refusal", "agreement (hard)", "kappa (hard)",
                  "agreement (soft)", "kappa (soft)"], rows)


def _interval(lo: str, hi: str) -> str:
    return "" if lo in ("", None) or hi in ("", None) else f"[{float(lo):.3f}, {float(hi):.3f}]"


def fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits else f"{value:.0f}"
    return str(value)


def to_csv(t: Table) -> str:
    """Full precision, and a `best` column naming the columns in which the row is best."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*t.columns, "best"] if t.best else t.columns)
    for i, row in enumerate(t.rows):
        cells = ["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row]
        if t.best:
            cells.append(";".join(t.columns[c] for c in range(len(t.columns)) if (i, c) in t.best))
        w.writerow(cells)
    return buf.getvalue()


def to_markdown(t: Table) -> str:
    def cell(i: int, c: int, v: Any) -> str:
        text = fmt(v, t.digits).replace("|", r"\|")
        return f"**{text}**" if (i, c) in t.best and text else text

    lines = ["| " + " | ".join(t.columns) + " |",
             "|" + "|".join("---" if c == 0 else "---:" for c in range(len(t.columns))) + "|"]
    lines += ["| " + " | ".join(cell(i, c, v) for c, v in enumerate(row)) + " |" for i, row in enumerate(t.rows)]
    return "\n".join(lines) + f"\n\n{t.caption}\n"


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(t: Table) -> str:
    def cell(i: int, c: int, v: Any) -> str:
        text = latex_escape(fmt(v, t.digits))
        return f"\\textbf{{{text}}}" if (i, c) in t.best and text else text

    spec = "l" + "r" * (len(t.columns) - 1)
    body = [" & ".join(cell(i, c, v) for c, v in enumerate(row)) + r" \\" for i, row in enumerate(t.rows)]
    return "\n".join([
        "% generated by `safemt tables`; needs \\usepackage{booktabs}",
        r"\begin{table}[t]", r"\centering", r"\small", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
        " & ".join(latex_escape(c) for c in t.columns) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", f"\\caption{{{latex_escape(t.caption)}}}", f"\\label{{tab:{t.name.replace('_', '-')}}}",
        r"\end{table}", ""])


RENDER = {"csv": to_csv, "md": to_markdown, "tex": to_latex}


def build_tables(metrics_dir: str | Path, optional: OptionalMetrics | None = None) -> list[Table]:
    """Every table of the run (OPTIONAL: the optional files it made; None: whatever the folder holds);
    every CSV is read before anything is written, and one the run made but is missing is one line."""
    mdir = Path(metrics_dir)
    made = optional or OptionalMetrics.found(mdir)
    tables = [si_asr_table(read_rows(mdir / METRICS_FILES["asr"]), read_rows(mdir / METRICS_FILES["si"])),
              dataset_table(read_rows(mdir / METRICS_FILES["composition"]))]
    if made.moderation:
        tables.append(moderation_table(read_rows(mdir / MODERATION_FILE)))
    if made.agreement:
        tables.append(agreement_table(read_rows(mdir.parent / AGREEMENT_FILE)))
    if made.graded:
        tables.append(graded_table(read_rows(mdir / GRADED_FILE)))
    if made.graded_agreement:
        tables.append(graded_agreement_table(read_rows(mdir.parent / GRADED_AGREEMENT_FILE)))
    return tables


def write_tables(metrics_dir: str | Path, out_dir: str | Path, optional: OptionalMetrics | None = None) -> list[Path]:
    out, paths = Path(out_dir), []
    for t in build_tables(metrics_dir, optional):
        for ext in TABLE_FORMATS:
            path = out / f"{t.name}.{ext}"
            atomic_write_text(path, RENDER[ext](t))
            paths.append(path)
        print(f"table: {out / t.name}.{{{','.join(TABLE_FORMATS)}}}")
    return paths
