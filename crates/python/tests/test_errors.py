"""Errors are the documented exceptions, with the CLI's messages."""

from __future__ import annotations

import subprocess
import sys

import numpy
import pytest

import safeshift
from conftest import AUX, GRAPH, checkpoint


def test_missing_and_broken_files_are_read_errors(tmp_path, cli) -> None:
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(safeshift.ReadError) as raised:
        safeshift.safe_open(missing)
    assert isinstance(raised.value, OSError) and str(missing) in str(raised.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(safeshift.ReadError) as raised:
        safeshift.safe_open(broken)
    cli_output = subprocess.run([str(cli), "upgrade", str(broken), "-o", str(tmp_path / "out.safetensors")], capture_output=True, text=True)
    assert cli_output.returncode != 0
    assert _words(str(raised.value)) in _words(cli_output.stderr)


def test_unknown_layouts_are_detect_errors(tmp_path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "unknown.safetensors"
    save_file({"something.else": numpy.zeros(3, dtype=numpy.float32)}, str(path))
    with pytest.raises(safeshift.DetectError, match="unknown.safetensors"):
        safeshift.safe_open(path)


def test_targets_and_plans() -> None:
    with pytest.raises(safeshift.TargetError):
        safeshift.safe_open(checkpoint("0.4.0"), target="not a version")
    with pytest.raises(safeshift.PlanError):
        safeshift.safe_open(checkpoint("0.4.0"), target="99.0.0")


def test_a_missing_aux_input_is_a_compile_error() -> None:
    with pytest.raises(safeshift.CompileError, match="graph"):
        safeshift.safe_open(checkpoint("0.4.0"))
    with pytest.raises(safeshift.ReadError, match="nothing-here"):
        safeshift.safe_open(checkpoint("0.4.0"), aux={"graph": "nothing-here.safetensors"})


def test_registry_folders_with_errors(tmp_path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "migrations").mkdir()
    (tmp_path / "schemas" / "bad.ss").write_text("schema broken {\n")
    with pytest.raises(safeshift.RegistryError):
        safeshift.safe_open(checkpoint("0.4.0"), registry=tmp_path)
    with pytest.raises(safeshift.RegistryError):
        safeshift.safe_open(checkpoint("0.4.0"), registry=tmp_path / "absent")


def test_unknown_tensors_and_frameworks() -> None:
    with safeshift.safe_open(checkpoint("0.4.0"), aux=AUX) as opened:
        with pytest.raises(safeshift.UnknownTensorError) as raised:
            opened.get_tensor("no.such.tensor")
        assert isinstance(raised.value, KeyError) and "no.such.tensor" in str(raised.value)
        with pytest.raises(KeyError):
            opened.get_slice("no.such.tensor")
    with pytest.raises(safeshift.FrameworkError):
        safeshift.safe_open(checkpoint("0.4.0"), "tf", aux=AUX)
    with pytest.raises(safeshift.FrameworkError):
        safeshift.safe_open(checkpoint("0.4.0"), "np", "cuda", aux=AUX)


def test_bf16_without_ml_dtypes_names_the_tensor(tmp_path) -> None:
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "bf16.safetensors"
    save_file({"weights": torch.ones(2, 2, dtype=torch.bfloat16)}, str(path))
    registry = tmp_path / "registry"
    (registry / "schemas").mkdir(parents=True)
    (registry / "migrations").mkdir()
    (registry / "schemas" / "one.ss").write_text('schema test.bf16 @ 1.0.0 "bf16" {\n    tensor "weights" : bf16[2, 2]\n}\n')
    script = (
        "import sys; sys.modules['ml_dtypes'] = None\n"
        "import safeshift\n"
        f"f = safeshift.safe_open({str(path)!r}, 'np', registry={str(registry)!r})\n"
        "try:\n    f.get_tensor('weights')\nexcept safeshift.DTypeError as err:\n    print(err)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "`weights` is bf16" in run.stdout and "ml_dtypes" in run.stdout, run.stdout + run.stderr


def test_every_error_is_a_safeshift_error() -> None:
    for name in safeshift.errors.__all__:
        assert issubclass(getattr(safeshift, name), safeshift.SafeshiftError)


def _words(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_a_kernel_failure_is_a_compute_error_naming_the_tensor(tmp_path, cli) -> None:
    from safetensors.numpy import save_file

    registry = tmp_path / "registry"
    (registry / "schemas").mkdir(parents=True)
    (registry / "migrations").mkdir()
    (registry / "schemas" / "t.ss").write_text('schema t @ 1.0.0 {\n    tensor "w" : f32[4]\n}\n')
    (registry / "migrations" / "t.ss").write_text(
        'migration t 1.0.0 -> 2.0.0 {\n    aux idx "an index"\n    gather "w" axis 0 index idx["i"]\n}\n'
    )
    path, index = tmp_path / "w.safetensors", tmp_path / "idx.safetensors"
    save_file({"w": numpy.arange(4, dtype=numpy.float32)}, str(path))
    save_file({"i": numpy.array([0, 1, 2, 9], dtype=numpy.int64)}, str(index))
    with safeshift.safe_open(path, "np", registry=registry, aux={"idx": index}) as opened:
        with pytest.raises(safeshift.ComputeError) as raised:
            opened.get_tensor("w")
        with pytest.raises(safeshift.ComputeError):
            opened.get_slice("w")[2:4]  # rows 2 and 3: the bad index is read
    message = str(raised.value)
    assert "cannot compute `w`: index 9 is out of range for an axis of size 4" in message
    run = subprocess.run(
        [str(cli), "upgrade", str(path), "--registry", str(registry), "--aux", f"idx={index}", "-o", str(tmp_path / "o.safetensors")],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and _words(message) in _words(run.stderr)
