"""One torch thread per test process: on a shared, busy CPU, intra-op threads that spin-wait make
tiny models tens of times slower, and the tests only ever use tiny models."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
