"""The torch way of turning a pickle checkpoint into safetensors, and the bench's pickle.

    python torch_way.py make IN.safetensors OUT.pt    # a torch.save zip of the same tensors
    python torch_way.py state-dict OUT.pt BYTES       # a state dict of about BYTES: f32, bf16, views
    python torch_way.py convert IN.pt OUT.safetensors # torch.load(weights_only=True) + save_file
    python torch_way.py load IN.pt -                  # torch.load(weights_only=True) alone

The last line printed is this process's peak memory, read from /proc/self/status.
"""

import json
import sys

import torch
from safetensors.torch import load_file, save_file


def memory_line():
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon"):
                fields[key] = int(value.split()[0])
    return json.dumps({"vm_hwm_kib": fields.get("VmHWM", 0), "rss_anon_kib": fields.get("RssAnon", 0)})


def state_dict(size):
    """Blocks of 36 MiB: an f32 weight, a bf16 weight, a transposed f32 weight (a
    non-contiguous view) and the first half of the columns of a bf16 weight (a view whose
    storage is saved whole), with a small norm vector, until `size` bytes."""
    torch.manual_seed(0)
    state = {}
    block = 0
    total = 0
    while total < size:
        prefix = f"layers.{block}."
        state[prefix + "attention.weight"] = torch.randn(2048, 2048)
        state[prefix + "mlp.weight"] = torch.randn(4096, 1024).to(torch.bfloat16)
        state[prefix + "projection.weight"] = torch.randn(1024, 2048).t()
        state[prefix + "gate.weight"] = torch.randn(1024, 2048).to(torch.bfloat16)[:, :1024]
        state[prefix + "norm.weight"] = torch.ones(2048)
        total += 36 << 20
        block += 1
    return state


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("make", "state-dict", "convert", "load"):
        sys.exit(__doc__)
    command, source, target = sys.argv[1:]
    if command == "make":
        torch.save(load_file(source), target)
    elif command == "state-dict":
        torch.save(state_dict(int(target)), source)
    elif command == "load":
        state = torch.load(source, map_location="cpu", weights_only=True)
        print(sum(tensor.numel() for tensor in state.values()))
    else:
        state = torch.load(source, map_location="cpu", weights_only=True)
        save_file({name: tensor.contiguous() for name, tensor in state.items()}, target, metadata={"format": "pt"})
    print(memory_line())


if __name__ == "__main__":
    main()
