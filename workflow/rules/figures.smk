rule figures:
    """The paper's figures, redrawn from the metrics of the judge named in params (figures.judge)."""
    input:
        asr=LAYOUT.metrics_file(METRICS_FILES["asr"]).format(judge=FIGURE_JUDGE),
        si=LAYOUT.metrics_file(METRICS_FILES["si"]).format(judge=FIGURE_JUDGE),
    output:
        FIGURES,
    params:
        config_file=PARAMS,
        metrics_dir=lambda wc, input: os.path.dirname(input.asr),
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    log:
        LAYOUT.log("figures.log"),
    conda:
        ENV
    shell:
        "safemt figures --params {params.config_file} -i {params.metrics_dir} -o {params.out_dir} > {log} 2>&1"
