"""The training progress bar: tqdm's text bar, everywhere, notebooks included.

``tqdm.auto`` draws an ipywidget in a notebook. A widget's state is not saved with the notebook, so
a reopened notebook showed a stale 0% bar and "Error displaying widget" in place of the finished
bar. The text bar is plain output: live it redraws itself in place (Jupyter and Colab honour the
carriage return), and a saved notebook shows it as it ended. In a notebook it writes to stdout (the
kernel's stderr is shown as a warning box); in a terminal to stderr, as tqdm does, so that
``workbook train > log`` keeps the log clean.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.std import tqdm as _text_tqdm

__all__ = ["tqdm"]


def _in_notebook_kernel() -> bool:
    """True when stdout is a Jupyter kernel's (ipykernel's output stream)."""
    return type(sys.stdout).__module__.startswith("ipykernel")


class tqdm(_text_tqdm):  # lower case: the name every reader of tqdm knows
    """``tqdm.std.tqdm``, drawn on stdout inside a notebook kernel (unless ``file`` is given)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("file") is None and _in_notebook_kernel():
            kwargs["file"] = sys.stdout
        super().__init__(*args, **kwargs)
