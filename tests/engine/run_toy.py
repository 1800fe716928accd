"""Run or resume the toy recipe in a separate process (for kill tests).

Usage: python run_toy.py RECIPE RUN_DIR [--resume]
TOY_KILL_AT_STEP=N kills the process at its N-th training step; TOY_KILL_IN_SAVE=N kills it in
the middle of writing its N-th checkpoint file (after part of the bytes are on disk).
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
import toy_plugin  # noqa: E402

import sedkit.checkpoint as ckpt  # noqa: E402
from sedkit.plugins import Plugins  # noqa: E402
from sedkit.run import resume_run, start_run  # noqa: E402

if os.environ.get("TOY_KILL_IN_SAVE"):
    kill_at = int(os.environ["TOY_KILL_IN_SAVE"])
    real_save = torch.save
    calls = {"n": 0}

    def dying_save(obj, f):
        calls["n"] += 1
        if calls["n"] == kill_at:
            real_save(obj, f)
            f.truncate(f.tell() // 2)  # half the bytes on disk, then die
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(obj, f)

    ckpt.torch.save = dying_save  # type: ignore[attr-defined]

plugins = Plugins.load(builtins_only=True, extra=[("toy", toy_plugin)])
recipe, run_dir = sys.argv[1], sys.argv[2]
if "--resume" in sys.argv:
    sys.exit(resume_run(Path(run_dir), plugins=plugins))
sys.exit(start_run(recipe, [], plugins=plugins, run_dir=run_dir))
