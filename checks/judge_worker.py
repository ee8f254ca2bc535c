"""The other side of the judge: the process that runs a student's code (``python -m checks.judge_worker``).

It is started by :mod:`checks.judge`, inside bubblewrap where there is one, in a scratch copy of the
submission's folder, with the reference of the exercises being graded out of sight. It reads
requests from stdin and answers on what was stdout (the student's own prints go to a file):

* ``start``: install what the chapter's setup cells import (``workbook``, ``solutions``) with only
  the reference parts the judge hands in, then run the chapter's cells in ``__main__``;
* ``hand_in``: more reference parts (those of exercises already graded), bound in ``__main__`` in
  place of the student's own, so that one exercise is graded apart from the others;
* ``get`` / ``call`` / ``getattr`` / ``bind``: look a name up, call an object (or one of its
  methods), read an attribute, or tell whether a signature takes some arguments.

Nothing here decides anything: whatever the student's code does to this process (patch torch, the
grader, this very loop) can only change the values it sends back, and the judge compares those with
its own reference. This module imports only the standard library, torch and :mod:`checks.wire`.
"""

from __future__ import annotations

import base64
import inspect
import os
import pickle
import signal
import sys
import traceback
import types
from typing import Any

import torch

from checks import wire

CHECKS_DIR = os.path.dirname(os.path.abspath(__file__))


