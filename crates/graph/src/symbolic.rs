//! Running a migration's operations over tensor sets: the machinery shared by derived
//! schemas, the static checker, path comparison and compilation.

use std::collections::{BTreeMap, BTreeSet};

use safeshift_dsl::ast::{self, Span, Value};
use safeshift_dsl::Diagnostic;
use safeshift_model::pattern::match_name;
use safeshift_model::{DTypeClass, DimKind, Schema, Sym, SymTensor};
use safeshift_ops::{
    AuxInfo, Expr, NoInverse, OpContext, OpError, Operation, Param, ParamValue, TensorSet, TensorValue,
};

use crate::registry::MigrationDef;

/// A migration's operations, lowered.
#[derive(Debug, Default)]
pub(crate) struct LoweredOps {
    /// The operations, in order.
    pub ops: Vec<Box<dyn Operation>>,
    /// The `down` block, when written.
    pub down: Option<Vec<Box<dyn Operation>>>,
}

impl LoweredOps {
    /// Whether some operation loses information.
    pub fn lossy(&self) -> bool {
        self.ops.iter().any(|op| op.lossy())
    }

    /// Whether the `down` block loses information.
    pub fn down_lossy(&self) -> bool {
        self.down.iter().flatten().any(|op| op.lossy())
    }
}

/// Lowers a migration's operations and `down` block, with every diagnostic.
pub(crate) fn lower_migration(migration: &MigrationDef) -> (LoweredOps, Vec<Diagnostic>) {
    let (ops, mut diagnostics) = safeshift_ops::lower_all(migration.source, &migration.ast.ops);
    let down = migration.ast.down.as_ref().map(|down| {
        let (ops, more) = safeshift_ops::lower_all(migration.source, &down.ops);
        diagnostics.extend(more);
        ops
    });
    (LoweredOps { ops, down }, diagnostics)
}

/// What running operations over a set gave.
pub(crate) struct Applied {
    /// The set after the operations.
    pub set: TensorSet,
    /// The operations that undo them (in the order to apply), or why there are none.
    pub inverse: Result<Vec<Box<dyn Operation>>, NoInverse>,
    /// For each tensor the operations created or changed, the statement that last did.
    pub made_by: BTreeMap<String, Span>,
}

/// Applies `ops` in order, computing the inverse of each on the set it was applied to.
pub(crate) fn apply_ops(ops: &[Box<dyn Operation>], mut set: TensorSet, ctx: &OpContext) -> Result<Applied, OpError> {
    let mut inverses: Vec<Vec<Box<dyn Operation>>> = Vec::new();
    let mut no_inverse = None;
    let mut made_by = BTreeMap::new();
    for op in ops {
        let before = set.clone();
        op.apply(&mut set, ctx)?;
        if no_inverse.is_none() {
            match op.inverse(&before, ctx) {
                Ok(inverse) => inverses.push(inverse),
                Err(err) => no_inverse = Some(err),
            }
        }
        for (name, value) in set.iter() {
            if before.get(name) != Some(value) {
                made_by.insert(name.to_owned(), op.span());
            }
        }
    }
    let inverse = match no_inverse {
        Some(err) => Err(err),
        None => Ok(inverses.into_iter().rev().flatten().collect()),
    };
    Ok(Applied { set, inverse, made_by })
}

/// Applies `ops` in order, without inverses (runs of renames in one pass).
pub(crate) fn apply_plain(ops: &[Box<dyn Operation>], set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
    safeshift_ops::apply_all(ops, set, ctx)
}

/// The counted dims of a schema, each set to `count`.
pub(crate) fn counts(schema: &Schema, count: i64) -> BTreeMap<String, i64> {
    schema.dims.iter().filter(|dim| dim.kind == DimKind::Counted).map(|dim| (dim.name.clone(), count)).collect()
}

/// The symbolic tensors of `schema` with counted dims from `counts`; a count the names
/// need beyond those (a derived bound) is added with `default_count`, if given.
pub(crate) fn instantiate(
    schema: &Schema,
    counts: &mut BTreeMap<String, i64>,
    default_count: Option<i64>,
) -> Result<Vec<SymTensor>, safeshift_model::InstantiateError> {
    // Each retry binds one more dim, so this ends within the number of dims.
    for _ in 0..=schema.dims.len() {
        match (safeshift_model::instantiate_symbolic(schema, counts), default_count) {
            (Err(safeshift_model::InstantiateError::MissingDim { dim, .. }), Some(count))
                if !counts.contains_key(&dim) =>
            {
                counts.insert(dim, count);
            }
            (other, _) => return other,
        }
    }
    safeshift_model::instantiate_symbolic(schema, counts)
}

