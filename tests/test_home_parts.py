"""Colab as a first-class place: a part that passes its check in a notebook is kept in the workbook
home, and chapter 12 / ``use_my_work`` use it where they cannot see that notebook (``workbook.saved_parts``).

Also here: the training progress bar is text in a saved notebook, not a widget (``solutions.progress_bar``).
"""

from __future__ import annotations

import json
import linecache
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workbook import saved_parts
from workbook.notebooks import execute, learner_notebook_text, reference_source
from workbook.runner import IN_RUNNER

MHA = "MultiHeadAttention"
SETUP = """\
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
from workbook import check
from solutions import scaled_dot_product_attention"""
WIDGET = "application/vnd.jupyter.widget-view+json"


def _run_notebook(cells: list[str], cwd: Path) -> nbformat.NotebookNode:
    """Execute ``cells`` in a real kernel (as Jupyter or Colab would), in ``cwd``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _home() -> Path:
    return Path(os.environ["WORKBOOK_HOME"])  # a private one per test (conftest.py)


def _write_record(source: str) -> Path:
    path = saved_parts.part_path(MHA)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "version": saved_parts.VERSION,
        "exercise": MHA,
        "chapter": "04_multi_head_attention",
        "saved": "2026-01-01T00:00:00+00:00",
        "cells": [{"role": "exercise", "exercise": MHA, "source": source}],
    }
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def _as_cell(source: str, namespace: dict, number: int) -> None:
    """Run ``source`` the way IPython runs a cell: compiled under a name whose source linecache keeps."""
    filename = f"<test-cell-{number}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


def test_a_part_passed_in_one_notebook_is_used_by_chapter_12_from_the_home(tmp_path, monkeypatch, capsys):
    """The issue's test: MultiHeadAttention passes its check in one process (a kernel, as on Colab);
    another process, in a folder with no chapters, assembles chapter 12 with it."""
    notebook_dir = tmp_path / "colab-one"
    notebook_dir.mkdir()
    cells = [
        SETUP,
        "import numpy as np\nNOTE = 'mine'",  # a helper and a constant from cells of their own
        "def describe(module):\n    return f'{NOTE}: {np.pi:.2f}'",
        reference_source(MHA) + f"\n{MHA}.describe = describe",
        f"result = check({MHA})\nassert result.passed, result.failures",
    ]
    _run_notebook(cells, notebook_dir)
    record = json.loads((_home() / "parts" / f"{MHA}.json").read_text(encoding="utf-8"))
    sources = [c["source"] for c in record["cells"]]
    assert f"class {MHA}(nn.Module)" in sources[-1] and record["cells"][-1]["role"] == "exercise"
    assert "import numpy as np" in sources and "NOTE = 'mine'" in sources
    assert any(s.startswith("def describe") for s in sources)

    empty = tmp_path / "colab-twelve"  # chapter 12 on its own: no chapters folder beside it
    empty.mkdir()
    monkeypatch.chdir(empty)
    from workbook.learner import assemble, earlier_parts

    assembly = assemble(use_my_work=True)
    who, why = assembly.sources[MHA]
    assert who == "yours" and "workbook home" in why, why
    assert "1 of 18 parts are yours" in assembly.table()
    assert all(
        w == "reference" and "none kept in your workbook home" in y
        for n, (w, y) in assembly.sources.items()
        if n != MHA
    )
    model = assembly.model(20, 20, d_model=32, num_layers=1, num_heads=4, d_ff=64)
    attention = model.encoder.layers[0].self_attn
    assert type(attention).__module__ == "__main__"  # the learner's class, brought back by value
    assert attention.describe() == "mine: 3.14"  # with the helper and the constant of other cells

    parts = earlier_parts([MHA], use_my_work=True)  # a later chapter's `use_my_work = True`, alone too
    assert type(parts[MHA]).__name__ == "type" and parts[MHA].__module__ == "__main__"
    assert "yours (it passes its check; kept in your workbook home" in capsys.readouterr().out


def test_a_failing_kept_part_gives_the_reference_and_is_left_as_it_is(tmp_path, monkeypatch):
    broken = reference_source(MHA).replace("return self.W_o(", "return (")
    assert broken != reference_source(MHA)
    path = _write_record(broken)
    before = path.read_bytes()
    monkeypatch.chdir(tmp_path)
    from workbook.assembly import assemble

    assembly = assemble(True, "chapters")
    who, why = assembly.sources[MHA]
    assert who == "reference" and "kept in your workbook home" in why and "failed its check" in why, why
    assert assembly.parts[MHA].__module__ == "solutions._assembled"
    assert path.read_bytes() == before


def test_a_corrupted_kept_part_gives_the_reference_and_nothing_is_lost(tmp_path, monkeypatch):
    path = saved_parts.part_path(MHA)
    path.parent.mkdir(parents=True)
    garbage = b'{"version": 1, "exercise": "MultiHe\x00\xff'
    path.write_bytes(garbage)
    monkeypatch.chdir(tmp_path)
    from workbook.assembly import assemble

    assembly = assemble(True, "chapters")
    who, why = assembly.sources[MHA]
    assert who == "reference" and "cannot be read" in why and str(path) in why, why
    assert path.read_bytes() == garbage  # reading never changes it

    # the next pass keeps the new part and moves the unreadable file aside, never over it
    namespace = {"__name__": "__main__"}
    _as_cell(SETUP, namespace, 1)
    _as_cell(reference_source(MHA), namespace, 2)
    assert saved_parts.save(MHA, namespace[MHA]) == path
    assert isinstance(saved_parts.load(MHA), saved_parts.Saved)
    aside = list(path.parent.glob(f"{path.name}.broken-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage


def test_the_notebook_wins_over_the_home(tmp_path, monkeypatch):
    _write_record(reference_source(MHA))  # a passing part in the home...
    chapters = tmp_path / "chapters"
    chapters.mkdir()  # ...and the chapter's notebook, still a stub
    (chapters / "04_multi_head_attention.ipynb").write_text(learner_notebook_text("04"), encoding="utf-8")
    from workbook.assembly import assemble

    assembly = assemble(True, chapters)
    who, why = assembly.sources[MHA]
    assert who == "reference" and "workbook home" not in why, why


def test_only_a_passing_part_of_a_notebook_cell_is_kept_and_never_while_grading(monkeypatch):
    import solutions
    from workbook.learner import check

    namespace = {"__name__": "__main__"}
    _as_cell(SETUP, namespace, 1)
    _as_cell(reference_source(MHA), namespace, 2)
    path = saved_parts.part_path(MHA)

    monkeypatch.setenv(IN_RUNNER, "1")  # inside `workbook check`'s or use_my_work's worker
    assert check(namespace[MHA]).passed
    assert not path.exists()
    monkeypatch.delenv(IN_RUNNER)

    assert check(solutions.MultiHeadAttention).state in ("passed", "failed")  # defined in a module file
    assert not path.exists()

    assert check(namespace[MHA]).passed
    record = saved_parts.load(MHA)
    assert isinstance(record, saved_parts.Saved)
    assert [c["source"] for c in record.record["cells"]] == [reference_source(MHA)]  # setup names: not kept
    first = path.read_bytes()
    assert check(namespace[MHA]).passed and path.read_bytes() == first  # the same part again: not rewritten

    namespace["MultiHeadAttention"] = namespace[MHA]
    _as_cell(reference_source(MHA).replace("return self.W_o(", "return ("), namespace, 3)
    before = path.read_bytes()
    assert not check(namespace[MHA]).passed  # a failing check keeps the last passing version
    assert path.read_bytes() == before


@pytest.mark.timeout(300)
def test_the_training_bar_is_text_in_a_saved_notebook(tmp_path):
    """tqdm.auto drew a widget, whose state a saved notebook lacks ("Error displaying widget" and a
    stale 0% bar once reopened); the text bar is saved as it ended (as the solved copies are built)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(c)
        for c in [
            "from solutions.copy_task import CopyTaskConfig, train_copy_task\n"
            "_ = train_copy_task(CopyTaskConfig(steps=3))",
            "import importlib\n"  # the module, not the function solutions.pipeline.train
            "pipeline_train = importlib.import_module('solutions.pipeline.train')\n"
            "bar = pipeline_train.tqdm(total=2, desc='training')\nbar.update(2)\nbar.close()",
        ]
    ]
    execute(nb, cwd=tmp_path)
    for cell, (desc, total) in zip(nb.cells, [("copy task", "3/3"), ("training", "2/2")]):
        assert not any(WIDGET in out.get("data", {}) for out in cell.outputs), cell.outputs
        streams = [out for out in cell.outputs if out["output_type"] == "stream"]
        assert [out["name"] for out in streams] == ["stdout"], cell.outputs  # not the kernel's red stderr box
        text = streams[0]["text"]
        assert desc in text and total in text and "100%" in text, text
        assert f"0/{total[-1]}" not in text and "\r" not in text, text  # the finished bar only
    assert "widgets" not in nb.metadata
