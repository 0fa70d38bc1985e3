//! Properties of the hazard verdict, on generated pickles: reading never refuses a call of
//! an unknown class (every object is an inert record), and a deny-listed global is found
//! however it is used and wherever it hides, under its Python 3 name or a Python 2 alias.
//! `PROPTEST_CASES` sets the case count (default 64).

use proptest::prelude::*;
use safeshift_torch::{open_bytes, scan_bytes, ConvertOptions, ErrorKind, Hazard};

/// A harmless piece of data: a value, or a record of an unknown class.
#[derive(Clone, Debug)]
enum Item {
    Int(u8),
    Text(String),
    /// `pkgN.ClassM(arg)` by REDUCE.
    Call(u8, u8, u8),
    /// `NEWOBJ(pkgN.ClassM, ())` + `BUILD({'a': arg})`.
    Object(u8, u8, u8),
    /// `pkgN.ClassM(arg, …)` by INST.
    Inst(u8, u8, u8),
    /// A list of items.
    List(Vec<Item>),
}

/// How a gadget is used.
#[derive(Clone, Copy, Debug)]
enum Use {
    Named,
    Reduce,
    Inst,
    StackGlobal,
}

const GADGETS: &[(&str, &str)] = &[
    ("os", "system"),
    ("posix", "system"),
    ("nt", "system"),
    ("subprocess", "Popen"),
    ("commands", "getoutput"),
    ("__builtin__", "eval"),
    ("builtins", "exec"),
    ("builtins", "__import__"),
    ("runpy", "_run_code"),
    ("importlib", "import_module"),
    ("cPickle", "loads"),
    ("marshal", "loads"),
    ("socket", "create_connection"),
    ("shutil", "rmtree"),
    ("ctypes", "CDLL"),
    ("webbrowser", "open"),
    ("pty", "spawn"),
    ("timeit", "timeit"),
    ("pdb", "run"),
    ("pip", "main"),
];

fn item() -> impl Strategy<Value = Item> {
    let leaf = prop_oneof![
        any::<u8>().prop_map(Item::Int),
        "[a-z]{0,8}".prop_map(Item::Text),
        (0u8..4, 0u8..4, any::<u8>()).prop_map(|(p, c, a)| Item::Call(p, c, a)),
        (0u8..4, 0u8..4, any::<u8>()).prop_map(|(p, c, a)| Item::Object(p, c, a)),
        (0u8..4, 0u8..4, any::<u8>()).prop_map(|(p, c, a)| Item::Inst(p, c, a)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Item::List))
}

fn text(out: &mut Vec<u8>, value: &str) {
    out.push(b'X');
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn write(out: &mut Vec<u8>, item: &Item) {
    match item {
        Item::Int(value) => out.extend_from_slice(&[b'K', *value]),
        Item::Text(value) => text(out, value),
        Item::Call(p, c, a) => {
            out.extend_from_slice(format!("cpkg{p}\nClass{c}\n").as_bytes());
            out.extend_from_slice(&[b'K', *a, 0x85, b'R']);
        }
        Item::Object(p, c, a) => {
            out.extend_from_slice(format!("cpkg{p}\nClass{c}\n)").as_bytes());
            out.push(0x81);
            out.extend_from_slice(b"}");
            text(out, "a");
            out.extend_from_slice(&[b'K', *a, b's', b'b']);
        }
        Item::Inst(p, c, a) => {
            out.push(b'(');
            out.extend_from_slice(&[b'K', *a]);
            out.extend_from_slice(format!("ipkg{p}\nClass{c}\n").as_bytes());
        }
        Item::List(items) => {
            out.extend_from_slice(b"](");
            for item in items {
                write(out, item);
            }
            out.push(b'e');
        }
    }
}

fn gadget(out: &mut Vec<u8>, (module, name): (&str, &str), used: Use) {
    match used {
        Use::Named => out.extend_from_slice(format!("c{module}\n{name}\n").as_bytes()),
        Use::Reduce => {
            out.extend_from_slice(format!("c{module}\n{name}\n").as_bytes());
            text(out, "touch /tmp/x");
            out.extend_from_slice(&[0x85, b'R']);
        }
        Use::Inst => {
            out.push(b'(');
            text(out, "touch /tmp/x");
            out.extend_from_slice(format!("i{module}\n{name}\n").as_bytes());
        }
        Use::StackGlobal => {
            text(out, module);
            text(out, name);
            out.push(0x93);
        }
    }
}

/// `[items[..at], gadget?, items[at..]]` as a protocol 4 pickle.
fn pickle(items: &[Item], inserted: Option<((&str, &str), Use)>, at: usize) -> Vec<u8> {
    let mut out = b"\x80\x04](".to_vec();
    for (index, item) in items.iter().enumerate() {
        if index == at.min(items.len()) {
            if let Some((global, used)) = inserted {
                gadget(&mut out, global, used);
            }
        }
        write(&mut out, item);
    }
    if at >= items.len() {
        if let Some((global, used)) = inserted {
            gadget(&mut out, global, used);
        }
    }
    out.extend_from_slice(b"e.");
    out
}

fn a_use() -> impl Strategy<Value = Use> {
    prop_oneof![Just(Use::Named), Just(Use::Reduce), Just(Use::Inst), Just(Use::StackGlobal)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
    ))]

    /// Data of any class is read, and judged data: no gadget, nothing refused for it.
    #[test]
    fn unknown_classes_are_read_as_data(items in prop::collection::vec(item(), 0..6)) {
        let bytes = pickle(&items, None, 0);
        let report = scan_bytes("data.pkl", &bytes).unwrap();
        prop_assert!(report.problem.is_none(), "{:?}", report.problem);
        prop_assert!(!report.has_gadgets(), "{:?}", report.gadgets);
        prop_assert!(report.findings.iter().all(|f| f.hazard == Hazard::Data));
        // Not a torch checkpoint, so not converted, but not for any call it makes.
        let err = open_bytes("data.pkl", bytes, &ConvertOptions::default()).err().unwrap();
        prop_assert!(matches!(err.kind, ErrorKind::NotACheckpoint(_)), "{}", err);
    }

    /// A deny-listed global is a gadget however it is used and wherever it is.
    #[test]
    fn gadgets_are_found_wherever_they_hide(
        items in prop::collection::vec(item(), 0..6),
        which in 0..GADGETS.len(),
        used in a_use(),
        at in 0usize..7,
    ) {
        let (module, name) = GADGETS[which];
        let bytes = pickle(&items, Some(((module, name), used)), at);
        let report = scan_bytes("payload.pkl", &bytes).unwrap();
        prop_assert!(report.has_gadgets() && !report.convertible());
        let dotted = format!("{module}.{name}");
        prop_assert!(report.gadgets.iter().any(|g| g.global.as_deref() == Some(dotted.as_str())), "{:?}", report.gadgets);
        let finding = report.findings.iter().find(|f| f.global == dotted).unwrap();
        prop_assert_eq!(finding.hazard, Hazard::Gadget);
        let err = open_bytes("payload.pkl", bytes, &ConvertOptions::default()).err().unwrap();
        match err.kind {
            ErrorKind::Forbidden(forbidden) => {
                prop_assert!(forbidden.all().any(|g| g.global.as_deref() == Some(dotted.as_str())));
            }
            other => prop_assert!(false, "not refused as a gadget: {}", other),
        }
    }
}
