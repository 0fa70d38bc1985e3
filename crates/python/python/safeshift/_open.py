"""``safe_open``: an old checkpoint read as if it were in today's layout."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _arrays, _dtypes, _native, _slicing
from .errors import FrameworkError, ParamError

PathLike = Union[str, "os.PathLike[str]"]

_FRAMEWORKS = {"pt": "pt", "torch": "pt", "pytorch": "pt", "np": "np", "numpy": "np"}


class safe_open:
    """Opens a checkpoint migrated to the layout of ``target``, like ``safetensors.safe_open``.

    ``path`` is a ``.safetensors`` file, a sharded set's ``.safetensors.index.json``, a
    PyTorch file (``.pt``, ``.ckpt``: a state dict, a Lightning checkpoint or a whole
    pickled model, read without running its pickle), or any other input the safeshift
    library opens. Its version is detected from the header with the embedded registry (or
    the one in the folder ``registry``), and the path to ``target`` (``"VERSION"`` or
    ``"FAMILY@VERSION"``; the family's newest version when ``None``) is planned; nothing
    else is read until a tensor is asked for.

    The keyword arguments are the command line's options: ``dims`` gives dims no shape or
    metadata tells (``{"heads": 32}``, ``--dim``), ``aux`` the auxiliary inputs a
    migration reads (``{"graph": "graph.safetensors"}``, ``--aux``), ``allow_lossy``
    allows plans that discard information (``--allow-lossy``; otherwise
    :class:`~safeshift.errors.LossyError`), ``params`` gives migration parameters
    (``{"encoder_names": "era5:global,cerra:regional"}`` or the same as a dict of dicts,
    ``--param``). For a PyTorch file, ``key`` names the top-level entry holding the state
    dict (``--key``; default: ``state_dict``, ``model`` and the other usual ones), and
    ``allow_gadgets`` reads a pickle that holds code-execution gadgets instead of raising
    :class:`~safeshift.errors.GadgetError` (``--allow-gadgets``; nothing runs either way).

    Tensors come back as torch tensors (``framework="pt"``, on ``device``) or NumPy arrays
    (``framework="np"``). Tensors the migration only renames, reshapes or splits along
    the first axis are borrowed from the memory map (:meth:`is_zero_copy`); the others are
    computed when asked for, with the GIL released, into one allocation each.

    Use it as a context manager, like ``safetensors.safe_open``; arrays and tensors it
    returned stay valid after the ``with`` block.
    """

    def __init__(
        self,
        path: PathLike,
        framework: str = "pt",
        device: Any = "cpu",
        *,
        target: Optional[str] = None,
        dims: Optional[Mapping[str, int]] = None,
        aux: Optional[Mapping[str, PathLike]] = None,
        registry: Optional[PathLike] = None,
        allow_lossy: bool = False,
        params: Optional[Mapping[str, Union[str, Mapping[str, str]]]] = None,
        key: Optional[str] = None,
        allow_gadgets: bool = False,
    ) -> None:
        if framework not in _FRAMEWORKS:
            raise FrameworkError(f"framework {framework!r} is not supported: use \"pt\" (torch) or \"np\" (NumPy)")
        self._framework = _FRAMEWORKS[framework]
        if self._framework == "np" and str(device) != "cpu":
            raise FrameworkError(f"NumPy arrays live on the CPU: device {device!r} needs framework=\"pt\"")
        self._device = device
        self._open = _native.open(
            os.fspath(path),
            target=target,
            dims=dict(dims) if dims is not None else None,
            aux={name: os.fspath(file) for name, file in aux.items()} if aux is not None else None,
            registry=os.fspath(registry) if registry is not None else None,
            allow_lossy=allow_lossy,
            params=_params(params),
            key=key,
            allow_gadgets=allow_gadgets,
        )

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        return None

    def __repr__(self) -> str:
        return repr(self._open)

    def keys(self) -> List[str]:
        """The tensor names in the target layout, in plan order."""
        return self._open.keys()

    def extras(self) -> List[str]:
        """The tensors that are not model state: an Anemoi checkpoint's graph
        (``graph.<node set>.<attr>``, ``graph.<src>_<rel>_<dst>.<attr>``, carried from the
        file unchanged) and supporting arrays (``anemoi.supporting_arrays.<name>``).
        :meth:`get_tensor` reads them by name; those :meth:`keys` lists (as the file
        ``safeshift upgrade`` writes does) :func:`safeshift.torch.load_model` leaves out."""
        return self._open.extras()

    def offset_keys(self) -> List[str]:
        """The tensor names (as ``keys()``; ``safetensors`` orders these by file offset)."""
        return self._open.keys()

    def metadata(self) -> Dict[str, str]:
        """The migrated checkpoint's ``__metadata__``: the source's after the migration's
        metadata edits, plus ``safeshift.schema`` and ``safeshift.history``."""
        return self._open.metadata()

    def get_tensor(self, name: str) -> Any:
        """Tensor ``name`` in the target layout, as a torch tensor or a NumPy array.

        Borrowed tensors (:meth:`is_zero_copy`) point into the memory map: NumPy arrays are
        read-only; torch tensors are writable, but writes stay in this process (the map is
        copy-on-write). Raises :class:`~safeshift.errors.UnknownTensorError` for a name not
        in :meth:`keys`.
        """
        dtype, shape = self._open.info(name)
        raw = self._open.tensor(name, writable=self._framework == "pt")
        return self._convert(raw, dtype, shape, name)

    def get_slice(self, name: str) -> "Slice":
        """A lazy handle on tensor ``name``: index it (``[a:b]``, ``[:, a:b]``, ints, steps,
        ``...``) to read only part of it. Rows of the first axis are read from the source
        only: when the plan makes them a byte range, they are borrowed from the map."""
        dtype, shape = self._open.info(name)
        return Slice(self, name, dtype, shape)

    def is_zero_copy(self, name: str) -> bool:
        """Whether :meth:`get_tensor` borrows ``name`` from the memory map (no copy)."""
        return self._open.is_zero_copy(name)

    @property
    def source_version(self) -> str:
        """The version the file is at (``family@version``)."""
        return self._open.source_version

    @property
    def target_version(self) -> str:
        """The version the checkpoint is seen at (``family@version``)."""
        return self._open.target_version

    @property
    def plan(self) -> List[str]:
        """The migration steps from the source version to the target, one ``from -> to`` each
        (``(undo)`` marks a migration run backwards); empty when nothing is migrated."""
        return self._open.steps

    def _convert(self, raw: _native.Bytes, dtype: str, shape: Sequence[int], name: str) -> Any:
        if self._framework == "np":
            return _arrays.to_numpy(raw, dtype, shape, name)
        return _arrays.to_torch(raw, dtype, shape, name, self._device)


class Slice:
    """One tensor of a :class:`safe_open`, read in parts by indexing
    (``safetensors``' ``PySafeSlice``)."""

    def __init__(self, checkpoint: safe_open, name: str, dtype: str, shape: Sequence[int]) -> None:
        self._checkpoint = checkpoint
        self._name = name
        self._dtype = dtype
        self._shape = list(shape)

    def get_shape(self) -> List[int]:
        """The whole tensor's shape."""
        return list(self._shape)

    def get_dtype(self) -> str:
        """The dtype as the safetensors header spells it (``"F32"``, ``"BF16"``)."""
        return _dtypes.SAFETENSORS_NAMES.get(self._dtype, self._dtype.upper())

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError(f"tensor `{self._name}` is a scalar and has no length")
        return self._shape[0]

    def __getitem__(self, index: Any) -> Any:
        """The part of the tensor ``index`` selects, as ``tensor[index]`` would give it; only
        the selected rows of the first axis are read."""
        rows, rest = _slicing.split_rows(self._name, self._shape, index)
        checkpoint = self._checkpoint
        writable = checkpoint._framework == "pt"
        if rows is None:
            raw = checkpoint._open.tensor(self._name, writable=writable)
            part = checkpoint._convert(raw, self._dtype, self._shape, self._name)
        else:
            start, end = rows
            raw = checkpoint._open.rows(self._name, start, end, writable=writable)
            part = checkpoint._convert(raw, self._dtype, [end - start] + self._shape[1:], self._name)
        return part[rest] if rest != () else part


def _params(params: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """``params`` as the native side takes them: text, or a dict of text to text."""
    if params is None:
        return None
    checked: Dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, str):
            checked[name] = value
        elif isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            checked[name] = dict(value)
        else:
            raise ParamError(
                f"parameter `{name}`: {value!r} is neither text (\"0\", \"era5:global,cerra:regional\") "
                "nor a dict of text to text"
            )
    return checked
