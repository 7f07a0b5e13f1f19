rule infer:
    """Final-turn answers of one target model, per defense and turn length (resumable journal)."""
    input:
        dataset=DATASET,
        model=lambda wc: model_files(wc.model),
    output:
        "results/generations/{model}/{defense}/{turns}.jsonl",
    params:
        cfg=lambda wc: model_params(wc.model),
    resources:
        gpu=lambda wc: MODELS[wc.model].get("gpus", 0),
    log:
        "results/logs/infer/{model}/{defense}/{turns}.log",
    shell:
        "safemt infer --params {PARAMS} --model {wildcards.model} --defense {wildcards.defense}"
        " --turns {wildcards.turns} --dataset {input.dataset} -o {output} 2> {log}"
