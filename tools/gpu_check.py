"""Check sedkit's GPU paths in one command and write the figures to docs/gpu.md.

    python tools/gpu_check.py                      # on a GPU machine: <= 8 minutes on one GPU
    python tools/gpu_check.py --device cpu --tiny  # the same code paths on a CPU (the suite)

Sections, each recorded as pass/fail with its figures; a failing section never stops the rest:

1. environment: device, driver-side and library versions;
2. training step at paper scale (recipes/dcase2019_task4/paper: 22.05 kHz, 640 x 128 features,
   the full CRNN) with a batch of 48: fp32 against bf16 autocast, step time and clips/s, peak GPU
   memory; the paper's best system (Adv.time + tri-training) in bf16 too;
3. the loader's share of wall time: CUDA events around each step against the wall-clock wait for
   the next batch, with the feature cache (target: GPU busy >= 90 %) and without it;
4. a 2-epoch tiny run through ``sedkit run`` on the device, a second one killed after its first
   checkpoint and resumed with ``sedkit run --resume`` (compared with the first), and
   ``sedkit predict`` on the device;
5. DDP under torchrun on the GPUs present (NCCL; gloo on the CPU); with one process the step is
   still wrapped in DistributedDataParallel so that the wrapper and the backend run;
6. the bf16 tests of the losses (pytest ``-k bf16``), which run on CUDA where it is present.

The data is the embedded tiny DESED-like set (``--data``; synthesized when absent, which needs
scaper): its 4 s clips are padded to 10 s for the paper-scale step, so every tensor has the
shape of real DESED at the paper's front end. ``tools/gpu_bundle.py`` packs this data, sedkit
and its wheels for a GPU machine without a package registry.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "recipes" / "dcase2019_task4" / "paper"
BUNDLED_DATA = ROOT / "build" / "gpu_bundle" / "data" / "desed_tiny"
GPU_BUSY_TARGET = 0.90

HOW_TO = """\
## How to run the GPU check

The GPU machine has torch 2.11.0+cu130 and torchaudio 2.11.0 and reaches no package registry, so
sedkit travels as a bundle. Here, in the checkout (after `bash tools/install.sh`):

```bash
.venv/bin/python tools/gpu_bundle.py   # ~1 min: build/gpu_bundle (sedkit wheel, data, install.sh,
                                       # wheels) and build/gpu_bundle_2 (more wheels), < 60 MiB each
```

The device tool carries at most 64 MiB of ignored paths per command, so the two folders go in
two commands on one warm machine (what a command leaves under `build/` stays for the next):

1. carry `build/gpu_bundle_2`; command: `python3 -V && nvidia-smi -L` (the bundle's wheels are
   for the Python that built it: rebuild with `--python-version X.Y` if the machine differs);
2. carry `build/gpu_bundle`; command (about 1 min of install, then at most 8 min; no section
   starts after `--budget` seconds, 420 by default); copy `$OUT/gpu.md` back to `docs/gpu.md`:

   ```bash
   bash build/gpu_bundle/install.sh &&
       build/gpu_venv/bin/python tools/gpu_check.py --out $OUT/gpu.md
   ```

