"""Loading a >= 1 GiB checkpoint into a torch model: safeshift vs safetensors vs torch.load.

Run through `scripts/bench-python` (which builds the release wheel into the cached venv):

    scripts/bench-python [--size 1GiB] [--runs 3] [--out-dir DIR] [--untouched-model]

It generates a synthetic model (fused qkv, `blocks.N`, at version 1.0.0 of the registry in
bench/python-load/registry; separate q/k/v, `layers.N` at 2.0.0) as three files: the old
layout as safetensors, the current layout as safetensors, and the old layout as a torch
pickle. Each case then runs in its own process, loading into a model shaped like 2.0.0:

* safetensors: `safetensors.torch.load_model` on the current file (the baseline);
* safeshift, pass-through: `safeshift.torch.load_model` on the current file (empty plan);
* safeshift, migration: `safeshift.torch.load_model` on the old file (split + renames);
* torch.load + Python migration: the pickle, then the renames and the split done in Python
  as Anemoi's migration scripts do, then `model.load_state_dict`;
* two floors for the copying cases, on the same memory: `pread` of the current file into a
  1 GiB-sized buffer (`readinto`: the one kernel copy out of the page cache a loader
  cannot avoid) and a `memcpy` of that many bytes between two buffers (torch's `copy_`);
* the same two without a copy, into a model built on the meta device:
  `safeshift.torch.load_model(..., assign=True)` and `torch.load(mmap=True)` + the Python
  migration + `load_state_dict(..., assign=True)` (the tensors' pages are read when first
  used, so these times are the load's bookkeeping, not the bytes).

The model is built before the timer starts and its parameters are written once, as a
model's constructor initialises them (`--untouched-model` leaves them as `torch.empty`
gives them: then every case also pays the kernel's first touch of 1 GiB of fresh pages,
262,144 page faults, which on this VM costs more than the copy). Times are the load call only: wall-clock time, and the CPU
time (user + system) the process spent in it, which other jobs on a busy machine disturb
far less; peak RSS is the process's. The table prints the median of `--runs` runs and the
ratios to the baseline, and the load average, to judge how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGISTRY = HERE / "registry"
HIDDEN = 1024
LAYER_BYTES = 48 * HIDDEN * HIDDEN + 4 * HIDDEN  # qkv 3, proj 1, fc1 4, fc2 4 (x H^2 x 4 bytes) + norm

CASES = [
    ("safetensors", "`safetensors.torch.load_model`, current file"),
    ("passthrough", "`safeshift.torch.load_model`, current file (pass-through)"),
    ("migration", "`safeshift.torch.load_model`, old file (split + renames)"),
    ("torchload", "`torch.load` of the old pickle + Python migration"),
    # What the copying cases cannot beat: the bytes read once from the page cache, or copied once.
    ("floor-pread", "floor: `pread` of the current file into a buffer of the model's size"),
    ("floor-memcpy", "floor: `memcpy` of the model's size between two buffers"),
    # No copy: the model is built on the meta device and takes the loaded tensors as its own
    # (their pages are read when first used, so the load itself touches almost nothing).
    ("migration-assign", "`safeshift.torch.load_model(assign=True)`, old file, model on `meta`"),
    ("torchload-assign", "`torch.load(mmap=True)` of the old pickle + Python migration + `assign=True`, model on `meta`"),
]


def parse_size(text: str) -> int:
    units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
    lower = text.lower()
    for unit, factor in units.items():
        if lower.endswith(unit):
            return int(float(lower[: -len(unit)]) * factor)
    return int(text)


def old_names(i: int):
    return {
        "qkv": f"blocks.{i}.attn.qkv.weight",
        "proj": f"blocks.{i}.attn.proj.weight",
        "fc1": f"blocks.{i}.mlp.fc1.weight",
        "fc2": f"blocks.{i}.mlp.fc2.weight",
        "norm": f"blocks.{i}.norm.weight",
    }


def migrate_in_python(state: dict, layers: int) -> dict:
    """What a hand-written migration script does: renames, and the fused qkv split in three."""
    out = {}
    for i in range(layers):
        old = old_names(i)
        q, k, v = state.pop(old["qkv"]).chunk(3, dim=0)
        out[f"layers.{i}.attention.q.weight"] = q
        out[f"layers.{i}.attention.k.weight"] = k
        out[f"layers.{i}.attention.v.weight"] = v
        out[f"layers.{i}.attention.out.weight"] = state.pop(old["proj"])
        out[f"layers.{i}.mlp.up.weight"] = state.pop(old["fc1"])
        out[f"layers.{i}.mlp.down.weight"] = state.pop(old["fc2"])
        out[f"layers.{i}.norm.weight"] = state.pop(old["norm"])
    return out


def generate(directory: Path, layers: int) -> None:
    import torch
    from safetensors.torch import save_file

    if (directory / "done.json").exists() and json.loads((directory / "done.json").read_text()) == {"layers": layers}:
        return
    generator = torch.Generator().manual_seed(0)
    old = {}
    for i in range(layers):
        names = old_names(i)
        old[names["qkv"]] = torch.randn(3 * HIDDEN, HIDDEN, generator=generator)
        old[names["proj"]] = torch.randn(HIDDEN, HIDDEN, generator=generator)
        old[names["fc1"]] = torch.randn(4 * HIDDEN, HIDDEN, generator=generator)
        old[names["fc2"]] = torch.randn(HIDDEN, 4 * HIDDEN, generator=generator)
        old[names["norm"]] = torch.randn(HIDDEN, generator=generator)
    save_file(old, str(directory / "old.safetensors"))
    torch.save(old, directory / "old.pt")
    current = {name: tensor.contiguous() for name, tensor in migrate_in_python(dict(old), layers).items()}
    save_file(current, str(directory / "current.safetensors"))
    (directory / "done.json").write_text(json.dumps({"layers": layers}))


def build_model(layers: int, meta: bool = False, untouched: bool = False):
    import torch

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = torch.nn.Module()
            for name in ("q", "k", "v", "out"):
                self.attention.add_module(name, torch.nn.Linear(HIDDEN, HIDDEN, bias=False, device="meta"))
            self.mlp = torch.nn.Module()
            self.mlp.add_module("up", torch.nn.Linear(HIDDEN, 4 * HIDDEN, bias=False, device="meta"))
            self.mlp.add_module("down", torch.nn.Linear(4 * HIDDEN, HIDDEN, bias=False, device="meta"))
            self.norm = torch.nn.LayerNorm(HIDDEN, bias=False, device="meta")

    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList(Block() for _ in range(layers))
    if meta:
        return model
    model = model.to_empty(device="cpu")
    if not untouched:
        # Written once, as a constructor's initialisation (`reset_parameters`) does: zeros,
        # which cost the same page faults as random values and less time.
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.zero_()
    return model


def buffer(size: int, untouched: bool):
    """A byte tensor of `size` for the floors, written once like the model's parameters."""
    import torch

    memory = torch.empty(size, dtype=torch.uint8)
    if not untouched:
        memory.zero_()
    return memory


