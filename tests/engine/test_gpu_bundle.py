"""tools/gpu_bundle.py without the network: the lock is read with its hashes, the runtime set is
in the lock and excludes what the GPU machine provides, and wheels are packed into parts that
the device tool can carry."""

from __future__ import annotations

import subprocess
from importlib import metadata

import pytest
from packaging.requirements import Requirement


@pytest.fixture(scope="module")
def bundle(load_tool):
    return load_tool("gpu_bundle")


def test_every_runtime_package_is_locked_with_hashes_and_none_is_provided(bundle):
    lock = bundle.locked(bundle.ROOT / "requirements.lock")
    assert lock["numpy"][0] == "2.3.5" and lock["torch"][0] == "2.11.0"
    for name in bundle.RUNTIME:
        version, requirement = lock[name]
        assert bundle.normalise(requirement.split("==")[0]) == name
        assert f"=={version}" in requirement and "--hash=sha256:" in requirement
        assert not requirement.rstrip().endswith("\\")  # a complete requirement file
        assert not bundle.PROVIDED.match(name)
    assert all(bundle.PROVIDED.match(n) for n in ("torch", "torchaudio", "nvidia-nccl-cu13"))


def test_locked_keeps_each_packages_own_hashes(bundle, tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# header\nfoo-bar==1.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "    # via x\nbaz==2.0 \\\n    --hash=sha256:cc\n"
    )
    got = bundle.locked(lock)
    hashes = "    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
    assert got["foo-bar"] == ("1.0", "foo-bar==1.0 \\\n" + hashes)
    assert got["baz"] == ("2.0", "baz==2.0 \\\n    --hash=sha256:cc\n")


def test_pack_fills_parts_largest_first_within_their_room(bundle):
    mib = bundle.MIB
    sizes = {"scipy": 34 * mib, "numpy": 16 * mib, "pandas": 12 * mib, "six": mib // 10}
    parts = bundle.pack(sizes, first_room=55 * mib, room=60 * mib)
    assert parts == [["scipy", "numpy", "six"], ["pandas"]]
    for i, part in enumerate(parts):
        assert sum(sizes[f] for f in part) <= (55 if i == 0 else 60) * mib
    with pytest.raises(SystemExit, match="fits no part"):
        bundle.pack({"huge": 61 * mib}, first_room=60 * mib, room=60 * mib)


def test_install_script_renders_to_valid_bash(bundle, tmp_path):
    script = tmp_path / "install.sh"
    script.write_text(
        bundle.INSTALL_SH.format(
            python_version="3.12", parts="gpu_bundle gpu_bundle_2", sedkit_wheel="s.whl"
        )
    )
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    # the sox wrapper keeps its shell expansions for run time
    assert '"$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"' in text
    assert 'exec "$SOX/usr/bin/sox" "$@"' in text


def test_runtime_holds_the_closure_of_sedkit_synth(bundle):
    """Every distribution scaper needs, transitively, travels (soxbindings excepted: the
    bundle carries the sox program for pysox instead)."""
    seen, todo = set(), ["scaper"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in metadata.requires(name) or []:
            req = Requirement(req)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(bundle.normalise(req.name))
    needed = seen - {"soxbindings"}
    assert {"jams", "sox", "pyloudnorm", "mir-eval", "jsonschema"} <= needed
    assert needed - set(bundle.RUNTIME) == set()
    assert "sox" in bundle.SOX_DEBS and "libsox3" in bundle.SOX_DEBS
