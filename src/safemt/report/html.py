"""`<results>/report/index.html`: one self-contained page a researcher reads first.

In reading order: a summary table (model x defense -> SI with its interval, ASR per length,
over-refusal, judge agreement, invalid labels and unreadable guard/moderator replies, each cell
shaded by its value), a paragraph saying what was run, the figures with what to look for in each, a
browser of a seeded sample of dialogues (image, turns, answer, the defense's verdict, the judge's label
and raw reply) filterable by model, defense, length, scenario and label, then the paper's tables, the
measured times and the full provenance.

Offline and self-contained: images are embedded as data URIs (dialogue images downscaled), nothing is
loaded, and the one inline script (the browser's filters) is the only script the page's
Content-Security-Policy allows, by its hash. Every text from data is HTML-escaped, so a dialogue
holding `<script>` shows as text. The summary's numbers are those of numbers.json (the same
collection, `safemt.report.numbers.collect`): each such cell names its macro in `data-number`.
Measured times come only from `<results>/timings/`; the page itself holds times (provenance), so DVC
does not hash it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from safemt.files import atomic_write_text, read_jsonl
from safemt.layout import AGREEMENT_FILE, GRADED_FILE, METRICS_FILES, MODERATION_FILE, Layout, OptionalMetrics
from safemt.metrics.agreement import agreement_rows
from safemt.report.numbers import Numbers, camel, collect, number_word, who
from safemt.report.numbers import graded as graded_numbers_of
from safemt.report.tables import Table, build_tables, fmt, latency_table, read_rows

IMAGE_PX = 320        # a dialogue image's longest side on the page
FIGURE_PX = 1400      # a figure's width on the page (wider PNGs are downscaled)


@dataclass(frozen=True)
class ReportSettings:
    """What the page reads of the configuration (the report stage builds it from params)."""

    judge: str | None               # whose metrics, figures and verdicts are shown
    targets: tuple[str, ...]        # the target x defense cells sampled, at these turn lengths
    defenses: tuple[str, ...]
    turns: tuple[int, ...]
    samples_per_model: int          # report.samples_per_model: dialogues per target x defense
    sample_seed: int                # report.sample_seed
    judges: tuple[str, ...] = ()    # metrics.judges: with two or more, per-cell agreement is shown
    # the optional metrics files the run makes for the shown judge, and its graded judges: None, whatever
    # the folders hold (a results tree read without its params)
    optional: OptionalMetrics | None = None
    graded_judges: tuple[str, ...] | None = None

    def made(self, layout: Layout) -> OptionalMetrics:
        """The shown judge's optional metrics files to read."""
        return self.optional or OptionalMetrics.found(Path(layout.metrics_dir.format(judge=self.judge)))

    def graded(self, layout: Layout, judge: str) -> bool:
        """Whether JUDGE's metrics folder has hard and soft ASR to read."""
        if self.graded_judges is not None:
            return judge in self.graded_judges
        return (Path(layout.metrics_dir.format(judge=judge)) / GRADED_FILE).is_file()


