"""The training pipeline of the last chapter: data, BPE, batches, training, decoding, plots, assembly.

Read it in this order (each file is short):

* ``corpus.py``       one interface, ``ParallelCorpus``, for both data sources;
* ``data.py``         ``load_corpus(name)``, which picks one of them:
* ``builtin_task.py`` numbers in English words -> German (no download; the default job),
* ``multi30k.py``     Multi30k German -> English: download once, verify SHA-256, cache;
* ``bpe.py``          the shared byte-pair-encoding vocabulary (section 5.1);
* ``batching.py``     similar-length pairs filling a token budget (section 5.1);
* ``parts.py``        the parts a model is built from (the reference, or what the app hands in);
* ``train.py``        the paper's recipe (section 5), checkpoints, exact resume, averaging, DDP;
* ``translate.py``    greedy decoding and beam search from a checkpoint (section 6.1);
* ``plots.py``        loss and learning-rate curves, attention heatmaps.

From the command line: ``workbook train`` and ``workbook translate`` (``workbook/commands/train.py``),
which hand in the learner's own parts (``workbook.assembly``).
"""

from .corpus import ParallelCorpus
from .data import load_corpus
from .parts import PARTS, Assembly, reference_assembly
from .train import PRESETS, TrainConfig, TrainResult, train
from .translate import Translator, load_translator

__all__ = [
    "PARTS",
    "Assembly",
    "reference_assembly",
    "ParallelCorpus",
    "load_corpus",
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "train",
    "Translator",
    "load_translator",
]
