DATASET_CFG = config["dataset"]
DATASET_CARD = LAYOUT.dataset_card
DATASET_FIGURE = LAYOUT.dataset_figure
IMPORTING = DATASET_CFG["source"] == "import"
# Import reads release_dir, or by default the folder `safemt data fetch` downloads the pinned revision to.
RELEASE_SOURCE = DATASET_CFG.get("release_dir") or (DATASET_CFG.get("hub") or {}).get("local_dir")
# The classifier in the card is scored on the project's own seeds, whatever the dataset's source.
REFERENCE_SEEDS = DATASET_CFG.get("seeds") or "resources/seeds/seeds.jsonl"
# ... and on dialogues labelled by hand (resources/seeds/README.md says how).
METHOD_FIXTURE = "resources/seeds/hand_labelled_methods.jsonl"
# The pinned release is fetched by `fetch_release` when the import reads dataset.hub.local_dir (or below).
RELEASE_MANIFEST = fetched_by_workflow(config["dataset"])
GENERATOR_MODEL = DATASET_CFG.get("generator_model")
GENERATOR_INPUTS = (model_files(GENERATOR_MODEL)
                    if not IMPORTING and DATASET_CFG.get("generator") == "llm" and GENERATOR_MODEL in MODELS
                    else [])


if RELEASE_MANIFEST is not None:

    rule fetch_release:
        """The released benchmark at the revision pinned in dataset.hub (network). Offline it stops at
        once with one line saying what to download and where to put it. Runs where Snakemake runs
        (cluster nodes often have no network)."""
        localrule: True
        output:
            str(RELEASE_MANIFEST),
        params:
            config_file=PARAMS,
            cfg=json.dumps(DATASET_CFG.get("hub"), sort_keys=True),
        log:
            LAYOUT.log("fetch_release.log"),
        conda:
            ENV
        shell:
            "safemt data fetch --download-only --params {params.config_file} > {log} 2>&1"
            " || {{ tail -n 1 {log} >&2; exit 2; }}"


rule dataset:
    """Dialogues from the seeds (build) or from the released files (import, then method labels),
    then validated."""
    input:
        source=(str(RELEASE_MANIFEST) if RELEASE_MANIFEST is not None
                else RELEASE_SOURCE if IMPORTING else DATASET_CFG["seeds"]),
        generator=GENERATOR_INPUTS,
    output:
        dialogues=DATASET,
        images=directory(LAYOUT.dataset_images),
    params:
        config_file=PARAMS,
        action="import" if IMPORTING else "build",
        source=RELEASE_SOURCE if IMPORTING else DATASET_CFG["seeds"],
        classify=lambda wc, output: (
            f" && safemt data classify {output.dialogues} -o {output.dialogues} --params {PARAMS}"
            if IMPORTING else ""),
        cfg=json.dumps({"dataset": DATASET_CFG, "turns": TURNS}, sort_keys=True),
    resources:
        **model_resources(lambda wc: GENERATOR_MODEL
                          if not IMPORTING and DATASET_CFG.get("generator") == "llm" else None),
    log:
        LAYOUT.log("dataset.log"),
    conda:
        ENV
    shell:
        FOLLOW + "(safemt data {params.action} {params.source} -o {output.dialogues} --params {params.config_file}"
        "{params.classify} && safemt data validate {output.dialogues} --params {params.config_file}) > {log} 2>&1"


rule dataset_card:
    """Counts by scenario x method x turns, source shares, lengths, rejects and classifier accuracy."""
    input:
        dialogues=DATASET,
        reference=REFERENCE_SEEDS,
        fixture=METHOD_FIXTURE,
    output:
        card=DATASET_CARD,
        figure=DATASET_FIGURE,
    params:
        config_file=PARAMS,
        cfg=json.dumps({"dataset": DATASET_CFG, "turns": TURNS}, sort_keys=True),
    log:
        LAYOUT.log("dataset_card.log"),
    conda:
        ENV
    shell:
        "safemt data card {input.dialogues} -o {output.card} --figure {output.figure}"
        " --reference {input.reference} --fixture {input.fixture} --params {params.config_file} > {log} 2>&1"
