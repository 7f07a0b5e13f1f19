rule metrics:
    """ASR per turn length with bootstrap CIs and the Safety Index, for one judge (plus the moderation section)."""
    input:
        judgments=lambda wc: run_judgments(wc.judge),
        moderation=LAYOUT.metrics_file(MODERATION_FILES["section"]),
        calibration=lambda wc: calibration_section(wc.judge),
    output:
        **{key: LAYOUT.metrics_file(name) for key, name in METRICS_FILES.items()},
        scores=expand(LAYOUT.score_file, model=TARGETS, defense=DEFENSES, allow_missing=True),
    params:
        config_file=PARAMS,
        out_dir=lambda wc, output: os.path.dirname(output.summary),
        scores_dir=lambda wc: LAYOUT.scores_dir.format(judge=wc.judge),
        cfg=json.dumps({"metrics": METRICS_CONFIG, "turns": TURNS}, sort_keys=True),
        calibration=lambda wc, input: f" --calibration {input.calibration}" if input.calibration else "",
    log:
        LAYOUT.log("metrics/{judge}.log"),
    conda:
        ENV
    shell:
        "safemt metrics --params {params.config_file} -i {input.judgments} --moderation {input.moderation}"
        " -o {params.out_dir} --scores {params.scores_dir}{params.calibration} > {log} 2>&1"


if GRADED:

    use rule metrics as metrics_graded with:
        output:
            **{key: LAYOUT.metrics_file(name) for key, name in METRICS_FILES.items()},
            graded=LAYOUT.metrics_file(GRADED_FILE),
            scores=expand(LAYOUT.score_file, model=TARGETS, defense=DEFENSES, allow_missing=True),
        wildcard_constraints:
            judge="|".join(re.escape(j) for j in GRADED),

    # a graded judge's metrics job also writes asr_graded.csv (hard and soft ASR): this rule declares it
    ruleorder: metrics_graded > metrics


rule calibrate:
    """ASR and SI of one judge corrected for its errors against its gold labels (metrics.calibration)."""
    input:
        judgments=lambda wc: run_judgments(wc.judge),
        gold=lambda wc: calibration_gold(wc.judge),
    output:
        **{key: LAYOUT.metrics_file(name) for key, name in CALIBRATION_FILES.items()},
    params:
        config_file=PARAMS,
        out_dir=lambda wc, output: os.path.dirname(output.section),
        # every metrics option the corrected rates read (si_labels, provider_refusals, the SI's), so a
        # change reruns this job with the metrics job; the judge list alone does not
        cfg=lambda wc: json.dumps({"calibration": config["metrics"]["calibration"][wc.judge], "turns": TURNS,
                                   "metrics": {k: v for k, v in METRICS_CONFIG.items() if k != "judges"}},
                                  sort_keys=True),
    log:
        LAYOUT.log("metrics/{judge}.calibrate.log"),
    conda:
        ENV
    shell:
        "safemt gold calibrate --params {params.config_file} --judge {wildcards.judge} -i {input.judgments}"
        " -o {params.out_dir} > {log} 2>&1"


rule judge_agreement:
    """Cohen's kappa and raw agreement between every pair of judges (needs two or more judges)."""
    input:
        [f for j in METRIC_JUDGES for f in run_judgments(j)],
    output:
        LAYOUT.judge_agreement,
        agreement_extras(),
    params:
        config_file=PARAMS,
    log:
        LAYOUT.log("metrics/judge_agreement.log"),
    conda:
        ENV
    shell:
        "safemt agreement --params {params.config_file} -i {input} -o {output[0]} > {log} 2>&1"
