DATASET_CFG = config["dataset"]


rule dataset:
    """Dialogues from the seeds (build) or from the released files (import), then validated."""
    input:
        DATASET_CFG["seeds"] if DATASET_CFG["source"] == "build" else DATASET_CFG["release_dir"],
    output:
        dialogues=DATASET,
        images=directory("results/dataset/images"),
    params:
        action="build" if DATASET_CFG["source"] == "build" else "import",
        cfg=json.dumps({"dataset": DATASET_CFG, "turns": TURNS}, sort_keys=True),
    log:
        "results/logs/dataset.log",
    shell:
        "(safemt data {params.action} {input} -o {output.dialogues} --params {PARAMS}"
        " && safemt data validate {output.dialogues} --params {PARAMS}) > {log} 2>&1"
