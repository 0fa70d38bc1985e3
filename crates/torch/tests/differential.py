"""CPython's reading of pickles, rendered as safeshift's `interpret` renders its own, for
the differential test (`differential.rs`) and fuzz target. Standard library only.

Reads one hex-encoded pickle per line on stdin; writes one JSON line per pickle:
{"value": str|null, "named": [...], "invoked": [...], "error": str|null}.

Nothing is imported or called: `find_class` returns a stand-in class that records how it
is used (named, called by REDUCE/INST/OBJ, instantiated by NEWOBJ); its instances record
BUILD states, appended items and set items. The unpickler is CPython's C one over a
BytesIO, with encoding='utf-8', as `torch.load` runs it.
"""
import io
import json
import pickle
import resource
import signal
import struct
import sys
import warnings


class Log:
    named = []
    invoked = []


class Meta(type):
    def __call__(cls, *args, **kwargs):
        # REDUCE / INST / OBJ: cls(*args).
        Log.invoked.append(cls._dotted)
        return Rec(cls, args)

    def __repr__(cls):
        return cls._dotted


class Stand(metaclass=Meta):
    _dotted = "?"

    def __new__(cls, *args, **kwargs):
        # NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args).
        Log.invoked.append(cls._dotted)
        return Rec(cls, args)


class Rec:
    """An object made by an invocation: callee, arguments, state and items, as data."""

    def __init__(self, callee, args):
        self.callee = callee
        self.args = args
        self.state = None
        self.has_state = False
        self.items = []
        self.entries = {}

    def __call__(self, *args):
        Log.invoked.append("?")
        return Rec(self, args)

    def __setstate__(self, state):
        self.state = state
        self.has_state = True

    def append(self, item):
        self.items.append(item)

    def extend(self, items):
        self.items.extend(items)

    def __setitem__(self, key, value):
        self.entries[key] = value


class Reader(pickle.Unpickler):
    def find_class(self, module, name):
        dotted = "%s.%s" % (module, name)
        Log.named.append(dotted)
        return Meta(dotted, (Stand,), {"_dotted": dotted})

    def persistent_load(self, pid):
        # torch's legacy persistent_load gives a module's class for ('module', cls, ...).
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module" and isinstance(pid[1], Meta):
            return pid[1]
        return pid


def render(value, ids, out, depth=0):
    if len(out) > (1 << 20) or depth > 200:
        out.append("…")
        return
    if value is None:
        out.append("None")
    elif value is True or value is False:
        out.append(repr(value))
    elif isinstance(value, int):
        out.append(("-" if value < 0 else "") + hex(abs(value)))
    elif isinstance(value, float):
        out.append("f:" + struct.pack(">d", value).hex())
    elif isinstance(value, str):
        out.append("s:" + value.encode("utf-8", "surrogatepass").hex())
    elif isinstance(value, (bytes, bytearray)):
        out.append("b:" + bytes(value).hex())
    elif isinstance(value, Meta):
        out.append("G(%s)" % value._dotted)
    elif isinstance(value, tuple):
        render_items("(", value, ")", ids, out, depth)
    elif isinstance(value, frozenset):
        items = sorted(set(detached(item, ids, depth) for item in value))
        out.append("frozenset{" + ",".join(items) + "}")
    else:
        if id(value) in ids:
            out.append("@%d" % ids[id(value)][0])
            return
        ids[id(value)] = (len(ids), value)
        out.append("#%d=" % ids[id(value)][0])
        if isinstance(value, list):
            render_items("[", value, "]", ids, out, depth)
        elif isinstance(value, set):
            items = sorted(set(detached(item, ids, depth) for item in value))
            out.append("set{" + ",".join(items) + "}")
        elif isinstance(value, dict):
            render_dict(value, ids, out, depth)
        elif isinstance(value, Rec):
            out.append("Obj(")
            render(value.callee, ids, out, depth + 1)
            out.append(",")
            render(value.args, ids, out, depth + 1)
            out.append(",state=")
            if value.has_state:
                render(value.state, ids, out, depth + 1)
            else:
                out.append("-")
            out.append(",items=")
            render_items("[", value.items, "]", ids, out, depth)
            out.append(",entries=")
            render_dict(value.entries, ids, out, depth)
            out.append(")")
        else:
            out.append("<%s>" % type(value).__name__)


def render_items(open_, items, close, ids, out, depth):
    out.append(open_)
    for i, item in enumerate(items):
        if i:
            out.append(",")
        render(item, ids, out, depth + 1)
    out.append(close)


def render_dict(value, ids, out, depth):
    out.append("{")
    for i, (key, item) in enumerate(value.items()):
        if i:
            out.append(",")
        render(key, ids, out, depth + 1)
        out.append(":")
        render(item, ids, out, depth + 1)
    out.append("}")


def detached(item, ids, depth):
    # Its own object numbering: a set's iteration order is not the pickle's.
    out = []
    render(item, {}, out, depth + 1)
    return "".join(out)


def read(data):
    Log.named, Log.invoked = [], []
    signal.alarm(5)
    try:
        value = Reader(io.BytesIO(data), encoding="utf-8").load()
        out = []
        render(value, {}, out)
        signal.alarm(0)
        return {"value": "".join(out), "named": Log.named, "invoked": Log.invoked, "error": None}
    except BaseException as err:  # noqa: BLE001 - every failure is an outcome to compare
        signal.alarm(0)
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        return {"value": None, "named": Log.named, "invoked": Log.invoked,
                "error": "%s: %s" % (type(err).__name__, str(err)[:200])}


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout("over 5 s")


def main():
    # A mutated length can ask CPython for terabytes (BYTEARRAY8 allocates before it
    # reads): bound the address space, and each case's time.
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    signal.signal(signal.SIGALRM, on_alarm)
    warnings.simplefilter("ignore")
    for line in sys.stdin:
        line = line.strip()
        result = read(bytes.fromhex(line)) if line else {"value": None, "named": [], "invoked": [], "error": "empty"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
