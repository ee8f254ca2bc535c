"""Cases modelled on code in public repositories: each reproduces, in our own code, the behaviour of a
named file (repository, path, commit); no third-party code is copied.

Issue 13 asked for "a catalogue of code people really write". Each case here is a pattern observed in a
public repository (one module per repository, named after it), written anew for this workbook:

* ``repo`` / ``path`` / ``commit`` say where the pattern was observed (the commit is the one the code
  index served);
* ``pattern`` describes the observed behaviour in a few lines: what the code computes and how it differs
  from the contract, with the exact choices the checker sees (eps values, divisors such as V-2, where the
  dropout is, which shapes and dtypes it accepts and returns). ``obj`` is our own implementation of that
  description, in this workbook's plain style, with the contract's names and signatures;
  ``differences`` lists the differences from the contract it models (for a correct case: the free
  choices it makes);
* ``label`` is ``"correct"`` (satisfies the contract), ``"buggy"`` (a real mistake, named in ``why``)
  or ``"variant"`` (a legitimate difference from the contract's choice, named in ``why``);
* ``expect`` is what a fitting checker message must say: ``PASSES`` for a correct case, otherwise a
  regular expression (case-insensitive) that a failure message must match: it names the real mistake
  or the difference, with the contract's choice. A variant with ``may_pass=True`` fits either way:
  the contract leaves that freedom. ``reject`` (optional) is a regex a fitting message must NOT match:
  a diagnosis that blames the code for a mistake it does not have.

Composite exercises look up the parts they use by the contract's names in their own module, as a
learner's notebook does, so the checker's isolation swaps them for the reference exactly as it would
in a notebook; a part taken from ``solutions`` (imported) is the reference in every test.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PASSES = "passes"

LABELS = ("correct", "buggy", "variant")

# one module per repository where the patterns were observed (importing a module registers its cases)
MODULES = (
    "annotated_transformer",
    "hyunwoongko_transformer",
    "jadore_attention",
    "hkproj_transformer",
    "samlynnevans_transformer",
    "gordicaleksa_transformer",
    "tunz_transformer",
    "bentrevett_seq2seq",
    "d2l",
    "nanogpt",
    "pytorch_examples",
    "hf_transformers",
    "fubiye_finlp",
    "saudxinu_lm_from_scratch",
    "tgadeliya_matcha",
    "zhengxxn_nmt",
    "coqui_trainer",
    "bewhitehorse_transformer_practice",
    "haesung_dl_paper",
    # held-out round: repositories not used while the checker was tuned
    "heldout_diy_transformers",
    "heldout_alaneuler_my_transformer",
    "heldout_nikitakapitan_transformers",
    "heldout_dikpaal_attention",
    "heldout_spt_code",
    "heldout_matthcorn_projets",
    "heldout_shoutu_transformer",
    "heldout_shaoyuanxun_transformer",
    "heldout_saccinzz_attention",
    # held-out round 2 (issue 22): expectations committed before grading
    "heldout2_mukang98_own_transformer",
    "heldout2_kveps_motion_prediction",
    "heldout2_neerabhy_text_summarization",
    "heldout2_cocaer_simplenmt",
    "heldout2_hannlp_simplenmt",
    "heldout2_dwzhang00_offline_translation",
    "heldout2_svetimfm_transformer_training_interface",
    "heldout2_yondijr_ner_transformer",
    "heldout2_admsit0_tfg",
    "heldout2_danhorvath_levenshtein_transformer",
    "heldout2_joan_of_arc_transformer_study_cases",
    "heldout2_mancanelli_phydi",
    "heldout2_pikagu_mlsys",
    "heldout2_sinha_abhash_nmt_with_pytorch",
    "heldout2_shaundashuaibi_project_transformer",
    "heldout2_shawnspitzel_cs336",
    "heldout2_rashikshahjahan_micrograd_extented",
    # held-out round 3 (issue 22): expectations committed before grading
    "heldout3_codertimo_bert_pytorch",
    "heldout3_gh_xd_deep_learning_notes",
    "heldout3_walkacross_transformer_pytorch",
    "heldout3_alex_hanzh_retransformer",
    "heldout3_developer1503_transformer_llm",
    "heldout3_yoon123seul_pytorch_study",
    "heldout3_tofigh_lstm",
    "heldout3_jules_t_mlalgos",
    "heldout3_poojasangeetha_attention_based_neural_network",
    "heldout3_zhongmoxingzhe_code_context_aware_todo_tracking",
    "heldout3_neotter_csl4har",
    "heldout3_andrewsukhobok95_discrete_latents",
    # issue 22: mistakes reported on code nobody here had seen
    "issue22_cases",
)


@dataclass(frozen=True)
class RealCase:
    """One observed pattern, reproduced in our own code, answering one exercise."""

    id: str  # "<module>/<exercise>[-suffix]", unique
    exercise: str  # exercise name from CONTRACT.md
    label: str  # "correct", "buggy" or "variant"
    repo: str  # GitHub owner/name where the pattern was observed
    path: str  # file inside the repository
    commit: str  # 40 hex digits
    why: str  # one line: the mistake, the difference, or why it is right
    expect: str  # PASSES, or a regex a fitting failure message matches
    pattern: str  # the observed behaviour, which ``obj`` reproduces
    obj: Any = field(repr=False)  # our class or function written from ``pattern``
    differences: tuple[str, ...] = ()  # the differences from the contract that ``obj`` models
    may_pass: bool = False  # a variant the contract allows: passing fits too
    reject: str = ""  # a regex naming a mistake this code does not have (a wrong diagnosis)


REAL: list[RealCase] = []


def case(
    exercise: str,
    label: str,
    *,
    source: dict[str, str],
    why: str,
    expect: str,
    pattern: str,
    differences: tuple[str, ...] | list[str] = (),
    may_pass: bool = False,
    reject: str = "",
    suffix: str = "",
    path: str | None = None,
) -> Callable[[Any], Any]:
    """Register the decorated class or function as a case of ``exercise``.

    ``source`` holds ``repo``, ``path`` and ``commit`` of the file where the pattern was observed
    (``path`` may be overridden per case).
    """
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}")
    if (label == "correct") != (expect == PASSES) and not may_pass:
        raise ValueError("a correct case expects PASSES; a buggy or variant case a failure regex")
    if not pattern.strip():
        raise ValueError("every case describes the behaviour it reproduces")

    def register(obj: Any) -> Any:
        module = obj.__module__.rsplit(".", 1)[-1]
        cid = f"{module}/{exercise}" + (f"-{suffix}" if suffix else "")
        REAL.append(
            RealCase(
                id=cid,
                exercise=exercise,
                label=label,
                repo=source["repo"],
                path=path or source["path"],
                commit=source["commit"],
                why=why,
                expect=expect,
                pattern=pattern,
                obj=obj,
                differences=tuple(differences),
                may_pass=may_pass,
                reject=reject,
            )
        )
        return obj

    return register


# A message that reports the grader's own crash never fits, whatever words of the crash match ``expect``.
GRADER_ERROR = r"The checker itself ran into a problem"


@dataclass(frozen=True)
class Verdict:
    """How the checker's result on one case compares with what the case expects."""

    fits: bool  # the result is what a fitting checker gives
    caught: bool  # the checker failed the case (state "failed")
    fitting_message: bool  # it failed with a message that matches ``expect`` (and not ``reject``)
    why_not: str  # empty when it fits: what is wrong with the result


