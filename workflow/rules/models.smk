rule tiny_models:
    """Tiny seeded models for the offline default (same bytes on every build)."""
    output:
        directory(TINY_MODELS),
    log:
        "results/logs/tiny_models.log",
    shell:
        "safemt models tiny --params {PARAMS} -o {output} > {log} 2>&1"
