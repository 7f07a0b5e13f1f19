rule judge:
    """Labels for frozen generations: changing the judge never regenerates responses."""
    input:
        dataset=DATASET,
        generations=LAYOUT.generations,
        prompt=lambda wc: [JUDGES[wc.judge]["prompt_file"]] if JUDGES[wc.judge].get("prompt_file") else [],
    output:
        LAYOUT.judgments,
    params:
        config_file=PARAMS,
        cfg=lambda wc: judge_params(wc.judge),
    resources:
        **model_resources(lambda wc: JUDGES[wc.judge].get("model")),
    log:
        LAYOUT.log("judge/{judge}/{model}/{defense}/{turns}.log"),
    conda:
        ENV
    shell:
        "safemt judge --params {params.config_file} --judge {wildcards.judge} --dataset {input.dataset}"
        " -i {input.generations} -o {output} > {log} 2>&1"
