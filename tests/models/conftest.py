"""Fixtures for the model tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    # The test models are tiny: a second OpenMP thread buys nothing and, when the cores are
    # shared, its spin-waiting made convolutions 10-100x slower (CPU time, not just wall time).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
