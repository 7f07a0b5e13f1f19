rule figures:
    """The paper's figures, redrawn from the metrics of the judge named in params (figures.judge)."""
    input:
        asr=f"results/metrics/{FIGURE_JUDGE}/asr.csv",
        si=f"results/metrics/{FIGURE_JUDGE}/si.csv",
    output:
        FIGURES,
    params:
        config_file=PARAMS,
        metrics_dir=lambda wc, input: os.path.dirname(input.asr),
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    log:
        "results/logs/figures.log",
    conda:
        ENV
    shell:
        "safemt figures --params {params.config_file} -i {params.metrics_dir} -o {params.out_dir} > {log} 2>&1"
