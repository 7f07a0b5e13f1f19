"""One figure style for every paper figure: seaborn's paper context, a colour-blind-safe palette,
sized for one column of a two-column paper, saved as PNG and PDF without run-dependent metadata."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from safemt.files import atomic_write_bytes

COLUMN_WIDTH_IN = 3.3  # one column of an ACL / two-column paper (about 8.4 cm)
PALETTE = "colorblind"  # seaborn's colour-blind-safe qualitative palette (Okabe-Ito-like)
SEQUENTIAL = "viridis"  # perceptually uniform, readable in grey and by colour-blind readers
DPI = 300
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DASHES = ["-", "--", "-.", ":"]
PNG_METADATA = {"Software": None}  # no version strings: same data, same bytes
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}


def apply() -> None:
    """Set the style once per process (matplotlib's Agg backend: files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=0.9,
                  rc={"pdf.fonttype": 42, "ps.fonttype": 42, "axes.titlesize": 8, "legend.fontsize": 6.5,
                      "legend.title_fontsize": 7, "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
                      "svg.hashsalt": "safemt",
                      "text.parse_math": False})  # names are drawn as written, never as TeX


def colors(n: int) -> list[Any]:
    import seaborn as sns

    return sns.color_palette(PALETTE, n)


def save_png(fig: Any, path: Path, dpi: int = 120) -> None:
    """PNG without version metadata (same data, same bytes), written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_METADATA, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def save(fig: Any, out_dir: Path, name: str, pdf_dir: Path | None = None) -> list[Path]:
    """NAME.png (300 dpi) in OUT_DIR and NAME.pdf (vector, fonts embedded) in PDF_DIR, both byte-stable."""
    import matplotlib.pyplot as plt

    png, pdf = out_dir / f"{name}.png", (pdf_dir or out_dir) / f"{name}.pdf"
    save_png(fig, png, dpi=DPI)
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf", metadata=PDF_METADATA, bbox_inches="tight")
    atomic_write_bytes(pdf, buf.getvalue())
    plt.close(fig)
    return [png, pdf]
