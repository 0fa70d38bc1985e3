//! The hazard verdict: what `torch.load(weights_only=False)` would do with each global a
//! pickle names, decided apart from reading (the machine reads every file the same way and
//! never runs anything; this module only judges what it recorded).
//!
//! Three classes of global:
//! * **tensor rebuilding**: torch's allow-list (what `torch.load(weights_only=True)`
//!   accepts), interpreted by [`crate::rebuild`];
//! * **gadgets**: globals that execute code or reach the system when called or even when
//!   handed to something that calls them (the deny-list [`DENIED_MODULES`],
//!   [`DENIED_GLOBALS`]), plus structural patterns: a call of a computed callable
//!   (`getattr(x, "system")(…)`), a `getattr` of a dangerous or computed attribute, a BUILD
//!   that sets attributes on a module or class;
//! * **data classes**: everything else, recorded as inert data.
//!
//! The deny-list is a list: a class outside it whose `__setstate__` or constructor misuses
//! its arguments cannot be recognised without running it. It follows what pickle scanners
//! (picklescan, modelscan, fickling) flag, and is documented in the book's conversion chapter.

use crate::error::Forbidden;
use crate::globals;
use crate::machine::{Use, UseKind};
use crate::value::{GlobalRef, Heap, Value};

/// The class of a global.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hazard {
    /// On torch's allow-list: tensor and storage rebuilding, `OrderedDict`, dtypes…
    TensorRebuild,
    /// Not on either list: recorded as an inert object (its class is never imported).
    Data,
    /// On the deny-list: `torch.load` would run code or touch the system with it.
    Gadget,
}

/// Modules whose every global is a gadget (submodules included): process and system
/// access, code loading and evaluation, nested deserialisers, the network, files.
pub const DENIED_MODULES: &[&str] = &[
    // Processes and the operating system.
    "os",
    "posix",
    "nt",
    "subprocess",
    "commands",
    "_posixsubprocess",
    "_winapi",
    "pty",
    "signal",
    "multiprocessing",
    "_thread",
    "thread",
    "asyncio",
    "sys",
    "gc",
    "ctypes",
    "_ctypes",
    "cffi",
    "mmap",
    // Running or importing code.
    "runpy",
    "importlib",
    "pkgutil",
    "zipimport",
    "site",
    "code",
    "codeop",
    "pdb",
    "bdb",
    "timeit",
    "trace",
    "profile",
    "cProfile",
    "pip",
    "ensurepip",
    "setuptools",
    "distutils",
    "logging.config",
    "torch.utils.cpp_extension",
    "torch.package",
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    // Deserialisers that would run a nested payload.
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "cloudpickle",
    "joblib",
    "marshal",
    "shelve",
    // Network.
    "socket",
    "_socket",
    "ssl",
    "urllib",
    "urllib2",
    "http",
    "httplib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "xmlrpc",
    "requests",
    "httpx",
    "aiohttp",
    "webbrowser",
    // Files.
    "shutil",
    "tempfile",
    "zipfile",
    "tarfile",
];

/// Single globals that are gadgets (after Python 2 name mapping).
pub const DENIED_GLOBALS: &[(&str, &str)] = &[
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "execfile"),
    ("builtins", "compile"),
    ("builtins", "open"),
    ("builtins", "file"),
    ("builtins", "__import__"),
    ("builtins", "__build_class__"),
    ("builtins", "input"),
    ("builtins", "breakpoint"),
    ("builtins", "exit"),
    ("builtins", "quit"),
    ("builtins", "help"),
    ("builtins", "globals"),
    ("builtins", "locals"),
    ("builtins", "vars"),
    ("builtins", "setattr"),
    ("builtins", "delattr"),
    ("builtins", "apply"),
    ("builtins", "reload"),
    ("io", "open"),
    ("io", "open_code"),
    ("io", "FileIO"),
    ("_io", "open"),
    ("_io", "open_code"),
    ("_io", "FileIO"),
    ("operator", "call"),
    ("_operator", "call"),
    ("operator", "methodcaller"),
    ("_operator", "methodcaller"),
    ("functools", "reduce"),
    ("_functools", "reduce"),
    // Lazy calls of their first argument, run when a data class consumes them.
    ("builtins", "map"),
    ("builtins", "filter"),
    ("itertools", "starmap"),
    ("types", "FunctionType"),
    ("types", "LambdaType"),
    ("types", "CodeType"),
    ("torch", "load"),
    ("torch.serialization", "load"),
    ("torch.serialization", "_load"),
    // `pickle.dumps` of a storage: a nested `torch.load(weights_only=False)`.
    ("torch.storage", "_load_from_bytes"),
    ("torch.jit", "load"),
    ("torch.jit._serialization", "load"),
    ("torch.hub", "load"),
    ("torch.hub", "load_state_dict_from_url"),
    ("torch.hub", "download_url_to_file"),
    ("torch.fx.graph_module", "reduce_graph_module"),
    ("torch.fx.graph_module", "reduce_package_graph_module"),
    ("torch.fx.graph_module", "reduce_deploy_graph_module"),
    ("torch.fx.graph_module", "_forward_from_src"),
    ("numpy", "load"),
    ("numpy.lib.npyio", "load"),
    ("numpy", "loadtxt"),
    ("numpy", "fromfile"),
    ("numpy.ctypeslib", "load_library"),
    ("pandas", "read_pickle"),
    ("pandas.io.pickle", "read_pickle"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
];

