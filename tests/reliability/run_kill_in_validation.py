"""Run or resume the engine's toy recipe in a separate process, killed during validation.

Usage: python run_kill_in_validation.py RECIPE RUN_DIR [--resume]

``KILL_AT_EVAL_FORWARD=N`` sends SIGKILL to the process at the model's N-th forward pass in
evaluation mode (per-epoch validation and the final evaluation both run the model in eval mode),
so the kill lands in the middle of a validation. Without it the run goes through uninterrupted
(the reference the resumed runs are compared with).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

import toy_plugin  # noqa: E402

from sedkit.plugins import Plugins  # noqa: E402
from sedkit.run import resume_run, start_run  # noqa: E402

if os.environ.get("KILL_AT_EVAL_FORWARD"):
    kill_at = int(os.environ["KILL_AT_EVAL_FORWARD"])
    real_forward = toy_plugin.ToyModel.forward
    seen = {"eval": 0}

    def forward_then_maybe_die(self, x):
        if not self.training:
            seen["eval"] += 1
            if seen["eval"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_forward(self, x)

    toy_plugin.ToyModel.forward = forward_then_maybe_die

# The reporting plugin's plots are not under test here and cost seconds per run.
plugins = Plugins.load(builtins_only=True, disabled={"reporting"}, extra=[("toy", toy_plugin)])
recipe, run_dir = sys.argv[1], sys.argv[2]
if "--resume" in sys.argv:
    sys.exit(resume_run(Path(run_dir), plugins=plugins))
sys.exit(start_run(recipe, [], plugins=plugins, run_dir=run_dir))
