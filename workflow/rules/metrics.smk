rule metrics:
    """ASR per turn length with bootstrap CIs and the Safety Index, for one judge."""
    input:
        lambda wc: expand(LAYOUT.judgments, judge=wc.judge, model=TARGETS, defense=DEFENSES, turns=TURNS),
    output:
        **{key: LAYOUT.metrics_file(name) for key, name in METRICS_FILES.items()},
        scores=directory(LAYOUT.scores_dir),
    params:
        config_file=PARAMS,
        out_dir=lambda wc, output: os.path.dirname(output.summary),
        cfg=json.dumps({"metrics": config.get("metrics", {}), "turns": TURNS}, sort_keys=True),
    log:
        LAYOUT.log("metrics/{judge}.log"),
    conda:
        ENV
    shell:
        "safemt metrics --params {params.config_file} -i {input} -o {params.out_dir} --scores {output.scores}"
        " > {log} 2>&1"


rule judge_agreement:
    """Cohen's kappa and raw agreement between every pair of judges (needs two or more judges)."""
    input:
        expand(LAYOUT.judgments, judge=METRIC_JUDGES, model=TARGETS, defense=DEFENSES, turns=TURNS),
    output:
        LAYOUT.judge_agreement,
    params:
        config_file=PARAMS,
    log:
        LAYOUT.log("metrics/judge_agreement.log"),
    conda:
        ENV
    shell:
        "safemt agreement --params {params.config_file} -i {input} -o {output} > {log} 2>&1"
