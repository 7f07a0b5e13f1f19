"""Two or more run bundles side by side: SI per model and defense, ASR per model, defense and length.

Each column is one bundle (its file name and the first characters of its digest, the sha256 of its
SHA256SUMS); a cell a bundle does not have is a dash. HTML in the report's style, or Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safemt.report.html import CSP, STYLE, text


@dataclass(frozen=True)
class BundleNumbers:
    label: str
    digest: str
    judge: str
    asr: list[dict[str, str]]
    si: list[dict[str, str]]
    manifest: dict[str, Any]


def _fmt(value: str | None) -> str:
    if value in (None, ""):
        return "–"
    try:
        return f"{float(value):.3f}"
    except ValueError:
        return str(value)


def _table(bundles: list[BundleNumbers], rows_of: str, keys: tuple[str, ...], column: str) -> tuple[list, list]:
    """(row keys in first-seen order, [[value per bundle] per row])."""
    order: list[tuple] = []
    values: list[dict[tuple, str]] = []
    for bn in bundles:
        got = {}
        for row in getattr(bn, rows_of):
            key = tuple(row.get(k, "") for k in keys)
            got[key] = row.get(column)
            if key not in order:
                order.append(key)
        values.append(got)
    return order, [[_fmt(v.get(key)) for v in values] for key in order]


def tables(bundles: list[BundleNumbers]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(caption, header, rows) of the SI table and the ASR table."""
    heads = [f"{bn.label} ({bn.digest[:12]}, judge {bn.judge})" for bn in bundles]
    si_keys, si_vals = _table(bundles, "si", ("model", "defense"), "si")
    asr_keys, asr_vals = _table(bundles, "asr", ("model", "defense", "turns"), "asr")
    return [("Safety Index (SI) per model and defense", ["model", "defense", *heads],
             [[*k, *v] for k, v in zip(si_keys, si_vals)]),
            ("ASR per model, defense and number of turns", ["model", "defense", "turns", *heads],
             [[*k, *v] for k, v in zip(asr_keys, asr_vals)])]


def _markdown(bundles: list[BundleNumbers]) -> str:
    out = ["# safemt bundles side by side", ""]
    for bn in bundles:
        out.append(f"- `{bn.label}`: digest `{bn.digest}`, params sha256 `{bn.manifest.get('params_sha256', '')[:12]}`, "
                   f"safemt {bn.manifest.get('safemt')}, judge {bn.judge}")
    for caption, head, rows in tables(bundles):
        cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
        out += ["", f"## {caption}", "", "| " + " | ".join(map(cell, head)) + " |",
                "|" + "---|" * len(head), *("| " + " | ".join(map(cell, r)) + " |" for r in rows)]
    return "\n".join(out) + "\n"


def _html(bundles: list[BundleNumbers]) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             f"<title>safemt bundles side by side</title><style>{STYLE}</style></head><body>",
             "<h1>safemt bundles side by side</h1><ul>"]
    for bn in bundles:
        parts.append(f"<li><b>{text(bn.label)}</b>: digest <code>{text(bn.digest)}</code>, params sha256 "
                     f"<code>{text(bn.manifest.get('params_sha256', '')[:12])}</code>, safemt "
                     f"{text(bn.manifest.get('safemt'))}, judge {text(bn.judge)}</li>")
    parts.append("</ul>")
    for caption, head, rows in tables(bundles):
        n_keys = len(head) - len(bundles)
        body = "".join("<tr>" + "".join(f'<td{" class=txt" if i < n_keys else ""}>{text(v)}</td>'
                                        for i, v in enumerate(r)) + "</tr>" for r in rows)
        parts.append(f"<h2>{text(caption)}</h2><table><thead><tr>"
                     + "".join(f"<th>{text(h)}</th>" for h in head) + f"</tr></thead><tbody>{body}</tbody></table>")
    parts += ["</body></html>", ""]
    return "\n".join(parts)


def render(bundles: list[BundleNumbers], markdown: bool = False) -> str:
    return _markdown(bundles) if markdown else _html(bundles)
