//! A canonical text of what a pickle means, for the differential test against CPython's
//! `pickle` (`tests/differential.rs`, `fuzz/fuzz_targets/pickle_differential.rs`): the
//! value it builds and the globals it names and invokes, rendered the same way as
//! `tests/differential.py` renders CPython's reading of the same bytes. Not an interface:
//! hidden from the documentation.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::machine::{Machine, Mode};
use crate::opcodes;
use crate::value::{Heap, Object, Value};
use crate::Limits;

/// What one reading of a pickle gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpretation {
    /// The rendered value, `None` when the reading stopped with an error.
    pub value: Option<String>,
    /// Every global named (GLOBAL, STACK_GLOBAL, INST), in order: `module.name`.
    pub named: Vec<String>,
    /// Every invocation (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ), in order: the callee's
    /// `module.name`, or `?` when it is not a global.
    pub invoked: Vec<String>,
    /// Why the reading stopped, when it did.
    pub error: Option<String>,
}

impl Interpretation {
    /// One line of `tests/differential.py`'s output.
    pub fn from_json(line: &str) -> Result<Interpretation, String> {
        let json: serde_json::Value = serde_json::from_str(line).map_err(|err| err.to_string())?;
        let strings = |key: &str| -> Result<Vec<String>, String> {
            let items = json[key].as_array().ok_or(format!("no `{key}`"))?;
            Ok(items.iter().map(|item| item.as_str().unwrap_or_default().to_string()).collect())
        };
        Ok(Interpretation {
            value: json["value"].as_str().map(str::to_string),
            named: strings("named")?,
            invoked: strings("invoked")?,
            error: json["error"].as_str().map(str::to_string),
        })
    }
}

/// What is wrong with safeshift's reading `ours` of a pickle CPython read as `theirs`
/// (`None`: they agree as far as they must). Where safeshift reads to the end, CPython must
/// read the same value, name and invoke the same globals; where CPython fails, what it
/// invoked before must be what safeshift reported; where safeshift stops (and `scan`
/// flags the file), their invocations must agree up to there.
pub fn disagreement(ours: &Interpretation, theirs: &Interpretation) -> Option<String> {
    let prefix = |short: &[String], long: &[String]| long.len() >= short.len() && long[..short.len()] == *short;
    if ours.error.is_some() {
        // safeshift stopped (scan flags the file): what CPython invoked before stopping
        // too, or before finishing, must not have been hidden before safeshift's stop.
        let seen = ours.invoked.len().min(theirs.invoked.len());
        return (ours.invoked[..seen] != theirs.invoked[..seen]).then(|| {
            format!("invocations differ before safeshift stopped: {:?} vs {:?}", ours.invoked, theirs.invoked)
        });
    }
    if theirs.error.is_some() {
        // CPython failed where safeshift read to the end: every invocation CPython made
        // must be one safeshift reported, in order.
        if !prefix(&theirs.invoked, &ours.invoked) || !prefix(&theirs.named, &ours.named) {
            return Some(format!("CPython invoked {:?}, safeshift reported {:?}", theirs.invoked, ours.invoked));
        }
        return None;
    }
    if ours.named != theirs.named {
        return Some(format!("named {:?} vs {:?}", ours.named, theirs.named));
    }
    if ours.invoked != theirs.invoked {
        return Some(format!("invoked {:?} vs {:?}", ours.invoked, theirs.invoked));
    }
    if ours.value != theirs.value {
        return Some(format!("value\n  safeshift {:?}\n  CPython   {:?}", ours.value, theirs.value));
    }
    None
}

/// Reads `bytes` as one pickle in scan mode (nothing interpreted, nothing refused).
pub fn interpret(bytes: &[u8]) -> Interpretation {
    let limits = Limits { max_objects: 1 << 16, max_memo: 1 << 16, max_stack: 1 << 16, ..Limits::default() };
    let mut heap = Heap::new(&limits, bytes.len());
    let mut machine = Machine::new(&mut heap, &limits, Mode::Scan);
    let result = machine.run(bytes, "pickle");
    let uses = std::mem::take(&mut machine.uses);
    drop(machine);
    let mut named = Vec::new();
    let mut invoked = Vec::new();
    for u in uses {
        let name = u.global.as_ref().map_or_else(|| "?".to_string(), |g| g.dotted());
        match u.opcode {
            "GLOBAL" | "STACK_GLOBAL" => named.push(name),
            "INST" if u.kind == crate::UseKind::Named => named.push(name),
            "REDUCE" | "NEWOBJ" | "NEWOBJ_EX" | "INST" | "OBJ" => invoked.push(name),
            _ => {}
        }
    }
    match result {
        Ok((value, _)) => {
            let mut out = Renderer { heap: &heap, ids: HashMap::new(), out: String::new() };
            out.render(&value, 0);
            Interpretation { value: Some(out.out), named, invoked, error: None }
        }
        Err(err) => {
            let opcode = bytes.get(err.offset as usize).and_then(|&b| opcodes::name(b)).unwrap_or("?");
            Interpretation {
                value: None,
                named,
                invoked,
                error: Some(format!("{opcode} at {}: {}", err.offset, err.error)),
            }
        }
    }
}

/// The integer a bool, int or integral float equals, by which Python's sets deduplicate.
fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Bool(flag) => Some(i64::from(*flag)),
        Value::Int(int) => Some(*int),
        Value::Float(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => Some(*float as i64),
        _ => None,
    }
}