`install.sh` makes `build/gpu_venv` with `--system-site-packages` (the machine's torch) and
installs the wheels with `pip install --no-index --no-deps`; it stops with one line when a part
is missing or the Python version differs. The bundle also holds what `sedkit synth desed` needs
(scaper 1.6.5 and its closure, less soxbindings, which has no wheel), and the sox program that
scaper then runs (Debian packages unpacked into `build/gpu_sox`, found through a wrapper in the
venv's `bin/`), so the full benchmark, too large to carry, is synthesized there:
`build/gpu_venv/bin/python -m sedkit.cli synth desed /tmp/d`. Tested offline on the CPU
machine: a venv that sees only torch and its own dependencies, the bundle installed with no
index, then the CPU dry run:

```bash
.venv/bin/python tools/gpu_check.py --device cpu --tiny --out /tmp/gpu.md   # about 1 min
```

runs every section on the CPU (a test does this: `tests/engine/test_gpu_check.py`).
"""


# ---------------------------------------------------------------------------------- results
@dataclass
class Section:
    """One section's outcome: pass/fail (None: skipped), its figures and notes."""

    title: str
    ok: bool | None = None
    figures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def figure(self, name: str, value: Any) -> None:
        self.figures.append((name, value if isinstance(value, str) else _fmt(value)))

    def fail(self, note: str) -> None:
        self.ok = False
        self.notes.append(note)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class Settings:
    """What the check runs on and how big it is (``--tiny``: everything cut down)."""

    device: str
    tiny: bool
    work: Path
    data: Path
    batch: int
    warmup: int
    steps: int
    workers: int
    run_batches: int
    timeout: int

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def model_overrides(self, recipe: str) -> list[str]:
        """Tiny mode shrinks the CRNN (and the tri-training labelers, whose width must stay at
        most half of the CRNN's features); the GPU check runs them at the paper's size."""
        if not self.tiny:
            return []
        tiny = ["model.params.filters=[4, 4, 4, 4, 4, 4, 4]", "model.params.rnn_hidden=8"]
        return [*tiny, "pseudo_labeler.params.hidden=8"] if "tri" in recipe else tiny

    def run_overrides(self, run_root: Path) -> list[str]:
        """The 2-epoch tiny run: the paper's best system on the tiny data's 4 s clips."""
        return [
            f"data.params.root={self.data}",
            "data.params.clip_duration_s=4.0",
            f"data.params.batch_size={min(self.batch, 8)}",
            f"data.params.batches_per_epoch={self.run_batches}",
            f"data.params.cache_dir={self.work / 'cache'}",
            "data.params.num_workers=0",
            "pseudo_labeler.params.stage1_epochs=1",
            "trainer.max_epochs=2",
            f"trainer.device={self.device}",
            "trainer.deterministic=true",
            "trainer.progress_bar=false",
            f"decoding.psds_thresholds={3 if self.tiny else 10}",
            f"run.root={run_root}",
            *self.model_overrides("adv_time_tri"),
        ]


# ---------------------------------------------------------------------------------- helpers
def sedkit_command() -> list[str]:
    """The ``sedkit`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "sedkit"
    if not script.exists():
        raise RuntimeError(f"no sedkit script next to {sys.executable}: is sedkit installed?")
    return [str(script)]


def child_env(s: Settings) -> dict[str, str]:
    env = {**os.environ, "SEDKIT_DISABLE_PLUGINS": "reporting", "PYTHONUNBUFFERED": "1"}
    if s.tiny:
        env["OMP_NUM_THREADS"] = "1"
    return env


def run_command(
    cmd: list[str], s: Settings, section: Section, what: str, *, must_succeed: bool = True
) -> subprocess.CompletedProcess | None:
    """Run ``cmd`` and record its time. None when it timed out, or (``must_succeed``) exited
    with an error, with the tail of its output as a note."""
    start = time.time()
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=child_env(s), capture_output=True, text=True, timeout=s.timeout
        )
    except subprocess.TimeoutExpired:
        section.fail(f"{what}: no result within {s.timeout} s")
        return None
    section.figure(f"{what}: seconds", time.time() - start)
    if must_succeed and done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        section.fail(f"{what}: exit code {done.returncode}:\n\n    " + "\n    ".join(tail))
        return None
    return done


def epochs_of(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def max_parameter_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between the floating-point tensors (parameters, buffers,
    nested extra states) of two runs' last checkpoints."""
    import torch

    def tensors(state: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(state, torch.Tensor):
            return {prefix: state} if state.is_floating_point() and state.numel() else {}
        if isinstance(state, dict):
            return {
                k: v
                for key, sub in state.items()
                for k, v in tensors(sub, f"{prefix}.{key}").items()
            }
        return {}

    def load(run: Path) -> dict[str, Any]:
        path = run / "checkpoints" / "last.pt"
        return torch.load(path, weights_only=True, map_location="cpu")["modules"]

    ta, tb = tensors(load(a)), tensors(load(b))
    if set(ta) != set(tb):
        return float("inf")
    return max((float((ta[k].double() - tb[k].double()).abs().max()) for k in ta), default=0.0)


# ---------------------------------------------------------------------------------- sections
def check_environment(s: Settings, section: Section) -> None:
    import torch
    import torchaudio

    import sedkit

    section.figure("python", platform.python_version())
    section.figure("torch", torch.__version__)
    section.figure("torchaudio", torchaudio.__version__)
    section.figure("sedkit", sedkit.__version__)
    section.figure("CPU cores", os.cpu_count())
    if not s.cuda:
        section.figure("device", f"CPU ({platform.processor() or platform.machine()})")
        section.ok = True
        return
    if not torch.cuda.is_available():
        section.fail("--device cuda but torch.cuda.is_available() is False")
        return
    props = torch.cuda.get_device_properties(0)
    section.figure("device", f"{torch.cuda.device_count()} x {props.name}")
    section.figure("GPU memory (GiB)", props.total_memory / 2**30)
    section.figure("compute capability", f"{props.major}.{props.minor}")
    section.figure("CUDA (torch build)", torch.version.cuda)
    section.figure("cuDNN", torch.backends.cudnn.version())
    nccl = torch.cuda.nccl.version()  # a tuple in recent torch, an int in older ones
    section.figure("NCCL", ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl)
    section.figure("bf16 supported", torch.cuda.is_bf16_supported())
    section.figure("TF32 matmul / cuDNN", f"{torch.backends.cuda.matmul.allow_tf32} / "
                   f"{torch.backends.cudnn.allow_tf32}")  # fmt: skip
    section.ok = True


@dataclass
class StepTiming:
    """Per-step device times and loader waits of one measured stretch of training."""

    batch: int
    step_s: list[float]
    wait_s: list[float]
    wall_s: float
    peak_bytes: int | None

    @property
    def busy(self) -> float:
        return sum(self.step_s) / max(self.wall_s, 1e-9)

    @property
    def loader_share(self) -> float:
        return sum(self.wait_s) / max(self.wall_s, 1e-9)


def build_trainer(s: Settings, recipe: str, amp: str, cache: bool, name: str):
    """A Trainer of a paper recipe on the tiny data, set up; its 4 s clips are padded to 10 s
    (the paper's 640 frames) unless ``--tiny``."""
    from sedkit.plugins import Plugins
    from sedkit.recipe import load_recipe
    from sedkit.trainer import Trainer

    overrides = [
        f"data.params.root={s.data}",
        f"data.params.clip_duration_s={4.0 if s.tiny else 10.0}",
        f"data.params.batch_size={s.batch}",
        f"data.params.batches_per_epoch={s.warmup + s.steps}",
        f"data.params.cache_features={str(cache).lower()}",
        f"data.params.cache_dir={s.work / 'cache'}",
        f"data.params.num_workers={s.workers}",
        f"trainer.device={s.device}",
        f"trainer.amp={amp}",
        "trainer.progress_bar=false",
        *s.model_overrides(recipe),
    ]
    plugins = Plugins.load(builtins_only=True, disabled={"reporting"})
    loaded = load_recipe(PAPER / f"{recipe}.yaml", overrides, plugins=plugins)
    trainer = Trainer(loaded, plugins, s.work / "steps" / name)
    trainer.setup(resume=False)
    return trainer


def time_steps(s: Settings, trainer: Any) -> StepTiming:
    """Train ``warmup`` + ``steps`` batches of epoch 1; time the last ``steps``: the device
    time of each step (CUDA events; wall clock on the CPU, where the step is synchronous) and
    the wall-clock wait for each next batch from the loader."""
    import torch

    stage = trainer.labeler.stage(1) if trainer.labeler else "train"
    trainer.modules.train()
    batches = iter(trainer.data.train_loader(1))
    events: list[tuple[Any, Any]] = []
    step_s: list[float] = []
    wait_s: list[float] = []
    wall_start = 0.0
    for i in range(s.warmup + s.steps):
        if i == s.warmup:
            if s.cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            wall_start = time.perf_counter()
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        if s.cuda:
            start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            start.record()
        trainer.train_step(batch, 1, stage)
        if s.cuda:
            end.record()
        if i >= s.warmup:
            wait_s.append(t1 - t0)
            if s.cuda:
                events.append((start, end))
            else:
                step_s.append(time.perf_counter() - t1)
    if s.cuda:
        torch.cuda.synchronize()
        step_s = [a.elapsed_time(b) / 1000.0 for a, b in events]
    wall = time.perf_counter() - wall_start
    peak = torch.cuda.max_memory_allocated() if s.cuda else None
    return StepTiming(s.batch, step_s, wait_s, wall, peak)


def measure(s: Settings, recipe: str, amp: str, cache: bool) -> StepTiming:
    import torch

    trainer = build_trainer(s, recipe, amp, cache, f"{recipe}-{amp}-cache{int(cache)}")
    try:
        return time_steps(s, trainer)
    finally:
        del trainer
        gc.collect()
        if s.cuda:
            torch.cuda.empty_cache()


def report_timing(section: Section, label: str, t: StepTiming) -> None:
    step = statistics.median(t.step_s)
    section.figure(f"{label}: step time, median (ms)", 1000 * step)
    section.figure(f"{label}: clips/s of the step", t.batch / step)
    section.figure(f"{label}: clips/s end to end", t.batch * len(t.step_s) / t.wall_s)
    if t.peak_bytes is not None:
        section.figure(f"{label}: peak GPU memory (GiB)", t.peak_bytes / 2**30)


def check_steps(s: Settings, section: Section, timings: dict[str, StepTiming]) -> None:
    section.notes.append(
        f"batch {s.batch} (strong 1/4, weak 1/4, unlabeled 1/2), {s.warmup} warm-up steps, "
        f"{s.steps} timed; features cached, {s.workers} loader workers"
    )
    for recipe, amp in (("baseline", "none"), ("baseline", "bf16"), ("adv_time_tri", "bf16")):
        label = f"{recipe} {'fp32' if amp == 'none' else amp}"
        try:
            timings[label] = t = measure(s, recipe, amp, cache=True)
        except Exception as exc:  # one configuration failing leaves the others measured
            section.fail(f"{label}: {type(exc).__name__}: {exc}")
            continue
        report_timing(section, label, t)
    if "baseline fp32" in timings and "baseline bf16" in timings:
        fp32 = statistics.median(timings["baseline fp32"].step_s)
        bf16 = statistics.median(timings["baseline bf16"].step_s)
        section.figure("bf16 speed-up over fp32 (step time)", fp32 / bf16)
    if section.ok is None:
        section.ok = True


def check_loader(s: Settings, section: Section, timings: dict[str, StepTiming]) -> None:
    cached = timings.get("baseline bf16")
    if cached is None:
        section.fail("no bf16 timing to take the loader's share from (see the step section)")
        return
    try:
        timings["baseline bf16 no cache"] = measure(s, "baseline", "bf16", cache=False)
    except Exception as exc:
        section.fail(f"without the cache: {type(exc).__name__}: {exc}")
    for label in ("baseline bf16", "baseline bf16 no cache"):
        t = timings.get(label)
        if t is None:
            continue
        name = "with the feature cache" if label == "baseline bf16" else "audio, no cache"
        section.figure(f"{name}: busy (step time / wall)", f"{100 * t.busy:.1f} %")
        section.figure(f"{name}: waiting for the loader", f"{100 * t.loader_share:.1f} %")
        section.figure(f"{name}: wall per step (ms)", 1000 * t.wall_s / len(t.step_s))
    if s.cuda and cached.busy < GPU_BUSY_TARGET:
        section.fail(
            f"GPU busy {100 * cached.busy:.1f} % with the feature cache, under the "
            f"{100 * GPU_BUSY_TARGET:.0f} % target"
        )
    elif not s.cuda:
        section.notes.append("the >= 90 % busy target applies to the GPU only")
    if section.ok is None:
        section.ok = True


def check_run_resume_predict(s: Settings, section: Section) -> None:
    """``sedkit run`` for 2 epochs; the same run killed after epoch 1 and resumed; predict."""
    recipe = str(PAPER / "adv_time_tri.yaml")
    runs = s.work / "runs"
    whole, killed = runs / "whole", runs / "resumed"
    sedkit = sedkit_command()
    overrides = s.run_overrides(runs)
    if not run_command([*sedkit, "run", recipe, *overrides, "--run-dir", str(whole)], s, section,
                       "sedkit run, 2 epochs"):  # fmt: skip
        return
    final = json.loads((whole / "metrics.json").read_text())
    section.figure("run: status, epochs", f"{final['status']}, {final['epochs']}")
    section.figure("run: event F1 (macro)", final["validation"].get("event_f1_macro", "n/a"))
    env_file = whole / "environment.json"
    if env_file.is_file():
        section.figure("run: device recorded", json.loads(env_file.read_text()).get("device"))

    # Kill the second run as soon as its first checkpoint is on disk, then resume it.
    proc = subprocess.Popen(
        [*sedkit, "run", recipe, *overrides, "--run-dir", str(killed)],
        cwd=ROOT, env=child_env(s), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + s.timeout
    while proc.poll() is None and time.time() < deadline:
        if (killed / "checkpoints" / "last.pt").is_file():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    if proc.returncode != -signal.SIGKILL:
        section.fail(f"the run to interrupt ended by itself (exit code {proc.returncode})")
        return
    section.figure("resume: epochs logged when killed", [e["epoch"] for e in epochs_of(killed)])
    if not run_command(
        [*sedkit, "run", "--resume", str(killed)], s, section, "sedkit run --resume"
    ):
        return
    epochs = [e["epoch"] for e in epochs_of(killed)]
    section.figure("resume: epochs logged after resuming", epochs)
    diff = max_parameter_difference(whole, killed)
    section.figure("resume: largest parameter difference to the uninterrupted run", f"{diff:.3g}")
    if epochs != [1, 2]:
        section.fail(f"resumed run logged epochs {epochs}, expected [1, 2]")
    if diff > 1e-3:
        section.fail(f"resumed run ends {diff:.3g} away from the uninterrupted one")

    out = runs / "predictions.tsv"
    audio = s.data / "audio" / "validation"
    cmd = [*sedkit, "predict", str(whole), str(audio), "-o", str(out), "--device", s.device]
    if run_command(cmd, s, section, "sedkit predict"):
        rows = out.read_text().splitlines()[1:] if out.is_file() else []
        section.figure("predict: detections written", len(rows))
        if not out.is_file():
            section.fail(f"sedkit predict wrote no {out}")
    if section.ok is None:
        section.ok = True


def check_ddp(s: Settings, section: Section) -> None:
    """torchrun with one process per GPU (one on the CPU) training the tiny run's recipe."""
    import torch

    n = torch.cuda.device_count() if s.cuda else 1
    backend = "nccl" if s.cuda else "gloo"
    section.figure("processes, backend", f"{n}, {backend}")
    run_dir = s.work / "runs" / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
        __file__, "--ddp-worker", str(run_dir), "--device", s.device, "--data", str(s.data),
        "--work", str(s.work), "--batch", str(s.batch), *(["--tiny"] if s.tiny else []),
    ]  # fmt: skip
    if not run_command(cmd, s, section, "torchrun"):
        return
    report = json.loads((run_dir / "ddp.json").read_text())
    section.figure("world size, DDP-wrapped", f"{report['world_size']}, {report['ddp']}")
    section.figure("all_reduce of ranks' ids", report["all_reduce"])
    epochs = epochs_of(run_dir)
    section.figure("epochs completed", len(epochs))
    whole = epochs_of(s.work / "runs" / "whole")
    if epochs and whole:
        a, b = whole[0]["train_loss"], epochs[0]["train_loss"]
        section.figure("epoch-1 train loss: one process / torchrun", f"{a:.6g} / {b:.6g}")
        if n == 1 and abs(a - b) > 1e-3 * abs(a):
            section.fail("one DDP process should train like a plain run; the losses differ")
    if report["all_reduce"] != n * (n - 1) // 2:
        section.fail(f"all_reduce gave {report['all_reduce']}, expected {n * (n - 1) // 2}")
    if len(epochs) != 2:
        section.fail(f"{len(epochs)} epochs logged, expected 2")
    if section.ok is None:
        section.ok = True


def ddp_worker(run_dir: Path, s: Settings) -> None:
    """One torchrun process: the tiny run's recipe under DistributedDataParallel. A world of
    one is not distributed to sedkit, so the trainer is told it is: the step then runs inside
    DDP and the backend carries its gradient all-reduce, as on several GPUs."""
    import torch
    import torch.distributed as dist

    from sedkit import distributed as D
    from sedkit.plugins import Plugins
    from sedkit.recipe import load_recipe
    from sedkit.trainer import Trainer

    if s.cuda:  # before the group: NCCL binds each rank to the current device
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if s.cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    plugins = Plugins.load(builtins_only=True, disabled={"reporting"})
    loaded = load_recipe(
        PAPER / "adv_time_tri.yaml", s.run_overrides(run_dir.parent), plugins=plugins
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    D.barrier()
    trainer = Trainer(loaded, plugins, run_dir)
    trainer.distributed = True
    trainer.setup(resume=False)
    trainer.fit()
    ids = torch.tensor([float(rank)], device=trainer.device)
    dist.all_reduce(ids)
    report = {
        "world_size": world,
        "ddp": type(trainer.step_fn).__name__ == "DistributedDataParallel",
        "all_reduce": int(ids.item()),
    }
    if rank == 0:
        (run_dir / "ddp.json").write_text(json.dumps(report))
    D.shutdown()


def check_bf16_tests(s: Settings, section: Section) -> None:
    """The suite's bf16 tests (``-k bf16``); tests parametrized by device run on CUDA here."""
    # Only the files that define a bf16 test are collected: importing every test module would
    # cost more than the tests themselves.
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if re.search(r"def test_\w*bf16", p.read_text())
    )
    if not files:
        section.fail("no test under tests/ has bf16 in its name")
        return
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rA",
        "-k",
        "bf16",
        "-p",
        "no:cacheprovider",
        *files,
    ]
    done = run_command(cmd, s, section, "pytest -k bf16", must_succeed=False)
    if done is None:
        return
    passed = re.findall(r"^PASSED (\S+)", done.stdout, flags=re.M)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.M)
    on_cuda = [t for t in passed + failed if "cuda" in t.lower()]
    section.figure("passed", len(passed))
    section.figure("failed", len(failed))
    section.figure("of them on CUDA", len(on_cuda))
    for test in failed:
        section.notes.append(f"failed: {test}")
    if done.returncode != 0 or failed or not passed:
        tail = (done.stdout + done.stderr).strip().splitlines()[-10:]
        section.fail(f"pytest exit code {done.returncode}:\n\n    " + "\n    ".join(tail))
    elif s.cuda and not on_cuda:
        section.fail("no bf16 test ran on CUDA (none is parametrized by device)")
    else:
        section.ok = True


# ---------------------------------------------------------------------------------- report
def render(s: Settings, sections: list[Section], total_s: float) -> str:
    status = {True: "pass", False: "FAIL", None: "skipped"}
    lines = ["# GPU check", ""]
    if s.cuda:
        lines += [
            f"Measured by `python tools/gpu_check.py` on {time.strftime('%Y-%m-%d %H:%M %Z')} "
            f"in {total_s:.0f} s.",
        ]
    else:
        lines += [
            "**No GPU was at hand for these figures.** They come from the CPU dry run "
            f"(`python tools/gpu_check.py --device cpu{' --tiny' if s.tiny else ''}`, "
            f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {total_s:.0f} s), which runs the same code "
            "paths with CPU timers and gloo instead of NCCL"
            f"{' and a shrunken model and batch' if s.tiny else ''}. They show that the check "
            "works, not how fast a GPU is; autocast is a CUDA path, so the CPU's fp32 and bf16 "
            "steps are the same computation. On a GPU the "
            "check measures: fp32 against bf16 step time and clips/s of the paper-scale CRNN "
            "at batch 48 (and of Adv.time + tri-training), peak GPU memory, the GPU's busy "
            "share against the wait for the loader with and without the feature cache "
            "(target >= 90 % busy with the cache), a 2-epoch `sedkit run` with `device: cuda`, "
            "its resume after a kill and `sedkit predict` on the GPU, DDP with NCCL under "
            "torchrun on the GPUs present, and the bf16 loss tests on CUDA.",
        ]
    lines += ["", "| section | result | seconds |", "| --- | --- | --- |"]
    lines += [f"| {x.title} | {status[x.ok]} | {x.seconds:.1f} |" for x in sections]
    for x in sections:
        lines += ["", f"## {x.title}: {status[x.ok]}", ""]
        if x.figures:
            lines += ["| figure | value |", "| --- | --- |"]
            lines += [f"| {name} | {value} |" for name, value in x.figures]
        for note in x.notes:
            lines += ["", note]
    lines += ["", HOW_TO]
    return "\n".join(lines)


