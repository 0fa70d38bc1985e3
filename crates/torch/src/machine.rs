//! The restricted pickle machine: runs the opcodes of protocols 0 to 5 over a byte slice and
//! builds a [`Value`] tree. It never imports or calls anything.
//!
//! Every global call, class instantiation (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ) and BUILD
//! of any class becomes an inert record, an [`Instance`] holding the callee, its arguments,
//! keyword arguments and state, so the whole object graph of any torch file is read. Each
//! is also recorded as a [`Use`] for the hazard verdict ([`crate::hazard`]), which is decided
//! apart from reading. In [`Mode::Convert`] the one thing interpreted is torch's tensor
//! rebuilding (the allow-list, by [`crate::rebuild`]) and persistent ids as storages; in
//! [`Mode::Scan`] nothing is interpreted.

use std::collections::HashMap;
use std::rc::Rc;

use crate::error::PickleError;
use crate::globals::{self, Known};
use crate::hazard;
use crate::literal;
use crate::opcodes::{self, *};
use crate::rebuild;
use crate::value::{Dict, GlobalRef, Heap, Instance, Object, StorageRef, Value};
use crate::Limits;

/// How the machine treats calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Interpret allow-listed calls (tensor rebuilding) and storages; record the rest.
    Convert,
    /// Interpret nothing, record everything (files that are not checkpoints included).
    Scan,
}

/// How a pickle uses a global.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UseKind {
    /// Named by GLOBAL, STACK_GLOBAL or INST: `torch.load` imports its module.
    Named,
    /// Instantiated without arguments by NEWOBJ and given a `__dict__` by BUILD: how
    /// `torch.save(model)` stores module classes. `torch.load` imports the class and runs its
    /// `__setstate__`; safeshift keeps the instance as opaque data.
    Instantiated,
    /// Called (REDUCE, INST, OBJ, NEWOBJ with arguments, BUILD with a non-dict state).
    Called,
}

/// One use of a global (or of a non-global callee) at an opcode.
#[derive(Clone, Debug)]
pub(crate) struct Use {
    pub global: Option<Rc<GlobalRef>>,
    pub offset: u64,
    pub opcode: &'static str,
    pub kind: UseKind,
    /// Why this use is a gadget by its shape alone (a call of a computed callable…).
    pub structural: Option<String>,
}

/// What one memo entry costs against the parse's memory budget: key and value in a hash
/// map, twice (it grows by doubling).
const MEMO_ENTRY_COST: u64 = 2 * (8 + std::mem::size_of::<Value>() as u64 + 8);

/// Runs pickles, sharing one heap (legacy files hold several pickles).
pub(crate) struct Machine<'h> {
    heap: &'h mut Heap,
    limits: &'h Limits,
    mode: Mode,
    member: String,
    /// Every use of a global, in stream order.
    pub uses: Vec<Use>,
    /// Every storage a persistent id named, first-seen order (convert mode).
    pub storages: Vec<Rc<StorageRef>>,
    storage_index: HashMap<Rc<str>, usize>,
}

/// Where a run stopped with an error.
pub(crate) struct RunError {
    pub offset: u64,
    pub error: PickleError,
}

