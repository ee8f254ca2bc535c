"""One interface for both data sources: a ``ParallelCorpus`` of (source, target) sentence pairs."""

from __future__ import annotations

from dataclasses import dataclass


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
        return (
            f"ParallelCorpus({self.name!r}, {self.src_lang}->{self.tgt_lang}, train={len(self.train)}, "
            f"valid={len(self.valid)}, test={len(self.test)})"
        )
