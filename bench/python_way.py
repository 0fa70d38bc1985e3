"""The Python way: the bench's migrations done as a user would script them today.

    python python_way.py light IN OUT
    python python_way.py heavy IN OUT --heads H

`safetensors.numpy.load_file` reads the whole checkpoint into NumPy arrays, the script
edits the dict (renames, reshapes, array ops), and `safetensors.numpy.save_file` writes
the result. NumPy has no bfloat16, so `ml_dtypes` (the JAX ecosystem's) provides it and
is registered with safetensors' NumPy loader. The migrations are the ones the Rust bench
runs (see crates/bench/src/synth.rs):

* light: `model.model.processor.proc.{i}.` -> `model.processor.layers.{i}.`, and each
  `attention.lin_qkv.bias` reshaped to `[3, hidden]`;
* heavy: each `attention.lin_qkv.{weight,bias}` split into `lin_q`, `lin_k`, `lin_v`
  with the interleaved head layout (`[heads, 3, head_dim, ...]`), the `lin_q/k/v` and
  `projection` weights cast from f32 to bf16, and `attention.projection.weight` and
  `mlp.2.weight` transposed.

The last line printed is this process's peak memory, read from /proc/self/status.
"""

import argparse
import json

import ml_dtypes
import numpy as np
import safetensors.numpy as stnp

# safetensors' NumPy backend knows no BF16; ml_dtypes' dtype is named "bfloat16", which
# safetensors writes back as BF16.
stnp._TYPES["BF16"] = ml_dtypes.bfloat16

BLOCK_PREFIX = "model.model.processor.proc."
RENAMED_BLOCK_PREFIX = "model.processor.layers."


def light(tensors):
    out = {}
    for name, array in tensors.items():
        if name.endswith(".attention.lin_qkv.bias"):
            array = array.reshape(3, -1)
        if name.startswith(BLOCK_PREFIX):
            name = RENAMED_BLOCK_PREFIX + name[len(BLOCK_PREFIX):]
        out[name] = array
    return out


def heavy(tensors, heads):
    out = {}
    for name, array in tensors.items():
        if ".attention.lin_qkv." in name:
            head_dim = array.shape[0] // (3 * heads)
            fused = array.reshape(heads, 3, head_dim, *array.shape[1:])
            for index, part in enumerate("qkv"):
                value = np.ascontiguousarray(fused[:, index]).reshape(heads * head_dim, *array.shape[1:])
                if name.endswith(".weight"):
                    value = value.astype(ml_dtypes.bfloat16)
                out[name.replace(".lin_qkv.", ".lin_" + part + ".")] = value
        elif name.endswith(".attention.projection.weight"):
            out[name] = np.ascontiguousarray(array.T).astype(ml_dtypes.bfloat16)
        elif name.endswith(".mlp.2.weight"):
            out[name] = np.ascontiguousarray(array.T)
        else:
            out[name] = array
    return out


def memory_line():
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon"):
                fields[key] = int(value.split()[0])
    return json.dumps({"vm_hwm_kib": fields.get("VmHWM", 0), "rss_anon_kib": fields.get("RssAnon", 0)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("migration", choices=["light", "heavy"])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--heads", type=int, default=8)
    args = parser.parse_args()
    tensors = stnp.load_file(args.input)
    if args.migration == "light":
        tensors = light(tensors)
    else:
        tensors = heavy(tensors, args.heads)
    stnp.save_file(tensors, args.output, metadata={"format": "pt"})
    print(memory_line())


if __name__ == "__main__":
    main()
