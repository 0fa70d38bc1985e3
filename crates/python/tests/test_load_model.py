"""load_model into torch modules shaped like the target layout (and unlike it)."""

from __future__ import annotations

import pytest
import torch

import safeshift
import safeshift.torch
from conftest import AUX, checkpoint, raw_bytes, read_safetensors


class Layout(torch.nn.Module):
    """A module whose state dict has exactly the given names and shapes (as buffers and
    parameters of nested submodules, as real models do)."""

    def __init__(self, shapes) -> None:
        super().__init__()
        for name, (dtype, shape) in shapes.items():
            *path, leaf = name.split(".")
            module: torch.nn.Module = self
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, torch.nn.Module())
                module = getattr(module, part)
            tensor = torch.zeros(shape, dtype=dtype)
            if tensor.is_floating_point():
                module.register_parameter(leaf, torch.nn.Parameter(tensor))
            else:
                module.register_buffer(leaf, tensor)


TORCH_TYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}


@pytest.fixture(scope="module")
def target(upgraded):
    written, _ = upgraded["0.4.0"]
    return read_safetensors(written)


def _model(target, drop=(), add=()):
    shapes = {name: (TORCH_TYPES[dtype], shape) for name, (dtype, shape, _) in target.items() if name not in drop}
    shapes.update({name: (torch.float32, [2]) for name in add})
    return Layout(shapes)


def test_strict_load_into_the_target_layout(target) -> None:
    model = _model(target)
    report = safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX)
    missing, unexpected = report
    assert missing == [] and unexpected == []
    state = model.state_dict()
    for name, (_, _, data) in target.items():
        assert raw_bytes(state[name]) == data, name
    assert report.source_version == "anemoi.encprocdec@0.4.0"
    assert report.steps and report.computed and len(report.borrowed) > 100
    text = str(report)
    assert "anemoi.encprocdec@0.4.0 loaded as" in text and "computed:" in text


def test_layout_differences_are_reported(target) -> None:
    dropped = sorted(target)[0]
    model = _model(target, drop=[dropped], add=["extra.weight"])
    with pytest.raises(safeshift.LayoutMismatchError) as raised:
        safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX)
    assert f"missing: extra.weight" in str(raised.value) and f"unexpected: {dropped}" in str(raised.value)
    assert isinstance(raised.value, RuntimeError)
    missing, unexpected = safeshift.torch.load_model(model, checkpoint("0.4.0"), strict=False, aux=AUX)
    assert missing == ["extra.weight"] and unexpected == [dropped]


def test_a_shape_the_model_cannot_take_is_refused(target) -> None:
    name = "model.model.processor.proc.0.attention.lin_q.weight"
    shapes = {other: (TORCH_TYPES[dtype], shape) for other, (dtype, shape, _) in target.items()}
    shapes[name] = (torch.float32, [1, 1])
    model = Layout(shapes)
    with pytest.raises(safeshift.LayoutMismatchError, match="lin_q.weight"):
        safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX)


def test_parameters_of_another_dtype_get_converted_values(target) -> None:
    """A parameter the bytes cannot go into as they are (f64 for f32) gets torch's cast."""
    wider = {torch.float32: torch.float64}
    shapes = {name: (wider.get(TORCH_TYPES[dtype], TORCH_TYPES[dtype]), shape) for name, (dtype, shape, _) in target.items()}
    model = Layout(shapes)
    safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX)
    state = model.state_dict()
    checked = 0
    for name, (dtype, shape, data) in target.items():
        if dtype == "F32":
            expected = torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape).double()
            assert state[name].dtype == torch.float64 and torch.equal(state[name], expected), name
            checked += 1
    assert checked > 100


