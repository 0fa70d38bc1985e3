"""Every get_slice form equals slicing the whole tensor, in both frameworks."""

from __future__ import annotations

import pytest

import safeshift
from conftest import AUX, PICKLES, VERSIONS, checkpoint, raw_bytes

FORMS = [
    (slice(None),),
    (slice(1, 3),),
    (slice(0, 1),),
    (slice(-2, None),),
    (slice(None, None, 2),),
    (slice(1, None, 3),),
    (slice(5, 2),),
    (slice(0, 1000),),
    (0,),
    (-1,),
    (Ellipsis,),
    (Ellipsis, 0),
    (slice(None), slice(0, 1)),
    (slice(None), slice(1, None, 2)),
    (slice(1, 3), 0),
    (1, slice(None, None, 2)),
    (slice(None, None, 2), Ellipsis),
]


def _applicable(shape, form) -> bool:
    explicit = [part for part in form if part is not Ellipsis]
    if len(explicit) > len(shape):
        return False
    return all(not isinstance(part, int) or (shape[axis] > 0 and -shape[axis] <= part < shape[axis]) for axis, part in enumerate(explicit))


SOURCES = [
    *((version, checkpoint(version), AUX) for version in (VERSIONS[0], "0.12.1", VERSIONS[-1])),
    ("0.11.2 training.ckpt", PICKLES / "0.11.2" / "training.ckpt", None),
]


@pytest.mark.parametrize("framework", ["np", "pt"])
@pytest.mark.parametrize("source", SOURCES, ids=[source[0] for source in SOURCES])
def test_every_slice_form_equals_slicing_the_tensor(source, framework: str) -> None:
    _, path, aux = source
    opened = safeshift.safe_open(path, framework, aux=aux)
    checked = 0
    for name in opened.keys():
        whole = opened.get_tensor(name)
        sliced = opened.get_slice(name)
        assert sliced.get_shape() == list(whole.shape)
        for form in FORMS:
            if not _applicable(list(whole.shape), form):
                continue
            part = sliced[form if len(form) > 1 else form[0]]
            reference = whole[form]
            assert tuple(part.shape) == tuple(reference.shape), (name, form)
            assert raw_bytes(part) == raw_bytes(reference), (name, form)
            checked += 1
    assert checked > 100


def test_row_slices_of_split_tensors_are_borrowed() -> None:
    with safeshift.safe_open(checkpoint("0.4.0"), "np", aux=AUX) as opened:
        name = "model.model.processor.proc.0.attention.lin_q.weight"
        assert opened.is_zero_copy(name)
        rows = opened.get_slice(name)[1:3]
        assert not rows.flags.owndata and not rows.flags.writeable


def test_unsupported_indices_are_slice_errors() -> None:
    with safeshift.safe_open(checkpoint("0.4.0"), "np", aux=AUX) as opened:
        name = "model.model.processor.proc.0.attention.lin_q.weight"
        rows = opened.get_slice(name).get_shape()[0]
        sliced = opened.get_slice(name)
        for bad in [slice(None, None, -1), rows, -rows - 1, (0, 0, 0), [0, 1], None, (Ellipsis, Ellipsis), slice("a", None)]:
            with pytest.raises(safeshift.SliceError) as raised:
                sliced[bad]
            assert name in str(raised.value)
            assert isinstance(raised.value, IndexError)