def run_case(case: str, directory: Path, layers: int, untouched: bool) -> dict:
    import torch

    model = build_model(layers, meta=case.endswith("-assign") or case.startswith("floor"), untouched=untouched)
    size = layers * LAYER_BYTES
    if case == "floor-pread":
        destination = buffer(size, untouched)
    elif case == "floor-memcpy":
        source, destination = buffer(size, False), buffer(size, untouched)
    start = time.perf_counter()
    cpu_start = time.process_time()
    if case == "safetensors":
        from safetensors.torch import load_model

        missing, unexpected = load_model(model, str(directory / "current.safetensors"))
    elif case in ("passthrough", "migration"):
        import safeshift.torch

        path = directory / ("current.safetensors" if case == "passthrough" else "old.safetensors")
        missing, unexpected = safeshift.torch.load_model(model, path, registry=REGISTRY)
    elif case == "torchload":
        state = torch.load(directory / "old.pt", weights_only=True)
        missing, unexpected = model.load_state_dict(migrate_in_python(state, layers))
        del state
    elif case == "migration-assign":
        import safeshift.torch

        path = directory / "old.safetensors"
        missing, unexpected = safeshift.torch.load_model(model, path, registry=REGISTRY, assign=True)
    elif case == "torchload-assign":
        state = torch.load(directory / "old.pt", weights_only=True, mmap=True)
        missing, unexpected = model.load_state_dict(migrate_in_python(state, layers), assign=True)
        del state
    elif case == "floor-pread":
        with open(directory / "current.safetensors", "rb", buffering=0) as file:
            file.seek(os.path.getsize(directory / "current.safetensors") - size)
            assert file.readinto(memoryview(destination.numpy())) == size
        missing, unexpected = [], []
    elif case == "floor-memcpy":
        destination.copy_(source)
        missing, unexpected = [], []
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    assert not missing and not unexpected, (missing, unexpected)
    # The floors load no model: no checksum to compare.
    checksum = None if case.startswith("floor") else float(model.layers[layers - 1].attention.v.weight.detach()[-1, :8].sum())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss": peak_kib * 1024, "checksum": checksum}


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{count:.0f} B"
        count /= 1024
    return f"{count:.1f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="checkpoint size (default 1GiB)")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median reported)")
    parser.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "safeshift-python-bench")
    parser.add_argument(
        "--untouched-model",
        action="store_true",
        help="leave the model's parameters unwritten before the load (first-touch page faults counted in every case)",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        print(json.dumps(run_case(args.case, args.out_dir, args.layers, args.untouched_model)))
        return

    layers = max(1, -(-parse_size(args.size) // LAYER_BYTES))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print(f"generating {layers} layers ({human_bytes(layers * LAYER_BYTES)}) in {args.out_dir}", file=sys.stderr)
    generate(args.out_dir, layers)
    for name in ("old.safetensors", "current.safetensors", "old.pt"):
        with open(args.out_dir / name, "rb") as file:  # warm the page cache alike for every case
            while file.read(1 << 24):
                pass

    load_before = os.getloadavg()[0]
    results = {case: [] for case, _ in CASES}
    for run in range(args.runs):
        for case, _ in CASES:
            command = [sys.executable, __file__, "--case", case, "--out-dir", str(args.out_dir), "--layers", str(layers)]
            output = subprocess.run(
                command + (["--untouched-model"] if args.untouched_model else []),
                check=True,
                capture_output=True,
                text=True,
            )
            results[case].append(json.loads(output.stdout.strip().splitlines()[-1]))
            print(f"run {run + 1}/{args.runs} {case}: {results[case][-1]['seconds']:.3f} s", file=sys.stderr)

    checksums = {round(result["checksum"], 3) for runs in results.values() for result in runs if result["checksum"] is not None}
    assert len(checksums) == 1, f"the cases loaded different weights: {checksums}"
    base_time = statistics.median(r["seconds"] for r in results["safetensors"])
    base_rss = statistics.median(r["peak_rss"] for r in results["safetensors"])
    size = (args.out_dir / "current.safetensors").stat().st_size
    model_state = "untouched (`torch.empty`)" if args.untouched_model else "written once before the load"
    print(
        f"\nCheckpoint: {human_bytes(size)} ({layers} layers, f32), model memory {model_state}, "
        f"median of {args.runs} run(s), each case in its own process\n"
    )
    base_cpu = statistics.median(r["cpu_seconds"] for r in results["safetensors"])
    print("| case | time | × safetensors | CPU time | × safetensors | peak RSS | × safetensors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case, title in CASES:
        seconds = statistics.median(r["seconds"] for r in results[case])
        cpu = statistics.median(r["cpu_seconds"] for r in results[case])
        rss = statistics.median(r["peak_rss"] for r in results[case])
        print(
            f"| {title} | {seconds:.3f} s | {seconds / base_time:.2f} | {cpu:.3f} s | {cpu / base_cpu:.2f} "
            f"| {human_bytes(rss)} | {rss / base_rss:.2f} |"
        )
    torch_time = statistics.median(r["seconds"] for r in results["torchload"])
    torch_cpu = statistics.median(r["cpu_seconds"] for r in results["torchload"])
    floor_time = statistics.median(r["seconds"] for r in results["floor-pread"])
    for case in ("passthrough", "migration"):
        seconds = statistics.median(r["seconds"] for r in results[case])
        cpu = statistics.median(r["cpu_seconds"] for r in results[case])
        # Each run's own ratio too: the cases of one run ran back to back, under the same load.
        per_run = ", ".join(
            f"{slow['seconds'] / fast['seconds']:.1f}" for slow, fast in zip(results["torchload"], results[case])
        )
        print(
            f"\n{case}: {torch_time / seconds:.1f}× faster than torch.load + Python migration "
            f"({torch_cpu / cpu:.1f}× in CPU time; per run: {per_run}), {seconds / floor_time:.2f}× the pread floor",
            end="",
        )
    assign_time = statistics.median(r["seconds"] for r in results["torchload-assign"])
    seconds = statistics.median(r["seconds"] for r in results["migration-assign"])
    print(f"\nmigration-assign: {torch_time / seconds:.1f}× faster than torch.load + Python migration, "
          f"{assign_time / seconds:.1f}× faster than torch.load(mmap=True) + migration + assign", end="")
    print()
    print(f"load average (1 min): {load_before:.1f} before the runs, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
