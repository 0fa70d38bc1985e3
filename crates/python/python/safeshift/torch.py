"""PyTorch loading, as ``safetensors.torch``: ``load_file`` and ``load_model`` over
:class:`safeshift.safe_open`, the latter with a report of what was migrated."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from . import _dtypes
from ._open import PathLike, safe_open
from .errors import DTypeError, LayoutMismatchError

__all__ = ["load_file", "load_model", "LoadReport"]


def load_file(filename: PathLike, device: Any = "cpu", **options: Any) -> Dict[str, Any]:
    """Every tensor of ``filename`` in the target layout, as torch tensors by name.

    ``options`` are :class:`safeshift.safe_open`'s keyword arguments (``target``, ``dims``,
    ``aux``, ``registry``, ``allow_lossy``, ``params``, ``key``,
    ``allow_gadgets``). On the CPU, borrowed tensors share memory
    with the copy-on-write map (in-place writes stay in this process).
    """
    with safe_open(filename, framework="pt", device=device, **options) as checkpoint:
        return {name: checkpoint.get_tensor(name) for name in checkpoint.keys()}


class LoadReport(tuple):  # type: ignore[type-arg]
    """What :func:`load_model` did. Unpacks as ``missing, unexpected`` (the two lists
    ``safetensors.torch.load_model`` returns); ``str(report)`` is a readable summary."""

    missing: List[str]
    """The model's parameters and buffers the migrated checkpoint does not have."""
    unexpected: List[str]
    """The migrated checkpoint's tensors the model does not have."""
    source_version: str
    """The version the file is at."""
    target_version: str
    """The version it was loaded as."""
    steps: List[str]
    """The migration steps, ``from -> to`` each (empty: loaded as it is)."""
    borrowed: List[str]
    """Tensors read straight from the memory map (renamed, reshaped or split by rows)."""
    computed: List[str]
    """Tensors computed by the migration (transposed, gathered, concatenated, cast, new)."""

    def __new__(
        cls,
        missing: List[str],
        unexpected: List[str],
        *,
        source_version: str,
        target_version: str,
        steps: List[str],
        borrowed: List[str],
        computed: List[str],
    ) -> "LoadReport":
        report = super().__new__(cls, (missing, unexpected))
        report.missing = missing
        report.unexpected = unexpected
        report.source_version = source_version
        report.target_version = target_version
        report.steps = steps
        report.borrowed = borrowed
        report.computed = computed
        return report

    def __str__(self) -> str:
        lines = [f"{self.source_version} loaded as {self.target_version}"]
        if self.steps:
            lines.append(f"migrated in {len(self.steps)} step(s): " + ", ".join(self.steps))
        else:
            lines.append("no migration: the file is already at the target version")
        lines.append(f"{len(self.borrowed)} tensor(s) borrowed from the memory map, {len(self.computed)} computed")
        lines.extend(f"  computed: {name}" for name in self.computed)
        lines.extend(f"  missing: {name}" for name in self.missing)
        lines.extend(f"  unexpected: {name}" for name in self.unexpected)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"LoadReport(missing={self.missing!r}, unexpected={self.unexpected!r})"


def load_model(
    model: Any,
    filename: PathLike,
    strict: bool = True,
    device: Any = "cpu",
    *,
    assign: bool = False,
    **options: Any,
) -> LoadReport:
    """Loads ``filename``, migrated to the target layout, into ``model`` (a
    ``torch.nn.Module``), as ``safetensors.torch.load_model`` does.

    Each tensor is copied straight into the parameter or buffer of the same name, on all
    cores and without the GIL (borrowed ones read from the file with ``pread``, so no page
    of the file stays in the process; computed ones computed into the parameter, the map
    pages they read released after). With ``strict`` (the default), a model whose names differ from the
    migrated checkpoint's raises :class:`~safeshift.errors.LayoutMismatchError` before
    anything is copied; otherwise the differences are returned. A shape the model cannot
    take raises :class:`~safeshift.errors.LayoutMismatchError`. ``device`` is
    accepted for compatibility: tensors go to the device of the model's parameters.
    ``options`` are :class:`safeshift.safe_open`'s keyword arguments.

    With ``assign=True`` nothing is copied: the tensors become the model's parameters and
    buffers (``torch.nn.Module.load_state_dict(..., assign=True)``), borrowed ones over the
    memory map (copy-on-write: training writes stay in the process), whose pages are read
    when first used. Build the model on the ``meta`` device to allocate nothing before.
    A parameter of another dtype gets a converted copy, one on another device (not
    ``meta``) a moved one; tied parameters are no longer tied.

    Returns a :class:`LoadReport`: ``missing, unexpected = load_model(...)`` works as with
    safetensors, and ``print(report)`` tells what was migrated, computed and borrowed.

    Names and shapes are checked before anything is copied. An error after that (the
    file truncated or unreadable under us, a computation that fails) leaves the model's
    parameters partly loaded, as an error inside ``load_state_dict`` does.
    """
    import torch

    del device
    with safe_open(filename, framework="pt", **options) as checkpoint:
        state = model.state_dict(keep_vars=True)
        # The graph and supporting arrays travel with the weights but are no model state.
        extras = set(checkpoint.extras())
        names = [name for name in checkpoint.keys() if name not in extras]
        available = set(names)
        loaded = [name for name in names if name in state]
        unexpected = [name for name in names if name not in state]
        missing = _missing(state, available)
        borrowed = [name for name in names if checkpoint.is_zero_copy(name)]
        computed = [name for name in names if not checkpoint.is_zero_copy(name)]
        report = LoadReport(
            missing,
            unexpected,
            source_version=checkpoint.source_version,
            target_version=checkpoint.target_version,
            steps=checkpoint.plan,
            borrowed=borrowed,
            computed=computed,
        )
        if strict and (missing or unexpected):
            raise LayoutMismatchError(
                f"cannot load `{filename}` into {type(model).__name__} (strict): the layouts differ\n{report}"
            )
        with torch.no_grad():
            if assign:
                _assign(model, checkpoint, loaded, state, filename)
            else:
                _fill(checkpoint, loaded, state, filename)
        return report