class _Hidden(types.ModuleType):
    """``solutions`` or ``workbook`` while grading: only the parts the judge handed in."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"{self.__name__}.{name} is not available while your work is graded: the reference of the "
            "exercises being graded is out of reach (write your own)."
        )


class Worker:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.objects: dict[int, Any] = {}
        self.parts: dict[str, Any] = {}
        self.namespace: dict[str, Any] = {}
        self.optimizers: dict[int, Any] = {}
        self.nodes: dict[int, tuple[list, list]] = {}

    # ------------------------------------------------------------------ values
    def handle(self, obj: Any) -> dict:
        if isinstance(obj, torch.nn.Parameter):  # a copy (with its gradient), one per parameter of ours
            tag = {**wire.encode_tensor(obj), "param": True}
            if obj.grad is not None:
                tag["grad"] = wire.encode_tensor(obj.grad)
            return {"__param": id(obj), "value": tag}
        if isinstance(obj, types.GeneratorType):  # named_parameters() and the like
            return self.value(list(obj))
        key = id(obj)
        self.objects[key] = obj
        if isinstance(obj, torch.nn.Module):
            kind = "module"
        elif isinstance(obj, type):
            kind = "class"
        elif callable(obj):
            kind = "callable"
        else:
            kind = "object"
        return {"__h": key, "kind": kind, "type": type(obj).__name__, "name": str(getattr(obj, "__name__", ""))}

    def resolve(self, tag: dict) -> Any:
        if "__h" in tag:
            return self.objects[int(tag["__h"])]
        if "__p" in tag:  # from the judge, which is trusted
            return pickle.loads(base64.b64decode(tag["__p"]))  # noqa: S301
        if "__optim_ref" in tag:
            return self.optimizers[int(tag["__optim_ref"])]
        if "__optim" in tag:  # the twin of an optimizer of the judge's
            name, token, groups = tag["__optim"]
            groups = [{k: wire.decode(v, self.resolve) for k, v in g.items()} for g in groups]
            for group in groups:
                group["params"] = [torch.nn.Parameter(t) for t in group["params"]]
            self.optimizers[int(token)] = getattr(torch.optim, name)(groups)
            return self.optimizers[int(token)]
        raise wire.WireError("an unknown value")

    def send(self, message: dict) -> None:
        self.out.write(wire.dumps(message))
        self.out.flush()

    def value(self, obj: Any) -> Any:
        return wire.encode(obj, self.handle)

    # ------------------------------------------------------------------ requests
    def start(self, request: dict) -> dict:
        self.parts = self.resolve(request["parts"]) if request.get("parts") else {}
        for name in ("workbook", "solutions"):
            module = _Hidden(name)
            module.__path__ = []  # a package: `import solutions.pipeline` fails with a clear error
            sys.modules[name] = module
        solutions, workbook = sys.modules["solutions"], sys.modules["workbook"]
        for name, part in self.parts.items():
            setattr(solutions, name, part)
        solutions.__all__ = list(self.parts)

        def nothing(*args: Any, **kwargs: Any) -> None:
            return None

        def reference(name: Any) -> Any:
            name = getattr(name, "__name__", name)
            return getattr(solutions, name)

        def earlier_parts(names: Any = None, use_my_work: bool = False) -> dict:
            names = list(names) if names is not None else list(self.parts)
            return {n: reference(n) for n in names}

        workbook.check = workbook.hint = workbook.solution = nothing
        workbook.reference = workbook.mine_or_reference = reference
        workbook.earlier_parts = earlier_parts
        workbook.use_my_work = nothing

        module = types.ModuleType("__main__")
        module.__dict__["__builtins__"] = __builtins__
        module.__dict__["display"] = print
        sys.modules["__main__"] = module
        self.namespace = module.__dict__
        errors = {}
        for cell in request["cells"]:
            name = f"<cell {cell['index']}>"
            try:
                code = compile(cell["code"], name, "exec")
                _remember(name, cell["code"])
                with _alarm(float(request.get("cell_time", 30))):
                    exec(code, self.namespace)  # noqa: S102 - the student's code, in the sandbox
            except BaseException as exc:  # noqa: BLE001 - a cell that raises is reported, not fatal
                errors[str(cell["index"])] = f"{type(exc).__name__}: {str(exc)[:300]}"
        return {"errors": errors, "defined": sorted(k for k in self.namespace if not k.startswith("_"))}

    def hand_in(self, request: dict) -> dict:
        parts = self.resolve(request["parts"])
        for name, part in parts.items():
            if name in self.namespace:
                self.namespace[name] = part
        return {"value": None}

    def get(self, request: dict) -> dict:
        name = request["name"]
        if name not in self.namespace:
            return {"missing": True}
        obj = self.namespace[name]
        if isinstance(obj, torch.nn.Module):
            obj = type(obj)
        return {"value": self.value(obj)}

    def call(self, request: dict) -> dict:
        target = self.objects[int(request["h"])]
        if request.get("attr"):
            target = getattr(target, request["attr"])
        args = wire.decode(request.get("args", []), self.resolve)
        kwargs = wire.decode(request.get("kwargs", {}), self.resolve)
        given = wire.flat_tensors([args, kwargs])
        before = [t.detach().clone() for t in given]
        with torch.enable_grad():
            result = target(*args, **kwargs)
        answer = {"value": self.value(result)}
        outputs = [t for t in wire.flat_tensors(result) if t.requires_grad]
        if outputs:  # the judge may backpropagate through them: keep the graph here
            self.nodes[id(result)] = (wire.flat_tensors(result), given)
            answer["node"] = id(result)
        changed = {str(i): wire.encode_tensor(t) for i, (t, b) in enumerate(zip(given, before)) if not same(t, b)}
        if changed:  # the student's code changed an input in place: the judge's copy changes too
            answer["inputs_changed"] = changed
        return answer

    def backward(self, request: dict) -> dict:
        """The judge's gradient for output ``index`` of call ``node``, backpropagated here; the
        gradients of that call's inputs come back (those of the parameters stay here, for
        ``named_parameters``)."""
        outputs, given = self.nodes[int(request["node"])]
        grad = wire.decode(request["grad"], self.resolve)
        torch.autograd.backward(outputs[int(request["index"])], grad, retain_graph=True)
        grads = {str(i): wire.encode_tensor(t.grad) for i, t in enumerate(given) if t.grad is not None}
        return {"value": None, "input_grads": grads}

    def getattr(self, request: dict) -> dict:
        target = self.objects[int(request["h"])]
        value = getattr(target, request["name"])
        return {"value": self.value(value)}

    def list(self, request: dict) -> dict:
        return {"value": self.value(list(self.objects[int(request["h"])]))}

    def setattr(self, request: dict) -> dict:
        target = self.objects[int(request["h"])]
        setattr(target, request["name"], wire.decode(request["value"], self.resolve))
        return {"value": None}

    def bind(self, request: dict) -> dict:
        """Whether ``target`` (or its method) takes each call, by its signature: nothing runs."""
        target = self.objects[int(request["h"])]
        method = request.get("method")
        if method:
            fn = vars_lookup(target if isinstance(target, type) else type(target), method)
            if fn is None or fn is vars(torch.nn.Module).get(method):
                return {"value": self.value({"absent": True})}
        else:
            fn = target
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return {"value": None}
        calls = wire.decode(request["calls"], self.resolve)
        for args, kwargs in calls:
            try:
                sig.bind(*([None] if request.get("with_self") else []), *args, **kwargs)
            except TypeError as error:
                shown = (
                    str(sig).replace("(self, ", "(").replace("(self)", "()") if request.get("with_self") else str(sig)
                )
                return {"value": self.value({"signature": shown, "error": str(error)})}
        return {"value": None}

    def serve(self, inp: Any) -> None:
        handlers = {
            "start": self.start,
            "hand_in": self.hand_in,
            "get": self.get,
            "call": self.call,
            "getattr": self.getattr,
            "backward": self.backward,
            "setattr": self.setattr,
            "list": self.list,
            "bind": self.bind,
        }
        for line in inp:
            request = wire.loads(line)
            op = request.get("op")
            if op == "exit":
                return
            try:
                answer = handlers[op](request)
            except (Exception, KeyboardInterrupt, SystemExit) as exc:  # noqa: BLE001 - the student's error
                answer = {"raised": describe(exc)}
            answer["seq"] = request.get("seq")  # which request this answers (the judge checks it)
            answer["optimizers"] = {
                str(token): [{k: v for k, v in g.items() if k != "params" and wire.plain(v)} for g in opt.param_groups]
                for token, opt in self.optimizers.items()
            }
            try:
                self.send(answer)
            except wire.WireError as error:
                failed = {"type": "TypeError", "message": str(error), "frame": None}
                self.send({"raised": failed, "seq": request.get("seq")})


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.detach(), b.detach()
    if a.is_floating_point():
        return bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num()))
    return bool(torch.equal(a, b))


def vars_lookup(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def describe(exc: BaseException) -> dict:
    """The exception the student's code raised: its type, message and innermost line of theirs."""
    frame = None
    for entry in reversed(traceback.extract_tb(exc.__traceback__)):
        path = os.path.abspath(entry.filename)
        if entry.filename.startswith("<cell ") or not (
            path.startswith(CHECKS_DIR) or "site-packages" in path or path.startswith(os.path.dirname(os.__file__))
        ):
            frame = [entry.filename, entry.lineno, entry.name, entry.line or ""]
            break
    kind = "NotImplementedError" if isinstance(exc, NotImplementedError) else type(exc).__name__
    return {
        "type": kind,
        "message": str(exc)[:1000],
        "frame": frame,
        "exit": isinstance(exc, SystemExit),
        "memory": isinstance(exc, MemoryError) or "out of memory" in str(exc).lower(),
    }


