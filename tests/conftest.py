"""Test-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tests use tiny tensors: with several threads, synchronisation costs more than the work,
    # and on a busy 2-core machine oversubscription slows everything down many times.
    torch.set_num_threads(1)