def _assign(model: Any, checkpoint: safe_open, names: List[str], state: Dict[str, Any], filename: PathLike) -> None:
    """Makes the tensors ``names`` the model's own (no copy where dtype and device allow)."""
    tensors = {}
    for name in names:
        target = state[name]
        _checked_dtype(checkpoint, name, target, filename)
        tensor = checkpoint.get_tensor(name)
        if target.device.type != "meta" and tensor.device != target.device:
            tensor = tensor.to(target.device)
        if tensor.dtype != target.dtype:
            tensor = tensor.to(target.dtype)
        tensors[name] = tensor
    model.load_state_dict(tensors, strict=False, assign=True)


def _checked_dtype(checkpoint: safe_open, name: str, target: Any, filename: PathLike) -> str:
    """The dtype of tensor ``name``, once ``target`` is known to have its shape."""
    dtype, shape = checkpoint._open.info(name)
    if tuple(shape) != tuple(target.shape):
        raise LayoutMismatchError(
            f"`{filename}`: tensor `{name}` has shape {list(shape)} in the migrated "
            f"checkpoint, the model's has {list(target.shape)}"
        )
    return dtype


def _fill(checkpoint: safe_open, names: List[str], state: Dict[str, Any], filename: PathLike) -> None:
    """Copies the tensors ``names`` into the model's ``state``, every shape checked first.

    The CPU, contiguous targets of the tensors' dtypes are filled by the Rust side in one
    call on all cores without the GIL (borrowed tensors read from the file with ``pread``,
    straight into the parameter; computed ones computed into it). The others (another
    device or dtype, or memory shared with another target: tied parameters) follow one by
    one with :func:`_copy`.
    """
    import torch

    fillable = []
    rest = set()
    for name in names:
        target = state[name]
        if _fillable(target, _checked_dtype(checkpoint, name, target, filename), name):
            start = target.data_ptr()
            fillable.append((start, start + target.numel() * target.element_size(), name))
        else:
            rest.add(name)
    # Targets sharing memory (tied parameters) cannot be filled at once: they follow one
    # by one, in the checkpoint's order (the last one's bytes stay, as with load_state_dict).
    shared = set()
    reached, owner = 0, None
    for start, end, name in sorted(fillable):
        if start < reached and start < end:
            shared.update((name, owner))
        if end > reached:
            reached, owner = end, name
    batch = [name for _, _, name in fillable if name not in shared]
    arrays = [state[name].detach().reshape(-1).view(torch.uint8).numpy() for name in batch]
    checkpoint._open.read_many_into(batch, arrays)
    for name in names:
        if name in shared or name in rest:
            _copy(checkpoint, name, state[name], filename)


def _copy(checkpoint: safe_open, name: str, target: Any, filename: PathLike) -> None:
    """Copies tensor ``name`` into ``target``; releases the map's pages it read.

    A CPU, contiguous ``target`` of the tensor's dtype is filled by the Rust side directly
    (a computed tensor is computed into it, with no buffer in between); any other target
    (another device or dtype: torch converts) gets a copy of :meth:`safe_open.get_tensor`.
    """
    import torch

    dtype = _checked_dtype(checkpoint, name, target, filename)
    if _fillable(target, dtype, name):
        checkpoint._open.read_into(name, target.detach().reshape(-1).view(torch.uint8).numpy())
    else:
        source = checkpoint.get_tensor(name)
        target.copy_(source)
        del source
    checkpoint._open.release(name)


def _fillable(target: Any, dtype: str, name: str) -> bool:
    """Whether ``target``'s memory can take the tensor's bytes as they are."""
    if target.device.type != "cpu" or not target.is_contiguous():
        return False
    try:
        return target.dtype == _dtypes.torch_dtype(dtype, name)
    except DTypeError:
        return False


def _missing(state: Dict[str, Any], available: "set[str]") -> List[str]:
    """The model's names the checkpoint lacks, leaving out names tied to one it has (a
    shared embedding saved once), as ``safetensors.torch.load_model`` does."""
    loaded = {_storage_key(state[name]) for name in state if name in available}
    return [
        name
        for name in state
        if name not in available and (_storage_key(state[name]) is None or _storage_key(state[name]) not in loaded)
    ]


def _storage_key(tensor: Any) -> Optional[Sequence[int]]:
    if tensor.device.type == "meta" or tensor.numel() == 0:
        return None
    return (tensor.data_ptr(), tensor.numel(), *tensor.shape)
