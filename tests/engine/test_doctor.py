"""A broken environment gets one clear line; ``sedkit doctor`` marks what is wrong (issue 14)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sedkit import doctor
from sedkit.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
UNDEFINED = (
    "/venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so: undefined symbol: "
    "torch_exception_get_what_without_backtrace"
)


def test_failed_torchaudio_import_is_one_line_with_versions_and_fix():
    def importer(name):
        if name == "torchaudio":
            raise OSError(UNDEFINED)
        return __import__(name)

    with pytest.raises(UserError) as caught:
        doctor.check_compiled_stack(importer=importer)
    message = str(caught.value)
    assert "\n" not in message
    assert "`import torchaudio` fails" in message and "undefined symbol" in message
    torch_v, audio_v = doctor.installed_version("torch"), doctor.installed_version("torchaudio")
    assert f"torch {torch_v}, torchaudio {audio_v}" in message
    assert "torch==2.11.0, torchaudio==2.11.0" in message  # sedkit's own pins
    assert "bash tools/install.sh" in message


def test_the_pins_are_exact_for_the_binary_pair():
    pins = doctor.pinned_requirements()
    assert pins["torch"] == "torch==2.11.0" and pins["torchaudio"] == "torchaudio==2.11.0"


def test_read_lock_takes_hashed_lines(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# header\nnumpy==2.3.5 \\\n    --hash=sha256:abc\n    # via x\n"
        "torch==2.11.0 ; sys_platform == 'linux' \\\n    --hash=sha256:def\n"
    )
    assert doctor.read_lock(lock) == {"numpy": "2.3.5", "torch": "2.11.0"}


def _fake_broken_torchaudio(tmp_path: Path) -> dict[str, str]:
    """An environment whose torchaudio fails to import as 2.11.1 does beside torch 2.11.0."""
    package = tmp_path / "shadow" / "torchaudio"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise OSError({UNDEFINED!r})\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "shadow"), env.get("PYTHONPATH", "")])
    return env


def test_every_command_in_a_broken_environment_prints_one_line_exit_2(tmp_path, sedkit_subprocess):
    env = _fake_broken_torchaudio(tmp_path)
    for args in (["run", str(ROOT / "recipes/dcase2019_task4.yaml")], ["plugins"]):
        result = sedkit_subprocess(*args, env=env, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("sedkit: error: broken environment: `import torchaudio`")
        assert "tools/install.sh" in lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_doctor_marks_the_broken_import(tmp_path, sedkit_subprocess):
    result = sedkit_subprocess(
        "doctor", "--data", tmp_path / "d", "--runs", tmp_path / "r",
        env=_fake_broken_torchaudio(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("[FAIL]")]
    assert any(line.startswith("[FAIL] imports: broken environment") for line in failed), failed
    assert "1 check(s) failed: imports" in result.stdout


def test_doctor_passes_on_the_installed_environment(tmp_path, sedkit_subprocess):
    """The suite runs in the venv that tools/install.sh built from the lock: all checks pass."""
    result = sedkit_subprocess(
        "doctor", "--data", tmp_path / "d", "--runs", tmp_path / "r", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("python", "versions", "pins", "lock", "imports", "cuda", "sox"):
        assert any(line.startswith(f"[OK  ] {name}:") for line in result.stdout.splitlines())


def test_doctor_marks_an_unwritable_runs_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    checks = doctor.run_checks(tmp_path / "data", blocker / "runs")
    runs = next(c for c in checks if c.name == "runs folder")
    assert not runs.ok and "is not a folder" in runs.detail
    assert runs.line().startswith("[FAIL] runs folder:")
