rule metrics:
    """ASR per turn length with bootstrap CIs and the Safety Index, for one judge."""
    input:
        lambda wc: expand("results/judgments/{judge}/{model}/{defense}/{turns}.jsonl",
                          judge=wc.judge, model=TARGETS, defense=DEFENSES, turns=TURNS),
    output:
        summary="results/metrics/{judge}/summary.json",
        asr="results/metrics/{judge}/asr.csv",
        si="results/metrics/{judge}/si.csv",
        by_scenario="results/metrics/{judge}/asr_by_scenario.csv",
        by_method="results/metrics/{judge}/asr_by_method.csv",
    params:
        config_file=PARAMS,
        out_dir=lambda wc, output: os.path.dirname(output.summary),
        cfg=json.dumps({"metrics": config.get("metrics", {}), "turns": TURNS}, sort_keys=True),
    log:
        "results/logs/metrics/{judge}.log",
    conda:
        ENV
    shell:
        "safemt metrics --params {params.config_file} -i {input} -o {params.out_dir} > {log} 2>&1"


rule judge_agreement:
    """Cohen's kappa and raw agreement between every pair of judges (needs two or more judges)."""
    input:
        expand("results/judgments/{judge}/{model}/{defense}/{turns}.jsonl",
               judge=METRIC_JUDGES, model=TARGETS, defense=DEFENSES, turns=TURNS),
    output:
        "results/metrics/judge_agreement.csv",
    params:
        config_file=PARAMS,
    log:
        "results/logs/metrics/judge_agreement.log",
    conda:
        ENV
    shell:
        "safemt agreement --params {params.config_file} -i {input} -o {output} > {log} 2>&1"