def _remember(name: str, code: str) -> None:
    import linecache

    lines = code.splitlines(keepends=True)
    linecache.cache[name] = (len(code), None, lines, name)


class _alarm:
    """A cell that runs past ``seconds`` raises TimeoutError (the judge's own deadline is the real one)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        def stop(signum: int, frame: Any) -> None:
            raise TimeoutError(f"the cell ran for more than {self.seconds:g} s")

        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: Any) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


MEMORY = 4 * 1024**3  # bytes the student's code may allocate beyond what the worker holds at start
CPU_SECONDS = 900  # of CPU time for the whole chapter (the judge's wall-clock limits come first)


def _limits() -> None:
    """Hard limits (the student's code cannot raise them): address space and CPU time (Linux)."""
    try:
        import resource

        pages = int(open("/proc/self/statm").read().split()[0])
        memory = pages * os.sysconf("SC_PAGE_SIZE") + MEMORY
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    except (ImportError, OSError, ValueError):
        pass  # not enforceable here: the judge's wall-clock limits still hold


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")
    inp = os.fdopen(os.dup(0), "rb")
    capture = os.open("judge-output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(capture, 1)
    os.dup2(capture, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.environ["MPLBACKEND"] = "Agg"
    torch.set_num_threads(1)
    _limits()
    Worker(out).serve(inp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
