"""The paper's figures, each drawn from tidy CSVs of a metrics folder (nothing upstream reruns).

Always: ASR vs turns, SI per model, ASR by scenario, ASR by method x turns, dataset composition.
When their data exist: moderator vs guards (moderation.csv) and judge agreement (judge_agreement.csv
beside the judge folders, two or more judges), raw vs judge-corrected ASR (asr_corrected.csv, a judge
with gold labels). Every figure is written as PNG and PDF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from safemt.errors import SafemtError
from safemt.figures import style
from safemt.figures.style import COLUMN_WIDTH_IN
from safemt.files import metrics_file
from safemt.layout import AGREEMENT_FILE, CALIBRATION_FILES, LIVE_FILES, METRICS_FILES, MODERATION_FILE, OptionalMetrics

# Width each figure is drawn for: one column, or both columns of a two-column paper.
WIDTH_COLUMNS = {"asr_vs_turns": 1, "si_per_model": 1, "asr_by_scenario": 1, "asr_by_method": 1,
                 "moderation": 2, "dataset_composition": 2, "judge_agreement": 1,
                 "replay_vs_live": 2, "asr_corrected": 2}
# One sentence per figure, for the Snakemake and HTML reports (docs/figures-and-tables.md lists the figures).
CAPTIONS = {
    "asr_vs_turns": "Attack success rate (ASR) against the number of dialogue turns, one line per target "
                    "model (no defense), with 95% bootstrap confidence bands over dialogues.",
    "si_per_model": "Safety Index (SI = S1 x S2, higher is safer) per model, sorted, with 95% bootstrap "
                    "intervals over dialogue ids.",
    "asr_by_scenario": "ASR per target model and scenario, pooled over turn lengths (no defense); "
                       "darker cells are less safe.",
    "asr_by_method": "ASR by jailbreak method and turn length, pooled over target models (no defense); "
                     "1-turn dialogues ask the question directly.",
    "moderation": "Moderator versus guards: ASR (left) and over-refusal on benign dialogues (right) per "
                  "target and defense, pooled over turn lengths, with 95% intervals.",
    "dataset_composition": "Dialogues judged, by scenario and jailbreak method (left) and by turn length "
                           "and method (right).",
    "judge_agreement": "Cohen's kappa between every pair of judges over the items both labelled safe or "
                       "unsafe.",
    "replay_vs_live": "ASR of the final answer by dialogue length, one panel per target: replay (the dataset's "
                      "assistant turns) against live (the target answers every turn), with 95% bootstrap intervals.",
    "asr_corrected": "ASR by dialogue length as the judge reports it (raw) and corrected for the judge's error "
                     "rates measured on gold labels, one panel per target (no defense), with 95% intervals "
                     "(the corrected one covers the gold slice's uncertainty too).",
}


def read_csv(path: Path):
    import pandas as pd

    df = pd.read_csv(metrics_file(path), keep_default_na=True)
    if df.empty:
        raise SafemtError("metrics file holds no rows", file=str(path))
    return df


def _label(model: str, defense: str) -> str:
    return model if defense == "none" else f"{model} ({defense})"


def _headline(df):
    """Rows without a defense when there are any (the figures that compare models use those)."""
    plain = df[df["defense"] == "none"]
    return plain if not plain.empty else df


def _pooled(df, by: list[str]):
    """ASR pooled over the rows of each group: sum of unsafe over sum of valid labels."""
    g = df.groupby(by, sort=True)[["unsafe", "n"]].sum().reset_index()
    g["asr"] = g["unsafe"] / g["n"].where(g["n"] > 0)
    return g


def asr_vs_turns(asr, judge: str):
    import matplotlib.pyplot as plt

    asr = _headline(asr)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.3))
    groups = list(asr.groupby(["model", "defense"], sort=True))
    for i, (color, ((model, defense), g)) in enumerate(zip(style.colors(len(groups)), groups)):
        g = g.sort_values("turns")
        # a marker shape and dash per model as well as a colour: lines that coincide stay distinguishable
        ax.plot(g["turns"], g["asr"], marker=style.MARKERS[i % len(style.MARKERS)], ms=4, mfc="none",
                lw=1.2, ls=style.DASHES[i % len(style.DASHES)], color=color, label=_label(model, defense))
        if g["ci_low"].notna().any():
            ax.fill_between(g["turns"], g["ci_low"], g["ci_high"], alpha=0.18, color=color, lw=0)
    ax.set_xlabel("dialogue turns")
    ax.set_ylabel("attack success rate")
    ax.set_xticks(sorted(asr["turns"].unique()))
    ax.set_ylim(-0.02, 1.02)
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    ax.set_title(f"ASR vs turns (judge: {judge})")
    return fig


def si_per_model(si, judge: str):
    import matplotlib.pyplot as plt
    import numpy as np

    si = si.sort_values(["si", "model", "defense"], ascending=[False, True, True]).reset_index(drop=True)
    labels = [_label(m, d) for m, d in zip(si["model"], si["defense"])]
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 0.28 * len(si) + 0.9))
    color = style.colors(1)[0]
    y = np.arange(len(si))
    has_ci = si["si_lo"].notna()
    err = np.array([(si["si"] - si["si_lo"]).where(has_ci, 0), (si["si_hi"] - si["si"]).where(has_ci, 0)])
    ax.barh(y, si["si"], color=color, xerr=err, error_kw={"lw": 0.8, "capsize": 2})
    for yi, v in zip(y, si["si"]):
        ax.text(0.01, yi, f"{v:.3f}", va="center", ha="left", fontsize=6, color="white" if v > 0.15 else "black")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("Safety Index (higher is safer)")
    ax.set_title(f"Safety Index per model (judge: {judge})")
    return fig


def asr_by_scenario(by_scenario, judge: str):
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = _headline(by_scenario).copy()
    df["target"] = [_label(m, d) for m, d in zip(df["model"], df["defense"])]
    table = _pooled(df, ["scenario", "target"]).pivot(index="scenario", columns="target", values="asr")
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN * 0.9, 0.17 * len(table) + 1.0))
    sns.heatmap(table, ax=ax, vmin=0, vmax=1, cmap=style.SEQUENTIAL, annot=table.shape[1] <= 6, fmt=".2f",
                annot_kws={"fontsize": 5}, cbar_kws={"label": "ASR", "shrink": 0.8}, linewidths=0.3)
    ax.set_xlabel("target model")
    ax.set_ylabel("")
    ax.tick_params(axis="x", rotation=30, labelsize=6)
    ax.tick_params(axis="y", labelsize=6)
    ax.grid(False)
    ax.set_title(f"ASR by scenario (judge: {judge})")
    return fig


def asr_by_method(by_method, judge: str):
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = _headline(by_method).copy()
    df["method"] = df["method"].fillna("none").replace({"none": "direct"})
    table = _pooled(df, ["method", "turns"]).pivot(index="method", columns="turns", values="asr")
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 0.3 * len(table) + 0.9))
    sns.heatmap(table, ax=ax, vmin=0, vmax=1, cmap=style.SEQUENTIAL, annot=True, fmt=".2f",
                annot_kws={"fontsize": 6}, cbar_kws={"label": "ASR"}, linewidths=0.3)
    ax.set_xlabel("dialogue turns")
    ax.set_ylabel("jailbreak method")
    ax.tick_params(axis="y", rotation=0)
    ax.grid(False)
    ax.set_title(f"ASR by method and turns (judge: {judge})")
    return fig


def moderation(mod, judge: str):
    """Pooled rows (turns: all) when present, else the per-length rows pooled by n (no intervals)."""
    import matplotlib.pyplot as plt
    import numpy as np

    import pandas as pd

    from safemt.metrics.moderation import pooled_moderation

    rows = mod.astype(object).where(mod.notna(), "").astype(str).to_dict("records")
    pooled = pd.DataFrame(pooled_moderation(rows))
    if pooled.empty:
        raise SafemtError(f"{MODERATION_FILE} holds no rows")
    for col in ("asr", "asr_lo", "asr_hi", "over_refusal", "over_refusal_lo", "over_refusal_hi"):
        pooled[col] = pd.to_numeric(pooled[col], errors="coerce")
    targets = sorted(pooled["target"].unique())
    defenses = list(dict.fromkeys(["none", *sorted(pooled["defense"].unique())]))
    defenses = [d for d in defenses if d in set(pooled["defense"])]
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH_IN, 0.35 * len(targets) * len(defenses) / 2 + 1.4),
                             sharey=True)
    width = 0.8 / len(defenses)
    y = np.arange(len(targets))
    for ax, (col, title) in zip(axes, (("asr", "attack success rate"), ("over_refusal", "over-refusal (benign)"))):
        for j, (defense, color) in enumerate(zip(defenses, style.colors(len(defenses)))):
            rows = pooled[pooled["defense"] == defense].set_index("target").reindex(targets)
            v, lo, hi = rows[col], rows[f"{col}_lo"], rows[f"{col}_hi"]
            err = np.array([(v - lo).fillna(0).clip(lower=0), (hi - v).fillna(0).clip(lower=0)])
            ax.barh(y + j * width - 0.4 + width / 2, v.fillna(0), height=width, color=color, label=defense,
                    xerr=err, error_kw={"lw": 0.6, "capsize": 1.5})
        ax.set_xlim(0, 1.05)
        ax.set_xlabel(title)
    axes[0].set_yticks(y, targets)
    axes[0].invert_yaxis()
    axes[1].legend(frameon=False, title="defense", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Moderator vs guards (judge: {judge})", fontsize=8)
    return fig


def dataset_composition(comp, judge: str):
    import matplotlib.pyplot as plt

    comp = comp.copy()
    comp["method"] = comp["method"].fillna("none").replace({"none": "direct"})
    methods = sorted(comp["method"].unique(), key=lambda m: (m != "direct", m))
    by_scenario = comp.pivot_table(index="scenario", columns="method", values="dialogues", aggfunc="sum",
                                   fill_value=0).reindex(columns=methods, fill_value=0)
    by_turns = comp.pivot_table(index="turns", columns="method", values="dialogues", aggfunc="sum",
                                fill_value=0).reindex(columns=methods, fill_value=0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH_IN, 0.14 * len(by_scenario) + 1.2),
                             gridspec_kw={"width_ratios": [1.4, 1]})
    palette = dict(zip(methods, style.colors(len(methods))))
    by_scenario.plot.barh(stacked=True, ax=axes[0], color=[palette[m] for m in methods], legend=False, width=0.8)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("dialogues")
    axes[0].set_ylabel("")
    axes[0].tick_params(axis="y", labelsize=6)
    by_turns.plot.bar(stacked=True, ax=axes[1], color=[palette[m] for m in methods], width=0.7)
    axes[1].set_xlabel("dialogue turns")
    axes[1].set_ylabel("dialogues")
    axes[1].tick_params(axis="x", rotation=0)
    axes[1].legend(frameon=False, title="method", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Dataset: {int(comp['dialogues'].sum())} dialogues", fontsize=8)
    return fig


def judge_agreement(agree, judge: str):
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    overall = agree[agree["scenario"] == "(all)"]
    judges = sorted(set(overall["judge_a"]) | set(overall["judge_b"]))
    table = pd.DataFrame(1.0, index=judges, columns=judges)
    for _, r in overall.iterrows():
        table.loc[r["judge_a"], r["judge_b"]] = table.loc[r["judge_b"], r["judge_a"]] = r["kappa"]
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 0.35 * len(judges) + 1.2))
    sns.heatmap(table.astype(float), ax=ax, vmin=-1, vmax=1, cmap="vlag_r", annot=True, fmt=".2f",
                annot_kws={"fontsize": 7}, square=True, cbar_kws={"label": "Cohen's kappa"}, linewidths=0.3)
    ax.tick_params(axis="x", rotation=30)
    ax.tick_params(axis="y", rotation=0)
    ax.grid(False)
    ax.set_title("Judge agreement (Cohen's kappa)")
    return fig


def replay_vs_live(live, judge: str):
    """ASR of the final answer by length, replay against live, one panel per model (its live cells'
    defenses as separate lines), with 95% bootstrap intervals."""
    import matplotlib.pyplot as plt

    live = live[live["turns"].notna()]
    models = sorted(live["model"].unique())
    cols = min(3, max(1, len(models)))
    rows_n = -(-len(models) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(COLUMN_WIDTH_IN * cols * 0.6 + 0.4, 2.0 * rows_n + 0.3),
                             sharey=True, squeeze=False)
    modes = dict(zip(["replay", "live"], zip(["-", "--"], style.colors(2))))
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models):
        rows = live[live["model"] == model]
        groups = list(rows.groupby(["defense", "mode"], sort=True))
        defenses = sorted(rows["defense"].unique())
        markers = {d: style.MARKERS[i % len(style.MARKERS)] for i, d in enumerate(defenses)}
        for (defense, mode), g in groups:
            g = g.sort_values("turns")
            dash, color = modes.get(mode, (":", "grey"))
            marker = markers[defense]
            lo = (g["asr"] - g["ci_low"]).clip(lower=0)
            hi = (g["ci_high"] - g["asr"]).clip(lower=0)
            ax.errorbar(g["turns"], g["asr"], yerr=[lo.fillna(0), hi.fillna(0)], ls=dash, marker=marker, ms=4,
                        mfc="none", lw=1.2, capsize=2, color=color, label=f"{mode}" + (
                            "" if defense == "none" else f" ({defense})"))
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("dialogue turns")
        ax.set_xticks(sorted(rows["turns"].unique()))
        ax.set_ylim(-0.03, 1.03)
    for row in axes:
        row[0].set_ylabel("ASR (final answer)")
    axes.flat[len(models) - 1].legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Replay vs live dialogues (judge: {judge})", fontsize=8, y=1.04)
    return fig


def asr_corrected(corrected, judge: str):
    """Raw against corrected ASR by length, one panel per model (no defense), each with its interval; a
    cell that could not be corrected has no corrected point."""
    import matplotlib.pyplot as plt

    corrected = _headline(corrected)
    models = sorted(corrected["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(COLUMN_WIDTH_IN * max(1, len(models)) * 0.6 + 0.4, 2.3),
                             sharey=True, squeeze=False)
    raw_color, corrected_color = style.colors(2)
    for ax, model in zip(axes[0], models):
        g = corrected[corrected["model"] == model].sort_values("turns")
        for column, low, high, color, dash, label in (
                ("asr", "raw_ci_low", "raw_ci_high", raw_color, "-", "raw"),
                ("asr_corrected", "ci_low", "ci_high", corrected_color, "--", "corrected")):
            y = g[column]
            lo = (y - g[low]).clip(lower=0).fillna(0)
            hi = (g[high] - y).clip(lower=0).fillna(0)
            ax.errorbar(g["turns"], y, yerr=[lo, hi], ls=dash, marker="o" if label == "raw" else "s", ms=4,
                        mfc="none", lw=1.2, capsize=2, color=color, label=label)
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("dialogue turns")
        ax.set_xticks(sorted(g["turns"].unique()))
        ax.set_ylim(-0.03, 1.03)
    axes[0][0].set_ylabel("attack success rate")
    axes[0][-1].legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Raw vs judge-corrected ASR (judge: {judge})", fontsize=8, y=1.04)
    return fig


def with_raw_intervals(corrected, asr):
    """The corrected rows with the raw ASR's bootstrap interval (asr.csv) beside them."""
    keys = ["model", "defense", "turns"]
    raw = asr[keys + ["ci_low", "ci_high"]].rename(columns={"ci_low": "raw_ci_low", "ci_high": "raw_ci_high"})
    return corrected.merge(raw, on=keys, how="left")


