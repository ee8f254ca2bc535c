"""The reference object of every exercise that another exercise builds on: ``solutions``' names.

While one exercise is graded, the learner's own versions of these are swapped for the reference
(isolation, ``checks.core.run_spec``), so that a mistake elsewhere is not blamed on this exercise.
"""

from __future__ import annotations

import solutions

REFERENCES: dict[str, object] = {name: getattr(solutions, name) for name in solutions.__all__}