/// A tensor set holding `tensors` as sources, with the schema's metadata.
pub(crate) fn set_of(tensors: &[SymTensor], schema: &Schema) -> TensorSet {
    let mut set = TensorSet::new();
    for tensor in tensors {
        set.insert(&tensor.name, TensorValue::source(&tensor.name, tensor.dtype, tensor.shape.clone()));
    }
    set.metadata = schema_metadata(schema);
    set
}

/// Placeholder for a metadata key the schema names without a value.
pub(crate) const UNKNOWN_META: &str = "{}";

/// The metadata a schema describes: its `meta` keys with their values (or a placeholder).
pub(crate) fn schema_metadata(schema: &Schema) -> BTreeMap<String, String> {
    schema
        .meta
        .iter()
        .map(|meta| {
            let value = match &meta.value {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => UNKNOWN_META.to_owned(),
            };
            (meta.key.clone(), value)
        })
        .collect()
}

/// The dims in scope for `migration` over symbolic sets: the source schema's (counted
/// ones as their counts, derived ones expanded), the migration's, and the target's.
pub(crate) fn symbolic_context(
    migration: &MigrationDef,
    from: &Schema,
    to: Option<&Schema>,
    counts: &BTreeMap<String, i64>,
    tensors: &[SymTensor],
) -> OpContext {
    let mut ctx = OpContext::new(migration.source);
    for schema in std::iter::once(from).chain(to) {
        let derived = schema.derived_definitions();
        for dim in &schema.dims {
            if ctx.dims.contains_key(&dim.name) {
                continue;
            }
            let value = match counts.get(&dim.name) {
                Some(count) => Sym::int(*count),
                None => derived.get(&dim.name).cloned().unwrap_or_else(|| Sym::dim(&dim.name)),
            };
            ctx.dims.insert(dim.name.clone(), substitute(&value, counts));
        }
    }
    for decl in &migration.ast.decls {
        match &decl.kind {
            ast::MigrationDeclKind::Dim(dim) => {
                let value = match &dim.value {
                    Some(ast::DimValue::Expr(expr)) => ctx.resolve(expr).unwrap_or_else(|_| Sym::from_expr(expr)),
                    _ => Sym::dim(&dim.name.node),
                };
                ctx.dims.insert(dim.name.node.clone(), value);
            }
            ast::MigrationDeclKind::Param { .. } | ast::MigrationDeclKind::Aux { .. } => {}
        }
    }
    symbolic_params(migration, &mut ctx);
    let shape_of = |pattern: &ast::Pattern| {
        tensors.iter().find(|tensor| match_name(pattern, &tensor.name).is_some()).map(|tensor| tensor.shape.clone())
    };
    ctx.aux = symbolic_aux(migration, &shape_of);
    ctx
}

/// Over schemas, every parameter maps each captured name to itself.
pub(crate) fn symbolic_params(migration: &MigrationDef, ctx: &mut OpContext) {
    for decl in &migration.ast.decls {
        if let ast::MigrationDeclKind::Param { name, doc, .. } = &decl.kind {
            let param = Param { doc: doc.node.clone(), value: Some(ParamValue::Symbolic) };
            ctx.params.insert(name.node.clone(), param);
        }
    }
}

fn substitute(sym: &Sym, counts: &BTreeMap<String, i64>) -> Sym {
    let mut out = sym.clone();
    for name in sym.dims() {
        if let Some(value) = counts.get(&name) {
            out = out.substitute(&name, &Sym::int(*value));
        }
    }
    out
}

/// How an aux tensor is used: an index of `length` (`AUX["t"]`, `argsort(AUX["t"])`), or
/// a 2-d tensor whose row `row` is sorted (`argsort(AUX["t"], row)`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AuxUse {
    /// The index length: that axis of the first tensor the gather's source matches.
    pub length: Option<Sym>,
    /// For `argsort(AUX["t"], row)`: the row.
    pub row: Option<u64>,
}

impl AuxUse {
    /// The shape the tensor must have, with `length` for an unknown length.
    pub fn shape(&self, length: Sym) -> Vec<Sym> {
        match self.row {
            Some(row) => vec![Sym::int(row as i64 + 1), length],
            None => vec![length],
        }
    }
}

