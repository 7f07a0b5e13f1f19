from __future__ import annotations


from PIL import Image

from safemt.cli import main
from safemt.jsonl import atomic_write_text


def test_figures_from_metrics(tmp_path, repo_root) -> None:
    m = tmp_path / "metrics"
    rows = ["judge,model,defense,turns,n,invalid,missing,asr,ci_low,ci_high"]
    for model, base in (("m-a", 0.1), ("m-b", 0.3)):
        for k in (1, 2, 4, 6, 8):
            a = min(1.0, base + 0.05 * k)
            rows.append(f"keyword,{model},none,{k},20,0,0,{a},{a - 0.1},{a + 0.1}")
    atomic_write_text(m / "asr.csv", "\n".join(rows) + "\n")
    atomic_write_text(m / "si.csv", "judge,model,defense,s1,s2,si\nkeyword,m-a,none,0.8,0.9,0.72\n"
                                    "keyword,m-b,none,0.6,0.9,0.54\n")
    out = tmp_path / "fig"
    assert main(["figures", "-i", str(m), "-o", str(out), "--params", str(repo_root / "params.yaml")]) == 0
    for name in ("asr_vs_turns.png", "si_per_model.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 200
    first = (out / "asr_vs_turns.png").read_bytes()
    assert main(["figures", "-i", str(m), "-o", str(out), "--params", str(repo_root / "params.yaml")]) == 0
    assert (out / "asr_vs_turns.png").read_bytes() == first


def test_missing_metrics_is_one_line(tmp_path, repo_root, capsys) -> None:
    assert main(["figures", "-i", str(tmp_path), "-o", str(tmp_path / "f"),
                 "--params", str(repo_root / "params.yaml")]) == 2
    assert "asr.csv" in capsys.readouterr().err