def sources(mdir: Path) -> dict[str, tuple[Path, Callable[..., Any], bool]]:
    """Figure name -> (CSV it reads, drawing function, whether the CSV is required)."""
    return {
        "asr_vs_turns": (mdir / METRICS_FILES["asr"], asr_vs_turns, True),
        "si_per_model": (mdir / METRICS_FILES["si_ci"], si_per_model, True),
        "asr_by_scenario": (mdir / METRICS_FILES["by_scenario"], asr_by_scenario, True),
        "asr_by_method": (mdir / METRICS_FILES["by_method"], asr_by_method, True),
        "moderation": (mdir / MODERATION_FILE, moderation, False),
        "dataset_composition": (mdir / METRICS_FILES["composition"], dataset_composition, True),
        "judge_agreement": (mdir.parent / AGREEMENT_FILE, judge_agreement, False),
        "replay_vs_live": (mdir / LIVE_FILES["asr"], replay_vs_live, False),
        "asr_corrected": (mdir / CALIBRATION_FILES["asr"], asr_corrected, False),
    }


def draw_figures(metrics_dir: str, out_dir: str, pdf_dir: str | None = None,
                 optional: OptionalMetrics | None = None) -> list[Path]:
    """Every figure of the run (PNG in OUT_DIR, PDF in PDF_DIR, default OUT_DIR; OPTIONAL: the optional
    files the run made, None: whatever the folder holds); every CSV is read before anything is written."""
    style.apply()
    mdir, out = Path(metrics_dir), Path(out_dir)
    pdf = Path(pdf_dir) if pdf_dir else out
    plan = sources(mdir)
    made = optional or OptionalMetrics.found(mdir)
    drawn = {f.rsplit(".", 1)[0] for f in made.figure_files()}
    frames = {name: read_csv(path) for name, (path, _, required) in plan.items() if required or name in drawn}
    judge = str(frames["asr_vs_turns"]["judge"].iloc[0])
    if "asr_corrected" in frames:
        frames["asr_corrected"] = with_raw_intervals(frames["asr_corrected"], frames["asr_vs_turns"])
    paths: list[Path] = []
    for name, (_, draw, _) in plan.items():
        if name not in frames:
            print(f"figure {name}: skipped (the run makes no {plan[name][0].name})")
            continue
        paths += style.save(draw(frames[name], judge), out, name, pdf)
        print(f"figure: {out / name}.png, {pdf / name}.pdf")
    return paths
