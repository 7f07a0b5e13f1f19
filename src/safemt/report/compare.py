"""Two or more run bundles side by side: SI per model and defense, ASR per model, defense and length.

Each column is one bundle (its file name and the first characters of its digest, the sha256 of its
SHA256SUMS); a cell a bundle does not have is a dash. HTML in the report's style, or Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safemt.report.html import CSP, STYLE, table_html, text
from safemt.report.tables import Table, num, to_markdown


@dataclass(frozen=True)
class BundleNumbers:
    label: str
    digest: str
    judge: str
    asr: list[dict[str, str]]
    si: list[dict[str, str]]
    manifest: dict[str, Any]


def _table(bundles: list[BundleNumbers], rows_of: str, keys: tuple[str, ...], column: str
           ) -> tuple[list[tuple], list[list[float | None]]]:
    """(row keys in first-seen order, [[value per bundle] per row]); a cell a bundle lacks is None."""
    order: dict[tuple, None] = {}
    values: list[dict[tuple, float | None]] = []
    for bn in bundles:
        got = {}
        for row in getattr(bn, rows_of):
            key = tuple(row.get(k, "") for k in keys)
            got[key] = num(row.get(column))
            order.setdefault(key)
        values.append(got)
    return list(order), [[v.get(key) for v in values] for key in order]


def tables(bundles: list[BundleNumbers]) -> list[Table]:
    """The SI table and the ASR table: one column per bundle (`report.tables.Table`)."""
    heads = [f"{bn.label} ({bn.digest[:12]}, judge {bn.judge})" for bn in bundles]
    si_keys, si_vals = _table(bundles, "si", ("model", "defense"), "si")
    asr_keys, asr_vals = _table(bundles, "asr", ("model", "defense", "turns"), "asr")
    return [Table("si", "Safety Index (SI) per model and defense", ["model", "defense", *heads],
                  [[*k, *v] for k, v in zip(si_keys, si_vals)]),
            Table("asr", "ASR per model, defense and number of turns", ["model", "defense", "turns", *heads],
                  [[*k, *v] for k, v in zip(asr_keys, asr_vals)])]


def _listing(bn: BundleNumbers) -> tuple[str, str, str, str, str]:
    return (bn.label, bn.digest, bn.manifest.get("params_sha256", "")[:12], str(bn.manifest.get("safemt")), bn.judge)


def _markdown(bundles: list[BundleNumbers]) -> str:
    out = ["# safemt bundles side by side", ""]
    out += [f"- `{label}`: digest `{digest}`, params sha256 `{params}`, safemt {version}, judge {judge}"
            for label, digest, params, version, judge in map(_listing, bundles)]
    for t in tables(bundles):
        out += ["", f"## {t.caption}", "", to_markdown(t)]
    return "\n".join(out)


def _html(bundles: list[BundleNumbers]) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             f"<title>safemt bundles side by side</title><style>{STYLE}</style></head><body>",
             "<h1>safemt bundles side by side</h1><ul>"]
    parts += [f"<li><b>{text(label)}</b>: digest <code>{text(digest)}</code>, params sha256 <code>{text(params)}"
              f"</code>, safemt {text(version)}, judge {text(judge)}</li>"
              for label, digest, params, version, judge in map(_listing, bundles)]
    parts.append("</ul>")
    parts += [table_html(t) for t in tables(bundles)]
    parts += ["</body></html>", ""]
    return "\n".join(parts)


def render(bundles: list[BundleNumbers], markdown: bool = False) -> str:
    return _markdown(bundles) if markdown else _html(bundles)
