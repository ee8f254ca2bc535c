"""The judge: a verdict from a process that never runs the student's code.

:func:`judge_cells` starts a worker (:mod:`checks.judge_worker`) that runs the chapter's cells in a
sandbox (bubblewrap where there is one: the system read-only, a scratch folder, no network, the
reference of the exercises being graded out of sight) and then runs each exercise's ladder HERE,
against the reference, with the student's objects seen through :class:`Remote` handles. Every call
into the student's code is a message to the worker: the judge sends the inputs (and the reference's
weights, through ``load_state_dict``), the worker sends back the outputs as numbers, and the
judge's own reference and hypotheses decide. Whatever the student's code patches in the worker
cannot change what the judge concludes; it can only change the numbers it sends.

What a handle cannot do faithfully (read a parameter's gradient, hand the student a judge object
that the student then changes) is a :class:`NotJudged` skip, never a failure: the judge's ladder is
the checker's, less what cannot be checked across the process boundary, so it never fails code the
checker passes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import sandbox, wire
from .core import NOT_JUDGED, CheckResult, NotJudged, RemoteError, TimeLimit, run_spec, time_limit

DEFAULT_TIME_LIMIT = 20.0  # seconds for one exercise's ladder, calls to the worker included
START_LIMIT = 120.0  # seconds for the worker to start and run the chapter's cells
CALL_LIMIT = 30.0  # seconds one call may take before the worker is taken for hung


class WorkerGone(BaseException):
    """The worker ended, hung or broke the protocol: what it said is in ``str(self)``."""


# --------------------------------------------------------------------------------------------------
# Handles
# --------------------------------------------------------------------------------------------------
class Remote:
    """An object of the student's, living in the worker. Modules pass ``isinstance(x, nn.Module)``."""

    def __init__(self, conn: Connection, tag: dict) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_id", int(tag["__h"]))
        object.__setattr__(self, "_kind", str(tag.get("kind")))
        object.__setattr__(self, "_type", str(tag.get("type")))
        object.__setattr__(self, "__name__", str(tag.get("name") or tag.get("type")))

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return torch.nn.Module if self._kind == "module" else Remote

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._conn.call(self._id, None, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise NotJudged(f"`{name}` of your object is not judged across processes")
        if name in _MODULE_ONLY_LOCAL:
            raise NotJudged(f"`{name}()` of your module is checked in your notebook, not by the judge")
        if name in _METHODS:
            return _Method(self, name)
        return self._conn.request("getattr", h=self._id, name=name)

    def __getitem__(self, key: Any) -> Any:
        return self._conn.call(self._id, "__getitem__", (key,), {})

    def __len__(self) -> int:
        return int(self._conn.call(self._id, "__len__", (), {}))

    def __iter__(self) -> Any:
        return iter(self._conn.request("list", h=self._id))

    def __setattr__(self, name: str, value: Any) -> None:
        self._conn.request("setattr", h=self._id, name=name, value=self._conn.out(value))

    def __repr__(self) -> str:
        return f"<your {self._type}>"

    def _bind(self, method: str | None, calls: list[tuple[tuple, dict]], with_self: bool) -> dict | None:
        return self._conn.request(
            "bind",
            h=self._id,
            method=method,
            calls=self._conn.out([[list(a), k] for a, k in calls]),
            with_self=with_self,
        )


class _Method:
    def __init__(self, owner: Remote, name: str) -> None:
        self.owner, self.name = owner, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.owner._conn.call(self.owner._id, self.name, args, kwargs)


# Methods called in the worker (their results come back by value or as handles).
_METHODS = {
    "forward",
    "eval",
    "train",
    "double",
    "float",
    "state_dict",
    "load_state_dict",
    "step",
    "get_lr",
    "parameters",  # these four come back as lists of copies (a copy's gradient is not the worker's)
    "named_parameters",
    "buffers",
    "named_buffers",
}
# What would need the worker's parameters or graph here: not judged.
_MODULE_ONLY_LOCAL = {
    "modules",
    "named_modules",
    "children",
    "named_children",
    "zero_grad",
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_full_backward_hook",
    "apply",
    "to",
    "cuda",
    "requires_grad_",
}


def is_remote(obj: Any) -> bool:
    return type(obj) is Remote


# --------------------------------------------------------------------------------------------------
# The connection
# --------------------------------------------------------------------------------------------------
class Connection:
    """One worker: start it, send requests, read answers (never a pickle), end it and its processes."""

    def __init__(self, folder: Path, hidden: list[Path], protect: bool) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="workbook-judge-"))
        self.work = self.scratch / "work"
        if folder is not None and folder.is_dir():
            sandbox.scratch_copy(folder, self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        # Isolated: a `checks/` folder in the submission is never imported in place of the worker's.
        command = sandbox.isolated_python("checks.judge_worker", _checks_root())
        self.sandboxed = protect and sandbox.available() is None
        if self.sandboxed:  # only the worker's own three files of the grader, no reference, no network
            shown = [Path(__file__).resolve().parent / f for f in ("__init__.py", "wire.py", "judge_worker.py")]
            command = sandbox.confined_command(command, self.work, hidden, shown=shown)
            env = sandbox.confined_environment(self.work)
        else:
            env = {**sandbox.environment(), "PYTHONDONTWRITEBYTECODE": "1"}
            env.pop("PYTHONSTARTUP", None)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self.work,
            env=env,
            start_new_session=True,
        )
        self.buffer = b""
        self.sequence = 0  # of the last request sent
        self.broken: str | None = None  # why the judge ended the worker, when it broke the protocol
        self.deadline = CALL_LIMIT
        self.optimizers: dict[int, torch.optim.Optimizer] = {}
        self.remotes: dict[int, Any] = {}
        self.cell_errors: dict[str, str] = {}

    # values the judge sends: tensors and plain data by value, handles by id, its own objects pickled
    def out(self, value: Any) -> Any:
        return wire.encode(value, self._pickle)

    def _pickle(self, obj: Any) -> dict:
        if is_remote(obj) or isinstance(obj, _Method):
            owner = obj if is_remote(obj) else obj.owner
            return {"__h": owner._id}
        if isinstance(obj, torch.nn.Parameter):
            return wire.encode_tensor(obj.detach())
        if isinstance(obj, torch.optim.Optimizer):
            return self._optimizer(obj)
        if _is_hidden(obj):
            raise NotJudged("this test hands your code an object the judge cannot share")
        return {"__p": _pickled(obj)}

    def _optimizer(self, opt: torch.optim.Optimizer) -> dict:
        """An optimizer of the judge's: the worker makes its twin (same class, groups, settings) the
        first time, and after every call sends back the twin's settings, written here into ``opt``
        (a learning-rate scheduler of the student's changes the optimizer it is given)."""
        token = id(opt)
        if token in self.optimizers:
            return {"__optim_ref": token}
        if type(opt).__module__.split(".")[:2] != ["torch", "optim"]:
            raise NotJudged("this test hands your code an optimizer the judge cannot share")
        self.optimizers[token] = opt
        groups = []
        for group in opt.param_groups:
            entry = {k: v for k, v in group.items() if k != "params" and wire.plain(v)}
            entry["params"] = [wire.encode_tensor(t.detach()) for t in group["params"]]
            groups.append(entry)
        return {"__optim": [type(opt).__name__, token, groups]}

    def sync(self, answer: dict) -> None:
        for token, groups in (answer.get("optimizers") or {}).items():
            opt = self.optimizers.get(int(token))
            if opt is None or not isinstance(groups, list) or len(groups) != len(opt.param_groups):
                continue
            for group, values in zip(opt.param_groups, groups):
                if isinstance(values, dict):
                    group.update({k: wire.decode(v, self._inp) for k, v in values.items() if k != "params"})

    def _inp(self, tag: dict) -> Any:
        if "__unsupported" in tag:
            raise NotJudged(f"{tag['__unsupported']} is not judged across processes")
        if "__param" in tag:  # a parameter: one copy per parameter of the worker's, its values fresh
            key, value = int(tag["__param"]), wire.decode(tag["value"], self._inp)
            if not isinstance(value, torch.nn.Parameter):
                raise wire.WireError("a malformed parameter")
            cached = self.remotes.get(key)
            if isinstance(cached, torch.nn.Parameter):
                with torch.no_grad():
                    cached.data = value.data
                cached.grad = value.grad
                return cached
            self.remotes[key] = value
            return value
        if "__h" in tag:  # one handle per object of the worker's: `a is b` there is `a is b` here
            key = int(tag["__h"])
            if key not in self.remotes:
                self.remotes[key] = Remote(self, tag)
            return self.remotes[key]
        raise wire.WireError(f"the worker sent an object the judge does not accept: {str(tag)[:80]}")

    def call(self, handle: int, attr: str | None, args: tuple, kwargs: dict) -> Any:
        """Call the student's object (or its method ``attr``) in the worker with these arguments."""
        given = wire.flat_tensors([list(args), kwargs])
        return self.request(
            "call", given=given, h=handle, attr=attr, args=self.out(list(args)), kwargs=self.out(kwargs)
        )

    def backward(self, node: int, index: int, grad: torch.Tensor, given: list) -> None:
        """A gradient reached output ``index`` of call ``node`` here: backpropagate it in the worker
        (into the student's parameters there), and give this side's inputs their gradients."""
        answer = self.exchange(
            {"op": "backward", "node": node, "index": index, "grad": wire.encode_tensor(grad)}, self.deadline
        )
        if "raised" in answer:
            raise RemoteError(answer["raised"])
        for key, tag in (answer.get("input_grads") or {}).items():
            if str(key).isdigit() and int(key) < len(given) and isinstance(tag, dict):
                local = given[int(key)]
                if local.requires_grad:
                    local.grad = wire.decode_tensor(tag.get("__t")).to(local.dtype).reshape(local.shape)

    def request(self, op: str, given: list | None = None, **fields: Any) -> Any:
        answer = self.exchange({"op": op, **fields}, self.deadline)
        self.sync(answer)
        changed = answer.get("inputs_changed")
        if isinstance(changed, dict) and given:
            for key, tag in changed.items():
                if str(key).isdigit() and int(key) < len(given) and isinstance(tag, dict):
                    _overwrite(given[int(key)], wire.decode_tensor(tag.get("__t")))
        if "raised" in answer:
            error = RemoteError(answer["raised"])
            if op == "getattr" and error.kind == "AttributeError":
                raise AttributeError(error.text)
            raise error
        if answer.get("missing"):
            return None
        try:
            value = wire.decode(answer.get("value"), self._inp)
        except wire.WireError as error:
            self.close()
            raise WorkerGone(f"the grading process broke the protocol ({error})") from None
        node = answer.get("node")
        if isinstance(node, int):
            self._link(value, node, given or [])
        return value

    def _link(self, value: Any, node: int, given: list) -> None:
        """Outputs that need a gradient: when one reaches them here, it goes on in the worker."""
        for index, tensor in enumerate(wire.flat_tensors(value)):
            if tensor.requires_grad and not isinstance(tensor, torch.nn.Parameter) and tensor.is_leaf:

                def on_grad(grad: torch.Tensor, index: int = index) -> None:
                    self.backward(node, index, grad, given)

                tensor.register_hook(on_grad)

    def exchange(self, message: dict, limit: float) -> dict:
        """Send one request, read its one answer. Every request carries a number the answer must
        carry back; an answer out of turn, or one more than was asked for, ends the worker."""
        if self.process.poll() is not None:
            raise WorkerGone(self.ended())
        if self.buffer:
            raise self._broken("the grading process sent an answer nobody asked for (out of turn)")
        self.sequence += 1
        message = {**message, "seq": self.sequence}
        try:
            self.process.stdin.write(wire.dumps(message))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerGone(self.ended()) from None
        end = time.monotonic() + limit
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            left = end - time.monotonic()
            if left <= 0:
                self.close()
                raise WorkerGone(f"the code did not answer within {limit:g} s (a loop that never ends?)")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerGone(self.ended())
            self.buffer += chunk
            if len(self.buffer) > wire.MAX_MESSAGE:
                self.close()
                raise WorkerGone("the code sent back more than the judge accepts")
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            answer = wire.loads(line)
        except wire.WireError as error:
            self.close()
            raise WorkerGone(f"the grading process broke the protocol ({error})") from None
        if not isinstance(answer, dict) or answer.get("seq") != self.sequence or self.buffer:
            raise self._broken("the grading process answered out of turn (the protocol was broken)")
        return answer

    def _broken(self, why: str) -> WorkerGone:
        """End the worker for breaking the protocol; ``why`` is what the verdict says from now on."""
        self.broken = why
        self.close()
        return WorkerGone(why)

    def ended(self) -> str:
        code = self.process.wait()
        if self.broken:
            return self.broken
        how = f"exit status {code}" if code >= 0 else f"signal {-code}"
        return (
            f"your code ended the grading process ({how}): it called os._exit or exit(), crashed inside "
            "a C extension, or ran out of memory"
        )

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.process.wait(5)
        shutil.rmtree(self.scratch, ignore_errors=True)


