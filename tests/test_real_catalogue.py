"""The checker against code people really write: ``tests/catalogue/real/`` (issue 13).

Each case reproduces, in our own code, a pattern observed in a named file of a public repository (its
``pattern`` describes the behaviour; no third-party code is copied), labelled correct, buggy or variant,
with what a fitting checker message must say (see the package docstring).
Every case is graded once (results are cached) and judged with ``catalogue.real.judge``:

* a correct case passes;
* a buggy case fails with a message that names its mistake;
* a variant fails with a message that names the difference (or passes, where the contract allows it).

Where today's checker gets a case wrong, the case is listed in ``catalogue/real/misses.py`` and its
test is ``xfail(strict=True)`` with what the checker says instead: the suite stays green, and a checker
fix turns that test into an XPASS failure that asks for the entry to be removed. The figures and the
list of misses: ``python benchmarks/real_catalogue_report.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalogue.real import LABELS, PASSES, RealCase, judge, load
from catalogue.real.misses import KNOWN_MISSES, MECHANISMS

from checks import check
from workbook.chapters import EXERCISE_TO_CHAPTER

CASES = load()
_RESULTS: dict[str, tuple[str, list[str]]] = {}


def grade(case: RealCase) -> tuple[str, list[str]]:
    """``check(case.obj, exercise=case.exercise)`` as (state, failures), computed once per case."""
    if case.id not in _RESULTS:
        result = check(case.obj, exercise=case.exercise)
        _RESULTS[case.id] = (result.state, list(result.failures))
    return _RESULTS[case.id]


def test_catalogue_is_big_enough_and_covers_every_exercise() -> None:
    assert len(CASES) >= 40
    assert len({c.repo for c in CASES}) >= 8, "cases from at least 8 repositories"
    assert {c.exercise for c in CASES} == set(EXERCISE_TO_CHAPTER), "every exercise needs real cases"
    for label in LABELS:
        assert any(c.label == label for c in CASES), f"no {label} case"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_is_well_formed(case: RealCase) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", case.commit), "a commit is 40 hex digits"
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", case.repo)
    assert case.path and case.why and case.pattern.strip()
    assert callable(case.obj)
    if case.label == "correct":
        assert case.expect == PASSES and not case.may_pass
    else:
        re.compile(case.expect)
        assert case.expect != PASSES
    if case.reject:
        re.compile(case.reject)


def test_known_misses_name_real_cases_and_mechanisms() -> None:
    ids = {c.id for c in CASES}
    assert set(KNOWN_MISSES) <= ids, f"unknown ids in misses.py: {sorted(set(KNOWN_MISSES) - ids)}"
    assert {mechanism for mechanism, _ in KNOWN_MISSES.values()} <= set(MECHANISMS)


def _param(case: RealCase):
    if case.id not in KNOWN_MISSES:
        return pytest.param(case, id=case.id)
    mechanism, says = KNOWN_MISSES[case.id]
    return pytest.param(
        case, id=case.id, marks=pytest.mark.xfail(strict=True, reason=f"[{mechanism}] the checker says: {says}")
    )


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_real_case_gets_a_fitting_result(case: RealCase) -> None:
    state, failures = grade(case)
    verdict = judge(case, state, failures)
    shown = "\n".join(failures)[:1500]
    assert verdict.fits, f"{case.id} ({case.label}): {verdict.why_not}\nchecker ({state}):\n{shown}"