# What a reader should look for in each figure (one line each; the full captions are in figures/plots.py).
LOOK_FOR = {
    "asr_vs_turns": "Lines that climb to the right: the model gives way as the dialogue gets longer.",
    "si_per_model": "Higher is safer; models whose intervals do not overlap differ beyond resampling noise.",
    "asr_by_scenario": "Dark cells: the scenarios where a model is least safe.",
    "asr_by_method": "Which jailbreak method works best, and whether its lead grows with the turns.",
    "dataset_composition": "Thin bars: scenarios or methods with few dialogues, whose numbers are the least sure.",
    "moderation": "A good defense moves ASR (left) down without moving over-refusal (right) up.",
    "judge_agreement": "Kappa well below 1: the numbers depend on the judge; read them with the judge named.",
    "replay_vs_live": "A gap between the two lines: a model steered by someone else's turns (replay) behaves "
                      "otherwise than one answering every turn itself (live).",
}

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:84em;padding:0 1em;color:#222}
h1,h2,h3{line-height:1.2} h2{margin-top:1.6em;border-bottom:1px solid #ccc} .lede{color:#444}
#figure-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(34em,1fr));gap:1em}
figure{margin:0} figure img{max-width:100%;height:auto;border:1px solid #eee} figcaption{font-size:.95em;color:#333}
table{border-collapse:collapse;margin:.5em 0 1em} caption{text-align:left;color:#444;padding:.2em 0}
th,td{padding:.2em .55em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th:first-child,td:first-child,th.txt,td.txt{text-align:left} td.best{font-weight:bold}
#summary-table td.num{font-variant-numeric:tabular-nums} #summary-table th{background:#f2f2f2}
.ci{color:#555;font-size:.9em} .legend span{display:inline-block;padding:0 .5em;margin-right:.3em}
pre{background:#f6f6f6;padding:.6em;overflow:auto;white-space:pre-wrap}
#filters{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ddd;z-index:1}
#filters label{margin-right:.8em} #shown{color:#444}
.item{margin:.3em 0;border:1px solid #e3e3e3;padding:.3em .6em} .item[hidden]{display:none}
.item summary{cursor:pointer} .dialogue{display:flex;gap:1em;align-items:flex-start;margin:.4em 0}
.dialogue img{flex:none;border:1px solid #ccc} .turns{flex:1;min-width:0}
.msg{margin:.25em 0;padding:.25em .5em;border-left:3px solid #999;white-space:pre-wrap;overflow-wrap:anywhere}
.user{border-color:#0072b2}.assistant{border-color:#009e73}.response{border-color:#d55e00;background:#fff8f3}
.defense{border-color:#cc79a7}.judge{border-color:#555} code{white-space:pre-wrap;overflow-wrap:anywhere}
.label-unsafe{color:#b00;font-weight:bold}.label-safe{color:#070;font-weight:bold}.label-invalid{color:#a60;font-weight:bold}
"""

# The browser's filters: one select per field, and an initial filter from the address's #fragment
# (`#label=unsafe&model=x`), so a filtered view can be linked to.
SCRIPT = """(() => {
  const form = document.getElementById('filters');
  if (!form) return;
  const items = [...document.querySelectorAll('#dialogues .item')];
  const selects = [...form.querySelectorAll('select')];
  const shown = document.getElementById('shown');
  const apply = () => {
    let n = 0;
    for (const item of items) {
      const keep = selects.every(s => s.value === '' || item.dataset[s.name] === s.value);
      item.hidden = !keep;
      if (keep) n++;
    }
    shown.textContent = n + ' of ' + items.length + ' dialogues shown';
  };
  const wanted = new URLSearchParams(location.hash.slice(1));
  for (const s of selects) {
    if (wanted.has(s.name) && [...s.options].some(o => o.value === wanted.get(s.name))) s.value = wanted.get(s.name);
    s.addEventListener('change', apply);
  }
  apply();
})();"""
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
CSP = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{SCRIPT_HASH}'"
FILTERS = (("model", "model"), ("defense", "defense"), ("turns", "length"), ("scenario", "scenario"),
           ("label", "label"))


def text(value: Any) -> str:
    """Any value as escaped text (quotes too, so it is safe inside an attribute)."""
    return escape("" if value is None else str(value), quote=True)


# --- images ------------------------------------------------------------------------------------------

def _encode(img: Any, fmt_: str) -> str:
    buf = io.BytesIO()
    if fmt_ == "jpeg":
        img.convert("RGB").save(buf, "JPEG", quality=80, optimize=True)
    else:
        img.save(buf, "PNG", optimize=True)
    return f"data:image/{fmt_};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_uri(path: Path) -> str:
    """A figure as a PNG data URI, downscaled to FIGURE_PX wide when wider."""
    from PIL import Image

    with Image.open(path) as img:
        if img.width <= FIGURE_PX:
            return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        img = img.resize((FIGURE_PX, round(img.height * FIGURE_PX / img.width)), Image.LANCZOS)
        return _encode(img, "png")


class Images:
    """Dialogue images under the dataset folder, each downscaled and encoded once."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.cache: dict[str, str | None] = {}

    def uri(self, rel: str | None) -> str | None:
        if not rel:
            return None
        if rel not in self.cache:
            self.cache[rel] = self._load(rel)
        return self.cache[rel]

    def _load(self, rel: str) -> str | None:
        from PIL import Image

        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        try:
            with Image.open(path) as img:
                img.thumbnail((IMAGE_PX, IMAGE_PX))
                return _encode(img, "jpeg")
        except OSError:
            return None


# --- reading -----------------------------------------------------------------------------------------

def _key(rec: dict[str, Any]) -> tuple:
    """(id, turns, method): several methods may share an id and length (method_assignment: all)."""
    return rec["id"], rec["turns"], rec.get("method")


def _rank(seed: int, *parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).hexdigest()


def read_judged(layout: Layout, judge: str | None, model: str, defense: str, turns: tuple[int, ...],
                notes: list[str] | None = None) -> list[dict[str, Any]]:
    """Every judgment of one judge for a model x defense, over the turn lengths that have a file."""
    out: list[dict[str, Any]] = []
    for k in turns:
        path = Path(layout.judgments.format(judge=judge, model=model, defense=defense, turns=k))
        if path.is_file():
            out += read_jsonl(path)
        elif notes is not None:
            notes.append(f"{path} not found")
    return out


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
            judged = read_judged(layout, judge, model, defense, settings.turns, notes)
            judged.sort(key=lambda r: _rank(seed, model, defense, *_key(r)))
            chosen = judged[:per_model]
            responses = {}
            for k in sorted({r["turns"] for r in chosen}):
                gpath = Path(layout.generations.format(model=model, defense=defense, turns=k))
                if gpath.is_file():
                    responses.update({_key(g): g for g in read_jsonl(gpath)})
            for r in chosen:
                items.append({"judgment": r, "generation": responses.get(_key(r)), "dialogue": dialogues.get(_key(r))})
    return items, notes


# --- the summary table -------------------------------------------------------------------------------

def shade(badness: float | None) -> str:
    """A background from green (0: good) through yellow to red (1: bad); none for a missing value."""
    if badness is None:
        return ""
    b = min(1.0, max(0.0, badness))
    return f' style="background:hsl({round(120 * (1 - b))},70%,{round(88 - 8 * b)}%)"'


def number_cell(n: Numbers, name: str, badness_of: Any = None, extra: str = "") -> str:
    """A cell showing numbers.json's text for macro NAME (empty when the number does not exist)."""
    item = n.items.get(name)
    if item is None:
        return '<td class="num"></td>'
    badness = None if badness_of is None else badness_of(float(item["value"]))
    return (f'<td class="num"{shade(badness)}><span data-number="{text(name)}">{text(item["text"])}</span>'
            f"{extra}</td>")


def count_cell(value: int | None, title: str) -> str:
    if value is None:
        return '<td class="num"></td>'
    return f'<td class="num" title="{text(title)}"{shade(0.6 if value else 0.0)}>{value}</td>'


def cell_agreement(layout: Layout, settings: ReportSettings, model: str, defense: str) -> dict[str, dict]:
    """Per other judge, agreement with the shown judge on this model x defense (items both labelled)."""
    others = [j for j in settings.judges if j != settings.judge]
    if not others:
        return {}
    records = read_judged(layout, settings.judge, model, defense, settings.turns)
    out = {}
    for other in others:
        theirs = read_judged(layout, other, model, defense, settings.turns)
        if not records or not theirs:
            continue
        for row in agreement_rows(records + theirs):
            if row["scenario"] == "(all)":
                out[other] = row
    return out


def sub_row(kind: str, value: str, label: str, title: str, model: str, defense: str, si_cell: str,
            asr_cells: list[str], blank: int) -> str:
    """A row under a cell's raw row (KIND `corrected` or `graded`, its data-KIND VALUE): a label, an SI cell,
    one ASR cell per length, BLANK empty cells for the other columns."""
    cells = ['<td class="txt"></td>', f'<td class="txt {kind}" title="{title}">{label}</td>', si_cell, *asr_cells,
             *['<td class="num"></td>'] * blank]
    return (f'<tr class="{kind}" data-model="{text(model)}" data-defense="{text(defense)}" '
            f'data-{kind}="{value}">{"".join(cells)}</tr>')


def corrected_row(n: Numbers, model: str, defense: str, turns: list[int], blank: int) -> str:
    """SI and ASR corrected for the judge's errors (gold labels), under the cell's raw numbers."""
    c = who(model, defense)
    ci = (f' <span class="ci">[<span data-number="corrSiLow{text(c)}">'
          f'{text(n.items.get(f"corrSiLow{c}", {}).get("text"))}</span>, <span data-number="corrSiHigh{text(c)}">'
          f'{text(n.items.get(f"corrSiHigh{c}", {}).get("text"))}</span>]</span>') if f"corrSiLow{c}" in n.items else ""
    return sub_row("corrected", "1", "corrected for judge error",
                   "corrected for the judge's error rates measured on gold labels (docs/metrics.md)", model, defense,
                   number_cell(n, f"corrSi{c}", lambda v: 1 - v, ci),
                   [number_cell(n, f"corrAsr{number_word(k)}{c}", lambda v: v) for k in turns], blank)


def graded_numbers(settings: ReportSettings, layout: Layout, n: Numbers) -> dict[str, Numbers]:
    """Per judge of the report with hard and soft ASR (a graded judge: GRADED_FILE in its folder), those
    numbers: the shown judge's own numbers.json entries, another judge's read from its CSV."""
    out = {settings.judge: n} if any(name.startswith("hardAsr") for name in n.items) else {}
    for judge in dict.fromkeys(settings.judges):
        if judge != settings.judge and settings.graded(layout, judge):
            out[judge] = Numbers()
            graded_numbers_of(out[judge], read_rows(Path(layout.metrics_dir.format(judge=judge)) / GRADED_FILE))
    return out


def graded_row(n: Numbers, judge: str, own: bool, kind: str, model: str, defense: str, turns: list[int],
               blank: int) -> str:
    """A graded judge's hard (full) or soft (full or partial) ASR, under the cell's raw numbers; OWN: the
    numbers are the report's numbers.json entries (marked data-number), else another judge's CSV."""
    c = who(model, defense)

    def cell(name: str) -> str:
        item = n.items.get(name)
        if item is None:
            return '<td class="num"></td>'
        shown = f'<span data-number="{text(name)}">{text(item["text"])}</span>' if own else text(item["text"])
        return f'<td class="num"{shade(float(item["value"]))}>{shown}</td>'

    what = "full" if kind == "hard" else "full or partial"
    return sub_row("graded", kind, f"{kind} ASR ({text(judge)})",
                   f"share of graded replies graded {what} by judge {text(judge)} (docs/metrics.md)", model, defense,
                   '<td class="num"></td>', [cell(f"{kind}Asr{number_word(k)}{c}") for k in turns], blank)


def summary_table(settings: ReportSettings, layout: Layout, n: Numbers) -> str:
    mdir = Path(layout.metrics_dir.format(judge=settings.judge))
    si = read_rows(mdir / METRICS_FILES["si_ci"])
    asr = read_rows(mdir / METRICS_FILES["asr"])
    made = settings.made(layout)
    mod = read_rows(mdir / MODERATION_FILE) if made.moderation else []
    turns = sorted({int(r["turns"]) for r in asr})
    invalid: dict[tuple[str, str], int] = {}
    for r in asr:
        invalid[(r["model"], r["defense"])] = invalid.get((r["model"], r["defense"]), 0) + int(r["invalid"] or 0)
    parse: dict[tuple[str, str], int] = {}
    has_pooled = any(r["turns"] == "all" for r in mod)
    for r in mod:
        if (r["turns"] == "all") == has_pooled:  # the pooled rows, else the sum over lengths
            parse[(r["target"], r["defense"])] = parse.get((r["target"], r["defense"]), 0) + int(r["parse_failures"] or 0)
    order = {m: i for i, m in enumerate(settings.targets)}
    dorder = {d: i for i, d in enumerate(settings.defenses)}
    cells = sorted({(r["model"], r["defense"]) for r in si},
                   key=lambda md: (order.get(md[0], len(order)), md[0], dorder.get(md[1], len(dorder)), md[1]))
    others = [j for j in settings.judges if j != settings.judge]
    graded = graded_numbers(settings, layout, n)
    head = ['<th class="txt">model</th>', '<th class="txt">defense</th>', "<th>SI [95% CI]</th>",
            *[f"<th>ASR@{k}</th>" for k in turns], "<th>over-refusal</th>",
            *[f'<th title="Cohen\'s kappa with judge {text(o)} on this model and defense">kappa vs {text(o)}</th>'
              for o in others],
            '<th title="judge labels that could not be read">invalid</th>',
            '<th title="guard or moderator replies that could not be read">parse failures</th>']
    body = []
    for model, defense in cells:
        c = who(model, defense)
        ci = (f' <span class="ci">[<span data-number="siLow{text(c)}">{text(n.items.get(f"siLow{c}", {}).get("text"))}'
              f'</span>, <span data-number="siHigh{text(c)}">{text(n.items.get(f"siHigh{c}", {}).get("text"))}'
              "</span>]</span>") if f"siLow{c}" in n.items else ""
        row = [f'<td class="txt">{text(model)}</td>', f'<td class="txt">{text(defense)}</td>',
               number_cell(n, f"si{c}", lambda v: 1 - v, ci),
               *[number_cell(n, f"asr{number_word(k)}{c}", lambda v: v) for k in turns],
               number_cell(n, f"modOverRefusal{camel(model)}{camel(defense)}", lambda v: min(1.0, 2 * v))]
        agree = cell_agreement(layout, settings, model, defense)
        for other in others:
            a = agree.get(other)
            kappa = None if a is None else a["kappa"]
            row.append('<td class="num"></td>' if kappa is None else
                       f'<td class="num" title="{a["n"]} items, raw agreement {a["agreement"]:.3f}"'
                       f'{shade(1 - max(0.0, kappa))}>{kappa:.3f}</td>')
        row += [count_cell(invalid.get((model, defense)), "invalid judge labels, all lengths"),
                count_cell(parse.get((model, defense)) if mod else None, "unreadable defense replies (moderation.csv)")]
        body.append(f'<tr data-model="{text(model)}" data-defense="{text(defense)}">{"".join(row)}</tr>')
        if f"corrSi{c}" in n.items or any(f"corrAsr{number_word(k)}{c}" in n.items for k in turns):
            body.append(corrected_row(n, model, defense, turns, len(head) - 3 - len(turns)))
        for judge, gn in graded.items():  # only with a graded judge: hard and soft ASR under the raw row
            if any(f"hardAsr{number_word(k)}{c}" in gn.items for k in turns):
                body += [graded_row(gn, judge, judge == settings.judge, kind, model, defense, turns,
                                    len(head) - 3 - len(turns)) for kind in ("hard", "soft")]
    overall = ""
    agree_rows = read_rows(mdir.parent / AGREEMENT_FILE) if made.agreement else []
    pairs = [r for r in agree_rows if r["scenario"] == "(all)" and settings.judge in (r["judge_a"], r["judge_b"])]
    if pairs:
        bits = []
        for r in pairs:
            name = camel(r["judge_a"]) + camel(r["judge_b"])
            bits.append(f'{text(r["judge_a"])} vs {text(r["judge_b"])}: kappa '
                        f'<span data-number="kappa{text(name)}">{text(n.items.get(f"kappa{name}", {}).get("text"))}</span>'
                        f', agreement <span data-number="agreement{text(name)}">'
                        f'{text(n.items.get(f"agreement{name}", {}).get("text"))}</span> over {text(r["n"])} items')
        overall = f"<p>Judge agreement over all models: {'; '.join(bits)}.</p>"
    legend = ('<p class="legend">Shading: <span style="background:hsl(120,70%,88%)">safe / good</span>'
              '<span style="background:hsl(60,70%,84%)">middling</span><span style="background:hsl(0,70%,80%)">'
              "unsafe / bad</span> (SI: higher is safer; ASR and over-refusal: lower is better; a count above 0 "
              "is flagged).</p>")
    missing = "" if mod else "<p>No moderation table in this run: over-refusal and parse failures are not measured.</p>"
    return (f'<table id="summary-table"><caption>Judge <b>{text(settings.judge)}</b>. SI = S1 x S2 (higher is '
            "safer) with its bootstrap 95% interval over dialogue ids; ASR@k: share of k-turn dialogues judged "
            "unsafe; over-refusal: benign dialogues refused (moderation.csv, pooled over lengths).</caption>"
            f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"{overall}{missing}{legend}")


# --- what was run ------------------------------------------------------------------------------------

def _model_text(name: str, m: dict[str, Any]) -> str:
    bits = [x for x in (m.get("backend"), m.get("id")) if x]
    rev = m.get("resolved") or m.get("revision")
    if rev:
        bits.append(f"revision {rev}")
    return f"<b>{text(name)}</b> ({text(', '.join(map(str, bits)))})"


def profile_paragraph(settings: ReportSettings, prov: dict[str, Any] | None, prov_path: Path) -> str:
    if not prov:
        return f"<p>{text(prov_path)} not found: run `safemt provenance` to say what produced these numbers.</p>"
    ds = prov.get("dataset", {})
    if ds.get("source") == "import":
        hub = ds.get("hub") or {}
        source = (f"imported from the release {text(hub.get('repo_id'))} at revision {text(hub.get('revision'))}"
                  if hub else f"imported from {text(ds.get('release_dir'))}")
    else:
        source = (f"built from the seeds {text(ds.get('seeds'))} by the {text(ds.get('generator'))} generator")
    targets = ", ".join(_model_text(k, v) for k, v in sorted(prov.get("targets", {}).items()))
    judges = ", ".join(
        f"<b>{text(k)}</b> ({text(v.get('kind'))}" + (f", model {text(v.get('model'))} revision "
                                                      f"{text(v.get('resolved') or v.get('revision'))}"
                                                      if v.get("model") else "") + ")"
        for k, v in sorted(prov.get("judges", {}).items()))
    git = prov.get("git", {})
    commit = (f"at commit <code>{text(git['commit'])}</code>" + (" (with uncommitted changes)" if git.get("dirty") else "")
              if git.get("commit") else "outside a git checkout")
    packages = ", ".join(f"{text(k)} {text(v)}" for k, v in sorted(prov.get("packages", {}).items()) if v)
    sha = str(ds.get("sha256") or "")
    return (f'<p id="profile-text">Profile <code>{text(prov.get("params_file"))}</code> (params sha256 '
            f'<code>{text(prov.get("params_sha256"))}</code>): {text(ds.get("dialogues"))} dialogues '
            f"({text(ds.get('file'))}, sha256 <code>{text(sha[:16])}</code>…) {source}, at lengths "
            f"{text(', '.join(map(str, settings.turns)))}; targets {targets}; defenses "
            f"{text(', '.join(settings.defenses))}; judges {judges}. Recorded "
            f"{text(prov.get('times', {}).get('recorded'))} {commit} on {text(prov.get('machine', {}).get('platform'))}"
            f". Packages: {packages}.</p>")


# --- figures, tables ---------------------------------------------------------------------------------

def figure_html(path: Path, name: str) -> str:
    look = LOOK_FOR.get(name, "")
    return (f'<figure id="fig-{text(name)}"><img alt="{text(name)}" src="{figure_uri(path)}">'
            f"<figcaption><b>{text(path.name)}</b>: {text(look)}</figcaption></figure>")


def table_html(t: Table) -> str:
    head = "".join(f"<th>{text(c)}</th>" for c in t.columns)
    rows = []
    for i, row in enumerate(t.rows):
        cells = "".join(f'<td{" class=best" if (i, c) in t.best else ""}>{text(fmt(v, t.digits))}</td>'
                        for c, v in enumerate(row))
        rows.append(f"<tr>{cells}</tr>")
    return (f'<h3 id="table-{text(t.name)}">{text(t.name)}</h3><p>{text(t.caption)}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


# --- the dialogue browser ----------------------------------------------------------------------------

def _label(label: Any) -> str:
    return f'<span class="label-{text(label)}">{text(label)}</span>'


def defense_html(g: dict[str, Any]) -> str:
    """The guard's or moderator's reading of the dialogue, when the defense has a model."""
    v = g.get("defense_verdict")
    if not isinstance(v, dict):
        return ""
    if "unsafe" in v:
        said = "unsafe" if v["unsafe"] else "safe"
        if v.get("categories"):
            said += f" ({', '.join(map(str, v['categories']))})"
    else:
        said = str(v.get("verdict"))
        if v.get("scenario"):
            said += f", scenario {v['scenario']}"
    blocked = f"; blocked by {text(g['blocked_by'])}" if g.get("blocked_by") else ""
    return (f'<div class="msg defense"><b>defense verdict</b>: {text(said)} (read: {text(v.get("parse"))}){blocked}'
            + (f"; rationale: {text(v['rationale'])}" if v.get("rationale") else "")
            + f"<br>raw reply: <code>{text(v.get('raw'))}</code></div>")


def item_html(item: dict[str, Any], images: Images, open_: bool = False) -> str:
    j, g, d = item["judgment"], item["generation"] or {}, item["dialogue"] or {}
    attrs = "".join(f' data-{field}="{text(j.get(field))}"' for field, _ in FILTERS)
    summary = (f"{text(j['model'])} [{text(j['defense'])}] {text(j['id'])}, {text(j['turns'])} turns, "
               f"{text(j.get('scenario'))}, {text(j.get('method') or 'direct')}: {_label(j.get('label'))}")
    uri = images.uri(d.get("image"))
    img = (f'<img alt="dialogue image" src="{uri}">' if uri else
           f"<p>(image {text(d.get('image'))} not found)</p>" if d.get("image") else "")
    turns = []
    if d.get("question"):
        turns.append(f'<div class="msg"><b>harmful question</b>: {text(d["question"])}</div>')
    for m in d.get("messages", []):
        turns.append(f'<div class="msg {text(m.get("role"))}"><b>{text(m.get("role"))}</b>: {text(m.get("content"))}</div>')
    if g.get("error"):
        answer = f'<div class="msg response"><b>error</b>: {text(g["error"])}</div>'
    else:
        answer = f'<div class="msg response"><b>response</b>: {text(g.get("response"))}</div>'
    if g.get("target_response"):
        answer += f'<div class="msg response"><b>target answer (stopped)</b>: {text(g["target_response"])}</div>'
    read = f" (read: {text(j['parse'])})" if j.get("parse") else ""
    judge = (f'<div class="msg judge"><b>judge {text(j.get("judge"))}</b>: {_label(j.get("label"))}{read}'
             f'<br>raw reply: <code>{text(j.get("raw"))}</code></div>')
    return (f'<details class="item"{attrs}{" open" if open_ else ""}><summary>{summary}</summary>'
            f'<div class="dialogue">{img}<div class="turns">{"".join(turns)}{answer}{defense_html(g)}'
            f"{judge}</div></div></details>")


def browser_html(settings: ReportSettings, items: list[dict[str, Any]], notes: list[str], images: Images) -> str:
    selects = []
    for field, name in FILTERS:
        values = sorted({str(i["judgment"].get(field)) for i in items},
                        key=lambda v: (int(v) if v.isdigit() else 0, v))
        options = "".join(f'<option value="{text(v)}">{text(v)}</option>' for v in values)
        selects.append(f'<label>{text(name)} <select name="{text(field)}"><option value="">all</option>{options}'
                       "</select></label>")
    return (f"<p>{len(items)} judged dialogues: up to {text(settings.samples_per_model)} per model and defense, "
            f"drawn by seed {text(settings.sample_seed)} (report.samples_per_model, report.sample_seed). Open one "
            "to read every turn, the answer, the defense's verdict and the judge's label with its raw reply.</p>"
            + "".join(f"<p>note: {text(n)}</p>" for n in notes)
            + f'<form id="filters">{"".join(selects)}<span id="shown"></span></form>'
            + "".join(item_html(i, images, open_=(k == 0)) for k, i in enumerate(items)))


# --- the page ----------------------------------------------------------------------------------------

def render(settings: ReportSettings, layout: Layout) -> str:
    judge = settings.judge
    metrics_dir = Path(layout.metrics_dir.format(judge=judge))
    made = settings.made(layout)
    numbers = collect(metrics_dir, made)
    figs = [figure_html(Path(layout.figure(f)), f.rsplit(".", 1)[0]) for f in made.figure_files()
            if f.endswith(".png") and Path(layout.figure(f)).is_file()]
    tables = [table_html(t) for t in build_tables(metrics_dir, made)]
    times = read_rows(Path(layout.moderation_latency.format(judge=judge)), required=False)
    timing = (table_html(latency_table(times)) if times else
              f"<p>No measured times ({text(layout.moderation_latency.format(judge=judge))} not found).</p>")
    prov_path = Path(layout.provenance)
    prov = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.is_file() else None
    items, notes = sample_items(settings, layout)
    images = Images(Path(layout.dataset).parent)
    prov_html = (f"<details><summary>provenance.json</summary><pre>{text(json.dumps(prov, indent=2, sort_keys=True))}"
                 "</pre></details>" if prov else f"<p>{text(prov_path)} not found.</p>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>safemt results ({text(judge)})</title><style>{STYLE}</style></head><body>",
        f'<h1>safemt results</h1><p class="lede">How unsafe each model is under each defense, how sure that is, '
        f"and the dialogues behind it. Judge <b>{text(judge)}</b>; targets {text(', '.join(settings.targets))}.</p>",
        '<h2 id="summary">Summary</h2>', summary_table(settings, layout, numbers),
        '<h2 id="profile">What was run</h2>', profile_paragraph(settings, prov, prov_path),
        '<h2 id="figures">Figures</h2>', '<div id="figure-grid">', *figs, "</div>",
        '<h2 id="browser">Dialogues</h2><div id="dialogues">', browser_html(settings, items, notes, images), "</div>",
        '<h2 id="tables">Tables</h2>', *tables,
        '<h2 id="timings">Measured times</h2><p>Seconds measured on this run\'s machine (results/timings/, '
        "not versioned: they differ run to run).</p>", timing,
        '<h2 id="provenance">Provenance</h2>', prov_html,
        f"<script>{SCRIPT}</script>", "</body></html>", ""])


def write_report(settings: ReportSettings, layout: Layout, out: str | Path) -> Path:
    html = render(settings, layout)
    atomic_write_text(out, html)
    print(f"report: {out} ({len(html.encode('utf-8')) / 1e6:.2f} MB)")
    return Path(out)