/// Attribute names a `getattr` call may not fetch: they lead from an ordinary object to code
/// execution (`system`, `popen`…) or into the interpreter's internals (any dunder name).
const DANGEROUS_ATTRIBUTES: &[&str] = &[
    "system",
    "popen",
    "popen2",
    "popen3",
    "popen4",
    "Popen",
    "spawn",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "fork",
    "forkpty",
    "kill",
    "call",
    "check_call",
    "check_output",
    "getoutput",
    "getstatusoutput",
    "run",
    "eval",
    "exec",
    "compile",
    "open",
    "load",
    "loads",
    "import_module",
    "remove",
    "unlink",
    "rmdir",
    "rmtree",
    "removedirs",
    "rename",
    "write",
    "write_text",
    "write_bytes",
];

/// The class of `module.name` as written in a pickle (Python 2 names are mapped first).
pub(crate) fn classify(module: &str, name: &str) -> Hazard {
    if globals::lookup(module, name).is_some() {
        return Hazard::TensorRebuild;
    }
    if deny_reason(module, name).is_some() {
        return Hazard::Gadget;
    }
    Hazard::Data
}

/// Why `module.name` is on the deny-list, if it is.
fn deny_reason(module: &str, name: &str) -> Option<String> {
    let mapped = globals::python3_name(module, name);
    let candidates = [Some((module.to_string(), name.to_string())), mapped];
    for (module, name) in candidates.iter().flatten() {
        if let Some(denied) = DENIED_MODULES.iter().find(|denied| in_module(module, denied)) {
            return Some(format!("module `{denied}` runs code or reaches the system"));
        }
        if DENIED_GLOBALS.iter().any(|(m, n)| m == module && n == name) {
            return Some(format!("`{module}.{name}` runs code or reaches the system"));
        }
    }
    None
}

