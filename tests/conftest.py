"""Shared test fixtures.

``single_thread``: tiny models run fastest on one intra-op thread; with two OpenMP threads on a
shared, oversubscribed CPU their spin-waits make a tiny training step up to ~50x slower. Modules
opt in with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
