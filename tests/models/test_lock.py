"""`safemt models lock`: revisions resolved to commit SHAs against a stub of the hub API on loopback;
the lock file pins what the backends load and what the config hash records; unpinned hub models are
refused unless the params allow them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from safemt.stages import params as safemt_params
from safemt.stages.params import model as model_of
from safemt.cli import main
from safemt.errors import SafemtError
from safemt.models import get_backend
from safemt.models.base import weights_identity
from safemt.models.lock import lock_path
from safemt.models.vllm_backend import engine_args
from tests.servers.hub_stub import HubStub

SHA_A = "a" * 40
SHA_B = "b" * 40
PINNED = "c" * 40


def write_params(tmp_path: Path, repo_root: Path, **top) -> Path:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["models"].update({
        "hub-a": {"backend": "hf", "path": "org/model-a", "revision": "main"},
        "hub-b": {"backend": "vllm", "path": "org/model-b", "revision": "v1.0"},
        "hub-pinned": {"backend": "hf", "path": "org/model-c", "revision": PINNED},
    })
    params.update(top)
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def lock(capsys, params: Path, endpoint: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    code = main(["models", "lock", "--params", str(params)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def online(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, at its import
    monkeypatch.delenv("HF_TOKEN", raising=False)


def test_lock_resolves_branches_and_tags_to_shas(tmp_path, repo_root, online, monkeypatch, capsys) -> None:
    params = write_params(tmp_path, repo_root)
    with HubStub({("org/model-a", "main"): SHA_A, ("org/model-b", "v1.0"): SHA_B}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        code, out, err = lock(capsys, params)
        asked = sorted(p for p in hub.paths if p.startswith("/api/models/"))
    assert code == 0, err
    assert asked == ["/api/models/org/model-a/revision/main", "/api/models/org/model-b/revision/v1.0"]
    written = yaml.safe_load(lock_path(params).read_text())["models"]
    assert lock_path(params) == tmp_path / "paper.lock.yaml"
    assert written == {"hub-a": {"path": "org/model-a", "revision": "main", "sha": SHA_A},
                       "hub-b": {"path": "org/model-b", "revision": "v1.0", "sha": SHA_B},
                       "hub-pinned": {"path": "org/model-c", "revision": PINNED, "sha": PINNED}}
    # every command applies it: the backends load the SHA and the config hash uses it
    loaded = safemt_params.load(params)
    a, b = model_of(loaded, "hub-a"), model_of(loaded, "hub-b")
    assert weights_identity(a, local=False)["revision"] == SHA_A
    assert engine_args(b, local=False)["revision"] == SHA_B == engine_args(b, local=False)["tokenizer_revision"]


def test_an_unknown_revision_is_one_line_naming_the_model(tmp_path, repo_root, online, monkeypatch, capsys) -> None:
    params = write_params(tmp_path, repo_root)
    with HubStub({("org/model-a", "main"): SHA_A}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        code, _, err = lock(capsys, params)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "models.hub-b.revision" in err and "org/model-b@v1.0" in err
    assert not lock_path(params).exists()


def test_offline_lock_fails_at_once_saying_why(tmp_path, repo_root, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = lock(capsys, write_params(tmp_path, repo_root))
    assert code == 2 and "offline" in err and "hub-a" in err and len(err.strip().splitlines()) == 1


def test_unreachable_hub_fails_at_once(tmp_path, repo_root, online, monkeypatch, capsys) -> None:
    with HubStub({}) as hub:
        endpoint = hub.endpoint
    monkeypatch.setenv("HF_ENDPOINT", endpoint)  # the port is closed now
    code, _, err = lock(capsys, write_params(tmp_path, repo_root))
    assert code == 2 and "no network" in err


def test_an_unpinned_hub_model_is_refused_unless_allowed(tmp_path, repo_root) -> None:
    cfg = model_of(safemt_params.load(write_params(tmp_path, repo_root)), "hub-a")
    with pytest.raises(SafemtError, match=r"org/model-a@main is not pinned.*safemt models lock") as err:
        get_backend(cfg)
    assert "models.hub-a.revision" in err.value.line()
    allowed = model_of(safemt_params.load(write_params(tmp_path, repo_root, allow_unpinned_revisions=True)),
                                  "hub-a")
    assert weights_identity(allowed, local=False) == {"path": "org/model-a", "revision": "main",
                                                      "folder_sha256": None, "unpinned": True}


def test_infer_refuses_an_unpinned_model_with_one_line(tmp_path, repo_root, capsys) -> None:
    params = write_params(tmp_path, repo_root)
    dataset = tmp_path / "ds" / "dialogues.jsonl"
    (dataset.parent / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(dataset.parent / "images" / "0.png")
    dataset.write_text(json.dumps({"id": "own_case_0", "turns": 1, "scenario": "Fraud", "source": "own",
                                   "method": None, "image": "images/0.png", "question": "What is this?",
                                   "messages": [{"role": "user", "content": "What is this?"}]}) + "\n")
    code = main(["infer", "--params", str(params), "--model", "hub-a", "--dataset", str(dataset),
                 "-o", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "not pinned" in err and not (tmp_path / "out.jsonl").exists()


def test_a_sha_revision_and_local_folders_need_no_lock(tmp_path, repo_root) -> None:
    loaded = safemt_params.load(write_params(tmp_path, repo_root))
    pinned = model_of(loaded, "hub-pinned")
    assert weights_identity(pinned, local=False)["revision"] == PINNED
    assert "resolved_revision" not in model_of(loaded, "tiny-vlm-a")  # a local folder


def test_a_stale_lock_entry_is_not_applied(tmp_path, repo_root) -> None:
    params = write_params(tmp_path, repo_root)
    lock_path(params).write_text(yaml.safe_dump({"models": {
        "hub-a": {"path": "org/model-a", "revision": "dev", "sha": SHA_A}}}))  # locked from another revision
    cfg = model_of(safemt_params.load(params), "hub-a")
    with pytest.raises(SafemtError, match="not pinned"):
        get_backend(cfg)
    lock_path(params).write_text("models: [1, 2]")
    with pytest.raises(SafemtError, match="not a lock file"):
        safemt_params.load(params)
