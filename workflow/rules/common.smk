# Names and paths shared by the rules; no logic beyond wiring config to file names.

import json
import os

MODELS = config["models"]
TARGETS = config["targets"]
TURNS = config["turns"]
DEFENSES = config.get("defenses", ["none"])
JUDGES = config["judges"]
METRIC_JUDGES = config.get("metrics", {}).get("judges", list(JUDGES))
FIGURE_JUDGE = config.get("figures", {}).get("judge", METRIC_JUDGES[0])

ENV = "../envs/safemt.yaml"
DATASET = "results/dataset/dialogues.jsonl"
TINY_MODELS = "resources/models"
FIGURES = ["results/figures/asr_vs_turns.png", "results/figures/si_per_model.png"]


wildcard_constraints:
    model="[^/]+",
    defense="[^/]+",
    judge="[^/]+",
    turns=r"\d+",
    shard=r"\d+",
    n=r"\d+",


def model_files(name):
    """Local tiny models are built by the `tiny_models` rule; hub models need no input file."""
    path = MODELS[name].get("path", "")
    return [TINY_MODELS] if path.startswith(f"{TINY_MODELS}/") else []


def model_params(name):
    """Serialised model config: a change reruns that model's jobs (Snakemake params trigger)."""
    return json.dumps(MODELS[name], sort_keys=True)


def judge_params(name):
    """Serialised judge config with its model's config: a change to either reruns the judge's jobs."""
    judge = JUDGES[name]
    return json.dumps({"judge": judge, "model": MODELS.get(judge.get("model"))}, sort_keys=True)


def generations(model, defense):
    return expand("results/generations/{model}/{defense}/{turns}.jsonl", model=model, defense=defense, turns=TURNS)


def judgments(judge, model, defense):
    return expand("results/judgments/{judge}/{model}/{defense}/{turns}.jsonl", judge=judge, model=model,
                  defense=defense, turns=TURNS)


def shard_files(model, defense, turns):
    """`models.<name>.shards` splits each turn file into that many jobs (deterministic by id)."""
    n = int(MODELS[model].get("shards", 1))
    return expand("results/generations/{model}/{defense}/shards/{turns}/{shard}-of-{n}.jsonl",
                  model=model, defense=defense, turns=turns, shard=range(n), n=n)
