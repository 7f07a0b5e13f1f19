rule tiny_models:
    """The offline default's tiny trained models, copied from resources/planted/ after a sha256 check."""
    input:
        "resources/planted/SHA256SUMS.json",
    output:
        directory(TINY_MODELS),
    params:
        config_file=PARAMS,
    log:
        LAYOUT.log("tiny_models.log"),
    conda:
        ENV
    shell:
        "safemt models tiny --params {params.config_file} -o {output} > {log} 2>&1"
