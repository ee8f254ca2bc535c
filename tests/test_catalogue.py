"""The checker against implementations it has never seen (``tests/catalogue/``).

* every buggy implementation fails, and at least 90% of them carry the diagnosis written for their
  mistake (issue: "a catalogue of at least 40 buggy implementations ... at least 90% of them carry the
  diagnosis");
* every correct implementation written differently from the reference passes ("a checker that
  rejects correct code is worse than none").

Each implementation is graded once (results are cached for the share test).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalogue import Entry, load

from checks import check
from checks.diagnoses import DIAGNOSES
from workbook.chapters import EXERCISE_TO_CHAPTER

BUGGY, CORRECT = load()
_RESULTS: dict[str, object] = {}


def grade(entry: Entry):
    """``check(entry.obj, exercise=entry.exercise)``, computed once per entry."""
    if entry.id not in _RESULTS:
        _RESULTS[entry.id] = check(entry.obj, exercise=entry.exercise)
    return _RESULTS[entry.id]


def test_catalogue_is_big_enough_and_covers_every_exercise() -> None:
    assert len(BUGGY) >= 50
    assert len(CORRECT) >= 18
    assert {e.exercise for e in BUGGY} == set(EXERCISE_TO_CHAPTER), "every exercise needs buggy versions"
    ids = [e.id for e in BUGGY + CORRECT]
    assert len(ids) == len(set(ids)), "catalogue entry ids must be unique"


def test_every_expected_diagnosis_is_a_known_id() -> None:
    unknown = sorted({e.diagnosis for e in BUGGY} - set(DIAGNOSES))
    assert not unknown, f"diagnosis ids not in checks/diagnoses.py: {unknown}"


@pytest.mark.parametrize("entry", BUGGY, ids=[e.id for e in BUGGY])
def test_buggy_implementation_fails(entry: Entry) -> None:
    result = grade(entry)
    assert result.state == "failed", f"{entry.description}: expected 'failed', got {result.state!r}\n{result}"
    assert not result.passed
    assert result.failures, "a failed result must say why"


def test_at_least_90_percent_of_bugs_get_their_diagnosis() -> None:
    missed = []
    for entry in BUGGY:
        result = grade(entry)
        if entry.diagnosis not in result.diagnoses:
            missed.append(
                f"  {entry.id}: expected {entry.diagnosis!r} ({entry.description}); "
                f"got {result.state}, diagnoses={result.diagnoses}, "
                f"first message={result.failures[:1]}"
            )
    share = 1 - len(missed) / len(BUGGY)
    print(f"\n{len(BUGGY) - len(missed)}/{len(BUGGY)} bugs diagnosed ({share:.0%}); missed:\n" + "\n".join(missed))
    assert share >= 0.9, f"only {share:.0%} of the bugs carry their diagnosis; missed:\n" + "\n".join(missed)


@pytest.mark.parametrize("entry", CORRECT, ids=[e.id for e in CORRECT])
def test_correct_implementation_passes(entry: Entry) -> None:
    result = grade(entry)
    assert result.state == "passed", f"{entry.description}: rejected a correct implementation\n{result}"
    assert result.passed and not result.failures and not result.diagnoses
