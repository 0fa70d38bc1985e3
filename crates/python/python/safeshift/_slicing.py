"""Indexing a tensor as ``safetensors``' slices do, with the first axis pushed to the reader.

An index (``[a:b]``, ``[:, a:b]``, ``[i]``, ``[a:b:s]``, ``[..., a:b]`` and combinations)
is split into the block of first-axis rows to read (the Rust side narrows the plan to
them, so only their bytes are touched) and the index to apply to that block, which is a
view in both NumPy and torch.
"""

from __future__ import annotations

import operator
from typing import Any, List, Optional, Sequence, Tuple

from .errors import SliceError

Rows = Optional[Tuple[int, int]]


def split_rows(tensor: str, shape: Sequence[int], index: Any) -> Tuple[Rows, Tuple[Any, ...]]:
    """``(rows, rest)``: read rows ``rows`` (``None``: the whole tensor) of ``tensor``, then
    apply ``rest`` to them; together they select what ``tensor[index]`` selects."""
    parts = _expand(tensor, shape, index if isinstance(index, tuple) else (index,))
    if not shape or not parts:
        return None, ()
    first, later = parts[0], tuple(parts[1:])
    if isinstance(first, int):
        return (first, first + 1), (0,) + later
    start, stop, step = first.indices(shape[0])
    if stop <= start:
        return (start, start), (slice(None),) + later
    count = (stop - start + step - 1) // step
    rows = (start, start + (count - 1) * step + 1)
    rest = (slice(None, None, step if step != 1 else None),) + later
    return rows, () if all(part == slice(None) for part in rest) else rest


def _expand(tensor: str, shape: Sequence[int], index: Tuple[Any, ...]) -> List[Any]:
    """The index with ``...`` expanded, ints normalized and checked, one entry per axis
    from the first (trailing axes left out mean "all")."""
    ellipses = sum(1 for part in index if part is Ellipsis)
    if ellipses > 1:
        raise SliceError(f"tensor `{tensor}`: an index can have only one `...`")
    explicit = len(index) - ellipses
    if explicit > len(shape):
        raise SliceError(f"tensor `{tensor}` has {len(shape)} dimension(s), the index {len(index)} entries")
    parts: List[Any] = []
    for part in index:
        if part is Ellipsis:
            parts.extend(slice(None) for _ in range(len(shape) - explicit))
            continue
        axis = len(parts)
        parts.append(_checked(tensor, shape[axis], axis, part))
    return parts


def _checked(tensor: str, size: int, axis: int, part: Any) -> Any:
    if isinstance(part, slice):
        for bound in (part.start, part.stop, part.step):
            if bound is not None and not _is_int(bound):
                raise SliceError(f"tensor `{tensor}`, axis {axis}: slice bounds must be integers, not {bound!r}")
        if part.step is not None and operator.index(part.step) <= 0:
            raise SliceError(f"tensor `{tensor}`, axis {axis}: slice steps must be positive, not {part.step}")
        return part
    if _is_int(part):
        value = operator.index(part)
        position = value + size if value < 0 else value
        if not 0 <= position < size:
            raise SliceError(f"tensor `{tensor}`, axis {axis}: index {value} is out of range for size {size}")
        return position
    raise SliceError(
        f"tensor `{tensor}`, axis {axis}: unsupported index {part!r} (use integers, slices and `...`)"
    )


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True
