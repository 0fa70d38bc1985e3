//! The state operations transform: named tensors (lazy or materialised) plus metadata,
//! and the context they are applied in.

use std::collections::BTreeMap;

use safeshift_dsl::SourceId;
use safeshift_model::{DType, DTypeClass, Layout, Sym};

use crate::expr::{dtype_of, shape_of, Expr, Leaf, ShapeError};
use crate::operation::OpErrorKind;

/// One tensor of a [`TensorSet`]: the expression computing it, with its dtype and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorValue {
    expr: Expr,
    dtype: DTypeClass,
    shape: Vec<Sym>,
}

impl TensorValue {
    /// Wraps an expression, checking it and computing its dtype and shape.
    pub fn new(expr: Expr) -> Result<TensorValue, ShapeError> {
        let shape = shape_of(&expr)?;
        Ok(TensorValue { dtype: dtype_of(&expr), shape, expr })
    }

    /// The tensor `name` of the input checkpoint, as stored.
    pub fn source(name: &str, dtype: DTypeClass, shape: Vec<Sym>) -> TensorValue {
        let expr = Expr::Source(Leaf { aux: None, name: name.to_owned(), dtype, shape: shape.clone() });
        TensorValue { expr, dtype, shape }
    }

    /// The expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The expression, by value.
    pub fn into_expr(self) -> Expr {
        self.expr
    }

    /// The dtype (a class when symbolic).
    pub fn dtype(&self) -> DTypeClass {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[Sym] {
        &self.shape
    }
}

/// Tensors by name, in order, plus the checkpoint's string metadata: what a migration
/// transforms, lazily.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorSet {
    pub(crate) tensors: Vec<(String, TensorValue)>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

impl TensorSet {
    /// An empty set.
    pub fn new() -> TensorSet {
        TensorSet::default()
    }

    /// The tensors of a concrete checkpoint, each its own source, in file order.
    pub fn from_layout(layout: &Layout) -> TensorSet {
        let tensors = layout
            .tensors
            .iter()
            .map(|info| {
                let shape = info.shape.iter().map(|&dim| Sym::int(i64::try_from(dim).unwrap_or(i64::MAX))).collect();
                (info.name.clone(), TensorValue::source(&info.name, DTypeClass::Exact(info.dtype), shape))
            })
            .collect();
        TensorSet { tensors, metadata: layout.metadata.clone() }
    }

    /// Adds (or replaces, keeping its position) the tensor `name`.
    pub fn insert(&mut self, name: &str, value: TensorValue) {
        match self.tensors.iter_mut().find(|(existing, _)| existing == name) {
            Some(slot) => slot.1 = value,
            None => self.tensors.push((name.to_owned(), value)),
        }
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Option<&TensorValue> {
        self.tensors.iter().find(|(existing, _)| existing == name).map(|(_, value)| value)
    }

    /// Removes the tensor `name`.
    pub fn remove(&mut self, name: &str) -> Option<TensorValue> {
        let index = self.tensors.iter().position(|(existing, _)| existing == name)?;
        Some(self.tensors.remove(index).1)
    }

    /// The tensors in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TensorValue)> {
        self.tensors.iter().map(|(name, value)| (name.as_str(), value))
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The tensors in order and the metadata, by value.
    pub fn into_parts(self) -> (Vec<(String, TensorValue)>, BTreeMap<String, String>) {
        (self.tensors, self.metadata)
    }
}

/// A materialised tensor: dtype, concrete shape and little-endian row-major bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EagerTensor {
    /// Its dtype.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Materialised tensors by name, metadata and aux tensors: what the reference (eager)
/// implementation of each operation transforms. Used to prove lazy = eager.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EagerSet {
    pub(crate) tensors: Vec<(String, EagerTensor)>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
    /// Aux tensors by (aux input, tensor name).
    pub aux: BTreeMap<(String, String), EagerTensor>,
}

impl EagerSet {
    /// An empty set.
    pub fn new() -> EagerSet {
        EagerSet::default()
    }

    /// Adds (or replaces, keeping its position) the tensor `name`.
    pub fn insert(&mut self, name: &str, tensor: EagerTensor) {
        match self.tensors.iter_mut().find(|(existing, _)| existing == name) {
            Some(slot) => slot.1 = tensor,
            None => self.tensors.push((name.to_owned(), tensor)),
        }
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Option<&EagerTensor> {
        self.tensors.iter().find(|(existing, _)| existing == name).map(|(_, tensor)| tensor)
    }

    /// The tensors in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &EagerTensor)> {
        self.tensors.iter().map(|(name, tensor)| (name.as_str(), tensor))
    }
}

/// The dtype and shape of one tensor of an aux input.
#[derive(Clone, Debug, PartialEq)]
pub struct AuxInfo {
    /// Its dtype.
    pub dtype: DTypeClass,
    /// Its shape.
    pub shape: Vec<Sym>,
}

/// The value of a migration parameter (`param NAME "…"`), as the user gave it or as its
/// default says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    /// One string for every key: `--param encoder_names=0`. Usable only while an operation
    /// sees one distinct key (one dataset), so two keys never silently get one name.
    One(String),
    /// A string per key: `--param encoder_names=era5:global,cerra:regional`.
    Map(BTreeMap<String, String>),
    /// Static checks over schemas: every key maps to itself.
    Symbolic,
}

