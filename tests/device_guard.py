"""A stand-in accelerator for tier-1 tests: tensors that claim to live on "cuda" and a guard that
records everything that would be wrong on a real one.

`on_device(t)` marks a CPU tensor as a device tensor (`DeviceTensor`, whose `.device` is cuda);
inside `DeviceGuard()`:

* `.to(<cuda>)` / factory calls with `device=<cuda>` give device tensors (computed on the CPU);
* every float64 device tensor that an operation returns is recorded ("float64": MPS has none);
* every host read of a device tensor is recorded ("sync": `bool()`, `.item()`, `float()`,
  `.tolist()`, `.cpu()`, `.numpy()`, `.to(cpu)`, `torch.equal`, boolean-mask indexing …);
* every operation mixing a device tensor with a CPU tensor of one or more dimensions is recorded
  ("mixed": a real device raises there);

each record with the test-side function that caused it, so a test can assert there are none (or
only the ones it allows) after a whole sampling loop.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

FAKE = torch.device("cuda")
SYNC = {
    "item",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "__complex__",
    "tolist",
    "numpy",
    "cpu",
    "__array__",
    "__repr__",
    "__format__",
    "equal",
    "allclose",
    "nonzero",
    "argwhere",
    "unique",
    "masked_select",
}
# functions that return Python values without reading the data
SHAPE_ONLY = {
    "dim",
    "size",
    "numel",
    "__len__",
    "is_floating_point",
    "is_complex",
    "stride",
    "element_size",
    "is_contiguous",
    "__get__",
    "ndimension",
    "nelement",
    "data_ptr",
    "get_device",
    "storage_offset",
    "__hash__",
    "__iter__",
    "__contains__",
    "__reduce_ex__",
    "__deepcopy__",
    "untyped_storage",
}


class DeviceTensor(torch.Tensor):
    """A CPU tensor standing in for one on an accelerator."""

    @property
    def device(self):
        return FAKE

    @property
    def is_cuda(self):
        return True


def on_device(t: torch.Tensor) -> DeviceTensor:
    """Mark a CPU tensor as a device tensor."""
    return t.as_subclass(DeviceTensor)


def host(t: torch.Tensor) -> torch.Tensor:
    """The plain CPU tensor behind a device tensor (for assertions outside the guard)."""
    return t.as_subclass(torch.Tensor)


@dataclass
class Record:
    kind: str  # "float64", "sync", "mixed"
    func: str
    where: str  # the innermost caller outside torch and this module: "module:function"

    def __str__(self):
        return f"{self.kind} in {self.func} from {self.where}"


def _is_dev(v) -> bool:
    return isinstance(v, DeviceTensor)


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        mod = frame.f_globals.get("__name__", "")
        if not (mod.startswith("torch") or mod == __name__):
            return f"{mod}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


def _device_arg(args, kwargs):
    """The target device of a `.to(...)` call (None if it names none) and the args without it."""
    dev = kwargs.get("device")
    rest = list(args)
    for i, a in enumerate(args[1:], start=1):
        if isinstance(a, (torch.device, str)):
            dev = a
            rest[i] = "cpu" if isinstance(a, str) else torch.device("cpu")
        elif isinstance(a, torch.Tensor):
            dev = a.device
            rest[i] = a.dtype
    kw = dict(kwargs)
    if "device" in kw:
        kw["device"] = "cpu"
    return (torch.device(dev) if dev is not None else None), rest, kw


class DeviceGuard(TorchFunctionMode):
    """Records float64 device results, host syncs and CPU/device mixing (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self.records: list[Record] = []

    def _note(self, kind, func):
        self.records.append(Record(kind, getattr(func, "__name__", str(func)), _caller()))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        flat, _ = tree_flatten((args, kwargs))
        dev_in = any(_is_dev(a) for a in flat)
        if name in ("to", "cuda"):
            target, rest, kw = _device_arg(args, kwargs) if name == "to" else (FAKE, [args[0]], {})
            if target is not None and target.type == "cpu" and _is_dev(args[0]):
                self._note("sync", func)
                out = host(args[0]).to(*rest[1:], **kw)
            elif target is not None and target.type != "cpu":
                out = on_device(host(args[0]).to(*rest[1:], **kw))
            else:
                out = func(*args, **kwargs)
            self._check(func, out)
            return out
        if name in SYNC and dev_in:
            self._note("sync", func)
            if name in ("cpu", "numpy") and _is_dev(args[0]):  # the data is on the host from here on
                return func(host(args[0]), *args[1:], **kwargs)
        if name in ("__getitem__", "__setitem__") and dev_in:
            index = args[1] if len(args) > 1 else None
            for i in tree_flatten(index)[0]:
                if isinstance(i, torch.Tensor) and i.dtype == torch.bool and i.dim() > 0:
                    self._note("sync", func)  # a boolean mask gives a data-dependent shape
        if dev_in and name not in ("__setitem__",):
            for a in flat:
                if isinstance(a, torch.Tensor) and not _is_dev(a) and a.dim() > 0:
                    self._note("mixed", func)
                    break
        device = kwargs.get("device")
        if device is not None and torch.device(device).type != "cpu":
            out = func(*args, **{**kwargs, "device": "cpu"})
            out = on_device(out) if isinstance(out, torch.Tensor) else out
        else:
            out = func(*args, **kwargs)
        if dev_in and isinstance(out, (bool, int, float)) and name not in SHAPE_ONLY and name not in SYNC:
            self._note("sync", func)
        self._check(func, out)
        return out

    def _check(self, func, out):
        for o in tree_flatten(out)[0]:
            if _is_dev(o) and o.dtype == torch.float64:
                self._note("float64", func)
                return
