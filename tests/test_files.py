"""The app's one atomic write: whole or not at all, and the file keeps its permissions."""

from __future__ import annotations

import os
import stat

import pytest

from workbook.files import atomic_write


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_atomic_write_gives_a_new_file_the_usual_mode_and_keeps_an_old_files(tmp_path) -> None:
    target = tmp_path / "notebook.ipynb"
    atomic_write(target, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    os.chmod(target, 0o640)
    atomic_write(target, b"{ }")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_bytes() == b"{ }"
    assert [p.name for p in tmp_path.iterdir()] == ["notebook.ipynb"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch) -> None:
    target = tmp_path / "progress.json"
    atomic_write(target, "old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["progress.json"]
