# Live dialogues (docs/live.md): the cell named in `live:` answered turn by turn by the target itself,
# judged by every metrics judge (every turn's answers too with live.judge_every_turn), and compared
# with the replay grid's ASR. Paths come from safemt.layout; logic lives in safemt.stages.live.

LIVE = config["live"]
LIVE_MODELS = live_models(config)
LIVE_DEFENSES = live_defenses(config)
LIVE_TURNS = live_turns(config)
LIVE_EVERY_TURN = LIVE["judge_every_turn"]


def live_generations(model):
    return expand(LAYOUT.live_generations, model=model, defense=LIVE_DEFENSES, turns=LIVE_TURNS)


def live_metrics_files():
    return [LAYOUT.metrics_file(name).format(judge=j) for j in METRIC_JUDGES for name in LIVE_FILES.values()] \
        if LIVE_CELL else []


def live_judged(judge, model):
    """(dialogues, generations, judgments) triples the live judge job labels, in one order."""
    cells = [(d, k) for d in LIVE_DEFENSES for k in LIVE_TURNS]
    pairs = [(LAYOUT.live_generations.format(model=model, defense=d, turns=k),
              LAYOUT.live_judgments.format(judge=judge, model=model, defense=d, turns=k)) for d, k in cells]
    triples = [(live_dialogues_file(path), path, judged) for path, judged in pairs]
    if LIVE_EVERY_TURN:
        triples += [(live_dialogues_file(path), live_turns_file(path), live_turns_file(judged)) for path, judged in pairs]
    return triples


def live_outputs(pattern, models, every_turn=False):
    """PATTERN filled for the live cell of MODELS (None: keep {model} a wildcard); with EVERY_TURN also
    the per-turn files beside them."""
    fill = {"model": models} if models is not None else {}
    files = expand(pattern, defense=LIVE_DEFENSES, turns=LIVE_TURNS, allow_missing=True, **fill)
    return files + ([live_turns_file(p) for p in files] if every_turn else [])


# `workflow.inference_jobs: model` (local): one job answers the whole live cell and one job per judge
# labels it (a job start costs more than the cell's tiny work); `file` (cluster): one job per target.
LIVE_JOB_MODELS = LIVE_MODELS if INFERENCE_JOBS == "model" else None


def _live_models(wc):
    return [wc.model] if LIVE_JOB_MODELS is None else LIVE_MODELS


rule infer_live:
    """Live answers of the cell's targets (each live defense and length): the final answers, every
    turn's answers and the transcripts; a model and each defense's guard or moderator load once."""
    input:
        dataset=DATASET,
        model=lambda wc: sorted({f for m in _live_models(wc) for f in model_files(m)}),
        defense_models=lambda wc: sorted({f for d in LIVE_DEFENSES for f in defense_model_files(d)}),
        policies=[MODERATION.policies] if MODERATION.policies else [],
    output:
        generations=live_outputs(LAYOUT.live_generations, LIVE_JOB_MODELS),
        turns=[live_turns_file(p) for p in live_outputs(LAYOUT.live_generations, LIVE_JOB_MODELS)],
        dialogues=[live_dialogues_file(p) for p in live_outputs(LAYOUT.live_generations, LIVE_JOB_MODELS)],
    params:
        config_file=PARAMS,
        cfg=lambda wc: [model_params(m) for m in _live_models(wc)],
        defense=lambda wc: [defense_params(d) for d in LIVE_DEFENSES],
        models=lambda wc: " ".join(f"--model {m}" for m in _live_models(wc)),
    resources:
        **model_resources(lambda wc: _live_models(wc)[0]),
    log:
        LAYOUT.log("infer_live/{model}.log" if LIVE_JOB_MODELS is None else "infer_live/all.log"),
    message:
        "answering the live cell, every turn (progress: {log})"
    conda:
        ENV
    shell:
        "safemt infer --params {params.config_file} {params.models} --live-cell --dataset {input.dataset} 2> {log}"


def _live_judged(wc):
    return [t for m in _live_models(wc) for t in live_judged(wc.judge, m)]


rule judge_live:
    """One judge's labels of the live answers (final turns; every turn with judge_every_turn), each
    file judged against its own transcripts."""
    input:
        dialogues=lambda wc: [d for d, _, _ in _live_judged(wc)],
        generations=lambda wc: [g for _, g, _ in _live_judged(wc)],
        prompt=lambda wc: [JUDGES[wc.judge]["prompt_file"]] if JUDGES[wc.judge].get("prompt_file") else [],
    output:
        live_outputs(LAYOUT.live_judgments, LIVE_JOB_MODELS, LIVE_EVERY_TURN),
    params:
        config_file=PARAMS,
        cfg=lambda wc: judge_params(wc.judge),
        outputs=lambda wc: " ".join(o for _, _, o in _live_judged(wc)),
    resources:
        **model_resources(lambda wc: JUDGES[wc.judge].get("model")),
    log:
        LAYOUT.log("judge_live/{judge}/{model}.log" if LIVE_JOB_MODELS is None else "judge_live/{judge}.log"),
    conda:
        ENV
    shell:
        FOLLOW + "safemt judge --params {params.config_file} --judge {wildcards.judge} --dataset {input.dialogues}"
        " -i {input.generations} -o {params.outputs} > {log} 2>&1"


rule live_metrics:
    """Live against replay ASR per length with CIs, the per-turn unsafe rate, the first unsafe turn."""
    input:
        finals=lambda wc: live_outputs(LAYOUT.live_judgments.replace("{judge}", wc.judge), LIVE_MODELS),
        turns=lambda wc: [live_turns_file(p) for p in live_outputs(LAYOUT.live_judgments.replace("{judge}", wc.judge),
                                                                  LIVE_MODELS)] if LIVE_EVERY_TURN else [],
        replay=LAYOUT.metrics_file(METRICS_FILES["asr"]),
    output:
        **{key: LAYOUT.metrics_file(name) for key, name in LIVE_FILES.items()},
    params:
        config_file=PARAMS,
        out_dir=lambda wc, output: os.path.dirname(output.summary),
        turns=lambda wc, input: f"--turns {' '.join(input.turns)}" if input.turns else "",
        cfg=json.dumps({"metrics": METRICS_CONFIG, "live": LIVE}, sort_keys=True),
    log:
        LAYOUT.log("metrics/{judge}.live.log"),
    conda:
        ENV
    shell:
        "safemt live-metrics --params {params.config_file} -i {input.finals} {params.turns}"
        " --replay {input.replay} -o {params.out_dir} > {log} 2>&1"


rule stage_live:
    input:
        [f for m in LIVE_MODELS for f in live_generations(m)],
        [o for j in METRIC_JUDGES for m in LIVE_MODELS for _, _, o in live_judged(j, m)],
