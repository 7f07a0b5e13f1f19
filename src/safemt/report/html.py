"""`<results>/report/index.html`: one self-contained page of a run's results.

Figures are embedded as data URIs, tables are rendered from the metrics, provenance is shown, and a
deterministic sample of dialogues per model is browsable with their responses and verdicts. The page
holds no script and loads nothing (a Content-Security-Policy forbids both); every piece of text from
data is HTML-escaped, so a dialogue that contains `<script>` shows as text.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from safemt.figures.plots import CAPTIONS
from safemt.files import atomic_write_text, read_jsonl
from safemt.layout import FIGURE_NAMES, OPTIONAL_FIGURES, Layout
from safemt.report.tables import Table, build_tables, fmt, latency_table, read_rows


@dataclass(frozen=True)
class ReportSettings:
    """What the page reads of the configuration (the report stage builds it from params)."""

    judge: str | None               # whose metrics, figures and verdicts are shown
    targets: tuple[str, ...]        # the target x defense cells sampled, at these turn lengths
    defenses: tuple[str, ...]
    turns: tuple[int, ...]
    samples_per_model: int          # report.samples_per_model
    sample_seed: int                # report.sample_seed


CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1,h2,h3{line-height:1.2} figure{margin:1.5em 0} figure img{max-width:100%;height:auto}
figcaption{font-size:.9em;color:#444} table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right} th:first-child,td:first-child{text-align:left}
td.best{font-weight:bold} pre{background:#f6f6f6;padding:.6em;overflow:auto;white-space:pre-wrap}
details{margin:.3em 0;border:1px solid #e3e3e3;padding:.3em .6em} summary{cursor:pointer}
.msg{margin:.3em 0;padding:.3em .5em;border-left:3px solid #999;white-space:pre-wrap}
.user{border-color:#0072b2}.assistant{border-color:#009e73}.response{border-color:#d55e00}
.unsafe{color:#b00;font-weight:bold}.safe{color:#070;font-weight:bold}
"""


def figure_html(path: Path, name: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure id="fig-{escape(name)}"><img alt="{escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{escape(path.name)}</b>: {escape(CAPTIONS[name])}</figcaption></figure>")


def table_html(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    rows = []
    for i, row in enumerate(t.rows):
        cells = "".join(f'<td{" class=best" if (i, c) in t.best else ""}>{escape(fmt(v, t.digits))}</td>'
                        for c, v in enumerate(row))
        rows.append(f"<tr>{cells}</tr>")
    return (f'<h3 id="table-{escape(t.name)}">{escape(t.name)}</h3><p>{escape(t.caption)}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _rank(seed: int, *parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).hexdigest()


def _key(rec: dict[str, Any]) -> tuple:
    """(id, turns, method): several methods may share an id and length (method_assignment: all)."""
    return rec["id"], rec["turns"], rec.get("method")


def sample_items(settings: ReportSettings, layout: Layout) -> tuple[list[dict[str, Any]], list[str]]:
    """Up to `report.samples_per_model` judged dialogues per target x defense, chosen by a seeded hash."""
    judge, per_model, seed = settings.judge, int(settings.samples_per_model), int(settings.sample_seed)
    notes: list[str] = []
    dialogues = {}
    if Path(layout.dataset).is_file():
        dialogues = {_key(d): d for d in read_jsonl(layout.dataset)}
    else:
        notes.append(f"dataset {layout.dataset} not found: dialogue text not shown")
    items = []
    for model in settings.targets:
        for defense in settings.defenses:
            judged, responses = [], {}
            for k in settings.turns:
                jpath = Path(layout.judgments.format(judge=judge, model=model, defense=defense, turns=k))
                gpath = Path(layout.generations.format(model=model, defense=defense, turns=k))
                if not jpath.is_file():
                    notes.append(f"{jpath} not found")
                    continue
                judged += read_jsonl(jpath)
                if gpath.is_file():
                    responses.update({_key(g): g for g in read_jsonl(gpath)})
            judged.sort(key=lambda r: _rank(seed, model, defense, *_key(r)))
            for r in judged[:per_model]:
                items.append({"judgment": r, "generation": responses.get(_key(r)), "dialogue": dialogues.get(_key(r))})
    return items, notes


def item_html(item: dict[str, Any]) -> str:
    j, g, d = item["judgment"], item["generation"] or {}, item["dialogue"] or {}
    label = j.get("label")
    verdict = f'<span class="{escape(str(label))}">{escape(str(label))}</span>'
    summary = (f"{escape(j['model'])} [{escape(j['defense'])}] {escape(str(j['id']))}, {j['turns']} turns, "
               f"{escape(str(j.get('scenario')))}, {escape(str(j.get('method')))}: {verdict}")
    parts = [f"<details><summary>{summary}</summary>"]
    if d.get("question"):
        parts.append(f"<p><b>question</b>: {escape(d['question'])}</p>")
    for m in d.get("messages", []):
        parts.append(f'<div class="msg {escape(m["role"])}"><b>{escape(m["role"])}</b>: {escape(m["content"])}</div>')
    if g.get("error"):
        parts.append(f'<div class="msg response"><b>error</b>: {escape(str(g["error"]))}</div>')
    else:
        parts.append(f'<div class="msg response"><b>response</b>: {escape(str(g.get("response")))}</div>')
    parts.append(f"<p>verdict ({escape(j['judge'])}): {verdict}; raw judge output: "
                 f"<code>{escape(str(j.get('raw')))}</code></p></details>")
    return "".join(parts)


def render(settings: ReportSettings, layout: Layout) -> str:
    judge = settings.judge
    metrics_dir = Path(layout.metrics_dir.format(judge=judge))
    figs = [figure_html(Path(layout.figure(f"{n}.png")), n) for n in FIGURE_NAMES + OPTIONAL_FIGURES
            if Path(layout.figure(f"{n}.png")).is_file()]
    tables = [table_html(t) for t in build_tables(metrics_dir)]
    times = read_rows(Path(layout.moderation_latency.format(judge=judge)), required=False)
    if times:
        tables.append(table_html(latency_table(times)))
    prov_path = Path(layout.provenance)
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else None
    items, notes = sample_items(settings, layout)
    prov_html = (f"<pre>{escape(json.dumps(prov, indent=2, sort_keys=True))}</pre>" if prov
                 else f"<p>{escape(str(prov_path))} not found.</p>")
    git = (prov or {}).get("git", {})
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>safemt results ({escape(str(judge))})</title><style>{STYLE}</style></head><body>",
        f"<h1>safemt results</h1><p>Judge: <b>{escape(str(judge))}</b>; targets: "
        f"{escape(', '.join(settings.targets))}; commit {escape(str(git.get('commit')))}"
        f"{' (dirty)' if git.get('dirty') else ''}.</p>",
        "<h2>Figures</h2>", *figs,
        "<h2>Tables</h2>", *tables,
        f"<h2>Dialogues</h2><p>{len(items)} judged dialogues, up to "
        f"{escape(str(settings.samples_per_model))} per model and defense.</p>",
        *(f"<p>note: {escape(n)}</p>" for n in notes), *(item_html(i) for i in items),
        "<h2>Provenance</h2>", prov_html, "</body></html>", ""])


def write_report(settings: ReportSettings, layout: Layout, out: str | Path) -> Path:
    atomic_write_text(out, render(settings, layout))
    print(f"report: {out}")
    return Path(out)
