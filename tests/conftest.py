"""Test-wide settings and helpers."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TOOLS = Path(__file__).resolve().parent.parent / "tools"
# shared_support.py: builders several test files import.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tests use tiny tensors: with several threads, synchronisation costs more than the work,
    # and on a busy 2-core machine oversubscription slows everything down many times.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("reproduce_fmuc")``: a script of tools/ imported as a module."""

    def load(name: str):
        if name in sys.modules:
            return sys.modules[name]
        if str(TOOLS) not in sys.path:
            sys.path.insert(0, str(TOOLS))  # the tools import their shared module
        spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_desed_tree(tmp_path_factory):
    """The embedded DESED-like benchmark's ``tiny`` preset (seed 0), built once per session."""
    from sedkit_plugins.desed.synth import synthesize

    root = tmp_path_factory.mktemp("desed_tiny") / "data"
    synthesize(root, preset="tiny", seed=0)
    return root


@pytest.fixture(scope="session")
def sedkit_subprocess():
    """``sedkit_subprocess(*args, env=None, cwd=None, timeout=120)``: ``python -m sedkit.cli ARGS``
    in a fresh interpreter (this one's), output captured as text."""

    def run(*args, env=None, cwd=None, timeout=120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "sedkit.cli", *map(str, args)],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
