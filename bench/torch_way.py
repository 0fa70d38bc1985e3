"""The torch way of turning a pickle checkpoint into safetensors, and the bench's pickle.

    python torch_way.py make IN.safetensors OUT.pt    # a torch.save zip of the same tensors
    python torch_way.py convert IN.pt OUT.safetensors # torch.load(weights_only=True) + save_file

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


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("make", "convert"):
        sys.exit(__doc__)
    command, source, target = sys.argv[1:]
    if command == "make":
        torch.save(load_file(source), target)
    else:
        state = torch.load(source, map_location="cpu", weights_only=True)
        save_file({name: tensor.contiguous() for name, tensor in state.items()}, target, metadata={"format": "pt"})
    print(memory_line())


if __name__ == "__main__":
    main()
