rule tiny_models:
    """Tiny seeded models for the offline default (same bytes on every build)."""
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
