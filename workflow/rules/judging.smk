rule judge:
    """Labels for frozen generations: changing the judge never regenerates responses. One job per judge
    and target model labels all of that model's files (every defense and turn length), so a local judge
    model is loaded once per job; it requests the GPUs of the judge's model."""
    input:
        dataset=DATASET,
        generations=lambda wc: [g for d in DEFENSES for g in generations(wc.model, d)],
        prompt=lambda wc: [JUDGES[wc.judge]["prompt_file"]] if JUDGES[wc.judge].get("prompt_file") else [],
    output:
        expand(LAYOUT.judgments, defense=DEFENSES, turns=TURNS, allow_missing=True),
    params:
        config_file=PARAMS,
        cfg=lambda wc: judge_params(wc.judge),
        # dialogue_mode: live: each file is judged against its transcripts (written beside it by infer)
        dataset=lambda wc, input: (" ".join(live_dialogues_file(g) for g in input.generations)
                                   if config["dialogue_mode"] == "live" else input.dataset),
    resources:
        **model_resources(lambda wc: JUDGES[wc.judge].get("model")),
    log:
        LAYOUT.log("judge/{judge}/{model}.log"),
    conda:
        ENV
    shell:
        FOLLOW + "safemt judge --params {params.config_file} --judge {wildcards.judge} --dataset {params.dataset}"
        " -i {input.generations} -o {output} > {log} 2>&1"