@contextlib.contextmanager
def timed(section: Section) -> Iterator[None]:
    start = time.time()
    try:
        yield
    except Exception as exc:  # a section's failure is recorded; the next section still runs
        section.fail(f"{type(exc).__name__}: {exc}\n\n    " + "\n    ".join(
            traceback.format_exc().strip().splitlines()[-8:]))  # fmt: skip
    finally:
        section.seconds = time.time() - start
        print(f"[gpu_check] {section.title}: {section.ok} ({section.seconds:.1f} s)", flush=True)


def ensure_data(s: Settings) -> None:
    if (s.data / "metadata").is_dir():
        return
    from sedkit_plugins.desed.synth import synthesize

    print(f"[gpu_check] synthesizing the tiny DESED-like set into {s.data}", flush=True)
    synthesize(s.data, preset="tiny", seed=0)


def settings(args: argparse.Namespace) -> Settings:
    work = Path(args.work).resolve()
    data = Path(args.data).resolve() if args.data else None
    if data is None:
        data = BUNDLED_DATA if (BUNDLED_DATA / "metadata").is_dir() else work / "desed_tiny"
    tiny = args.tiny
    return Settings(
        device=args.device,
        tiny=tiny,
        work=work,
        data=data,
        batch=args.batch or (4 if tiny else 48),
        warmup=1 if tiny else 5,
        steps=args.steps or (2 if tiny else 40),
        workers=0 if tiny else 4,
        run_batches=2 if tiny else 8,
        timeout=args.timeout,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="cut every size down (CPU test)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "gpu.md"))
    parser.add_argument("--work", default=str(ROOT / "build" / "gpu_check"))
    parser.add_argument("--data", help="a DESED-layout tree (default: the bundled tiny set)")
    parser.add_argument("--timeout", type=int, default=150, help="seconds per command")
    parser.add_argument(
        "--budget", type=int, default=420, help="seconds after which no new section starts"
    )
    parser.add_argument("--batch", type=int, help="batch of the timed steps (default 48)")
    parser.add_argument("--steps", type=int, help="timed steps per configuration (default 40)")
    parser.add_argument("--ddp-worker", metavar="RUN_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    s = settings(args)
    if args.ddp_worker:
        ddp_worker(Path(args.ddp_worker), s)
        return 0
    s.work.mkdir(parents=True, exist_ok=True)
    for previous in ("runs", "steps"):  # a new run directory each time; the cache is kept
        shutil.rmtree(s.work / previous, ignore_errors=True)
    started = time.time()
    timings: dict[str, StepTiming] = {}
    plan: list[tuple[str, Callable[[Settings, Section], None]]] = [
        ("environment", check_environment),
        ("training step at paper scale", lambda s_, x: check_steps(s_, x, timings)),
        ("loader share of wall time", lambda s_, x: check_loader(s_, x, timings)),
        ("sedkit run, resume, predict", check_run_resume_predict),
        ("DDP under torchrun", check_ddp),
        ("bf16 loss tests", check_bf16_tests),
    ]
    sections: list[Section] = []
    data_ok = Section("tiny data")
    with timed(data_ok):
        ensure_data(s)
        data_ok.ok = True
    for title, check in plan:
        section = Section(title)
        sections.append(section)
        if not data_ok.ok and title != "environment":
            section.notes.append("skipped: no data (see the error above)")
            continue
        if time.time() - started > args.budget:
            section.notes.append(f"skipped: the {args.budget} s budget was spent")
            continue
        with timed(section):
            check(s, section)
    if not data_ok.ok:
        sections.insert(0, data_ok)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(s, sections, time.time() - started) + "\n")
    failed = [x.title for x in sections if x.ok is False]
    skipped = [x.title for x in sections if x.ok is None]
    groups = (("failed", failed), ("skipped", skipped))
    summary = "; ".join(f"{what}: {', '.join(titles)}" for what, titles in groups if titles)
    print(f"[gpu_check] wrote {out}; {summary or 'all passed'}")
    return 1 if failed or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
