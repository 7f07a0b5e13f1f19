rule metrics:
    """ASR per turn length with bootstrap CIs and the Safety Index, for one judge."""
    input:
        lambda wc: expand("results/judgments/{judge}/{model}/{defense}/{turns}.jsonl",
                          judge=wc.judge, model=TARGETS, defense=DEFENSES, turns=TURNS),
    output:
        summary="results/metrics/{judge}/summary.json",
        asr="results/metrics/{judge}/asr.csv",
        si="results/metrics/{judge}/si.csv",
    params:
        cfg=json.dumps({"metrics": config.get("metrics", {}), "turns": TURNS}, sort_keys=True),
    log:
        "results/logs/metrics/{judge}.log",
    shell:
        "safemt metrics --params {PARAMS} -i {input} -o results/metrics/{wildcards.judge} > {log} 2>&1"


rule judge_agreement:
    """Cohen's kappa and raw agreement between every pair of judges (needs two or more judges)."""
    input:
        expand("results/judgments/{judge}/{model}/{defense}/{turns}.jsonl",
               judge=METRIC_JUDGES, model=TARGETS, defense=DEFENSES, turns=TURNS),
    output:
        "results/metrics/judge_agreement.csv",
    log:
        "results/logs/metrics/judge_agreement.log",
    shell:
        "safemt agreement --params {PARAMS} -i {input} -o {output} > {log} 2>&1"
