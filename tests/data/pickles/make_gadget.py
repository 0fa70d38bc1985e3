"""Writes `gadget-anemoi-0.4.0.ckpt`, the hostile fixture of tests/pickles.rs, from
`anemoi-0.4.0.ckpt` with the standard library only (no torch, nothing unpickled).

The copy is the same zip (every member stored, in the same order) whose `data.pkl` gains one
more top-level entry, as a Lightning checkpoint's `callbacks` could hold it:

    "callbacks": os.system("touch gadget-ran")

(`GLOBAL 'os system'`, `MARK`, the command, `TUPLE`, `REDUCE`, inserted before the final
`SETITEMS`). `torch.load(weights_only=False)` runs it and creates `gadget-ran` in its working
directory; safeshift must refuse the file, and with `--allow-gadgets` read the state dict
(the 0.4.0 fixture's, byte for byte) and still create nothing. The tests run safeshift in a
fresh folder and look for that file.

Usage: python3 make_gadget.py  (from this folder)
"""

import os
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "anemoi-0.4.0.ckpt")
TARGET = os.path.join(HERE, "gadget-anemoi-0.4.0.ckpt")
COMMAND = b"touch gadget-ran"


def binunicode(text):
    return b"X" + struct.pack("<I", len(text)) + text


def with_gadget(pickle):
    # The outer dict ends `… u .`: its last SETITEMS, then STOP.
    assert pickle.endswith(b"u."), pickle[-16:]
    payload = binunicode(b"callbacks") + b"cos\nsystem\n(" + binunicode(COMMAND) + b"tR"
    return pickle[:-2] + payload + b"u."


def main():
    with zipfile.ZipFile(SOURCE) as source, zipfile.ZipFile(TARGET, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("/data.pkl"):
                data = with_gadget(data)
            target.writestr(info.filename.replace("anemoi-0.4.0/", "gadget-anemoi-0.4.0/"), data)


if __name__ == "__main__":
    main()