struct Frame<'i> {
    input: &'i [u8],
    pos: usize,
    /// Where the current protocol-4 FRAME ends, while inside one.
    frame_end: Option<usize>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl<'h> Machine<'h> {
    pub fn new(heap: &'h mut Heap, limits: &'h Limits, mode: Mode) -> Machine<'h> {
        Machine {
            heap,
            limits,
            mode,
            member: String::new(),
            uses: Vec::new(),
            storages: Vec::new(),
            storage_index: HashMap::new(),
        }
    }

    /// Runs one pickle from the start of `input` to its STOP; returns the value and the
    /// number of bytes consumed. `member` names the pickle in errors.
    pub fn run(&mut self, input: &[u8], member: &str) -> Result<(Value, usize), RunError> {
        self.member = member.to_string();
        let mut frame =
            Frame { input, pos: 0, frame_end: None, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
        loop {
            let at = frame.pos;
            match self.step(&mut frame, at as u64) {
                Ok(Some(value)) => return Ok((value, frame.pos)),
                Ok(None) => {}
                Err(error) => return Err(RunError { offset: at as u64, error }),
            }
        }
    }

    fn step(&mut self, f: &mut Frame<'_>, at: u64) -> Result<Option<Value>, PickleError> {
        let opcode = f.byte()?;
        // Errors name the opcode as pickletools does.
        let Some(op) = opcodes::name(opcode) else {
            return Err(PickleError::UnknownOpcode(opcode));
        };
        match opcode {
            // Framing and protocol.
            PROTO => {
                let version = f.byte()?;
                if version > 5 {
                    return Err(PickleError::BadValue(format!("unsupported pickle protocol {version}")));
                }
            }
            FRAME => {
                let len = f.u64()?;
                if let Some(end) = f.frame_end.filter(|&end| end > f.pos) {
                    return Err(PickleError::Framing(format!(
                        "a FRAME begins before the current one ends (at byte {end}); CPython's pure-Python unpickler refuses this and its C unpickler may skip bytes"
                    )));
                }
                if len > f.remaining() as u64 {
                    return Err(PickleError::UnexpectedEnd);
                }
                f.frame_end = Some(f.pos + len as usize);
            }
            STOP => {
                if let Some(end) = f.frame_end.filter(|&end| end != f.pos) {
                    return Err(PickleError::Framing(format!(
                        "STOP inside a FRAME that goes on to byte {end}; whether the next pickle starts after STOP or after the frame depends on CPython's read buffer"
                    )));
                }
                return self.pop(f, op).map(Some);
            }
            // Stack manipulation.
            MARK => {
                if f.marks.len() >= self.limits.max_marks {
                    return Err(PickleError::Limit { what: "open MARKs", limit: self.limits.max_marks as u64 });
                }
                f.marks.push(f.stack.len());
            }
            POP => {
                if f.stack.len() > f.marks.last().copied().unwrap_or(0) {
                    f.stack.pop();
                } else {
                    self.pop_mark(f, op)?;
                }
            }
            POP_MARK => {
                self.pop_mark(f, op)?;
            }
            DUP => {
                let top = f.stack.last().cloned().ok_or(PickleError::StackUnderflow(op))?;
                self.push(f, top)?;
            }
            // Scalars.
            NONE => self.push(f, Value::None)?,
            NEWTRUE => self.push(f, Value::Bool(true))?,
            NEWFALSE => self.push(f, Value::Bool(false))?,
            INT => {
                let value = literal::int_line(f.line()?)?;
                self.push(f, value)?;
            }
            BININT => {
                let value = i32::from_le_bytes(f.array()?);
                self.push(f, Value::Int(i64::from(value)))?;
            }
            BININT1 => {
                let value = f.byte()?;
                self.push(f, Value::Int(i64::from(value)))?;
            }
            BININT2 => {
                let value = u16::from_le_bytes(f.array()?);
                self.push(f, Value::Int(i64::from(value)))?;
            }
            LONG => {
                let line = f.line()?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                let value = literal::long_line(digits)?;
                self.push(f, value)?;
            }
            LONG1 => {
                let len = f.byte()? as usize;
                let bytes = f.take(len)?;
                self.push(f, literal::long_from_le(bytes))?;
            }
            LONG4 => {
                let len = i32::from_le_bytes(f.array()?);
                let len =
                    usize::try_from(len).map_err(|_| PickleError::BadValue("LONG4 with a negative length".into()))?;
                let bytes = f.take(len)?;
                self.push(f, literal::long_from_le(bytes))?;
            }
            FLOAT => {
                let line = f.line()?;
                let value = std::str::from_utf8(line)
                    .ok()
                    .and_then(|text| text.trim().parse::<f64>().ok())
                    .ok_or_else(|| PickleError::BadValue("FLOAT is not a number".into()))?;
                self.push(f, Value::Float(value))?;
            }
            BINFLOAT => {
                let value = f64::from_be_bytes(f.array()?);
                self.push(f, Value::Float(value))?;
            }
            // Strings and bytes.
            STRING => {
                let line = f.line()?;
                let bytes = literal::quoted_string(line)?;
                self.push(f, literal::py2_str(bytes)?)?;
            }
            BINSTRING => {
                let len = i32::from_le_bytes(f.array()?);
                let len = usize::try_from(len)
                    .map_err(|_| PickleError::BadValue("BINSTRING with a negative length".into()))?;
                let bytes = f.take(len)?.to_vec();
                self.push(f, literal::py2_str(bytes)?)?;
            }
            SHORT_BINSTRING => {
                let len = f.byte()? as usize;
                let bytes = f.take(len)?.to_vec();
                self.push(f, literal::py2_str(bytes)?)?;
            }
            UNICODE => {
                let line = f.line()?;
                let text = literal::raw_unicode_escape(line)?;
                self.push(f, Value::Str(text.into()))?;
            }
            BINUNICODE => {
                let len = u32::from_le_bytes(f.array()?) as usize;
                let text = literal::utf8(f.take(len)?)?;
                self.push(f, text)?;
            }
            SHORT_BINUNICODE => {
                let len = f.byte()? as usize;
                let text = literal::utf8(f.take(len)?)?;
                self.push(f, text)?;
            }
            BINUNICODE8 => {
                let len = f.length_u64()?;
                let text = literal::utf8(f.take(len)?)?;
                self.push(f, text)?;
            }
            BINBYTES => {
                let len = u32::from_le_bytes(f.array()?) as usize;
                let bytes = f.take(len)?;
                self.push(f, Value::Bytes(bytes.into()))?;
            }
            SHORT_BINBYTES => {
                let len = f.byte()? as usize;
                let bytes = f.take(len)?;
                self.push(f, Value::Bytes(bytes.into()))?;
            }
            BINBYTES8 | BYTEARRAY8 => {
                let len = f.length_u64()?;
                let bytes = f.take(len)?;
                self.push(f, Value::Bytes(bytes.into()))?;
            }
            NEXT_BUFFER => {
                return Err(PickleError::Refused {
                    opcode: op,
                    why: "out-of-band buffers are not part of a checkpoint file",
                })
            }
            READONLY_BUFFER => {
                return Err(PickleError::Refused {
                    opcode: op,
                    why: "out-of-band buffers are not part of a checkpoint file",
                })
            }
            // Containers.
            EMPTY_LIST => {
                let list = self.heap.alloc(Object::List(Vec::new()))?;
                self.push(f, list)?;
            }
            EMPTY_DICT => {
                let dict = self.heap.alloc(Object::Dict(Dict::default()))?;
                self.push(f, dict)?;
            }
            EMPTY_TUPLE => {
                let tuple = self.heap.alloc(Object::Tuple(Vec::new()))?;
                self.push(f, tuple)?;
            }
            EMPTY_SET => {
                let set = self.heap.alloc(Object::Set { items: Vec::new(), frozen: false })?;
                self.push(f, set)?;
            }
            LIST => {
                let items = self.pop_mark(f, op)?;
                let list = self.heap.alloc(Object::List(items))?;
                self.push(f, list)?;
            }
            TUPLE => {
                let items = self.pop_mark(f, op)?;
                let tuple = self.heap.alloc(Object::Tuple(items))?;
                self.push(f, tuple)?;
            }
            TUPLE1..=TUPLE3 => {
                let n = usize::from(opcode - TUPLE1) + 1;
                if f.stack.len() < f.marks.last().copied().unwrap_or(0) + n {
                    return Err(PickleError::StackUnderflow(op));
                }
                let items = f.stack.split_off(f.stack.len() - n);
                let tuple = self.heap.alloc(Object::Tuple(items))?;
                self.push(f, tuple)?;
            }
            DICT => {
                let items = self.pop_mark(f, op)?;
                let mut dict = Dict::default();
                self.fill_dict(&mut dict, items, op)?;
                let dict = self.heap.alloc(Object::Dict(dict))?;
                self.push(f, dict)?;
            }
            FROZENSET => {
                let items = self.pop_mark(f, op)?;
                let set = self.heap.alloc(Object::Set { items, frozen: true })?;
                self.push(f, set)?;
            }
            APPEND => {
                let item = self.pop(f, op)?;
                let target = self.peek(f, op)?;
                self.extend(&target, vec![item], op)?;
            }
            APPENDS => {
                let items = self.pop_mark(f, op)?;
                let target = self.peek(f, op)?;
                self.extend(&target, items, op)?;
            }
            SETITEM => {
                let value = self.pop(f, op)?;
                let key = self.pop(f, op)?;
                let target = self.peek(f, op)?;
                self.set_items(&target, vec![key, value], op)?;
            }
            SETITEMS => {
                let items = self.pop_mark(f, op)?;
                let target = self.peek(f, op)?;
                self.set_items(&target, items, op)?;
            }
            ADDITEMS => {
                let items = self.pop_mark(f, op)?;
                let target = self.peek(f, op)?;
                if let Value::Obj(id) = &target {
                    self.heap.grow(*id, &items)?;
                }
                match &target {
                    Value::Obj(id) => match self.heap.get_mut(*id) {
                        Object::Set { items: set, frozen: false } => set.extend(items),
                        _ => return Err(self.bad_target(op, &target)),
                    },
                    _ => return Err(self.bad_target(op, &target)),
                }
            }
            // Memo.
            GET => {
                let index = literal::decimal_u64(f.line()?)?;
                self.get(f, index)?;
            }
            BINGET => {
                let index = f.byte()?;
                self.get(f, u64::from(index))?;
            }
            LONG_BINGET => {
                let index = u32::from_le_bytes(f.array()?);
                self.get(f, u64::from(index))?;
            }
            PUT => {
                let index = literal::decimal_u64(f.line()?)?;
                self.put(f, index)?;
            }
            BINPUT => {
                let index = f.byte()?;
                self.put(f, u64::from(index))?;
            }
            LONG_BINPUT => {
                let index = u32::from_le_bytes(f.array()?);
                self.put(f, u64::from(index))?;
            }
            MEMOIZE => {
                let index = f.memo.len() as u64;
                self.put(f, index)?;
            }
            // Globals and calls.
            GLOBAL => {
                let module = literal::ascii_name(f.line()?)?;
                let name = literal::ascii_name(f.line()?)?;
                let global = self.global(module, name, at, op);
                self.push(f, global)?;
            }
            STACK_GLOBAL => {
                let name = self.pop(f, op)?;
                let module = self.pop(f, op)?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err(PickleError::BadValue("STACK_GLOBAL needs two strings".into()));
                };
                let global = self.global(module.to_string(), name.to_string(), at, op);
                self.push(f, global)?;
            }
            REDUCE => {
                let args = self.pop(f, op)?;
                let callee = self.pop(f, op)?;
                let result = self.call(at, op, callee, args, None)?;
                self.push(f, result)?;
            }
            NEWOBJ => {
                let args = self.pop(f, op)?;
                let class = self.pop(f, op)?;
                let result = self.new_object(at, op, class, args)?;
                self.push(f, result)?;
            }
            NEWOBJ_EX => {
                let kwargs = self.pop(f, op)?;
                let args = self.pop(f, op)?;
                let class = self.pop(f, op)?;
                let no_kwargs = self.heap.dict(&kwargs).is_some_and(|dict| dict.entries.is_empty());
                let result = if no_kwargs {
                    self.new_object(at, op, class, args)?
                } else {
                    self.call(at, op, class, args, Some(kwargs))?
                };
                self.push(f, result)?;
            }
            INST => {
                let module = literal::ascii_name(f.line()?)?;
                let name = literal::ascii_name(f.line()?)?;
                let class = self.global(module, name, at, op);
                let args = self.pop_mark(f, op)?;
                let args = self.heap.alloc(Object::Tuple(args))?;
                let result = self.call(at, op, class, args, None)?;
                self.push(f, result)?;
            }
            OBJ => {
                let mut items = self.pop_mark(f, op)?;
                if items.is_empty() {
                    return Err(PickleError::StackUnderflow(op));
                }
                let class = items.remove(0);
                let args = self.heap.alloc(Object::Tuple(items))?;
                let result = self.call(at, op, class, args, None)?;
                self.push(f, result)?;
            }
            BUILD => {
                let state = self.pop(f, op)?;
                let target = self.peek(f, op)?;
                self.build(at, &target, state)?;
            }
            PERSID => {
                let line = f.line()?;
                let pid = Value::Str(String::from_utf8_lossy(line).into());
                let storage = self.persistent(pid)?;
                self.push(f, storage)?;
            }
            BINPERSID => {
                let pid = self.pop(f, op)?;
                let storage = self.persistent(pid)?;
                self.push(f, storage)?;
            }
            EXT1..=EXT4 => {
                return Err(PickleError::Refused { opcode: op, why: "extension registry codes can name any global" })
            }
            _ => return Err(PickleError::UnknownOpcode(opcode)),
        }
        Ok(None)
    }

    fn push(&mut self, f: &mut Frame<'_>, value: Value) -> Result<(), PickleError> {
        if f.stack.len() >= self.limits.max_stack {
            return Err(PickleError::Limit { what: "pickle stack", limit: self.limits.max_stack as u64 });
        }
        // Text and numbers copied out of the input; a value pushed again (DUP, memo GET)
        // shares its bytes and costs nothing more.
        let copied = match &value {
            Value::Str(text) if Rc::strong_count(text) == 1 => Some(text.len()),
            Value::Bytes(bytes) | Value::BigInt(bytes) if Rc::strong_count(bytes) == 1 => Some(bytes.len()),
            _ => None,
        };
        if let Some(len) = copied {
            self.heap.charge(len as u64 + 16)?;
        }
        if f.stack.len() == f.stack.capacity() {
            // The stack's growth, charged once per doubling.
            self.heap.charge(f.stack.capacity().max(4) as u64 * std::mem::size_of::<Value>() as u64)?;
        }
        f.stack.push(value);
        Ok(())
    }

    fn pop(&mut self, f: &mut Frame<'_>, opcode: &'static str) -> Result<Value, PickleError> {
        if f.stack.len() <= f.marks.last().copied().unwrap_or(0) {
            return Err(PickleError::StackUnderflow(opcode));
        }
        Ok(f.stack.pop().expect("checked above"))
    }

    fn peek(&mut self, f: &mut Frame<'_>, opcode: &'static str) -> Result<Value, PickleError> {
        if f.stack.len() <= f.marks.last().copied().unwrap_or(0) {
            return Err(PickleError::StackUnderflow(opcode));
        }
        Ok(f.stack.last().cloned().expect("checked above"))
    }

    fn pop_mark(&mut self, f: &mut Frame<'_>, opcode: &'static str) -> Result<Vec<Value>, PickleError> {
        let mark = f.marks.pop().ok_or(PickleError::NoMark(opcode))?;
        Ok(f.stack.split_off(mark))
    }

    fn get(&mut self, f: &mut Frame<'_>, index: u64) -> Result<(), PickleError> {
        let value = f.memo.get(&index).cloned().ok_or(PickleError::MemoMissing(index))?;
        self.push(f, value)
    }

    fn put(&mut self, f: &mut Frame<'_>, index: u64) -> Result<(), PickleError> {
        let top = f.stack.last().cloned().ok_or(PickleError::StackUnderflow("PUT"))?;
        if !f.memo.contains_key(&index) {
            if f.memo.len() >= self.limits.max_memo {
                return Err(PickleError::Limit { what: "memo entries", limit: self.limits.max_memo as u64 });
            }
            self.heap.charge(MEMO_ENTRY_COST)?;
        }
        f.memo.insert(index, top);
        Ok(())
    }

    fn global(&mut self, module: String, name: String, at: u64, opcode: &'static str) -> Value {
        let global = Rc::new(GlobalRef { module, name, offset: at });
        self.uses.push(Use {
            global: Some(global.clone()),
            offset: at,
            opcode,
            kind: UseKind::Named,
            structural: None,
        });
        Value::Global(global)
    }

    fn fill_dict(&mut self, dict: &mut Dict, items: Vec<Value>, opcode: &'static str) -> Result<(), PickleError> {
        if items.len() % 2 != 0 {
            return Err(PickleError::BadValue(format!("{opcode} with an odd number of items")));
        }
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            dict.insert(key, value);
        }
        Ok(())
    }

    fn extend(&mut self, target: &Value, items: Vec<Value>, opcode: &'static str) -> Result<(), PickleError> {
        if let Value::Obj(id) = target {
            self.heap.grow(*id, &items)?;
            match self.heap.get_mut(*id) {
                Object::List(list) => {
                    list.extend(items);
                    return Ok(());
                }
                Object::Instance(instance) => {
                    instance.items.extend(items);
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(self.bad_target(opcode, target))
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>, opcode: &'static str) -> Result<(), PickleError> {
        if let Value::Obj(id) = target {
            self.heap.grow(*id, &items)?;
            let mut dict = match self.heap.get_mut(*id) {
                Object::Dict(dict) => std::mem::take(dict),
                Object::Instance(instance) => std::mem::take(&mut instance.entries),
                _ => return Err(self.bad_target(opcode, target)),
            };
            let result = self.fill_dict(&mut dict, items, opcode);
            match self.heap.get_mut(*id) {
                Object::Dict(slot) => *slot = dict,
                Object::Instance(instance) => instance.entries = dict,
                _ => unreachable!("the object kind cannot change"),
            }
            return result;
        }
        Err(self.bad_target(opcode, target))
    }

    fn bad_target(&self, opcode: &'static str, target: &Value) -> PickleError {
        PickleError::BadValue(format!("{opcode} on a {}", self.heap.type_name(target)))
    }

    /// A call of `callee(*args, **kwargs)`: interpreted when it rebuilds a tensor (convert
    /// mode), else recorded as an inert object. Nothing is refused here: the hazard verdict
    /// ([`crate::hazard`]) judges the recorded uses afterwards.
    fn call(
        &mut self,
        at: u64,
        opcode: &'static str,
        callee: Value,
        args: Value,
        kwargs: Option<Value>,
    ) -> Result<Value, PickleError> {
        let structural = hazard::structural_call(self.heap, &callee, &args);
        let global = match &callee {
            Value::Global(global) => Some(global.clone()),
            _ => None,
        };
        self.uses.push(Use { global: global.clone(), offset: at, opcode, kind: UseKind::Called, structural });
        let known = global.as_ref().and_then(|g| globals::lookup(&g.module, &g.name));
        match (self.mode, known, &global) {
            (Mode::Convert, Some(known), Some(global))
                if !matches!(known, Known::Data | Known::UnsupportedTensor) && kwargs.is_none() =>
            {
                rebuild::apply(self.heap, known, global, args)
            }
            _ => self.record(callee, args, kwargs),
        }
    }

    /// NEWOBJ(cls, args): `cls.__new__(cls, *args)`. Without arguments this is how
    /// `torch.save(model)` stores module objects (an instantiation, not a call).
    fn new_object(&mut self, at: u64, opcode: &'static str, class: Value, args: Value) -> Result<Value, PickleError> {
        let no_args = self.heap.sequence(&args).is_some_and(<[Value]>::is_empty);
        let Value::Global(global) = &class else {
            return self.call(at, opcode, class, args, None);
        };
        if !no_args {
            return self.call(at, opcode, class, args, None);
        }
        let known = globals::lookup(&global.module, &global.name);
        // Recorded even when allow-listed: the report says what torch would invoke.
        let used = Some(global.clone());
        self.uses.push(Use { global: used, offset: at, opcode, kind: UseKind::Instantiated, structural: None });
        match (self.mode, known) {
            (Mode::Convert, Some(Known::OrderedDict | Known::Counter)) => {
                self.heap.alloc(Object::Dict(Dict::default()))
            }
            (Mode::Convert, Some(Known::Set)) => self.heap.alloc(Object::Set { items: Vec::new(), frozen: false }),
            (Mode::Convert, Some(Known::Data) | None) | (Mode::Scan, _) => self.record(class, args, None),
            (Mode::Convert, Some(_)) => self.call(at, opcode, class, args, None),
        }
    }

    /// An inert record of a call or instantiation: what was called, with what.
    fn record(&mut self, class: Value, args: Value, kwargs: Option<Value>) -> Result<Value, PickleError> {
        self.heap.alloc(Object::Instance(Instance {
            class,
            args,
            kwargs,
            state: None,
            items: Vec::new(),
            entries: Dict::default(),
        }))
    }

    /// BUILD: records an object's state. On an instance of a class outside the allow-list
    /// whose state is not a `__dict__`, `torch.load` would call the class's `__setstate__`
    /// (a call, for the verdict); on a global, BUILD would set attributes of a module or
    /// class (a structural gadget). Either way the state is only recorded.
    fn build(&mut self, at: u64, target: &Value, state: Value) -> Result<(), PickleError> {
        let plain_state = self.heap.dict(&state).is_some()
            || self.heap.sequence(&state).is_some_and(|parts| {
                parts.len() == 2
                    && parts.iter().all(|part| matches!(part, Value::None) || self.heap.dict(part).is_some())
            });
        let id = match target {
            Value::Obj(id) => *id,
            // Tensor subclasses carry their Python state this way; it is not tensor data.
            Value::Tensor(_) => return Ok(()),
            Value::Global(global) => {
                let structural = Some(format!(
                    "sets attributes of `{}` itself (BUILD on a module or class overwrites its code)",
                    global.dotted()
                ));
                self.uses.push(Use { global: None, offset: at, opcode: "BUILD", kind: UseKind::Called, structural });
                return Ok(());
            }
            _ if self.mode == Mode::Scan => return Ok(()),
            _ => return Err(self.bad_target("BUILD", target)),
        };
        let class = match self.heap.get(id) {
            Object::Instance(instance) => instance.class.clone(),
            // `state_dict()` OrderedDicts carry `_metadata` this way; dropped.
            Object::Dict(_) => return Ok(()),
            _ if self.mode == Mode::Scan => return Ok(()),
            _ => return Err(self.bad_target("BUILD", target)),
        };
        let allowed = matches!(&class, Value::Global(g) if globals::lookup(&g.module, &g.name).is_some());
        if !plain_state && !allowed {
            let global = match &class {
                Value::Global(global) => Some(global.clone()),
                _ => None,
            };
            self.uses.push(Use { global, offset: at, opcode: "BUILD", kind: UseKind::Called, structural: None });
        }
        self.heap.grow(id, [&state])?;
        if let Object::Instance(instance) = self.heap.get_mut(id) {
            instance.state = Some(state);
        }
        Ok(())
    }

    /// A persistent id: in convert mode, a storage `('storage', torch.XStorage, key, location,
    /// numel[, None])`; in scan mode, kept as given.
    fn persistent(&mut self, pid: Value) -> Result<Value, PickleError> {
        // `('module', cls, source_file, source)`: how torch < 1.6 stored a module's class
        // (with its source, to warn when it changed). torch's `persistent_load` returns `cls`;
        // the source is data, never compiled.
        if let Some([Value::Str(tag), class @ Value::Global(_), ..]) = self.heap.sequence(&pid) {
            if &**tag == "module" {
                return Ok(class.clone());
            }
        }
        if self.mode == Mode::Scan {
            return Ok(pid);
        }
        let bad = |why: &str| PickleError::BadValue(format!("persistent id is not a storage: {why}"));
        let parts = self.heap.sequence(&pid).ok_or_else(|| bad("not a tuple"))?;
        if !(parts.len() == 5 || parts.len() == 6) {
            return Err(bad(&format!("{} elements", parts.len())));
        }
        if !matches!(&parts[0], Value::Str(tag) if &**tag == "storage") {
            return Err(bad("first element is not 'storage'"));
        }
        let Value::Global(class) = &parts[1] else {
            return Err(bad("second element is not a storage class"));
        };
        let dtype = match globals::lookup(&class.module, &class.name) {
            Some(Known::Storage(dtype)) => dtype,
            Some(Known::UnsupportedStorage) => {
                return Err(PickleError::BadValue(format!(
                    "storage class `{}` has no safetensors dtype",
                    class.dotted()
                )))
            }
            _ => return Err(bad(&format!("`{}` is not a storage class", class.dotted()))),
        };
        let key: Rc<str> = match &parts[2] {
            Value::Str(key) => key.clone(),
            Value::Int(key) => key.to_string().into(),
            _ => return Err(bad("the key is not a string")),
        };
        let numel = match parts[4] {
            Value::Int(numel) if numel >= 0 => numel as u64,
            _ => return Err(bad("the element count is not a non-negative int")),
        };
        if parts.len() == 6 && !matches!(parts[5], Value::None) {
            return Err(PickleError::BadValue(format!(
                "storage `{key}` is a pre-1.0 storage view (view metadata); not supported"
            )));
        }
        let storage = StorageRef { key: key.clone(), dtype, numel };
        if let Some(&at) = self.storage_index.get(&key) {
            let first = &self.storages[at];
            if first.dtype != storage.dtype || first.numel != storage.numel {
                return Err(PickleError::BadValue(format!(
                    "storage `{key}` is named with two different element types or sizes"
                )));
            }
            return Ok(Value::Storage(first.clone()));
        }
        let storage = Rc::new(storage);
        self.storage_index.insert(key, self.storages.len());
        self.storages.push(storage.clone());
        Ok(Value::Storage(storage))
    }
}

impl<'i> Frame<'i> {
    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Checks that a read of `len` bytes at the current position stays on one side of the
    /// current FRAME's end. CPython reads a frame into a buffer: its pure-Python unpickler
    /// refuses a read across the frame's end, and its C unpickler (torch's) either joins the
    /// two parts or drops the frame's tail and reads afresh from the file, depending on how
    /// the frame was buffered. Such a read has no single meaning, so it is refused.
    fn claim(&mut self, len: usize) -> Result<(), PickleError> {
        if let Some(end) = self.frame_end {
            if self.pos >= end {
                self.frame_end = None;
            } else if self.pos + len > end {
                return Err(PickleError::Framing(format!(
                    "{len} bytes read at byte {} straddle the end of the FRAME at byte {end}; CPython's unpickler may read them differently",
                    self.pos
                )));
            }
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        let byte = *self.input.get(self.pos).ok_or(PickleError::UnexpectedEnd)?;
        self.claim(1)?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> Result<&'i [u8], PickleError> {
        if len > self.remaining() {
            return Err(PickleError::UnexpectedEnd);
        }
        self.claim(len)?;
        let bytes = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An 8-byte length, checked against the remaining input before any use.
    fn length_u64(&mut self) -> Result<usize, PickleError> {
        let len = self.u64()?;
        if len > self.remaining() as u64 {
            return Err(PickleError::UnexpectedEnd);
        }
        Ok(len as usize)
    }

    fn line(&mut self) -> Result<&'i [u8], PickleError> {
        let rest = &self.input[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or(PickleError::UnexpectedEnd)?;
        self.claim(end + 1)?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8], mode: Mode, limits: &Limits) -> (Result<Value, PickleError>, Heap, Vec<Use>) {
        let mut heap = Heap::new(limits, bytes.len());
        let mut machine = Machine::new(&mut heap, limits, mode);
        let result = machine.run(bytes, "test.pkl").map(|(value, _)| value).map_err(|err| err.error);
        let uses = std::mem::take(&mut machine.uses);
        (result, heap, uses)
    }

    fn convert(bytes: &[u8]) -> Result<Value, PickleError> {
        run(bytes, Mode::Convert, &Limits::default()).0
    }

    /// The file is read to the end, then judged: its first gadget.
    fn first_gadget(bytes: &[u8]) -> crate::error::Forbidden {
        let (result, _, uses) = run(bytes, Mode::Convert, &Limits::default());
        assert!(result.is_ok(), "reading never refuses: {result:?}");
        let uses: Vec<(String, Use)> = uses.into_iter().map(|u| ("test.pkl".to_string(), u)).collect();
        crate::hazard::verdict(&uses).gadgets.into_iter().next().expect("a gadget")
    }

    fn forbidden_global(bytes: &[u8]) -> Option<String> {
        first_gadget(bytes).global
    }

    /// `GLOBAL module name` then `(arg,)` then REDUCE.
    fn reduce_of(module: &str, name: &str) -> Vec<u8> {
        let mut bytes = b"\x80\x02c".to_vec();
        bytes.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        bytes.extend_from_slice(b"X\x02\x00\x00\x00id\x85R.");
        bytes
    }

    #[test]
    fn calls_of_code_running_globals_are_read_as_records_and_judged_gadgets() {
        for (module, name) in [
            ("os", "system"),
            ("posix", "system"),
            ("nt", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("builtins", "getattr"),
            ("__builtin__", "eval"),
            ("commands", "Popen"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("pickle", "loads"),
        ] {
            assert_eq!(forbidden_global(&reduce_of(module, name)), Some(format!("{module}.{name}")));
        }
    }

    #[test]
    fn the_refusal_names_the_python3_name_and_offsets() {
        let forbidden = first_gadget(&reduce_of("commands", "Popen"));
        assert_eq!(forbidden.python3_name.as_deref(), Some("subprocess.Popen"));
        assert_eq!(forbidden.global_offset, Some(2));
        assert_eq!(forbidden.opcode, "REDUCE");
        assert_eq!(forbidden.offset, 26);
        let text = forbidden.to_string();
        assert!(
            text.contains("`commands.Popen`") && text.contains("`subprocess.Popen`") && text.contains("byte 26"),
            "{text}"
        );
    }

    #[test]
    fn inst_obj_newobj_with_arguments_and_stack_global_are_calls_too() {
        assert_eq!(forbidden_global(b"(X\x02\x00\x00\x00idios\nsystem\n."), Some("os.system".into()));
        assert_eq!(forbidden_global(b"(cos\nsystem\nX\x02\x00\x00\x00ido."), Some("os.system".into()));
        assert_eq!(forbidden_global(b"\x80\x02cos\nsystem\nX\x01\x00\x00\x00a\x85\x81."), Some("os.system".into()));
        assert_eq!(forbidden_global(b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R."), Some("os.system".into()));
        // NEWOBJ_EX with keyword arguments: a record with its kwargs, and no gadget.
        let (result, heap, _) =
            run(b"\x80\x04cmain\nC\n)}X\x01\x00\x00\x00aK\x00s\x92.", Mode::Convert, &Limits::default());
        let record = heap.instance(&result.unwrap()).map(|i| i.kwargs.is_some());
        assert_eq!(record, Some(true));
    }

    #[test]
    fn calling_the_result_of_a_call_is_a_structural_gadget() {
        // getattr-style chains: REDUCE on a record.
        let forbidden = first_gadget(b"\x80\x02cmain\nC\n)\x81)R.");
        assert_eq!((forbidden.global, forbidden.opcode, forbidden.offset), (None, "REDUCE", 13));
        // getattr(x, "system")(…): both the fetch and the call are gadgets.
        let bytes =
            b"\x80\x02c__builtin__\ngetattr\ncmain\nC\n)\x81X\x06\x00\x00\x00system\x86RX\x02\x00\x00\x00id\x85R.";
        let (result, _, uses) = run(bytes, Mode::Convert, &Limits::default());
        assert!(result.is_ok());
        let uses: Vec<(String, Use)> = uses.into_iter().map(|u| ("test.pkl".to_string(), u)).collect();
        let gadgets = crate::hazard::verdict(&uses).gadgets;
        assert_eq!(gadgets.len(), 2, "{gadgets:?}");
        assert!(gadgets[0].why.contains("`system`") && gadgets[1].why.contains("computed"), "{gadgets:?}");
        // BUILD on a global overwrites a module's or class's attributes.
        let forbidden = first_gadget(b"\x80\x02cmain\nC\nN}X\x01\x00\x00\x00aK\x01s\x86b.");
        assert_eq!(forbidden.opcode, "BUILD");
    }

    #[test]
    fn objects_of_any_class_are_inert_records_with_their_state() {
        // NEWOBJ(main.Net, ()) + BUILD({'a': 1}).
        let ok = b"\x80\x02cmain\nNet\n)\x81}X\x01\x00\x00\x00aK\x01sb.";
        let (result, heap, uses) = run(ok, Mode::Convert, &Limits::default());
        let Value::Obj(id) = result.unwrap() else { panic!() };
        assert!(matches!(heap.get(id), Object::Instance(instance) if instance.state.is_some()));
        assert!(uses.iter().any(|u| u.kind == UseKind::Instantiated));
        // BUILD with a list state would call Net.__setstate__: a call, recorded, no gadget.
        let (result, heap, uses) = run(b"\x80\x02cmain\nNet\n)\x81]b.", Mode::Convert, &Limits::default());
        let state = heap.instance(&result.unwrap()).and_then(|i| i.state.clone());
        assert!(state.is_some_and(|state| heap.sequence(&state).is_some()));
        assert!(uses.iter().any(|u| u.kind == UseKind::Called && u.opcode == "BUILD" && u.structural.is_none()));
        // An unknown class called with arguments: a record of the call.
        let (result, heap, _) = run(&reduce_of("enum_module", "Color"), Mode::Convert, &Limits::default());
        let record = heap.instance(&result.unwrap()).unwrap();
        assert!(matches!(&record.class, Value::Global(g) if g.name == "Color"));
        assert!(matches!(heap.sequence(&record.args), Some([Value::Str(s)]) if &**s == "id"));
    }

    #[test]
    fn opcodes_that_can_name_any_global_are_refused() {
        for (bytes, opcode) in
            [(&b"\x80\x02\x82\x01."[..], "EXT1"), (b"\x80\x02\x83\x01\x00.", "EXT2"), (b"\x80\x05\x97.", "NEXT_BUFFER")]
        {
            assert!(matches!(convert(bytes), Err(PickleError::Refused { opcode: o, .. }) if o == opcode), "{opcode}");
        }
    }

    #[test]
    fn scan_mode_records_every_global_and_goes_on() {
        let mut bytes = b"\x80\x02]q\x00(".to_vec();
        bytes.extend_from_slice(&reduce_of("os", "system")[2..reduce_of("os", "system").len() - 1]);
        bytes.extend_from_slice(&reduce_of("builtins", "eval")[2..reduce_of("builtins", "eval").len() - 1]);
        bytes.extend_from_slice(b"e.");
        let (result, _, uses) = run(&bytes, Mode::Scan, &Limits::default());
        assert!(result.is_ok());
        let called: Vec<String> =
            uses.iter().filter(|u| u.kind == UseKind::Called).map(|u| u.global.as_ref().unwrap().dotted()).collect();
        assert_eq!(called, ["os.system", "builtins.eval"]);
    }

    #[test]
    fn data_opcodes_build_plain_values() {
        // Protocol 0 text forms: INT, LONG, FLOAT, STRING, UNICODE, DICT, LIST, TUPLE, PUT/GET.
        let bytes = b"(dp0\nS'a'\np1\n(I01\nL12345678901234567890L\nF1.5\nVcaf\\u00e9\nlp2\ns.";
        let (result, heap, _) = run(bytes, Mode::Convert, &Limits::default());
        let value = result.unwrap();
        let dict = heap.dict(&value).unwrap();
        assert_eq!(dict.entries.len(), 1);
        let Value::Str(key) = &dict.entries[0].0 else { panic!() };
        assert_eq!(&**key, "a");
        let items = heap.sequence(&dict.entries[0].1).unwrap();
        assert!(matches!(items[0], Value::Bool(true)));
        assert!(matches!(items[1], Value::BigInt(_)));
        assert!(matches!(items[2], Value::Float(f) if f == 1.5));
        assert!(matches!(&items[3], Value::Str(s) if &**s == "caf\u{e9}"));
        // Protocol 4: frames, memoize, bytes, sets.
        let bytes = b"\x80\x04\x95\x0f\x00\x00\x00\x00\x00\x00\x00\x8f\x94(C\x02hiK\x07\x90(h\x00\x91.";
        let (result, heap, _) = run(bytes, Mode::Convert, &Limits::default());
        let Value::Obj(id) = result.unwrap() else { panic!() };
        assert!(matches!(heap.get(id), Object::Set { items, frozen: true } if items.len() == 1));
    }

    #[test]
    fn limits_stop_runaway_pickles() {
        let limits = Limits { max_memo: 2, max_stack: 4, max_marks: 2, max_objects: 3, ..Limits::default() };
        let too_deep_stack = b"NNNNN.";
        assert!(matches!(
            run(too_deep_stack, Mode::Convert, &limits).0,
            Err(PickleError::Limit { what: "pickle stack", .. })
        ));
        let too_many_marks = b"(((.";
        assert!(matches!(
            run(too_many_marks, Mode::Convert, &limits).0,
            Err(PickleError::Limit { what: "open MARKs", .. })
        ));
        let too_much_memo = b"Nq\x00q\x01q\x02.";
        assert!(matches!(
            run(too_much_memo, Mode::Convert, &limits).0,
            Err(PickleError::Limit { what: "memo entries", .. })
        ));
        let too_many_objects = b"]]]].";
        assert!(matches!(
            run(too_many_objects, Mode::Convert, &limits).0,
            Err(PickleError::Limit { what: "objects", .. })
        ));
        // A huge memo index costs nothing: the memo is a map.
        assert!(run(b"Nr\xff\xff\xff\xffj\xff\xff\xff\xff.", Mode::Convert, &limits).0.is_ok());
    }

    #[test]
    fn lengths_beyond_the_input_are_refused_before_allocating() {
        for bytes in [
            &b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f"[..],
            b"X\xff\xff\xff\xff",
            b"\x8b\xff\xff\xff\x7f",
            b"\x95\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert_eq!(convert(bytes).unwrap_err(), PickleError::UnexpectedEnd);
        }
        assert_eq!(
            convert(b"\x8b\xff\xff\xff\xff").unwrap_err(),
            PickleError::BadValue("LONG4 with a negative length".into())
        );
    }

    #[test]
    fn malformed_streams_are_errors() {
        assert_eq!(convert(b"").unwrap_err(), PickleError::UnexpectedEnd);
        assert_eq!(convert(b"N").unwrap_err(), PickleError::UnexpectedEnd);
        assert_eq!(convert(b"\xff").unwrap_err(), PickleError::UnknownOpcode(0xff));
        assert_eq!(convert(b"R").unwrap_err(), PickleError::StackUnderflow("REDUCE"));
        assert_eq!(convert(b"t").unwrap_err(), PickleError::NoMark("TUPLE"));
        assert_eq!(convert(b"h\x05").unwrap_err(), PickleError::MemoMissing(5));
        // Items under a MARK are not reachable by a plain pop.
        assert_eq!(convert(b"N(.").unwrap_err(), PickleError::StackUnderflow("STOP"));
        assert!(matches!(convert(b"Na."), Err(PickleError::StackUnderflow("APPEND"))));
        assert!(matches!(convert(b"NNa."), Err(PickleError::BadValue(_))));
    }
}
