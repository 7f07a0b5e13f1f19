"""Figures from a metrics folder: ASR versus turns per model, and SI per model."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from safemt.errors import SafemtError
from safemt.jsonl import atomic_write_bytes

PNG_METADATA = {"Software": None}  # no version strings in the PNG: same data, same bytes


def _read_csv(path: Path):
    import pandas as pd

    if not path.exists():
        raise SafemtError("metrics file not found (run `safemt metrics` first)", file=str(path))
    return pd.read_csv(path)


def save_png(fig, path: Path, dpi: int = 120) -> None:
    """PNG without version metadata (same data, same bytes), written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_METADATA, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def asr_vs_turns(asr, out: Path) -> None:
    """The headline figure: ASR rises with the number of turns."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for (model, defense), g in asr.groupby(["model", "defense"], sort=True):
        g = g.sort_values("turns")
        label = model if defense == "none" else f"{model} ({defense})"
        line, = ax.plot(g["turns"], g["asr"], marker="o", label=label)
        if g["ci_low"].notna().any():
            ax.fill_between(g["turns"], g["ci_low"], g["ci_high"], alpha=0.15, color=line.get_color())
    ax.set_xlabel("dialogue turns")
    ax.set_ylabel("attack success rate")
    ax.set_xticks(sorted(asr["turns"].unique()))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"ASR vs turns (judge: {asr['judge'].iloc[0]})", fontsize=10)
    save_png(fig, out)
    plt.close(fig)


def si_per_model(si, out: Path) -> None:
    import matplotlib.pyplot as plt

    si = si.sort_values(["si", "model", "defense"], ascending=[False, True, True])
    labels = [m if d == "none" else f"{m} ({d})" for m, d in zip(si["model"], si["defense"])]
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(si) + 1.2))
    ax.barh(labels, si["si"], color="#4c72b0")
    for y, v in enumerate(si["si"]):
        ax.text(v + 0.01, y, f"{v:.3f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("Safety Index (higher is safer)")
    ax.set_title(f"Safety Index per model (judge: {si['judge'].iloc[0]})", fontsize=10)
    save_png(fig, out)
    plt.close(fig)


def draw_figures(params: dict[str, Any], metrics_dir: str, out_dir: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    matplotlib.rcParams["text.parse_math"] = False  # names are drawn as written, never as TeX
    mdir, out = Path(metrics_dir), Path(out_dir)
    asr = _read_csv(mdir / "asr.csv")
    si = _read_csv(mdir / "si.csv")
    if asr.empty or si.empty:
        raise SafemtError("metrics files hold no rows", file=str(mdir))
    paths = [out / "asr_vs_turns.png", out / "si_per_model.png"]
    asr_vs_turns(asr, paths[0])
    si_per_model(si, paths[1])
    for p in paths:
        print(f"figure: {p}")
    return paths
