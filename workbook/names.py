"""What a learner types for an exercise or a chapter, forgiven where it is unambiguous.

``exercise("layernorm")`` is ``LayerNorm`` (case does not matter when only one name fits);
``exercise("MultiHeadAtention")`` raises ``ValueError`` saying "did you mean MultiHeadAttention?"
(``difflib``). ``chapter("03_atention")`` does the same for chapters: a number (3, 03), a stem
(03_attention), the stem without its number (attention), or an exercise name.
"""

from __future__ import annotations

import difflib

from workbook.chapters import CHAPTERS, EXERCISE_TO_CHAPTER, Chapter
from workbook.chapters import chapter as exact_chapter


def _close(word: str, candidates: list[str]) -> list[str]:
    """The candidates closest to ``word``, case ignored, best first, in their own spelling: the best
    one and any second that is nearly as close."""
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=3, cutoff=0.6)
    if not matches:
        return []
    best = difflib.SequenceMatcher(None, word.lower(), matches[0]).ratio()
    near = [m for m in matches if difflib.SequenceMatcher(None, word.lower(), m).ratio() >= best - 0.05]
    return [lowered[m] for m in near[:2]]


def did_you_mean(word: str, candidates: list[str]) -> str:
    """ " Did you mean X?" (or " X or Y?"), or "" when nothing is close."""
    close = _close(word, candidates)
    if not close:
        return ""
    return " Did you mean " + " or ".join(close) + "?"


def exercises_listed() -> str:
    """Every exercise, with its chapter's number: "softmax (00), TokenEmbedding (01), ..."."""
    return ", ".join(f"{name} ({stem[:2]})" for name, stem in EXERCISE_TO_CHAPTER.items())


def exercise(name: str) -> str:
    """The exercise ``name`` means: itself, or the one name that equals it with case ignored.

    Raises ``ValueError`` with "did you mean" and the list of exercises otherwise."""
    if name in EXERCISE_TO_CHAPTER:
        return name
    same = [n for n in EXERCISE_TO_CHAPTER if n.lower() == str(name).lower()]
    if len(same) == 1:
        return same[0]
    raise ValueError(
        f"There is no exercise called {name!r}.{did_you_mean(str(name), list(EXERCISE_TO_CHAPTER))} "
        f"The exercises are: {exercises_listed()}."
    )


def chapters_listed() -> str:
    return ", ".join(c.stem for c in CHAPTERS)


def chapter(key: str | int) -> Chapter:
    """The chapter ``key`` names: as ``workbook.chapters.chapter`` (number, stem, exercise name), and
    also with case ignored, or by the stem without its number ("attention"). Raises ``KeyError``
    with "did you mean" and the list of chapters otherwise."""
    text = str(key).strip()
    try:
        return exact_chapter(text)
    except KeyError:
        pass
    lowered = text.lower()
    for ch in CHAPTERS:
        if lowered in (ch.stem.lower(), ch.stem[3:].lower()):
            return ch
    try:
        return exact_chapter(exercise(text))
    except ValueError:
        pass
    if text.isdigit():
        last = CHAPTERS[-1].stem[:2]
        raise KeyError(f"No chapter called {text!r}: they are numbered 00 to {last} ({chapters_listed()}).")
    by_word = {c.stem: c.stem for c in CHAPTERS} | {c.stem[3:]: c.stem for c in CHAPTERS}
    by_word |= {name: f"{stem} ({name})" for name, stem in EXERCISE_TO_CHAPTER.items()}
    close: dict[str, str] = {}  # stem -> how to say it; one suggestion per chapter
    for word in _close(text, list(by_word)):
        close.setdefault(by_word[word].split()[0], by_word[word])
    hint = f" Did you mean {' or '.join(close.values())}?" if close else ""
    raise KeyError(f"No chapter called {text!r}.{hint} The chapters are: {chapters_listed()}.")
