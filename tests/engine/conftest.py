import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import toy_plugin  # noqa: E402

from sedkit.plugins import Plugins  # noqa: E402

TOY_RECIPE = """\
description: toy recipe for engine tests
seed: 3
data: {{name: toy_data, params: {{n_train: 16, n_val: 6, batch_size: 4}}}}
model: {{name: toy_model, params: {{hidden: 16}}}}
features: {{sample_rate: 8000, n_fft: 256, hop_length: 64, n_mels: 16}}
trainer:
  max_epochs: {epochs}
  device: cpu
  progress_bar: false
  optimizer: {{name: adam, lr: 0.01}}
decoding: {{median_filter_s: 0.0, psds_thresholds: 4}}
run: {{root: {root}}}
"""


@pytest.fixture(scope="session")
def toy_plugins() -> Plugins:
    return Plugins.load(builtins_only=True, extra=[("toy", toy_plugin)])


@pytest.fixture
def toy_recipe(tmp_path):
    def make(epochs: int = 3) -> Path:
        path = tmp_path / f"toy_{epochs}.yaml"
        path.write_text(TOY_RECIPE.format(epochs=epochs, root=tmp_path / "runs"))
        return path

    return make
