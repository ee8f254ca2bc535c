"""The workbook's grader and command line.

The checker (``check``, coming with the checker issue) grades a learner's object against the
reference in ``solutions``; ``checks.cli`` is the ``workbook`` command.
"""
