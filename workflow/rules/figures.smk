rule figures:
    """The paper's figures, redrawn from the metrics of the judge named in params (figures.judge)."""
    input:
        f"results/metrics/{FIGURE_JUDGE}/asr.csv",
        f"results/metrics/{FIGURE_JUDGE}/si.csv",
    output:
        FIGURES,
    log:
        "results/logs/figures.log",
    shell:
        "safemt figures --params {PARAMS} -i results/metrics/{FIGURE_JUDGE} -o results/figures > {log} 2>&1"
