"""What travels between the judge and the worker that runs a student's code: JSON, never pickles.

A message is one line of JSON on a pipe, at most ``MAX_MESSAGE`` bytes. Values are the plain JSON
ones plus a few tagged objects:

* a tensor ``{"__t": [dtype, shape, base64 of its bytes], "g": requires_grad}`` (dtypes from a fixed
  list, the byte count checked against the shape before anything is built);
* a floating-point number JSON cannot write (``{"__f": "nan"}``), a tuple (``{"__tuple": [...]}``), a
  dict with keys that are not strings (``{"__items": [[k, v], ...]}``), a ``torch.dtype``
  (``{"__dtype": "float64"}``), a ``torch.device`` (``{"__device": "cpu"}``);
* a handle ``{"__h": id, "kind": ..., "type": ...}``: an object that stays where it was made (the
  judge sees the learner's modules only through handles);
* from the judge only, ``{"__p": base64}``: an object of the judge's pickled by value (a reference
  part the student may use, a test's lambda). The judge never reads a pickle.

This module imports only the standard library and torch, so both sides can use it.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

import torch

MAX_MESSAGE = 256 * 2**20  # bytes in one message
MAX_ELEMENTS = 16 * 2**20  # elements in one tensor
DTYPES = {
    name: getattr(torch, name)
    for name in ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
}


class WireError(ValueError):
    """A message that does not follow the format (from a worker whose code did not play by the rules)."""


def encode_tensor(t: torch.Tensor) -> dict:
    name = str(t.dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise WireError(f"a tensor of dtype {t.dtype} cannot be sent")
    data = t.detach().to("cpu").contiguous()
    raw = data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""
    return {"__t": [name, list(data.shape), base64.b64encode(raw).decode("ascii")], "g": bool(t.requires_grad)}


def decode_tensor(tag: Any) -> torch.Tensor:
    if not (isinstance(tag, list) and len(tag) == 3):
        raise WireError("a malformed tensor")
    name, shape, text = tag
    if name not in DTYPES or not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError("a tensor with an unknown dtype or a malformed shape")
    numel = math.prod(shape)
    if numel > MAX_ELEMENTS or not isinstance(text, str):
        raise WireError("a tensor too large to accept")
    dtype = DTYPES[name]
    raw = base64.b64decode(text, validate=True)
    size = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * size:
        raise WireError("a tensor whose bytes do not match its shape")
    if not numel:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()


def encode(value: Any, other: Callable[[Any], Any]) -> Any:
    """``value`` as JSON-ready data; ``other(obj)`` encodes anything else (a handle, or a pickle)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__f": repr(value)}
    if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
        return encode_tensor(value)
    if isinstance(value, torch.dtype):
        return {"__dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"__device": str(value)}
    if isinstance(value, torch.Size):
        return {"__tuple": [int(s) for s in value]}
    if type(value) in (tuple, list):
        items = [encode(v, other) for v in value]
        return {"__tuple": items} if isinstance(value, tuple) else items
    if type(value) is dict or type(value).__name__ == "OrderedDict":
        if all(isinstance(k, str) for k in value):
            return {"__dict": {k: encode(v, other) for k, v in value.items()}}
        return {"__items": [[encode(k, other), encode(v, other)] for k, v in value.items()]}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple (load_state_dict's result)
        return {"__tuple": [encode(v, other) for v in value]}
    return other(value)


def decode(data: Any, other: Callable[[dict], Any], depth: int = 0) -> Any:
    """The value ``encode`` described; ``other(tag)`` decodes handles (and, in the worker, pickles)."""
    if depth > 64:
        raise WireError("a value nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v, other, depth + 1) for v in data]
    if not isinstance(data, dict):
        raise WireError("an unknown value")
    if "__t" in data:
        t = decode_tensor(data["__t"])
        grad = bool(data.get("g")) and t.is_floating_point()
        if data.get("param"):
            param = torch.nn.Parameter(t, requires_grad=grad)
            if grad and isinstance(data.get("grad"), dict) and "__t" in data["grad"]:
                param.grad = decode_tensor(data["grad"]["__t"]).to(t.dtype).reshape(t.shape)
            return param
        return t.requires_grad_() if grad else t
    if "__f" in data:
        if data["__f"] not in ("nan", "inf", "-inf"):
            raise WireError("an unknown number")
        return float(data["__f"])
    if "__tuple" in data:
        return tuple(decode(v, other, depth + 1) for v in data["__tuple"])
    if "__dict" in data and isinstance(data["__dict"], dict):
        return {k: decode(v, other, depth + 1) for k, v in data["__dict"].items()}
    if "__items" in data and isinstance(data["__items"], list):
        return {decode(k, other, depth + 1): decode(v, other, depth + 1) for k, v in data["__items"]}
    if "__dtype" in data:
        if data["__dtype"] not in DTYPES:
            raise WireError("an unknown dtype")
        return DTYPES[data["__dtype"]]
    if "__device" in data:
        return torch.device(str(data["__device"]))
    return other(data)


def dumps(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"


def loads(line: bytes) -> dict:
    if len(line) > MAX_MESSAGE:
        raise WireError("a message too large to accept")
    try:
        message = json.loads(line)
    except ValueError as error:
        raise WireError(f"not a message: {error}") from None
    if not isinstance(message, dict):
        raise WireError("not a message")
    return message


def flat_tensors(value: Any) -> list:
    """The tensors inside ``value`` (lists, tuples and dict values), in order: both sides count alike."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in flat_tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in flat_tensors(v)]
    return []


def plain(value: Any) -> bool:
    """A setting that travels as it is (an optimizer's learning rate, betas...)."""
    if isinstance(value, (tuple, list)):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))
