"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "multi30k"


@pytest.fixture
def multi30k_dir() -> Path:
    """The real Multi30k files beside the repository; the test is skipped when they are absent."""
    if not (SHARED_DATA / "train.de.gz").exists():
        pytest.skip(f"Multi30k files not found in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