def test_read_into_takes_only_writable_arrays_of_the_tensor_size(target) -> None:
    import numpy

    with safeshift.safe_open(checkpoint("0.4.0"), aux=AUX) as opened:
        name = next(name for name in opened.keys() if not opened.is_zero_copy(name))
        size = len(target[name][2])
        out = numpy.zeros(size, dtype=numpy.uint8)
        opened._open.read_into(name, out)
        assert out.tobytes() == target[name][2]
        with pytest.raises(safeshift.SafeshiftError, match=f"buffer of {size - 1} bytes"):
            opened._open.read_into(name, numpy.zeros(size - 1, dtype=numpy.uint8))
        out.flags.writeable = False
        with pytest.raises(TypeError, match="read-only"):
            opened._open.read_into(name, out)
        with pytest.raises(TypeError, match="type is <f4"):
            opened._open.read_into(name, numpy.zeros(size // 4, dtype=numpy.float32))
        with pytest.raises(TypeError, match="strided"):
            opened._open.read_into(name, numpy.zeros(2 * size, dtype=numpy.uint8)[::2])


def test_assign_makes_the_tensors_the_models_own(target) -> None:
    """assign=True into a model on the meta device: nothing copied, borrowed parameters over
    the map, parameters still parameters."""
    from conftest import mapped_ranges

    with torch.device("meta"):
        model = _model(target)
    report = safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX, assign=True)
    assert report.missing == [] and report.unexpected == []
    state = model.state_dict(keep_vars=True)
    for name, (_, _, data) in target.items():
        assert state[name].device.type == "cpu" and raw_bytes(state[name]) == data, name
    ranges = mapped_ranges(checkpoint("0.4.0"))
    inside = [name for name in report.borrowed if any(low <= state[name].data_ptr() < high for low, high in ranges)]
    assert len(inside) == len([name for name in report.borrowed if state[name].numel()]) > 100
    assert all(not any(low <= state[name].data_ptr() < high for low, high in ranges) for name in report.computed)
    weight = "model.model.processor.proc.0.attention.lin_q.weight"
    assert isinstance(state[weight], torch.nn.Parameter) and state[weight].requires_grad


def test_assign_converts_what_the_model_holds_in_another_dtype(target) -> None:
    wider = {torch.float32: torch.float64}
    model = Layout({name: (wider.get(TORCH_TYPES[dtype], TORCH_TYPES[dtype]), shape) for name, (dtype, shape, _) in target.items()})
    safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX, assign=True)
    name = "model.model.processor.proc.0.attention.lin_q.weight"
    dtype, shape, data = target[name]
    expected = torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape).double()
    assert model.state_dict()[name].dtype == torch.float64 and torch.equal(model.state_dict()[name], expected)


def test_read_many_into_fills_every_tensor_as_the_file_upgrade_writes(target) -> None:
    """The parallel fill (borrowed tensors read with pread, computed ones computed into
    the arrays) gives the bytes of the upgraded file and of the map, for hundreds of small
    tensors at once."""
    import numpy

    with safeshift.safe_open(checkpoint("0.4.0"), aux=AUX) as opened:
        names = [name for name in opened.keys() if name in target]
        arrays = [numpy.full(len(target[name][2]), 0xAA, dtype=numpy.uint8) for name in names]
        opened._open.read_many_into(names, arrays)
        borrowed = 0
        for name, array in zip(names, arrays):
            assert array.tobytes() == target[name][2], name
            if opened.is_zero_copy(name):
                assert array.tobytes() == raw_bytes(opened.get_tensor(name)), name
                borrowed += 1
        assert borrowed > 100 and len(names) > borrowed


def test_read_many_into_checks_every_array_before_writing(target) -> None:
    import numpy

    with safeshift.safe_open(checkpoint("0.4.0"), aux=AUX) as opened:
        first, second = [name for name in opened.keys() if len(target.get(name, (0, 0, b""))[2]) > 64][:2]
        good = numpy.full(len(target[first][2]), 0xAA, dtype=numpy.uint8)
        short = numpy.zeros(len(target[second][2]) - 1, dtype=numpy.uint8)
        with pytest.raises(safeshift.SafeshiftError, match=f"`{second}` into a buffer"):
            opened._open.read_many_into([first, second], [good, short])
        assert (good == 0xAA).all(), "nothing is written when a size is wrong"
        memory = numpy.zeros(len(target[first][2]) + 8, dtype=numpy.uint8)
        overlapping = [memory[: len(target[first][2])], memory[8:]]
        with pytest.raises(ValueError, match="overlap"):
            opened._open.read_many_into([first, first], overlapping)
        with pytest.raises(ValueError, match="1 names and 2 arrays"):
            opened._open.read_many_into([first], [good, good])


def test_tied_parameters_are_filled_one_after_the_other(target) -> None:
    """Two names sharing one parameter (a tied weight) are not filled at once: the tensor
    last in the checkpoint's order is what the parameter holds, as with load_state_dict."""
    model = _model(target)
    first = "model.model.processor.proc.0.attention.lin_q.weight"
    second = "model.model.processor.proc.0.attention.lin_k.weight"
    attention = model
    for part in first.split(".")[:-2]:
        attention = getattr(attention, part)
    attention.lin_k.weight = attention.lin_q.weight  # the same Parameter under both names
    state = model.state_dict(keep_vars=True)
    assert state[first] is state[second]
    keys = safeshift.safe_open(checkpoint("0.4.0"), aux=AUX).keys()
    last = max((first, second), key=keys.index)
    safeshift.torch.load_model(model, checkpoint("0.4.0"), aux=AUX)
    assert raw_bytes(state[first]) == target[last][2] != target[first if last == second else second][2]
    state = model.state_dict()
    for name, (_, _, data) in target.items():
        if name not in (first, second):
            assert raw_bytes(state[name]) == data, name
