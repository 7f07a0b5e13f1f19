# Defense comparison: the benign control set (built, answered under every defense, judged for refusals)
# and the moderation table. Paths come from safemt.layout; logic lives in safemt.


rule benign_dataset:
    """Benign control dialogues from moderation.benign_seeds, same lengths and methods as the harmful ones."""
    input:
        seeds=BENIGN_SEEDS or [],
    output:
        dialogues=LAYOUT.benign_dataset,
        images=directory(LAYOUT.benign_images),
    params:
        config_file=PARAMS,
        cfg=json.dumps({"dataset": DATASET_CFG, "turns": TURNS}, sort_keys=True),
    log:
        LAYOUT.log("benign_dataset.log"),
    conda:
        ENV
    shell:
        FOLLOW + "(safemt data build {input.seeds} -o {output.dialogues} --params {params.config_file}"
        " && safemt data validate {output.dialogues} --params {params.config_file}) > {log} 2>&1"


if INFERENCE_JOBS == "file":

    rule infer_benign:
        """A target's answers to the benign dialogues (every length, one job) under one defense."""
        input:
            dataset=LAYOUT.benign_dataset,
            model=lambda wc: model_files(wc.model),
            defense_models=lambda wc: defense_model_files(wc.defense),
            policies=lambda wc: [MODERATION.policies] if MODERATION.policies else [],
        output:
            LAYOUT.benign_generations,
        params:
            config_file=PARAMS,
            cfg=lambda wc: model_params(wc.model),
            defense=lambda wc: defense_params(wc.defense),
        resources:
            gpu=lambda wc: MODELS[wc.model]["gpus"],
        log:
            LAYOUT.log("infer/{model}/{defense}/benign.log"),
        conda:
            ENV
        shell:
            FOLLOW + "safemt infer --params {params.config_file} --model {wildcards.model} --defense {wildcards.defense}"
            " --dataset {input.dataset} -o {output} 2> {log}"


rule judge_benign:
    """Refusal labels of a target's benign answers under every defense (moderation.refusal_judge), in one
    job: a refusal judge with a model loads it once."""
    input:
        dataset=LAYOUT.benign_dataset,
        generations=lambda wc: [LAYOUT.benign_generations.format(model=wc.model, defense=d) for d in DEFENSES],
    output:
        expand(LAYOUT.benign_judgments, defense=DEFENSES, allow_missing=True),
    params:
        config_file=PARAMS,
        cfg=lambda wc: judge_params(wc.judge),
    resources:
        **model_resources(lambda wc: JUDGES[wc.judge].get("model")),
    log:
        LAYOUT.log("judge/{judge}/{model}/benign.log"),
    conda:
        ENV
    shell:
        FOLLOW + "safemt judge --params {params.config_file} --judge {wildcards.judge} --dataset {input.dataset}"
        " -i {input.generations} -o {output} > {log} 2>&1"


rule moderation:
    """Target x defense x turns: ASR with CI, reduction versus none, over-refusal, flag rate, added time."""
    input:
        judgments=lambda wc: run_judgments(wc.judge),
        generations=run_generations(),
        benign_judgments=benign_judgments(),
        benign_generations=benign_generations(),
    output:
        table=LAYOUT.metrics_file(MODERATION_FILES["table"]),
        section=LAYOUT.metrics_file(MODERATION_FILES["section"]),
        latency=LAYOUT.moderation_latency,
    params:
        config_file=PARAMS,
        out_dir=lambda wc, output: os.path.dirname(output.table),
        benign=lambda wc, input: (f" --benign-judgments {' '.join(input.benign_judgments)}"
                                  f" --benign-generations {' '.join(input.benign_generations)}"
                                  if input.benign_judgments else ""),
        cfg=json.dumps({"metrics": METRICS_CONFIG, "turns": TURNS}, sort_keys=True),
    log:
        LAYOUT.log("metrics/{judge}.moderation.log"),
    conda:
        ENV
    shell:
        "safemt moderation --params {params.config_file} -i {input.judgments} -g {input.generations}"
        "{params.benign} -o {params.out_dir} --latency {output.latency} > {log} 2>&1"