/// Bounds the rendering of shared structure (a DAG of tuples can be exponential).
const MAX_RENDER: usize = 1 << 20;

struct Renderer<'h> {
    heap: &'h Heap,
    /// Mutable objects already rendered: their number.
    ids: HashMap<usize, usize>,
    out: String,
}

impl Renderer<'_> {
    fn render(&mut self, value: &Value, depth: usize) {
        if self.out.len() > MAX_RENDER || depth > 200 {
            self.out.push('…');
            return;
        }
        match value {
            Value::None => self.out.push_str("None"),
            Value::Bool(flag) => self.out.push_str(if *flag { "True" } else { "False" }),
            Value::Int(int) => {
                let sign = if *int < 0 { "-" } else { "" };
                let _ = write!(self.out, "{sign}{:#x}", int.unsigned_abs());
            }
            Value::BigInt(bytes) => self.big_int(bytes),
            Value::Float(float) => {
                let _ = write!(self.out, "f:{:016x}", float.to_bits());
            }
            Value::Str(text) => self.hex("s:", text.as_bytes()),
            Value::Bytes(bytes) => self.hex("b:", bytes),
            Value::Global(global) => {
                let _ = write!(self.out, "G({})", global.dotted());
            }
            Value::Storage(_) | Value::Tensor(_) => self.out.push_str("<torch>"),
            Value::Obj(id) => self.object(*id, depth),
        }
    }

    fn hex(&mut self, tag: &str, bytes: &[u8]) {
        self.out.push_str(tag);
        for byte in bytes {
            let _ = write!(self.out, "{byte:02x}");
        }
    }

    /// A little-endian two's complement integer as Python's `hex()` would print it.
    fn big_int(&mut self, bytes: &[u8]) {
        let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
        let mut magnitude = bytes.to_vec();
        if negative {
            // Negate: invert and add one.
            let mut carry = true;
            for byte in &mut magnitude {
                *byte = !*byte;
                if carry {
                    let (sum, overflow) = byte.overflowing_add(1);
                    *byte = sum;
                    carry = overflow;
                }
            }
        }
        while magnitude.len() > 1 && magnitude.last() == Some(&0) {
            magnitude.pop();
        }
        if negative {
            self.out.push('-');
        }
        self.out.push_str("0x");
        let mut digits = String::new();
        for byte in magnitude.iter().rev() {
            let _ = write!(digits, "{byte:02x}");
        }
        let trimmed = digits.trim_start_matches('0');
        self.out.push_str(if trimmed.is_empty() { "0" } else { trimmed });
    }

    fn object(&mut self, id: usize, depth: usize) {
        let object = self.heap.get(id);
        let mutable = !matches!(object, Object::Tuple(_) | Object::Set { frozen: true, .. });
        if mutable {
            if let Some(&number) = self.ids.get(&id) {
                let _ = write!(self.out, "@{number}");
                return;
            }
            let number = self.ids.len();
            self.ids.insert(id, number);
            let _ = write!(self.out, "#{number}=");
        }
        match object {
            Object::List(items) => self.sequence("[", items, "]", depth),
            Object::Tuple(items) => self.sequence("(", items, ")", depth),
            Object::Set { items, frozen } => {
                // Sets have no order: their items, rendered, sorted and deduplicated.
                // Python keeps the first of equal numbers (0 == 0.0 == False).
                let mut seen = Vec::new();
                let items: Vec<&Value> = items
                    .iter()
                    .filter(|item| match number(item) {
                        Some(key) if seen.contains(&key) => false,
                        Some(key) => {
                            seen.push(key);
                            true
                        }
                        None => true,
                    })
                    .collect();
                let mut rendered: Vec<String> = items.iter().map(|item| self.detached(item, depth)).collect();
                rendered.sort();
                rendered.dedup();
                self.out.push_str(if *frozen { "frozenset{" } else { "set{" });
                self.out.push_str(&rendered.join(","));
                self.out.push('}');
            }
            Object::Dict(dict) => self.entries(&dict.entries, depth),
            Object::Instance(instance) => {
                self.out.push_str("Obj(");
                self.render(&instance.class, depth + 1);
                self.out.push(',');
                self.render(&instance.args, depth + 1);
                self.out.push_str(",state=");
                match &instance.state {
                    Some(state) => self.render(state, depth + 1),
                    None => self.out.push('-'),
                }
                self.out.push_str(",items=");
                self.sequence("[", &instance.items, "]", depth);
                self.out.push_str(",entries=");
                self.entries(&instance.entries.entries, depth);
                self.out.push(')');
            }
        }
    }

    fn entries(&mut self, entries: &[(Value, Value)], depth: usize) {
        self.out.push('{');
        for (index, (key, value)) in entries.iter().enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            self.render(key, depth + 1);
            self.out.push(':');
            self.render(value, depth + 1);
        }
        self.out.push('}');
    }

    fn sequence(&mut self, open: &str, items: &[Value], close: &str, depth: usize) {
        self.out.push_str(open);
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            self.render(item, depth + 1);
        }
        self.out.push_str(close);
    }

    /// A set element rendered on its own, with its own object numbering: a set has no
    /// order, so numbers given across its elements would depend on the iteration order.
    fn detached(&mut self, item: &Value, depth: usize) -> String {
        let mut inner = Renderer { heap: self.heap, ids: HashMap::new(), out: String::new() };
        inner.render(item, depth + 1);
        inner.out
    }
}
