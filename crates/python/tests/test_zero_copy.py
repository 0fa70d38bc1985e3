"""Borrowed tensors point into the memory map, which lives as long as they do; computed
tensors are their own allocation."""

from __future__ import annotations

import gc

import numpy
import torch

import safeshift
from conftest import AUX, PICKLES, checkpoint, mapped_ranges, raw_bytes

SOURCE = checkpoint("0.4.0")


def _inside(address: int, ranges) -> bool:
    return any(low <= address < high for low, high in ranges)


def test_zero_copy_tensors_share_memory_with_the_map() -> None:
    with safeshift.safe_open(SOURCE, "np", aux=AUX) as opened:
        borrowed = [name for name in opened.keys() if opened.is_zero_copy(name)]
        computed = [name for name in opened.keys() if not opened.is_zero_copy(name)]
        assert len(borrowed) > 100 and computed
        ranges = mapped_ranges(SOURCE)
        assert ranges, "the checkpoint is memory-mapped"
        for name in borrowed:
            array = opened.get_tensor(name)
            if array.nbytes == 0:
                continue
            assert _inside(array.__array_interface__["data"][0], ranges), name
            assert not array.flags.owndata and not array.flags.writeable, name
        for name in computed:
            array = opened.get_tensor(name)
            assert not _inside(array.__array_interface__["data"][0], ranges), name
    with safeshift.safe_open(SOURCE, "pt", aux=AUX) as opened:
        ranges = mapped_ranges(SOURCE)
        for name in borrowed:
            tensor = opened.get_tensor(name)
            if tensor.numel():
                assert _inside(tensor.untyped_storage().data_ptr(), ranges), name
                assert _inside(tensor.data_ptr(), ranges), name


def test_pickled_tensors_are_borrowed_from_the_map_of_the_ckpt() -> None:
    """A zip checkpoint stores tensors uncompressed: they are borrowed like safetensors ones."""
    path = PICKLES / "0.19.0" / "training.ckpt"
    with safeshift.safe_open(path, "np") as opened:
        borrowed = [name for name in opened.keys() if opened.is_zero_copy(name)]
        assert len(borrowed) > 100
        ranges = mapped_ranges(path)
        assert ranges, "the checkpoint is memory-mapped"
        for name in borrowed:
            array = opened.get_tensor(name)
            if array.nbytes:
                assert _inside(array.__array_interface__["data"][0], ranges), name
                assert not array.flags.writeable, name


def test_the_map_outlives_the_open_object_while_arrays_live() -> None:
    name = "model.model.processor.proc.0.attention.lin_q.weight"
    opened = safeshift.safe_open(SOURCE, "np", aux=AUX)
    array = opened.get_tensor(name)
    tensor = safeshift.safe_open(SOURCE, "pt", aux=AUX).get_tensor(name)
    expected = raw_bytes(array)
    del opened
    gc.collect()
    assert mapped_ranges(SOURCE), "the arrays keep the map"
    assert raw_bytes(array) == expected and raw_bytes(tensor) == expected
    del array, tensor
    gc.collect()
    assert not mapped_ranges(SOURCE), "the map is gone with the last array"


def test_torch_writes_stay_in_the_process() -> None:
    name = "model.model.processor.proc.0.attention.lin_q.weight"
    before = SOURCE.read_bytes()
    with safeshift.safe_open(SOURCE, "pt", aux=AUX) as opened:
        tensor = opened.get_tensor(name)
        tensor.add_(1.0)
    assert SOURCE.read_bytes() == before, "the file is never modified"
    with safeshift.safe_open(SOURCE, "np", aux=AUX) as opened:
        assert not numpy.array_equal(opened.get_tensor(name), tensor.numpy())


def test_bf16_and_fp8_map_to_torch_and_ml_dtypes(tmp_path) -> None:
    import ml_dtypes
    from safetensors.torch import save_file

    path = tmp_path / "types.safetensors"
    values = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
    tensors = {"bf16": values.to(torch.bfloat16), "f8": values.to(torch.float8_e4m3fn), "f16": values.half()}
    save_file(tensors, str(path))
    registry = tmp_path / "registry"
    _single_version_registry(registry, tensors)
    with safeshift.safe_open(path, "pt", registry=registry) as opened:
        for name, tensor in tensors.items():
            got = opened.get_tensor(name)
            assert got.dtype == tensor.dtype and raw_bytes(got) == raw_bytes(tensor)
    with safeshift.safe_open(path, "np", registry=registry) as opened:
        assert opened.get_tensor("bf16").dtype == numpy.dtype(ml_dtypes.bfloat16)
        assert opened.get_tensor("f8").dtype == numpy.dtype(ml_dtypes.float8_e4m3fn)
        assert opened.get_tensor("bf16").astype(numpy.float32).tolist() == values.tolist()


def _single_version_registry(folder, tensors) -> None:
    """A registry with one schema that matches `tensors`: a pass-through plan."""
    types = {torch.bfloat16: "bf16", torch.float8_e4m3fn: "f8_e4m3", torch.float16: "f16"}
    (folder / "schemas").mkdir(parents=True)
    (folder / "migrations").mkdir()
    lines = ['schema test.types @ 1.0.0 "three dtypes" {']
    for name, tensor in tensors.items():
        lines.append(f'    tensor "{name}" : {types[tensor.dtype]}[{", ".join(str(size) for size in tensor.shape)}]')
    lines.append("}")
    (folder / "schemas" / "types-1.0.0.ss").write_text("\n".join(lines) + "\n")