/// `module` is `parent` or one of its submodules.
fn in_module(module: &str, parent: &str) -> bool {
    module.strip_prefix(parent).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Whether a callee is `builtins.getattr` (or its Python 2 name).
pub(crate) fn is_getattr(global: &GlobalRef) -> bool {
    let mapped = globals::python3_name(&global.module, &global.name);
    let (module, name) = mapped.as_ref().map_or((global.module.as_str(), global.name.as_str()), |(m, n)| (m, n));
    module == "builtins" && name == "getattr"
}

/// The structural hazard of a call `callee(*args)`, if any: a computed callable, or a
/// `getattr` of a dangerous or computed attribute name.
pub(crate) fn structural_call(heap: &Heap, callee: &Value, args: &Value) -> Option<String> {
    let Value::Global(global) = callee else {
        return Some(format!(
            "calls a computed value (a {}), not a named global: the pattern of `getattr(x, \"system\")(…)` gadgets",
            heap.type_name(callee)
        ));
    };
    if !is_getattr(global) {
        return None;
    }
    let attribute = match heap.sequence(args) {
        Some([_, name]) | Some([_, name, _]) => name,
        _ => return Some("calls `getattr` with unexpected arguments".into()),
    };
    match attribute {
        Value::Str(name) if name.starts_with("__") && name.ends_with("__") => {
            Some(format!("fetches the interpreter attribute `{name}` with `getattr`"))
        }
        Value::Str(name) if DANGEROUS_ATTRIBUTES.contains(&&**name) => {
            Some(format!("fetches the attribute `{name}` with `getattr`, a way to reach code execution"))
        }
        Value::Str(_) => None,
        other => Some(format!("calls `getattr` with a computed attribute name (a {})", heap.type_name(other))),
    }
}

/// The verdict on a file's recorded uses of globals.
#[derive(Clone, Debug, Default)]
pub(crate) struct Verdict {
    /// Every gadget: each deny-listed global once (at its most severe use), then each
    /// structural pattern, in stream order.
    pub gadgets: Vec<Forbidden>,
    /// Classes and functions outside both lists that the file instantiates or calls, in
    /// first-use order: read as inert data.
    pub data_classes: Vec<String>,
}

/// Judges every use recorded while reading (`(member, use)` pairs in stream order).
pub(crate) fn verdict(uses: &[(String, Use)]) -> Verdict {
    let mut verdict = Verdict::default();
    let mut denied: Vec<(String, usize)> = Vec::new();
    for (member, used) in uses {
        if let Some(why) = &used.structural {
            verdict.gadgets.push(site(member, used, why.clone()));
        }
        let Some(global) = &used.global else { continue };
        let dotted = global.dotted();
        if let Some(why) = deny_reason(&global.module, &global.name) {
            match denied.iter().find(|(name, _)| *name == dotted) {
                // Keep the most severe use: a call over a mere naming.
                Some(&(_, at)) => {
                    if used.kind > kind_of(&verdict.gadgets[at]) {
                        verdict.gadgets[at] = site(member, used, why);
                    }
                }
                None => {
                    denied.push((dotted, verdict.gadgets.len()));
                    verdict.gadgets.push(site(member, used, why));
                }
            }
            continue;
        }
        let data = used.kind != UseKind::Named && globals::lookup(&global.module, &global.name).is_none();
        if data && !verdict.data_classes.contains(&dotted) {
            verdict.data_classes.push(dotted);
        }
    }
    verdict
}

fn kind_of(gadget: &Forbidden) -> UseKind {
    match gadget.opcode {
        "GLOBAL" | "STACK_GLOBAL" => UseKind::Named,
        _ => UseKind::Called,
    }
}

fn site(member: &str, used: &Use, why: String) -> Forbidden {
    let global = used.global.as_ref();
    Forbidden {
        member: member.to_string(),
        offset: used.offset,
        opcode: used.opcode,
        global: global.map(|g| g.dotted()),
        python3_name: global
            .and_then(|g| globals::python3_name(&g.module, &g.name))
            .map(|(module, name)| format!("{module}.{name}"))
            .filter(|name| global.is_some_and(|g| *name != g.dotted())),
        global_offset: global.map(|g| g.offset).filter(|&at| at != used.offset),
        why,
        also: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deny_list_covers_code_execution_and_python2_aliases() {
        for (module, name) in [
            ("os", "system"),
            ("posix", "system"),
            ("nt", "system"),
            ("os.path", "join"),
            ("subprocess", "Popen"),
            ("commands", "getoutput"),
            ("__builtin__", "eval"),
            ("builtins", "exec"),
            ("builtins", "__import__"),
            ("runpy", "_run_code"),
            ("importlib", "import_module"),
            ("importlib.util", "spec_from_file_location"),
            ("pickle", "loads"),
            ("cPickle", "loads"),
            ("_pickle", "loads"),
            ("dill", "loads"),
            ("marshal", "loads"),
            ("socket", "socket"),
            ("shutil", "rmtree"),
            ("ctypes", "CDLL"),
            ("webbrowser", "open"),
            ("pty", "spawn"),
            ("code", "InteractiveInterpreter"),
            ("pdb", "run"),
            ("bdb", "Bdb"),
            ("timeit", "timeit"),
            ("pip", "main"),
            ("sys", "modules"),
            ("torch", "load"),
            ("torch.fx.graph_module", "reduce_graph_module"),
            ("functools", "reduce"),
            ("__builtin__", "map"),
            ("itertools", "imap"),
            ("torch.storage", "_load_from_bytes"),
            ("numpy.testing._private.utils", "runstring"),
        ] {
            assert_eq!(classify(module, name), Hazard::Gadget, "{module}.{name}");
        }
    }

    #[test]
    fn torch_rebuilders_are_allowed_and_other_classes_are_data() {
        assert_eq!(classify("torch._utils", "_rebuild_tensor_v2"), Hazard::TensorRebuild);
        assert_eq!(classify("collections", "OrderedDict"), Hazard::TensorRebuild);
        for (module, name) in [
            ("collections", "defaultdict"),
            ("omegaconf.dictconfig", "DictConfig"),
            ("torch_geometric.data.hetero_data", "HeteroData"),
            ("builtins", "getattr"),
            ("__builtin__", "type"),
            ("_operator", "getitem"),
            ("ossify", "Thing"),
            ("osmium", "system"),
            ("socketserver_like", "x"),
        ] {
            assert_eq!(classify(module, name), Hazard::Data, "{module}.{name}");
        }
    }

    #[test]
    fn getattr_of_dangerous_or_computed_names_is_structural() {
        let mut heap = Heap::new(&crate::Limits { max_objects: 100, ..crate::Limits::default() }, 0);
        let getattr = Value::Global(std::rc::Rc::new(GlobalRef {
            module: "__builtin__".into(),
            name: "getattr".into(),
            offset: 0,
        }));
        let args =
            |heap: &mut Heap, name: Value| heap.alloc(crate::value::Object::Tuple(vec![Value::None, name])).unwrap();
        let forward = args(&mut heap, Value::Str("forward".into()));
        assert_eq!(structural_call(&heap, &getattr, &forward), None);
        for name in ["system", "__globals__", "__subclasses__", "loads"] {
            let value = args(&mut heap, Value::Str(name.into()));
            assert!(structural_call(&heap, &getattr, &value).is_some(), "{name}");
        }
        let computed = args(&mut heap, Value::Int(3));
        assert!(structural_call(&heap, &getattr, &computed).is_some());
        // Calling anything that is not a named global is a gadget pattern.
        assert!(structural_call(&heap, &forward, &forward).is_some());
    }
}
