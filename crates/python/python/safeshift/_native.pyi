"""Type stubs of the Rust extension module (``crates/python/src``). Internal: use
:class:`safeshift.safe_open` and the ``safeshift.torch`` / ``safeshift.numpy`` loaders."""

from typing import Any, Dict, List, Optional, Tuple, Union

__version__: str

class Bytes:
    """A tensor's bytes: borrowed from the map (holding the :class:`Open`) or computed."""

    @property
    def __array_interface__(self) -> Dict[str, object]:
        """NumPy's array interface: a flat ``uint8`` array over the bytes."""
    @property
    def borrowed(self) -> bool:
        """Whether the bytes are borrowed from the checkpoint's memory map."""
    @property
    def address(self) -> int:
        """The address of the first byte."""
    @property
    def owner(self) -> Optional["Open"]:
        """The open checkpoint the bytes are borrowed from, if any."""
    def __len__(self) -> int: ...

class Open:
    """A checkpoint opened through the facade, in the target layout."""

    @property
    def path(self) -> str:
        """The path given to :func:`open`."""
    @property
    def source_version(self) -> str:
        """The version the file is at (``family@version``)."""
    @property
    def target_version(self) -> str:
        """The version the view shows (``family@version``)."""
    @property
    def steps(self) -> List[str]:
        """The plan's steps, ``from -> to`` (`` (undo)`` when run backwards)."""
    def keys(self) -> List[str]:
        """The output tensor names, in plan order."""
    def extras(self) -> List[str]:
        """The tensors that are not model state: the file's extras (graph) and supporting arrays."""
    def info(self, name: str) -> Tuple[str, List[int]]:
        """``(dtype, shape)`` of tensor ``name`` (dtype as ``f32``, ``bf16``, …)."""
    def tensor(self, name: str, writable: bool = False) -> Bytes:
        """The bytes of tensor ``name`` (computed without the GIL when not borrowed)."""
    def rows(self, name: str, start: int, end: int, writable: bool = False) -> Bytes:
        """The bytes of rows ``start:end`` of the first axis of tensor ``name``."""
    def read_into(self, name: str, out: Any) -> None:
        """Writes tensor ``name`` into ``out`` (a writable, contiguous, flat ``uint8`` NumPy
        array of exactly its byte count) without the GIL: borrowed bytes read from the
        file with ``pread``, computed ones computed straight into it."""
    def read_many_into(self, names: List[str], outs: List[Any]) -> None:
        """Writes tensors ``names[i]`` into ``outs[i]`` (each as :meth:`read_into` takes
        it) on all cores without the GIL; the map pages a computed tensor read are
        released after it. Sizes are checked before anything is written; arrays that
        overlap raise ``ValueError``. An error while reading (a file truncated or
        unreadable under us) raises with some arrays already written, in part or whole."""
    def release(self, name: str) -> None:
        """Unmaps this process's pages of the sources tensor ``name`` reads."""
    def is_zero_copy(self, name: str) -> bool:
        """Whether ``tensor(name)`` is borrowed from the memory map."""
    def metadata(self) -> Dict[str, str]:
        """The output ``__metadata__``."""

def open(
    path: str,
    *,
    target: Optional[str] = None,
    dims: Optional[Dict[str, int]] = None,
    aux: Optional[Dict[str, str]] = None,
    registry: Optional[str] = None,
    allow_lossy: bool = False,
    params: Optional[Dict[str, Union[str, Dict[str, str]]]] = None,
    key: Optional[str] = None,
    allow_gadgets: bool = False,
) -> Open:
    """Opens ``path`` through the facade: detect, plan, compile (headers only; a PyTorch
    file's pickle is scanned and read, never run)."""
