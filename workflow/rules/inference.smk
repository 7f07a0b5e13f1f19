if INFERENCE_JOBS == "model":

    rule infer_model:
        """Every generations file of one target (each defense and length, and the benign control set) in
        one job: the model and each defense's guard or moderator load once (workflow.inference_jobs: model)."""
        input:
            dataset=DATASET,
            benign=[LAYOUT.benign_dataset] if BENIGN_SEEDS else [],
            model=lambda wc: model_files(wc.model),
            defense_models=lambda wc: sorted({f for d in DEFENSES for f in defense_model_files(d)}),
            policies=[MODERATION.policies] if MODERATION.policies else [],
        output:
            generations=expand(LAYOUT.generations, defense=DEFENSES, turns=TURNS, allow_missing=True),
            benign=expand(LAYOUT.benign_generations, defense=DEFENSES, allow_missing=True) if BENIGN_SEEDS else [],
        params:
            config_file=PARAMS,
            cfg=lambda wc: model_params(wc.model),
            defense=lambda wc: [defense_params(d) for d in DEFENSES],
            mode=config["dialogue_mode"],  # replay or live answers: a switch reruns the answers' jobs
            benign=lambda wc, input: f"--benign-dataset {input.benign}" if input.benign else "",
        resources:
            **model_resources(lambda wc: wc.model),
        log:
            LAYOUT.log("infer/{model}.log"),
        message:
            "answering every dialogue with {wildcards.model} (progress: {log})"
        conda:
            ENV
        shell:
            "safemt infer --params {params.config_file} --model {wildcards.model} --every-file"
            " --dataset {input.dataset} {params.benign} 2> {log}"

else:

    rule infer:
        """Final-turn answers of one target model for one defense, turn length and shard (resumable journal)."""
        input:
            dataset=DATASET,
            model=lambda wc: model_files(wc.model),
            defense_models=lambda wc: defense_model_files(wc.defense),
            policies=lambda wc: [MODERATION.policies] if MODERATION.policies else [],
        output:
            LAYOUT.generation_shard,
        params:
            config_file=PARAMS,
            cfg=lambda wc: model_params(wc.model),
            defense=lambda wc: defense_params(wc.defense),
            mode=config["dialogue_mode"],
        resources:
            **model_resources(lambda wc: wc.model),
        log:
            LAYOUT.log("infer/{model}/{defense}/{turns}/{shard}-of-{n}.log"),
        conda:
            ENV
        shell:
            FOLLOW + "safemt infer --params {params.config_file} --model {wildcards.model} --defense {wildcards.defense}"
            " --turns {wildcards.turns} --shard {wildcards.shard}/{wildcards.n}"
            " --dataset {input.dataset} -o {output} 2> {log}"


    rule merge_generations:
        """One generations file per model, defense and turn length, whatever the shard count."""
        input:
            lambda wc: shard_files(wc.model, wc.defense, wc.turns),
        output:
            LAYOUT.generations,
        params:
            config_file=PARAMS,
        log:
            LAYOUT.log("merge/{model}/{defense}/{turns}.log"),
        conda:
            ENV
        shell:
            "safemt merge --params {params.config_file} -i {input} -o {output} > {log} 2>&1"
