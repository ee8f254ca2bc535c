"""Issue 23, a newcomer's first hour: what the `workbook` command and the notebooks say to a learner.

* nothing a learner wrote is overwritten by `workbook build` without `--force` and a dated backup,
  and the developers' commands stay out of the learner's `workbook --help`;
* `earlier_parts` says one truthful line per part, and no earlier chapter's own prints leak into the
  learner's notebook (they did, from the forked workers, in a Jupyter kernel);
* a misspelt exercise, chapter or notebook path gets "did you mean", a missing argument the list of
  names, a missing file "file not found".
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from workbook.cli import main
from workbook.notebooks import learner_notebook_text

REPO = Path(__file__).resolve().parents[1]
EARLIER_07 = ["TokenEmbedding", "PositionalEncoding", "MultiHeadAttention", "FeedForwardNetwork", "LayerNorm"]


@pytest.fixture(autouse=True)
def _here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _edited_copy(folder: Path, stem: str = "03_attention", mark: str = "# my own attempt 42") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stem}.ipynb"
    target.write_text(learner_notebook_text(stem), encoding="utf-8")
    nb = nbformat.read(target, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and "NotImplementedError" in c.source)
    code.source = code.source.replace("raise NotImplementedError()", f"return None  {mark}")
    nbformat.write(nb, target)
    return target


# --------------------------------------------------------------------------------------------------
# 1. build never overwrites the learner's work without --force, and then keeps a dated backup
# --------------------------------------------------------------------------------------------------
def test_build_keeps_an_edited_notebook_and_says_how_to_replace_it(tmp_path, capsys):
    out = tmp_path / "chapters"
    target = _edited_copy(out)
    before = target.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["build", "03", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Not overwritten" in err and str(target) in err and "--force 03" in err
    assert target.read_text(encoding="utf-8") == before  # the edit is kept, byte for byte
    assert not (out / "backups").exists()


def test_build_force_replaces_it_and_keeps_a_dated_backup(tmp_path, capsys):
    out = tmp_path / "chapters"
    target = _edited_copy(out)
    assert main(["build", "--force", "03", "--out", str(out)]) == 0
    assert target.read_text(encoding="utf-8") == learner_notebook_text("03_attention")
    backups = list((out / "backups").glob("03_attention-*.ipynb"))
    assert len(backups) == 1 and "my own attempt 42" in backups[0].read_text(encoding="utf-8")
    assert str(backups[0]) in capsys.readouterr().out
    assert main(["build", "03", "--out", str(out)]) == 0  # now it is build's own file again
    assert len(list((out / "backups").iterdir())) == 1  # nothing to back up: no second copy


def test_build_overwrites_what_an_earlier_build_wrote_without_asking(tmp_path):
    """A notebook an earlier build wrote (its hash is in the folder's manifest: the source changed
    since) is build's own: replaced, no backup, exit 0."""
    out = tmp_path / "chapters"
    assert main(["build", "03", "--out", str(out)]) == 0
    older = learner_notebook_text("03_attention").replace("Scaled dot-product", "Scaled  dot-product")
    (out / "03_attention.ipynb").write_text(older, encoding="utf-8")
    manifest = out / ".workbook" / "build-manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["03_attention"].append(hashlib.sha256(older.encode()).hexdigest())
    manifest.write_text(json.dumps(data), encoding="utf-8")
    assert main(["build", "03", "--out", str(out)]) == 0
    assert (out / "03_attention.ipynb").read_text(encoding="utf-8") == learner_notebook_text("03_attention")
    assert not (out / "backups").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_build_overwrites_a_notebook_as_committed_but_not_one_edited_since(tmp_path):
    out = tmp_path / "repo" / "chapters"
    out.mkdir(parents=True)
    committed = learner_notebook_text("03_attention").replace("Scaled dot-product", "Scaled  dot-product")
    (out / "03_attention.ipynb").write_text(committed, encoding="utf-8")
    git = ["git", "-C", str(out.parent), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    assert main(["build", "03", "--out", str(out)]) == 0  # as committed: the repository has it
    assert (out / "03_attention.ipynb").read_text(encoding="utf-8") == learner_notebook_text("03_attention")
    _edited_copy(out)  # now the learner's edit on top
    assert main(["build", "03", "--out", str(out)]) == 1
    assert "my own attempt 42" in (out / "03_attention.ipynb").read_text(encoding="utf-8")


def test_developer_commands_are_left_out_of_the_learners_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    learner = capsys.readouterr().out
    listed = {line.split()[0] for line in learner.splitlines() if line.startswith("    ") and line.split()}
    assert {"check", "status", "hint", "solution", "reset", "train"} <= listed
    assert not {"build", "generate"} & listed
    assert "--help-all" in learner
    assert main(["--help-all"]) == 0
    everything = capsys.readouterr().out
    assert "    build " in everything and "    generate " in everything


# --------------------------------------------------------------------------------------------------
# 2. one truthful line per part
# --------------------------------------------------------------------------------------------------
def test_earlier_parts_says_one_line_per_part_for_the_reference(capsys):
    from workbook import earlier_parts

    parts = earlier_parts(EARLIER_07, use_my_work=False)
    lines = capsys.readouterr().out.splitlines()
    said = "the reference (use_my_work = False; set use_my_work = True to use yours)"
    assert lines == [f"- {n}: {said}" for n in EARLIER_07]
    import solutions

    assert all(parts[n] is getattr(solutions, n) for n in EARLIER_07)


KERNEL_SCRIPT = textwrap.dedent(
    """
    import sys, json
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=sys.argv[2])
    try:
        msg_id = kc.execute(sys.argv[1])
        out = []
        while True:
            msg = kc.get_iopub_msg(timeout=240)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        print(json.dumps("".join(out)))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    """
)


def test_in_a_jupyter_kernel_only_the_chosen_parts_are_reported(tmp_path):
    """Chapter 07 with use_my_work = True, in a real kernel: one line per part, and none of the
    earlier chapters' own "Using the reference for ..." lines (their workers are forked from the
    kernel, whose sys.stdout sends to the notebook)."""
    pytest.importorskip("jupyter_client")
    pytest.importorskip("ipykernel")
    chapters = tmp_path / "chapters"
    shutil.copytree(REPO / "chapters" / "solved", chapters)  # every exercise filled in: all pass
    code = f"from workbook import earlier_parts\nparts = earlier_parts({EARLIER_07!r}, use_my_work=True)\n"
    result = subprocess.run(
        [sys.executable, "-c", KERNEL_SCRIPT, code, str(chapters)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    shown = json.loads(result.stdout.strip().splitlines()[-1]).splitlines()
    assert shown == [f"- {n}: yours (it passes its check)" for n in EARLIER_07], shown


# --------------------------------------------------------------------------------------------------
# 5. messages: did you mean, case, missing arguments, missing files
# --------------------------------------------------------------------------------------------------
def test_a_misspelt_exercise_gets_did_you_mean(capsys):
    assert main(["hint", "MultiHeadAtention"]) == 2
    assert "Did you mean MultiHeadAttention?" in capsys.readouterr().err
    assert main(["solution", "layer_norm"]) == 2
    assert "Did you mean LayerNorm?" in capsys.readouterr().err


def test_exercise_names_are_case_insensitive_where_unambiguous(capsys):
    assert main(["solution", "layernorm"]) == 0
    assert capsys.readouterr().out.startswith("Reference solution for LayerNorm")
    assert main(["hint", "MULTIHEADATTENTION"]) == 0
    assert capsys.readouterr().out.startswith("Hint 1 of ")


def test_in_a_notebook_too(capsys):
    from workbook.learner import exercise_name

    assert exercise_name("tokenembedding") == "TokenEmbedding"
    with pytest.raises(ValueError, match="Did you mean TokenEmbedding"):
        exercise_name("TokenEmbeding")


def test_a_bare_hint_names_the_exercises(capsys):
    assert main(["hint"]) == 2
    err = capsys.readouterr().err
    assert "Which exercise?" in err and "MultiHeadAttention (04)" in err and "softmax (00)" in err
    assert main(["solution"]) == 2
    assert "Which exercise?" in capsys.readouterr().err
    assert main(["reset"]) == 2
    err = capsys.readouterr().err
    assert "Which chapter?" in err and "03_attention" in err


def test_check_of_a_missing_file_says_file_not_found(capsys):
    assert main(["check", "/nonexistent/x.ipynb"]) == 2
    err = capsys.readouterr().err
    assert "file not found" in err and "cannot tell which chapter" not in err


def test_check_of_a_misspelt_notebook_path_names_it_and_the_close_one(tmp_path, capsys):
    chapters = tmp_path / "chapters"
    _edited_copy(chapters)
    assert main(["check", str(chapters / "03_atention.ipynb")]) == 2
    err = capsys.readouterr().err
    assert "03_atention.ipynb: file not found" in err and "Did you mean 03_attention.ipynb?" in err
    assert "not every exercise passes" not in err


def test_chapters_get_did_you_mean_and_case_too(tmp_path, capsys):
    chapters = tmp_path / "chapters"
    _edited_copy(chapters)
    assert main(["check", "03_atention", "--dir", str(chapters)]) == 2
    assert "Did you mean 03_attention?" in capsys.readouterr().err
    assert main(["check", "layernrom", "--dir", str(chapters)]) == 2
    assert "Did you mean 06_layer_norm (LayerNorm)?" in capsys.readouterr().err
    assert main(["check", "13", "--dir", str(chapters)]) == 2
    assert "numbered 00 to 12" in capsys.readouterr().err
    assert main(["reset", "ATTENTION", "--chapters-dir", str(chapters)]) == 0  # the stem without its number
    assert (chapters / "03_attention.ipynb").read_text(encoding="utf-8") == learner_notebook_text("03_attention")
    assert main(["reset", "3_atention", "--chapters-dir", str(chapters)]) == 2
    assert "Did you mean 03_attention?" in capsys.readouterr().err


def test_check_of_a_deleted_notebook_says_not_found_not_failing(tmp_path, capsys):
    chapters = tmp_path / "chapters"
    _edited_copy(chapters)
    assert main(["check", "04", "--dir", str(chapters)]) == 1
    out = capsys.readouterr().out
    assert "not found: 04_multi_head_attention.ipynb" in out
    assert "not every exercise passes" not in out


# --------------------------------------------------------------------------------------------------
# 3. `workbook train` prints the table of parts, and no BLEU where BLEU cannot mean anything
# --------------------------------------------------------------------------------------------------
def _result(references: list[str]):
    from types import SimpleNamespace

    examples = [(f"source {i}", ref, ref) for i, ref in enumerate(references)]
    test = {"bleu": 0.0, "chrf": 100.0, "exact_match": 1.0}
    return SimpleNamespace(test=test, examples=examples, step=10, seconds=60.0)


def test_the_numbers_task_reports_exact_match_and_chrf_and_says_why_not_bleu():
    from workbook.commands.train import test_summary

    line = test_summary(_result(["dreihundertvierundzwanzig", "zwei"]))
    assert "exact match 100.0%, chrF 100.0" in line
    assert "sacreBLEU" not in line and "No BLEU for this task" in line and "at most 1 word," in line


def test_sentences_report_sacrebleu_too():
    from workbook.commands.train import test_summary

    line = test_summary(_result(["A dog runs on the beach .", "Two men talk ."]))
    assert line.startswith("Test set (2 sentences") and "sacreBLEU 0.0, exact match" in line
    assert "No BLEU" not in line


def test_train_prints_which_part_came_from_where_and_translate_decodes_as_train_tested(tmp_path, capsys, monkeypatch):
    tiny = ["--num-train", "200", "--vocab-size", "300", "--d-model", "32", "--layers", "1", "--heads", "2"]
    tiny += ["--d-ff", "64", "--max-tokens", "256", "--warmup", "20", "--no-progress", "--threads", "1"]
    tiny += ["--eval-sentences", "10", "--test-sentences", "10", "--steps", "4", "--eval-every", "0"]
    assert main(["train", *tiny, "--out", str(tmp_path / "run"), "--chapters", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    table = out[out.index("The model's parts") : out.index("parts are yours.")]
    from solutions.pipeline.parts import PARTS

    for name in PARTS:
        assert re.search(rf"^{name}\s+reference\s+", table, re.M), name
    assert "0 of" in out and "No BLEU for this task" in out

    # `workbook translate` decodes as the run's test set was (numbers: greedy), unless told otherwise
    from solutions.pipeline import translate

    beams = []
    real = translate.Translator.__call__
    monkeypatch.setattr(
        translate.Translator, "__call__", lambda self, s, beam_size=1, **k: beams.append(beam_size) or real(self, s, 1)
    )
    assert main(["translate", "--checkpoint", str(tmp_path / "run"), "seven hundred"]) == 0
    assert main(["translate", "--checkpoint", str(tmp_path / "run"), "--beam", "3", "seven hundred"]) == 0
    assert beams == [1, 3]


def test_demo_says_how_long_it_took_and_on_how_many_threads(capsys):
    import torch

    before = torch.get_num_threads()
    assert main(["demo", "--steps", "3", "--threads", "1"]) in (0, 1)
    assert re.search(r"^\(\d+ s, 1 CPU thread\(s\)\)$", capsys.readouterr().out, re.M)
    assert torch.get_num_threads() == before  # the caller's setting is left as it was