def _overwrite(local: torch.Tensor, new: torch.Tensor) -> None:
    """What the student's code did to an input in the worker, done to the judge's own tensor."""
    with torch.no_grad():
        if local.shape == new.shape:
            local.copy_(new.to(local.dtype))
        else:
            local.data = new


class _Pickler:
    """cloudpickle, with the workbook's reference and the checker's helpers by value (the worker has
    neither), refusing the reference of an exercise being graded wherever it appears inside."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        import io

        import cloudpickle

        class Guarded(cloudpickle.Pickler):
            def reducer_override(self, value: Any) -> Any:
                if id(value) in _HIDDEN:
                    raise NotJudged("this test hands your code something the judge keeps to itself")
                return super().reducer_override(value)

        modules = [m for n, m in list(sys.modules.items()) if n.startswith(("solutions", "checks.specs")) and m]
        for module in modules:
            with contextlib.suppress(ValueError):
                cloudpickle.register_pickle_by_value(module)
        try:
            buffer = io.BytesIO()
            Guarded(buffer).dump(obj)
            return buffer.getvalue()
        finally:
            for module in modules:
                with contextlib.suppress(ValueError):
                    cloudpickle.unregister_pickle_by_value(module)


def _pickled(obj: Any) -> str:
    return base64.b64encode(_Pickler.dumps(obj)).decode("ascii")


def _checks_root() -> str:
    return str(Path(__file__).resolve().parents[1])


_HIDDEN: set[int] = set()


def _is_hidden(obj: Any) -> bool:
    from .core import reference_of

    candidates = {id(obj), id(type(obj)), id(reference_of(obj))}
    return bool(candidates & _HIDDEN)


def places_of_the_reference() -> list[Path]:
    """Where the reference can be read on this machine (``checks.sandbox.reference_places``)."""
    return sandbox.reference_places()


# --------------------------------------------------------------------------------------------------
# Judging a chapter
# --------------------------------------------------------------------------------------------------
def _by_value(objects: dict[str, Any]) -> dict:
    """``objects`` pickled by value (so the worker needs no ``solutions`` to unpickle them). A part
    that needs the reference of an exercise being graded stays behind."""
    kept = {}
    for name, obj in objects.items():
        with contextlib.suppress(NotJudged):
            _Pickler.dumps(obj)
            kept[name] = obj
    return {"__p": _pickled(kept)}


def pickled_parts(names: Iterable[str]) -> bytes:
    """The reference parts ``names`` (the earlier chapters' exercises), pickled by value: what the
    course's kernel gets in place of ``solutions`` (a part that cannot travel stays behind)."""
    from .references import REFERENCES

    kept = {}
    for name in names:
        if name in REFERENCES:
            with contextlib.suppress(NotJudged):
                _Pickler.dumps(REFERENCES[name])
                kept[name] = REFERENCES[name]
    return _Pickler.dumps(kept)


def judge_cells(
    cells: list[tuple[int, str]],
    exercises: list[str],
    earlier: list[str],
    folder: Path | None = None,
    hidden: Iterable[Path] = (),
    time_limit_s: float = DEFAULT_TIME_LIMIT,
    cell_time: float = 30.0,
    protect: bool = True,
) -> Judgement:
    """Run ``cells`` (index, code) in a sandboxed worker and judge each of ``exercises`` here.

    ``earlier``: the reference parts the chapter's setup may use (handed in by value). An exercise
    whose ladder runs out of time ends its worker; the next exercise gets a fresh one.
    """
    from .references import REFERENCES
    from .specs import SPECS

    graded = [n for n in exercises if n in SPECS]
    _HIDDEN.clear()
    _HIDDEN.update(id(REFERENCES[n]) for n in graded if n in REFERENCES)
    places = [*places_of_the_reference(), *hidden]
    parts = {n: REFERENCES[n] for n in earlier if n in REFERENCES and n not in graded}
    judgement = Judgement({}, None, False)
    done: list[str] = []
    todo = list(graded)
    while todo and judgement.problem is None:
        conn = Connection(Path(folder) if folder else None, places, protect)
        judgement.sandboxed = conn.sandboxed
        try:
            start = {"op": "start", "parts": _by_value(parts), "cells": [{"index": i, "code": c} for i, c in cells]}
            try:
                answer = conn.exchange({**start, "cell_time": cell_time}, START_LIMIT + cell_time * len(cells))
                judgement.cell_errors = dict(answer.get("errors") or {}) if isinstance(answer, dict) else {}
                conn.cell_errors = judgement.cell_errors
                if done:  # isolation: the exercises already graded are now the reference
                    conn.exchange(
                        {"op": "hand_in", "parts": _by_value({n: REFERENCES[n] for n in done if n in REFERENCES})},
                        CALL_LIMIT,
                    )
            except WorkerGone as gone:
                judgement.problem = str(gone)
                break
            while todo:
                name = todo.pop(0)
                result, fresh = _judge_one(conn, name, SPECS[name], REFERENCES, time_limit_s)
                if conn.broken:  # the worker broke the protocol: nothing it said can be graded
                    result = CheckResult(name, "not graded", failures=[f"{name} could not be judged: {conn.broken}."])
                    judgement.results[name] = result
                    judgement.problem = conn.broken
                    break
                judgement.results[name] = result
                done.append(name)
                if fresh:
                    _HIDDEN.discard(id(REFERENCES.get(name)))
                    break  # timed out: the worker is gone, the next exercise gets a new one
                if conn.process.poll() is not None:
                    judgement.problem = conn.ended()
                    break
                _HIDDEN.discard(id(REFERENCES.get(name)))
                if todo and name in REFERENCES:
                    conn.exchange({"op": "hand_in", "parts": _by_value({name: REFERENCES[name]})}, CALL_LIMIT)
        except WorkerGone as gone:
            judgement.problem = str(gone)
        finally:
            conn.close()
    for name in graded:
        if name not in judgement.results:
            judgement.results[name] = CheckResult(
                name, "failed", failures=[f"{name} could not be judged: {judgement.problem}."]
            )
    return judgement


@dataclass
class Judgement:
    results: dict[str, CheckResult]
    problem: str | None  # why the chapter's code could not be run or judged to the end
    sandboxed: bool
    cell_errors: dict[str, str] | None = None


def _judge_one(conn: Connection, name: str, spec: Any, references: dict, limit: float) -> tuple[CheckResult, bool]:
    """The judged result of one exercise, and whether its worker had to be ended (a time-out)."""
    start = time.perf_counter()
    ended = False
    try:
        obj = conn.request("get", name=name)
    except RemoteError as error:
        return CheckResult(name, "failed", failures=[f"{name} could not be judged: {error}."]), False
    if obj is None:
        errors = [e for e in (conn.cell_errors or {}).values() if e]
        said = f" Running the notebook's cells stopped with: {errors[0]}" if errors else ""
        return CheckResult(name, "not attempted", failures=[f"`{name}` is not defined.{said}"]), False
    try:
        with torch.random.fork_rng(devices=[]), time_limit(limit):
            result = run_spec(spec, obj, references, judged=True)
    except TimeLimit:
        conn.close()
        ended = True
        result = CheckResult(
            name, "failed", failures=[f"{name} timed out: judging it took over {limit:g} s."], diagnoses=["too_slow"]
        )
    unjudged = [row for row in result.tests if row.status == "skipped" and row.message.startswith(NOT_JUDGED)]
    if unjudged and result.state == "passed":
        # A pass the judge could not check all of is no pass: the teacher is told what was left out.
        result.state = "not graded"
        result.failures = [
            f"{name} could not be judged completely: the test '{row.name}' could not run across processes "
            f"({row.message.removeprefix(NOT_JUDGED + ': ')}). A teacher should look at it."
            for row in unjudged[:3]
        ]
    result.seconds = time.perf_counter() - start
    return result, ended