def judge(c: RealCase, state: str, failures: list[str]) -> Verdict:
    """Compare a result (``state`` and ``failures`` of a CheckResult) with what case ``c`` expects."""
    import re

    message = "\n".join(failures)
    caught = state == "failed"
    matched = caught and re.search(c.expect, message, re.IGNORECASE) is not None if c.expect != PASSES else False
    rejected = bool(c.reject) and re.search(c.reject, message, re.IGNORECASE) is not None
    crashed = re.search(GRADER_ERROR, message) is not None
    fitting_message = matched and not rejected and not crashed
    if c.label == "correct":
        fits = state == "passed"
        why_not = "" if fits else f"rejects correct code ({c.why})"
    elif state == "passed":
        fits = c.may_pass
        why_not = "" if fits else f"lets it pass: {c.why}"
    else:
        fits = fitting_message
        if fits:
            why_not = ""
        elif crashed:
            why_not = f"the grader itself crashed instead of grading it; the case: {c.why}"
        elif rejected:
            why_not = f"blames a mistake the code does not have (/{c.reject}/); the case: {c.why}"
        elif not caught:
            why_not = f"state {state!r} instead of a failure naming it: {c.why}"
        else:
            why_not = f"does not name it (a fitting message matches /{c.expect}/): {c.why}"
    return Verdict(fits, caught, fitting_message, why_not)


def load() -> list[RealCase]:
    """Import every module of this folder and return the registered cases (in registration order)."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    ids = [c.id for c in REAL]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate real-case ids: {duplicates}")
    return REAL
