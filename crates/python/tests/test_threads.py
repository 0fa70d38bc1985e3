"""Concurrent reads from threads get the right bytes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import safeshift
from conftest import AUX, PICKLES, checkpoint, raw_bytes, read_safetensors


@pytest.mark.parametrize("framework", ["np", "pt"])
def test_threads_reading_concurrently(upgraded, framework: str) -> None:
    written, _ = upgraded["0.4.0"]
    expected = read_safetensors(written)
    with safeshift.safe_open(checkpoint("0.4.0"), framework, aux=AUX) as opened:
        names = opened.keys() * 4

        def read(name: str) -> bool:
            whole = raw_bytes(opened.get_tensor(name))
            shape = expected[name][1]
            if shape and shape[0] > 1:
                half = shape[0] // 2
                parts = raw_bytes(opened.get_slice(name)[:half]) + raw_bytes(opened.get_slice(name)[half:])
                assert parts == whole, name
            return whole == expected[name][2]

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert all(pool.map(read, names))


def test_threads_reading_a_pickle_concurrently(upgraded_pickles) -> None:
    """Tensors of a `.ckpt` (borrowed from the zip's map, or built) read from 8 threads at
    once equal those `safeshift upgrade` writes."""
    expected = read_safetensors(upgraded_pickles["0.11.2/inference"])
    with safeshift.safe_open(PICKLES / "0.11.2" / "inference.ckpt", "np") as opened:
        with ThreadPoolExecutor(max_workers=8) as pool:
            read = lambda name: raw_bytes(opened.get_tensor(name)) == expected[name][2]  # noqa: E731
            assert all(pool.map(read, opened.keys() * 4))
