"""Is the learner's part the reference itself? The flag "reference copied", for the teacher to judge.

A learner who passes by handing in the reference has learned nothing; the checker still grades the
numbers (a copy passes), and says what it saw, so that a teacher decides:

* the reference object itself (``from solutions import FeedForwardNetwork``);
* a subclass of it (``class FeedForwardNetwork(solutions.FeedForwardNetwork): pass``);
* a wrapper around it: code whose names lead to the reference or to the ``solutions`` package
  (``def softmax(x, dim=-1): return reference_softmax(x, dim)``);
* its source, normalised: the same syntax tree as the reference's once docstrings, comments,
  formatting and type annotations are set aside (``inspect.getsource(solutions.X)`` pasted in).

Two independent correct implementations never share a syntax tree in practice; a learner who typed
the reference from the solution is flagged too, which is what the teacher wants to know.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from typing import Any

import solutions


def _functions_of(obj: Any) -> list[types.FunctionType]:
    if inspect.isclass(obj):
        return [inspect.unwrap(v) for v in vars(obj).values() if inspect.isfunction(v)]
    if inspect.isfunction(obj):
        return [inspect.unwrap(obj)]
    return []


def _normalised(obj: Any) -> str | None:
    """The syntax trees of ``obj``'s functions (a class: each method, by name) without docstrings,
    decorators and annotations, or None when a source cannot be read. Methods are read one by one,
    since a class defined in a notebook cell has no source file ``inspect`` could read it from."""
    trees = []
    for fn in sorted(_functions_of(obj), key=lambda f: f.__name__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError):
            return None
        trees.append(_stripped(tree))
    return "\n".join(trees) if trees else None


def _stripped(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = body[1:] or [ast.Pass()]  # a docstring
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
            node.decorator_list = []
        if isinstance(node, ast.arg):
            node.annotation = None
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            node.annotation = ast.Constant(None)
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _names_reach(fn: types.FunctionType, reference: Any) -> bool:
    """Does ``fn``'s code name the reference (or the solutions package) among its globals/closure?"""
    values = [fn.__globals__.get(name) for name in _all_names(fn.__code__)]
    values += [cell.cell_contents for cell in (fn.__closure__ or ()) if _has_contents(cell)]
    return any(_is_reference(value, reference) for value in values)


def _is_reference(value: Any, reference: Any) -> bool:
    """``value`` is the reference, the solutions package, or solutions' object of the same name."""
    if value is reference or value is solutions:
        return True
    try:
        module, name = getattr(value, "__module__", None), getattr(value, "__name__", None)
    except Exception:  # noqa: BLE001 - a learner's object whose attributes raise is not the reference
        return False
    return isinstance(module, str) and module.startswith("solutions") and name == reference.__name__


def _has_contents(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _all_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _all_names(const)
    return names


def reference_copied(obj: Any, reference: Any) -> str | None:
    """How ``obj`` is the reference (a short sentence for the teacher), or None when it is not."""
    if obj is reference:
        return "it is the reference itself (imported from solutions)"
    if inspect.isclass(obj) and inspect.isclass(reference) and obj is not reference and issubclass(obj, reference):
        return "it is a subclass of the reference"
    for fn in _functions_of(obj):
        if _names_reach(fn, reference):
            return "it calls or builds on the reference (a wrapper around solutions)"
    mine, theirs = _normalised(obj), _normalised(reference)
    if mine is not None and mine == theirs:
        return "its code is the reference's code (the same once docstrings and formatting are set aside)"
    return None


def source_copied(code: str, name: str, reference: Any) -> str | None:
    """The same question asked of the student's source text only (the judge never runs it): ``code``
    (the cells the student wrote) imports ``solutions``, or defines ``name`` with the reference's
    code once normalised. Code that reaches the reference by other roads is caught by the worker's
    own hiding of the reference (it is not there to reach), not here."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "solutions":
            if any(alias.name in (name, "*") for alias in node.names):
                return "it is the reference itself (imported from solutions)"
    for node in ast.walk(tree):
        imported = isinstance(node, ast.Import) and any(a.name.split(".")[0] == "solutions" for a in node.names)
        if imported or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "solutions"):
            return "its cells import the reference (solutions): a subclass, a wrapper or its source"
    definitions = [
        node
        for node in tree.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
    ]
    theirs = _normalised(reference)
    if not definitions or theirs is None:
        return None
    node = definitions[-1]
    methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    functions = methods if isinstance(node, ast.ClassDef) else [node]
    mine = "\n".join(_stripped(ast.Module(body=[f], type_ignores=[])) for f in sorted(functions, key=lambda f: f.name))
    if mine == theirs:
        return "its code is the reference's code (the same once docstrings and formatting are set aside)"
    return None
