"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from checks import sandbox

NO_SANDBOX = sandbox.available()  # None where bubblewrap works; else why not (and what to install)
needs_sandbox = pytest.mark.skipif(NO_SANDBOX is not None, reason=f"needs a working bubblewrap: {NO_SANDBOX}")


def processes_with(marker: str) -> list[Path]:
    """The live processes whose command line holds ``marker`` (Linux's /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes():
                found.append(proc)
        except OSError:
            continue
    return found


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


@pytest.fixture(autouse=True)
def _private_progress_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks record progress in $WORKBOOK_HOME; tests (and the notebooks and commands they start)
    must never write into the real ~/.transformer-workbook of whoever runs them."""
    monkeypatch.setenv("WORKBOOK_HOME", str(tmp_path_factory.mktemp("workbook-home")))
