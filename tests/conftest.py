"""Suite-wide fixtures: one torch thread per test.

The tests only use tiny models; torch's intra-op threads cost more than they give there, and on a
busy CPU their spin-waiting makes tiny models tens of times slower.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