/// The aux tensor of an `index` value: `AUX["t"]`, or the one `argsort(AUX["t"][, row])` sorts.
fn aux_of(value: &Value) -> Option<(&ast::Name, &ast::Spanned<String>, Option<u64>)> {
    match value {
        Value::Aux { input, tensor } => Some((input, tensor, None)),
        Value::Call { name, args } if name.node == "argsort" => {
            let Some(Value::Aux { input, tensor }) = args.first() else { return None };
            let row = match args.get(1) {
                Some(Value::Expr(ast::Expr { kind: ast::ExprKind::Int(row), .. })) => Some(*row),
                _ => None,
            };
            Some((input, tensor, row))
        }
        _ => None,
    }
}

/// The aux tensors a migration's operations read, by `(input, tensor)`, each with the
/// length it must have if the registry is right: an aux tensor is (or is sorted into) an
/// index along an axis (`gather SRC axis N index AUX["t"]`), so its length is that axis of
/// the first tensor `shape_of` finds for `SRC`; `None` when there is no such tensor.
pub(crate) fn aux_lengths(
    migration: &MigrationDef,
    shape_of: &dyn Fn(&ast::Pattern) -> Option<Vec<Sym>>,
) -> BTreeMap<(String, String), AuxUse> {
    let mut lengths = BTreeMap::new();
    let ops = migration.ast.ops.iter().chain(migration.ast.down.iter().flat_map(|down| down.ops.iter()));
    for op in ops {
        let source = op.operands.iter().find_map(|operand| match &operand.kind {
            ast::OperandKind::Patterns(patterns) => patterns.first(),
            _ => None,
        });
        let axis = op.operands.iter().find_map(|operand| match &operand.kind {
            ast::OperandKind::Clause { keyword, value: Value::Expr(expr) } if keyword.node == "axis" => match expr.kind
            {
                ast::ExprKind::Int(axis) => usize::try_from(axis).ok(),
                _ => None,
            },
            _ => None,
        });
        for operand in &op.operands {
            let value = match &operand.kind {
                ast::OperandKind::Clause { value, .. } | ast::OperandKind::Assign(value) => value,
                _ => continue,
            };
            if let Some((input, tensor, row)) = aux_of(value) {
                let length = source.zip(axis).and_then(|(source, axis)| shape_of(source)?.get(axis).cloned());
                lengths.insert((input.node.clone(), tensor.node.clone()), AuxUse { length, row });
            }
        }
    }
    lengths
}

/// Aux tensors for symbolic checks: integer indices of the length [`aux_lengths`] infers
/// (an opaque dim when it cannot).
pub(crate) fn symbolic_aux(
    migration: &MigrationDef,
    shape_of: &dyn Fn(&ast::Pattern) -> Option<Vec<Sym>>,
) -> BTreeMap<(String, String), AuxInfo> {
    aux_lengths(migration, shape_of)
        .into_iter()
        .map(|((input, tensor), used)| {
            let length = used.length.clone().unwrap_or_else(|| Sym::dim(&format!("{input}[{tensor}]")));
            ((input, tensor), AuxInfo { dtype: DTypeClass::Int, shape: used.shape(length) })
        })
        .collect()
}

/// The names of the input tensors `expr` reads (aux tensors excluded).
pub(crate) fn source_names(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Source(leaf) => {
            if leaf.aux.is_none() {
                out.insert(leaf.name.clone());
            }
        }
        Expr::Reshape { input, .. }
        | Expr::Permute { input, .. }
        | Expr::Narrow { input, .. }
        | Expr::Cast { input, .. }
        | Expr::Pad { input, .. } => source_names(input, out),
        Expr::Concat { inputs, .. } | Expr::Merge { inputs } => {
            inputs.iter().for_each(|input| source_names(input, out))
        }
        Expr::Gather { input, index, .. } => {
            source_names(input, out);
            source_names(index, out);
        }
        Expr::InversePermutation { index } | Expr::Argsort { input: index } => source_names(index, out),
        Expr::Fill { .. } => {}
    }
}

/// The tensors of a set as symbolic tensors; a tensor is optional when every input it
/// reads is (a fresh tensor, read from nothing, is required).
pub(crate) fn sym_tensors(set: &TensorSet, optional_inputs: &BTreeSet<String>) -> Vec<SymTensor> {
    set.iter()
        .map(|(name, value)| {
            let mut inputs = BTreeSet::new();
            source_names(value.expr(), &mut inputs);
            let optional = !inputs.is_empty() && inputs.iter().all(|input| optional_inputs.contains(input));
            SymTensor { name: name.to_owned(), dtype: value.dtype(), shape: value.shape().to_vec(), optional }
        })
        .collect()
}

/// The names of the optional tensors of an instantiation.
pub(crate) fn optional_names(tensors: &[SymTensor]) -> BTreeSet<String> {
    tensors.iter().filter(|tensor| tensor.optional).map(|tensor| tensor.name.clone()).collect()
}
