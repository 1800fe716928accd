"""Builders several test files share: component contexts, classification batches, TSV tables
and file trees. ``tests/conftest.py`` puts this folder on ``sys.path``."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TypeVar

import pytest
import torch

from sedkit.components import Batch, BuildContext

#: The sample rates of the embedded benchmarks the tests mimic, by task.
SAMPLE_RATES = {"sed": 16000, "classification": 48000}

Context = TypeVar("Context", bound=BuildContext)


def build_context(kind: type[Context], task: str = "sed", *, seed: int = 0, **fields) -> Context:
    """A context of ``kind`` (``ModelContext``, ``HeadContext``...) for ``task``, with no recipe
    file, the task's usual sample rate and a test logger; ``fields`` fill the rest."""
    return kind(
        task=task,
        recipe_path=None,
        sample_rate=SAMPLE_RATES[task],
        seed=seed,
        log=logging.getLogger("test"),
        **fields,
    )


def classification_batch(labels: list[int]) -> Batch:
    """One labeled clip per class index of ``labels``, all of the ``train`` stream."""
    n = len(labels)
    return Batch(
        filenames=[f"clip{i}.wav" for i in range(n)],
        stream=["train"] * n,
        domain=torch.ones(n),
        label=torch.tensor(labels),
    )


def synth_without_sounds(
    args: list[str], system_copy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> list[str]:
    """``sedkit synth ARGS`` with no fetched sounds: asserts exit code 2 and returns the lines of
    stderr. Skips where ``system_copy`` (a path of the Debian package) is installed system-wide,
    as the synthesizer would find it there."""
    from sedkit.cli import main

    if Path(system_copy).exists():
        pytest.skip(f"{system_copy} is installed system-wide here")
    monkeypatch.setenv("SEDKIT_SOUNDS_DIR", str(tmp_path / "empty"))
    assert main(["synth", *args]) == 2
    return capsys.readouterr().err.strip().splitlines()


def write_tsv(path: Path, header: list[str], rows: list[list]) -> Path:
    """A tab-separated file with ``header`` and ``rows`` (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of a tab-separated file with a header."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` by relative path: two trees are byte-identical when equal."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
