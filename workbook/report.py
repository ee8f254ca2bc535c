"""The teacher's report of an autograded course: one HTML page, with the class's common mistakes.

``workbook course DIR --report`` reads what nbgrader's own commands left in the course folder:

* the scores, from the gradebook (``gradebook.db``, nbgrader's API);
* the judge's verdict of every exercise (state, diagnoses, the flag "reference copied": the part is
  the reference, a subclass or wrapper of it, or its code; ``checks.copies``), from the judge's own
  record beside the gradebook (``workbook.course.verdicts_path``), written by autograde's judge; the
  autograded notebooks' outputs came from the student's kernel and are never read for a verdict;
* the submissions (``submitted/``), so that a submission autograde could not grade is named with
  the reason instead of standing as a silent zero.

and writes ``DIR/reports/report.html``: per chapter, a table of students x exercises (score, state,
diagnoses, or why it was not graded), and per exercise the most common diagnoses across the class,
as a table and a bar chart ("2 of 6 ffn_missing_relu: Your feed-forward network is linear...").
"""

from __future__ import annotations

import html
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from workbook.chapters import chapter as find_chapter
from workbook.course import grade_cell_id, verdicts_path


@dataclass
class Entry:
    """One student's one exercise."""

    student: str
    exercise: str
    score: float | None = None  # None: not graded
    max_score: float | None = None
    state: str = "not graded"  # passed / failed / not attempted / not graded
    diagnoses: list[str] = field(default_factory=list)
    why: str = ""  # why it was not graded, or the checker's first message
    flags: list[str] = field(default_factory=list)  # "reference copied: ..." (checks.copies)


@dataclass
class ChapterReport:
    stem: str
    exercises: list[str]
    entries: list[Entry] = field(default_factory=list)

    def diagnosis_counts(self, exercise: str) -> Counter:
        return Counter(d for e in self.entries if e.exercise == exercise for d in e.diagnoses)

    def students(self) -> list[str]:
        return sorted({e.student for e in self.entries})


def _gradebook_scores(course_dir: Path, stem: str) -> dict[str, dict[str, tuple[float, float]]]:
    """student -> grade id -> (score, max score), for the students autograde recorded."""
    from nbgrader.api import Gradebook, MissingEntry

    database = course_dir / "gradebook.db"
    if not database.exists():
        return {}
    scores: dict[str, dict[str, tuple[float, float]]] = {}
    with Gradebook(f"sqlite:///{database}") as gradebook:
        for student in gradebook.students:
            try:
                notebook = gradebook.find_submission_notebook(stem, stem, student.id)
            except MissingEntry:
                continue
            scores[student.id] = {g.name: (g.score, g.max_score) for g in notebook.grades}
    return scores


def _verdicts(course_dir: Path, stem: str, student: str) -> dict[str, dict] | None:
    """grade id -> the judge's verdict of one student's submission, from the judge's own record
    (``workbook.course.verdicts_path``); None when the judge left none. The autograded notebook is
    not read for verdicts: its outputs came from the student's kernel."""
    path = verdicts_path(course_dir, stem, student, stem)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {k: v for k, v in record.items() if isinstance(v, dict)} if isinstance(record, dict) else None


def _checker_message(error: str) -> str:
    """The checker's first message in a failed hidden test's error ("AssertionError: NAME: failed.\n...")."""
    lines = [line.strip() for line in error.splitlines()[1:] if line.strip()]
    return lines[0][:200] if lines else ""


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]


def collect(course_dir: Path, stem: str) -> ChapterReport:
    """Everything the report says about one chapter of the course."""
    course_dir = Path(course_dir)
    exercises = list(find_chapter(stem).exercises)
    report = ChapterReport(stem, exercises)
    scores = _gradebook_scores(course_dir, stem)
    submitted = sorted(p.name for p in (course_dir / "submitted").glob("*") if (p / stem).is_dir())
    for student in sorted(set(submitted) | set(scores)):
        autograded = course_dir / "autograded" / student / stem / f"{stem}.ipynb"
        verdicts = _verdicts(course_dir, stem, student)
        for name in exercises:
            entry = Entry(student, name)
            score = scores.get(student, {}).get(grade_cell_id(name))
            verdict = (verdicts or {}).get(grade_cell_id(name))
            if score is not None:
                entry.score, entry.max_score = score
            if not autograded.exists():
                entry.why = (
                    "autograde could not grade this submission (its kernel died, or it failed: see autograde's output)"
                )
            elif verdicts is None:
                entry.why = "the judge left no verdict for this submission (autograded with another configuration?)"
            elif verdict is None:
                entry.why = "its test cell is missing from the autograded notebook (a duplicate or deleted grade id?)"
            else:
                entry.state = str(verdict.get("state", "not graded"))
                entry.diagnoses = list(verdict.get("diagnoses", []))
                entry.flags = list(verdict.get("flags", []))
                failures = [f for f in verdict.get("failures", []) if isinstance(f, str)]
                entry.why = verdict.get("why") or (_first_line(failures[0]) if failures else "")
            if entry.state == "passed" and score is not None and score[0] != score[1]:
                entry.state, entry.why = "not graded", "the gradebook's score disagrees with the judge's verdict"
            report.entries.append(entry)
    return report


