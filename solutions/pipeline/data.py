"""``load_corpus(name)``: the built-in numbers task or Multi30k, as a ``ParallelCorpus``."""

from __future__ import annotations

from pathlib import Path

from .corpus import ParallelCorpus


def load_corpus(
    name: str = "numbers",
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    seed: int = 0,
    num_train: int | None = None,
) -> ParallelCorpus:
    """``"numbers"``: the built-in task (no download); ``"multi30k"``: German -> English Multi30k,
    read from ``data_dir`` when given, else downloaded once into ``cache_dir`` and checksum-verified."""
    if name == "numbers":
        from .builtin_task import numbers_corpus

        return numbers_corpus(seed=seed) if num_train is None else numbers_corpus(num_train=num_train, seed=seed)
    if name == "multi30k":
        from .multi30k import load_multi30k

        corpus = load_multi30k(data_dir=data_dir, cache_dir=cache_dir, base_url=base_url)
        if num_train is not None:
            corpus.train = corpus.train[:num_train]
        return corpus
    raise ValueError(f"Unknown dataset {name!r}; choose 'numbers' (built in) or 'multi30k'.")
