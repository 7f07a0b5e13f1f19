"""The HTML report: self-contained, data escaped, the summary's numbers those of numbers.json, and a
real headless Chromium renders it (screenshot, summary table, dialogue browser and its filters)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import tool_missing

from safemt.cli import main
from safemt.files import read_jsonl, write_jsonl
from safemt.layout import figure_files
from safemt.report.html import IMAGE_PX, SCRIPT
from tests.results_tree import HOSTILE, TARGETS, build_results

DEFENSES = ("none", "guard_input", "moderator")
SAMPLES = 5                   # report.samples_per_model of params.yaml
ITEMS = len(TARGETS) * len(DEFENSES) * SAMPLES
PAGE_LIMIT = 3_000_000        # bytes: 7 figures and 45 downscaled dialogue images measure about 1.5 MB
PLANTED_LATENCY = 987.654321  # a stale latency_s in a generation record: the page must never show it
PARSE_FAILURES = 3            # written into moderation.csv's moderator rows


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> dict:
    """Three targets x three defenses (guard and moderator verdicts in the generations), two judges,
    a picture per dialogue, measured times under timings/; then figures, provenance, numbers, report."""
    root = tmp_path_factory.mktemp("report")
    tree = build_results(root, repo_root, defenses=DEFENSES, images=True)
    res = tree["results"]
    mod = res / "metrics" / "keyword" / "moderation.csv"
    with open(mod, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["parse_failures"] = PARSE_FAILURES if r["defense"] == "moderator" else 0
    with open(mod, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    gen = res / "generations" / "vlm-safe" / "none" / "1.jsonl"
    write_jsonl(gen, [{**g, "latency_s": PLANTED_LATENCY} for g in read_jsonl(gen)])
    timings = res / "timings" / "keyword" / "moderation_latency.csv"
    timings.parent.mkdir(parents=True)
    timings.write_text("judge,target,defense,turns,dialogues,added_latency_s,target_latency_s,added_ratio\n"
                       "keyword,vlm-safe,guard_input,all,125,0.4321,1.5,0.288\n")
    cfg = str(tree["params"])
    cwd = Path.cwd()
    try:
        os.chdir(root)
        assert main(["figures", "--params", cfg, "-i", "results/metrics/keyword", "-o", "results/figures"]) == 0
        assert main(["provenance", "--params", cfg, "-o", "results/provenance.json"]) == 0
        assert main(["numbers", "--params", cfg, "-i", "results/metrics/keyword", "-o", "results/paper/numbers.tex",
                     "--json", "results/paper/numbers.json"]) == 0
        assert main(["report", "--params", cfg, "-o", "results/report/index.html"]) == 0
    finally:
        os.chdir(cwd)
    page = root / "results/report/index.html"
    return {"root": root, "res": res, "page": page, "html": page.read_text(encoding="utf-8"),
            "provenance": json.loads((res / "provenance.json").read_text()),
            "numbers": json.loads((res / "paper/numbers.json").read_text())["numbers"]}


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _summary_rows(html: str) -> dict[tuple[str, str], list[str]]:
    """The summary table's rows by (model, defense): each cell's text, markup removed."""
    table = re.search(r'<table id="summary-table">.*?</table>', html, re.S).group(0)
    head = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    out = {}
    for tr in re.findall(r"<tr data-model[^>]*>(.*?)</tr>", table, re.S):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        assert len(cells) == len(head)
        out[(cells[0], cells[1])] = dict(zip(head, cells))
    return out


def test_report_is_self_contained_and_escaped(report: dict) -> None:
    html = report["html"]
    names = [f for f in figure_files(moderation=True, agreement=True) if f.endswith(".png")]
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)) == len(names) == 7
    assert len(re.findall(r'<img alt="dialogue image" src="data:image/jpeg;base64,', html)) == ITEMS
    assert not re.search(r'(src|href|action)=["\']?(https?:|file:)?//', html), "nothing may load from the network"
    # one script, the page's own, allowed by its hash and by nothing else
    assert re.findall(r"<script[^>]*>", html) == ["<script>"]
    assert f"<script>{SCRIPT}</script>" in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp and "unsafe-eval" not in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1]
    # the planted markup shows as text wherever it comes from: dialogue, answer, judge, guard, moderator
    assert "<img src=x" not in html and "onerror=\"alert" not in html
    escaped = "&lt;script&gt;document.body.setAttribute(&quot;data-pwned&quot;"
    assert html.count(f"<b>response</b>: reply {escaped}") == ITEMS
    assert html.count(f"<b>harmful question</b>: q {escaped}") == ITEMS
    assert f"because {escaped}" in html and "raw reply: <code>unsafe " + escaped in html


def test_browser_holds_every_part_of_each_sampled_dialogue(report: dict) -> None:
    html = report["html"]
    items = re.findall(r'<details class="item"([^>]*)>(.*?)</details>', html, re.S)
    assert len(items) == ITEMS
    cells = {}
    for attrs, body in items:
        a = dict(re.findall(r'data-(\w+)="([^"]*)"', attrs))
        cells[(a["model"], a["defense"])] = cells.get((a["model"], a["defense"]), 0) + 1
        turns = int(a["turns"])
        assert body.count('<div class="msg user">') == turns and body.count('<div class="msg assistant">') == turns - 1
        assert f"<b>judge keyword</b>: <span class=\"label-{a['label']}\">{a['label']}</span>" in body
        assert "raw reply: <code>" in body
        if a["defense"] == "none":
            assert "defense verdict" not in body
        elif a["defense"] == "guard_input":
            assert re.search(r"<b>defense verdict</b>: (unsafe \(S2\)|safe) \(read: ok\)", body), body
        else:
            assert re.search(r"<b>defense verdict</b>: (malicious|benign), scenario [^(]+\(read: fallback\)", body)
    assert cells == {(m, d): SAMPLES for m in TARGETS for d in DEFENSES}
    # the filters offer exactly the values the items carry
    for field in ("model", "defense", "turns", "scenario", "label"):
        select = re.search(rf'<select name="{field}">(.*?)</select>', html, re.S).group(1)
        offered = re.findall(r'<option value="([^"]+)">', select)
        carried = {dict(re.findall(r'data-(\w+)="([^"]*)"', attrs))[field] for attrs, _ in items}
        assert sorted(offered) == sorted(carried) and len(offered) == len(carried)


def test_dialogue_images_are_downscaled_and_the_page_stays_small(report: dict) -> None:
    from PIL import Image

    uris = re.findall(r'<img alt="dialogue image" src="data:image/jpeg;base64,([^"]+)"', report["html"])
    sizes = {Image.open(io.BytesIO(base64.b64decode(u))).size for u in uris}
    assert sizes and all(max(s) == IMAGE_PX for s in sizes), sizes  # 1200 x 900 on disk
    size = report["page"].stat().st_size
    assert size < PAGE_LIMIT, f"report is {size} bytes, over the {PAGE_LIMIT} limit"


def test_summary_numbers_are_those_of_numbers_json(report: dict) -> None:
    html, numbers, res = report["html"], report["numbers"], report["res"]
    shown = re.findall(r'<span data-number="([A-Za-z]+)">([^<]*)</span>', html)
    for name, value in shown:
        assert name in numbers, f"{name} is not in numbers.json"
        assert value == numbers[name]["text"], (name, value, numbers[name]["text"])
    names = {n for n, _ in shown}
    from safemt.report.numbers import camel, who

    for m in TARGETS:
        for d in DEFENSES:
            assert {f"si{who(m, d)}", f"siLow{who(m, d)}", f"siHigh{who(m, d)}",
                    f"modOverRefusal{camel(m)}{camel(d)}"} <= names
            assert {f"asr{camel(str(k))}{who(m, d)}" for k in (1, 2, 4, 6, 8)} <= names
    assert {"kappaKeywordLlm", "agreementKeywordLlm"} <= names
    # and, independently of numbers.py, the metrics files they come from
    rows = _summary_rows(html)
    assert len(rows) == len(TARGETS) * len(DEFENSES)
    for r in _csv(res / "metrics/keyword/si_ci.csv"):
        cell = rows[(r["model"], r["defense"])]
        assert cell["SI [95% CI]"] == f"{float(r['si']):.3f} [{float(r['si_lo']):.3f}, {float(r['si_hi']):.3f}]"
    invalid: dict = {}
    for r in _csv(res / "metrics/keyword/asr.csv"):
        assert rows[(r["model"], r["defense"])][f"ASR@{r['turns']}"] == f"{float(r['asr']):.3f}"
        invalid[(r["model"], r["defense"])] = invalid.get((r["model"], r["defense"]), 0) + int(r["invalid"])
    for key, cell in rows.items():
        assert cell["invalid"] == str(invalid[key])
        assert cell["parse failures"] == str(PARSE_FAILURES if key[1] == "moderator" else 0)
        assert -1 <= float(cell["kappa vs llm"]) <= 1


def test_per_cell_agreement_is_cohens_kappa_of_that_cell(report: dict) -> None:
    """Recomputed here from the two judges' files, pair by pair, without safemt's agreement code."""
    res = report["res"]
    rows = _summary_rows(report["html"])
    for model, defense in (("vlm-weak", "none"), ("vlm-mid", "moderator")):
        labels = {}
        for judge in ("keyword", "llm"):
            for k in (1, 2, 4, 6, 8):
                for r in read_jsonl(res / f"judgments/{judge}/{model}/{defense}/{k}.jsonl"):
                    labels.setdefault((r["id"], r["turns"], r["method"]), {})[judge] = r["label"]
        pairs = [(v["keyword"], v["llm"]) for v in labels.values()]
        n = len(pairs)
        p_o = sum(a == b for a, b in pairs) / n
        p_e = sum(sum(a == lab for a, _ in pairs) * sum(b == lab for _, b in pairs) for lab in ("safe", "unsafe")) / n**2
        assert rows[(model, defense)]["kappa vs llm"] == f"{(p_o - p_e) / (1 - p_e):.3f}"


def test_cells_are_shaded_by_value(report: dict) -> None:
    rows = re.findall(r"<tr data-model[^>]*>.*?</tr>", report["html"], re.S)
    hues = [int(h) for row in rows for h in re.findall(r"background:hsl\((\d+),", row)]
    assert min(hues) < 40 and max(hues) > 100, "some cells red (unsafe), some green (safe)"
    weak = next(r for r in rows if 'data-model="vlm-weak" data-defense="none"' in r)
    safe = next(r for r in rows if 'data-model="vlm-safe" data-defense="none"' in r)
    hue = lambda row: int(re.search(r"background:hsl\((\d+),", row).group(1))  # noqa: E731  (the SI cell)
    assert hue(weak) < hue(safe), "the less safe model's SI is redder"


def test_measured_times_come_only_from_the_timings(report: dict) -> None:
    html = report["html"]
    assert 'id="table-moderation_latency"' in html and "<td>0.432</td>" in html
    assert "987.65" not in html and "987.654" not in html


def test_profile_paragraph_says_what_was_run(report: dict) -> None:
    html, p = report["html"], report["provenance"]
    para = re.search(r'<p id="profile-text">(.*?)</p>', html, re.S).group(1)
    for needle in (p["params_sha256"], "255 dialogues", "template generator", "vlm-safe", "openai",
                   "judges <b>keyword</b> (keyword)", "<b>llm</b>", p["times"]["recorded"],
                   f"numpy {p['packages']['numpy']}", f"python {p['packages']['python']}",
                   "defenses none, guard_input, moderator"):
        assert needle in para, needle


def test_every_figure_says_what_to_look_for(report: dict) -> None:
    captions = re.findall(r"<figcaption><b>([a-z_]+)\.png</b>: ([^<]+)</figcaption>", report["html"])
    assert len(captions) == 7 and all(len(c) > 30 and "\n" not in c for _, c in captions)


def test_provenance_fields(report: dict) -> None:
    p = report["provenance"]
    for key in ("git", "params_sha256", "packages", "targets", "judges", "dataset", "times", "machine"):
        assert key in p
    assert set(p["targets"]) == {"vlm-safe", "vlm-mid", "vlm-weak"}
    assert p["targets"]["vlm-safe"]["id"] == "vlm-safe" and p["targets"]["vlm-safe"]["backend"] == "openai"
    assert p["packages"]["numpy"] and p["packages"]["python"]
    data = (report["res"] / "dataset" / "dialogues.jsonl").read_bytes()
    assert p["dataset"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert p["times"]["first_output"] <= p["times"]["last_output"] <= p["times"]["recorded"]
    assert '<h2 id="provenance">Provenance</h2>' in report["html"] and p["params_sha256"] in report["html"]
    assert p["git"]["commit"] is None or len(p["git"]["commit"]) == 40


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    tool_missing("no Chromium on this machine (apt-get install chromium)")


def _browse(browser: str, url: str, *flags: str) -> str:
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=5000", *flags, url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_filters_run_under_the_pages_own_policy(report: dict) -> None:
    """The real page, CSP in place: its script runs (a filter from the address is applied) and only it."""
    browser = _chromium()
    html = report["html"]
    items = [dict(re.findall(r'data-(\w+)="([^"]*)"', a)) for a in re.findall(r'<details class="item"([^>]*)>', html)]
    want = sum(i["defense"] == "guard_input" and i["label"] == "unsafe" for i in items)
    assert 0 < want < ITEMS
    dom = _browse(browser, report["page"].as_uri() + "#defense=guard_input&label=unsafe", "--dump-dom")
    assert f'id="shown">{want} of {ITEMS} dialogues shown<' in dom
    shown = re.findall(r'<details class="item"([^>]*)>', dom)
    assert len(shown) == ITEMS and sum(" hidden" in a for a in shown) == ITEMS - want
    assert all('data-defense="guard_input"' in a and 'data-label="unsafe"' in a for a in shown if " hidden" not in a)
    assert "data-pwned" not in re.search(r"<body[^>]*>", dom).group(0)


def test_report_renders_in_headless_chromium(report: dict, tmp_path: Path) -> None:
    """Figures, dialogue images, the summary table and the browser render, and no script carried by the
    data runs (the CSP is removed for the probe, so escaping alone must keep the data's markup inert);
    then a screenshot of the real page, down to the first dialogue, shows the shaded table and the image."""
    browser = _chromium()
    probe = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images], b = document.body;
  const rows = [...document.querySelectorAll('#summary-table tbody tr')];
  const seen = el => el.getBoundingClientRect().height > 5;
  b.setAttribute('data-images', String(imgs.length));
  b.setAttribute('data-rendered', String(imgs.filter(i => i.complete && i.naturalWidth > 100).length));
  b.setAttribute('data-rows', String(rows.filter(seen).length));
  b.setAttribute('data-items', String([...document.querySelectorAll('#dialogues .item')].filter(seen).length));
  const img = document.querySelector('#dialogues .item[open] img'), first = img.getBoundingClientRect();
  b.setAttribute('data-first', [first.left, first.top + scrollY, first.width, first.height, img.naturalWidth,
                                img.naturalHeight].map(Math.round).join(','));
});
</script></body>"""
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", report["html"])
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe), encoding="utf-8")
    dom = _browse(browser, page.as_uri(), "--window-size=1400,1000", "--dump-dom")
    body = re.search(r"<body[^>]*>", dom).group(0)
    n_img = 7 + ITEMS
    assert f'data-images="{n_img}"' in body and f'data-rendered="{n_img}"' in body, body
    assert f'data-rows="{len(TARGETS) * len(DEFENSES)}"' in body and f'data-items="{ITEMS}"' in body, body
    assert "data-pwned" not in body
    assert HOSTILE.split(">")[0].replace("<", "&lt;") in dom  # the markup shows as text
    left, top, width, height, *natural = map(int, re.search(r'data-first="([\d,]+)"', body).group(1).split(","))
    assert natural == [IMAGE_PX, IMAGE_PX * 3 // 4], natural  # 1200 x 900 on disk

    shot = tmp_path / "report.png"  # the real page, its policy in place
    _browse(browser, report["page"].as_uri(), f"--window-size=1400,{top + height + 200}", f"--screenshot={shot}")
    from PIL import Image

    with Image.open(shot) as img:
        rgb = img.convert("RGB")
    colours = rgb.crop((0, 0, 1400, 700)).getcolors(1 << 20)
    red = sum(n for n, (r, g, b) in colours if r > g + 40 and r > b + 40)
    green = sum(n for n, (r, g, b) in colours if g > r + 25 and g > b + 25)
    assert red > 4000 and green > 20000, f"the shaded summary table is not on screen ({red} red, {green} green px)"
    picture = rgb.crop((left + 5, top + 5, left + width - 5, top + height - 5)).getcolors(1 << 20)
    assert len(picture) > 5000, "the first dialogue's picture (a noisy gradient) is not on screen"
