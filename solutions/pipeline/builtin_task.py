"""The built-in translation task: numbers written out in English -> the same number in German.

It needs no download and trains on a CPU in minutes, yet it is a real translation task with
reordering: German says the units before the tens ("vierundzwanzig" = "four-and-twenty") and writes
a number below a million as one word, so the model must learn to reorder and to glue subwords:

    "three hundred twenty-four"               -> "dreihundertvierundzwanzig"
    "fifty-one thousand seven hundred eight"  -> "einundfünfzigtausendsiebenhundertacht"

Pairs are drawn deterministically from a seed; the test and validation numbers are held out, i.e.
never appear in the training pairs.
"""

from __future__ import annotations

import random

from .corpus import ParallelCorpus

EN_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

DE_ONES = [
    "null",
    "eins",
    "zwei",
    "drei",
    "vier",
    "fünf",
    "sechs",
    "sieben",
    "acht",
    "neun",
    "zehn",
    "elf",
    "zwölf",
    "dreizehn",
    "vierzehn",
    "fünfzehn",
    "sechzehn",
    "siebzehn",
    "achtzehn",
    "neunzehn",
]
DE_TENS = ["", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig"]

MAX_NUMBER = 999_999


def english(n: int) -> str:
    """0 <= n <= 999,999 in English words, American style: 324 -> "three hundred twenty-four"."""
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"english() handles 0..{MAX_NUMBER}, got {n}.")
    if n < 20:
        return EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return EN_TENS[tens] + (f"-{EN_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{EN_ONES[hundreds]} hundred" + (f" {english(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{english(thousands)} thousand" + (f" {english(rest)}" if rest else "")


def german(n: int) -> str:
    """0 <= n <= 999,999 as one German word, units before tens: 324 -> "dreihundertvierundzwanzig"."""
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"german() handles 0..{MAX_NUMBER}, got {n}.")
    if n < 20:
        return DE_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        if ones == 0:
            return DE_TENS[tens]
        unit = "ein" if ones == 1 else DE_ONES[ones]  # "einundzwanzig", not "einsundzwanzig"
        return f"{unit}und{DE_TENS[tens]}"
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = "ein" if hundreds == 1 else DE_ONES[hundreds]
        return f"{head}hundert" + (german(rest) if rest else "")
    thousands, rest = divmod(n, 1000)
    head = "ein" if thousands == 1 else german(thousands)  # "eintausend", "einundzwanzigtausend"
    return f"{head}tausend" + (german(rest) if rest else "")


def numbers_corpus(
    num_train: int = 20_000, num_valid: int = 500, num_test: int = 500, max_number: int = MAX_NUMBER, seed: int = 0
) -> ParallelCorpus:
    """Distinct random numbers in ``0..max_number`` split into train / valid / test (no overlap).

    Every number below 100 goes to training (they are the vocabulary everything else is built of);
    the rest are drawn at random, so held-out pairs are numbers the model has never seen.
    """
    needed = num_train + num_valid + num_test
    if needed > max_number + 1:
        raise ValueError(f"Asked for {needed} distinct numbers but only {max_number + 1} exist.")
    rng = random.Random(seed)
    basics = list(range(min(100, max_number + 1)))
    others = rng.sample(range(len(basics), max_number + 1), needed - len(basics))
    held_out, train_rest = others[: num_valid + num_test], others[num_valid + num_test :]
    train = basics + train_rest
    rng.shuffle(train)

    def pairs(numbers: list[int]) -> list[tuple[str, str]]:
        return [(english(n), german(n)) for n in numbers]

    return ParallelCorpus(
        name="numbers",
        src_lang="en",
        tgt_lang="de",
        train=pairs(train),
        valid=pairs(held_out[:num_valid]),
        test=pairs(held_out[num_valid:]),
    )
