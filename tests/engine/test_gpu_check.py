"""tools/gpu_check.py: its CPU dry run (``--device cpu --tiny``) passes every section and writes
the report; a section that fails is recorded and the next ones still run."""

from __future__ import annotations

import re


def test_cpu_dry_run_passes_every_section(load_tool, tiny_desed_tree, tmp_path):
    check = load_tool("gpu_check")
    out, work = tmp_path / "gpu.md", tmp_path / "work"
    previous = work / "runs" / "whole"  # a former check's run: the check starts afresh
    previous.mkdir(parents=True)
    (previous / "metrics.json").write_text("{}")
    (work / "runs" / "predictions.tsv").write_text("filename\n")
    argv = ["--device", "cpu", "--tiny", "--out", str(out), "--work", str(work)]
    assert check.main([*argv, "--data", str(tiny_desed_tree)]) == 0
    text = out.read_text()
    assert "No GPU was at hand" in text and "## How to run the GPU check" in text
    results = dict(re.findall(r"^\| ([^|]+?) \| (pass|FAIL|skipped) \| [\d.]+ \|$", text, re.M))
    assert results == {
        "environment": "pass",
        "training step at paper scale": "pass",
        "loader share of wall time": "pass",
        "sedkit run, resume, predict": "pass",
        "DDP under torchrun": "pass",
        "bf16 loss tests": "pass",
    }
    figures = dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", text, re.M))
    assert float(figures["baseline fp32: clips/s of the step"]) > 0
    assert figures["resume: epochs logged when killed"] == "[1]"
    assert figures["resume: epochs logged after resuming"] == "[1, 2]"
    assert float(figures["resume: largest parameter difference to the uninterrupted run"]) == 0
    assert int(figures["predict: detections written"]) > 0
    assert figures["world size, DDP-wrapped"] == "1, True"
    a, b = figures["epoch-1 train loss: one process / torchrun"].split(" / ")
    assert float(a) == float(b)  # one DDP process trains exactly like a plain run on the CPU
    assert int(figures["passed"]) >= 1 and figures["failed"] == "0"


def test_a_failing_section_is_recorded_and_the_rest_still_run(load_tool, monkeypatch, tmp_path):
    check = load_tool("gpu_check")
    ran = []

    def passes(name):
        def run(s, section):
            ran.append(name)
            section.figure("value", 1.5)
            section.ok = True

        return run

    def breaks(s, section):
        ran.append("steps")
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(check, "ensure_data", lambda s: None)
    monkeypatch.setattr(check, "check_environment", passes("environment"))
    monkeypatch.setattr(check, "check_steps", lambda s, x, timings: breaks(s, x))
    monkeypatch.setattr(check, "check_loader", lambda s, x, timings: passes("loader")(s, x))
    for name in ("check_run_resume_predict", "check_ddp", "check_bf16_tests"):
        monkeypatch.setattr(check, name, passes(name))
    out = tmp_path / "gpu.md"
    code = check.main(["--device", "cpu", "--tiny", "--out", str(out), "--work", str(tmp_path)])
    assert code == 1
    assert ran == ["environment", "steps", "loader", "check_run_resume_predict", "check_ddp",
                   "check_bf16_tests"]  # fmt: skip
    text = out.read_text()
    assert "| training step at paper scale | FAIL |" in text
    assert "RuntimeError: CUDA error: out of memory" in text
    assert "| DDP under torchrun | pass |" in text
