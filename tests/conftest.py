"""Shared test fixtures."""
import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests with one torch thread, restored afterwards: tests made of many small
    torch ops are several times slower with intra-op thread hand-offs on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