impl ParamValue {
    /// Parses `VALUE` or `KEY:VALUE,KEY:VALUE` (a value without `:` is [`ParamValue::One`]).
    pub fn parse(text: &str) -> Result<ParamValue, String> {
        if !text.contains(':') {
            return Ok(ParamValue::One(text.to_owned()));
        }
        let mut map = BTreeMap::new();
        for entry in text.split(',') {
            let Some((key, value)) = entry.split_once(':') else {
                return Err(format!("`{entry}` is not `KEY:VALUE`"));
            };
            if key.is_empty() || value.is_empty() {
                return Err(format!("`{entry}` has an empty key or value"));
            }
            if map.insert(key.to_owned(), value.to_owned()).is_some() {
                return Err(format!("`{key}` is given twice"));
            }
        }
        Ok(ParamValue::Map(map))
    }
}

/// A migration parameter in a context: what it means and its value (`None` when it has
/// no default and the user gave none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The description from the `param` declaration.
    pub doc: String,
    /// The value.
    pub value: Option<ParamValue>,
}

/// What operations need beyond the tensor set: dim values, aux tensors, parameters, and
/// where the migration text lives (for errors).
#[derive(Clone, Debug, Default)]
pub struct OpContext {
    /// The registry file the operations come from.
    pub source: SourceId,
    /// Every dim in scope, by name: a constant when bound, `Sym::dim(name)` (or an
    /// expression over other dims) when symbolic.
    pub dims: BTreeMap<String, Sym>,
    /// Aux tensors by (aux input, tensor name).
    pub aux: BTreeMap<(String, String), AuxInfo>,
    /// The migration's parameters, by name.
    pub params: BTreeMap<String, Param>,
}

impl OpContext {
    /// A context with no dims and no aux inputs.
    pub fn new(source: SourceId) -> OpContext {
        OpContext { source, ..OpContext::default() }
    }

    /// Adds a dim.
    pub fn with_dim(mut self, name: &str, value: Sym) -> OpContext {
        self.dims.insert(name.to_owned(), value);
        self
    }

    /// The value of dim `name`: a constant when known, symbolic otherwise; `None` when the
    /// dim is not in scope.
    pub fn dim(&self, name: &str) -> Option<Sym> {
        self.dims.get(name).cloned()
    }

    /// The constant value of dim `name`, if known.
    pub fn dim_value(&self, name: &str) -> Option<i64> {
        self.dims.get(name).and_then(Sym::as_int)
    }

    /// Resolves a language expression over dims; `Err(name)` for a dim not in scope.
    pub fn resolve(&self, expr: &safeshift_dsl::ast::Expr) -> Result<Sym, String> {
        let mut sym = Sym::from_expr(expr);
        for name in sym.dims() {
            match self.dims.get(&name) {
                Some(value) => sym = sym.substitute(&name, value),
                None => return Err(name),
            }
        }
        Ok(sym)
    }
}

/// A sym with all dims substituted from `ctx`, as a non-negative integer.
pub(crate) fn concrete(ctx: &OpContext, sym: &Sym) -> Result<u64, OpErrorKind> {
    let resolved = resolve(ctx, sym)?;
    resolved
        .as_int()
        .and_then(|value| u64::try_from(value).ok())
        .ok_or_else(|| OpErrorKind::invalid(format!("`{sym}` is not a non-negative integer here")))
}

/// A sym with the dims `ctx` knows substituted; a dim it does not know is an error.
pub(crate) fn resolve(ctx: &OpContext, sym: &Sym) -> Result<Sym, OpErrorKind> {
    let mut out = sym.clone();
    for name in sym.dims() {
        match ctx.dim(&name) {
            Some(value) => out = out.substitute(&name, &value),
            None => return Err(OpErrorKind::UnknownDim { name }),
        }
    }
    Ok(out)
}

/// Every dim of a shape resolved from `ctx` (see [`resolve`]).
pub(crate) fn resolve_shape(ctx: &OpContext, shape: &[Sym]) -> Result<Vec<Sym>, OpErrorKind> {
    shape.iter().map(|dim| resolve(ctx, dim)).collect()
}

/// A shape with every dim a non-negative integer from `ctx` (see [`concrete`]).
pub(crate) fn concrete_shape(ctx: &OpContext, shape: &[Sym]) -> Result<Vec<u64>, OpErrorKind> {
    shape.iter().map(|dim| concrete(ctx, dim)).collect()
}