# --------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------
def diagnosis_label(diagnosis: str) -> str:
    """A short label for a diagnosis id: its first sentence."""
    from checks.diagnoses import DIAGNOSES

    known = DIAGNOSES.get(diagnosis)
    if known is None:
        return diagnosis
    return re.split(r"(?<=\.)\s", known.text, maxsplit=1)[0].rstrip(".")


def _chart_svg(report: ChapterReport) -> str:
    """A horizontal bar chart of the diagnoses of every exercise of the chapter (inline SVG)."""
    from matplotlib.figure import Figure

    rows = [
        (name, diag, count) for name in report.exercises for diag, count in report.diagnosis_counts(name).most_common()
    ]
    if not rows:
        return ""
    figure = Figure(figsize=(8, 0.45 * len(rows) + 1.0))
    axis = figure.subplots()
    labels = [f"{name}: {diag}" for name, diag, _ in rows]
    axis.barh(range(len(rows)), [count for *_, count in rows], color="#cf222e")
    axis.set_yticks(range(len(rows)), labels, fontsize=9)
    axis.invert_yaxis()
    axis.set_xlabel("students")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.set_title(f"{report.stem}: the most common mistakes", fontsize=11)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


CSS = """
body { font-family: sans-serif; font-size: 14px; margin: 2em; color: #1f2328; background: #fff; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.passed { color: #1a7f37; } .failed { color: #cf222e; } .not-attempted { color: #7d4e00; }
.not-graded { color: #8250df; font-weight: bold; }
.why { color: #57606a; font-size: 12px; }
.flag { color: #9a6700; font-size: 12px; font-weight: bold; }
"""


def render(reports: list[ChapterReport]) -> str:
    """The whole report as one HTML page (styles and charts inline: it opens anywhere)."""
    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Course report</title>", f"<style>{CSS}</style>"]
    parts.append("</head><body><h1>Course report</h1>")
    for report in reports:
        students = report.students()
        parts.append(f"<h2>{esc(report.stem)}</h2>")
        if not students:
            parts.append("<p>No submissions autograded yet.</p>")
            continue
        ungraded = [e for e in report.entries if e.state == "not graded"]
        if ungraded:
            parts.append(f"<p class='not-graded'>{len(ungraded)} exercise(s) could not be graded: see below.</p>")
        parts.append("<table><tr><th>student</th>" + "".join(f"<th>{esc(n)}</th>" for n in report.exercises) + "</tr>")
        by_key = {(e.student, e.exercise): e for e in report.entries}
        for student in students:
            cells = []
            for name in report.exercises:
                e = by_key[(student, name)]
                score = "" if e.score is None else f"{e.score:g} / {e.max_score:g} "
                diags = "".join(f"<br><span class='why'>{esc(d)}</span>" for d in e.diagnoses)
                why = (
                    f"<br><span class='why'>{esc(e.why)}</span>"
                    if e.why and e.state in ("not graded", "failed")
                    else ""
                )
                flags = "".join(f"<br><span class='flag'>{esc(f)}</span>" for f in e.flags)
                css = e.state.replace(" ", "-")
                cells.append(f"<td><span class='{css}'>{esc(score)}{esc(e.state)}</span>{diags}{why}{flags}</td>")
            parts.append(f"<tr><td>{esc(student)}</td>{''.join(cells)}</tr>")
        parts.append("</table>")
        for name in report.exercises:
            counts = report.diagnosis_counts(name)
            total = sum(1 for e in report.entries if e.exercise == name)
            if not counts:
                continue
            parts.append(
                f"<h3>{esc(name)}: the most common mistakes</h3><table><tr><th>students</th><th>diagnosis</th>"
                "<th>what the numbers showed</th></tr>"
            )
            for diag, count in counts.most_common():
                parts.append(
                    f"<tr><td>{count} of {total}</td><td><code>{esc(diag)}</code></td>"
                    f"<td>{esc(diagnosis_label(diag))}</td></tr>"
                )
            parts.append("</table>")
        parts.append(_chart_svg(report))
    data = [{"chapter": r.stem, "entries": [e.__dict__ for e in r.entries]} for r in reports]
    payload = json.dumps(data).replace("<", "\\u003c")  # valid JSON that cannot close the script
    parts.append(f"<script type='application/json' id='report-data'>{payload}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)
