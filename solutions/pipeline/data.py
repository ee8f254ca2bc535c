"""One interface for both data sources: a ``ParallelCorpus`` of (source, target) sentence pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ParallelCorpus:
    """Sentence pairs split into train / valid / test; ``src_lang`` -> ``tgt_lang``."""

    name: str
    src_lang: str
    tgt_lang: str
    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]

    def __repr__(self) -> str:
        return (f"ParallelCorpus({self.name!r}, {self.src_lang}->{self.tgt_lang}, train={len(self.train)}, "
                f"valid={len(self.valid)}, test={len(self.test)})")


def load_corpus(name: str = "numbers", data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                base_url: str | None = None, seed: int = 0, num_train: int | None = None) -> ParallelCorpus:
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
