//! Migration operations: shape rules, lazy tensor expressions, pure kernels, inverses.
//!
//! A migration is a list of operations (`rename`, `split`, `split-heads`, `cast`, …,
//! each in its own file under `src/ops/`). [`lower`] turns the generic AST of one
//! operation into an [`Operation`], reporting bad operands as [`Diagnostic`](safeshift_dsl::Diagnostic)s. Applying
//! an operation to a [`TensorSet`] (names → [`TensorValue`]s, plus metadata) in an
//! [`OpContext`] (dims, aux inputs) replaces the tensors it matches by lazy [`Expr`]s: the
//! same call is the static shape check (over symbolic [`Sym`](safeshift_model::Sym) shapes) and the plan (over
//! concrete shapes).
//!
//! Every operation lowers to one small core algebra: source, reshape, permute, narrow,
//! concat, cast, pad, fill, gather. [`simplify`] collapses chains (reshapes fuse,
//! permutations compose and cancel, narrows merge and move towards the sources), and
//! [`byte_range`] recognises the expressions that are a contiguous byte range of one
//! source, which the engine borrows from the memory map instead of computing. The
//! kernels ([`evaluate`], [`evaluate_slice`]) are pure functions over byte slices; casts
//! follow PyTorch bit for bit (see [`cast`]).
//!
//! Each operation also has a reference implementation over materialised tensors
//! ([`Operation::eager`], plain index loops) which the tests hold the lazy plans to, and
//! an [`Operation::inverse`] (given the set it was applied to) that downgrades use.
//!
//! ```
//! use std::borrow::Cow;
//! use safeshift_dsl::ast::{Op, Operand, OperandKind, Pattern, PatternPart, Span, Spanned, Value, Expr, ExprKind};
//! use safeshift_dsl::SourceId;
//! use safeshift_model::{DType, DTypeClass, Sym};
//! use safeshift_ops::{byte_range, evaluate, lower, OpContext, TensorSet, TensorValue};
//!
//! // split "qkv" axis 0 into "q", "k", "v"
//! let literal = |text: &str| Pattern { parts: vec![PatternPart::Literal(text.into())], span: Span::DUMMY };
//! let word = |text: &str| Spanned::new(text.to_owned(), Span::DUMMY);
//! let operand = |kind| Operand { kind, span: Span::DUMMY };
//! let op = Op {
//!     name: word("split"),
//!     operands: vec![
//!         operand(OperandKind::Patterns(vec![literal("qkv")])),
//!         operand(OperandKind::Clause { keyword: word("axis"), value: Value::Expr(Expr { kind: ExprKind::Int(0), span: Span::DUMMY }) }),
//!         operand(OperandKind::Clause { keyword: word("into"), value: Value::Patterns(vec![literal("q"), literal("k"), literal("v")]) }),
//!     ],
//!     trivia: Default::default(),
//!     span: Span::DUMMY,
//! };
//! let split = lower(SourceId(0), &op).map_err(|diagnostics| format!("{diagnostics:?}"))?;
//!
//! let mut set = TensorSet::new();
//! set.insert("qkv", TensorValue::source("qkv", DTypeClass::Exact(DType::F32), vec![Sym::int(6), Sym::int(2)]));
//! split.apply(&mut set, &OpContext::default())?;
//!
//! let k = set.get("k").unwrap();
//! assert_eq!(k.shape(), [Sym::int(2), Sym::int(2)]);
//! let range = byte_range(k.expr()).unwrap(); // zero-copy: bytes 16..32 of `qkv`
//! assert_eq!((range.source.as_str(), range.start, range.end), ("qkv", 16, 32));
//!
//! let qkv: Vec<u8> = (0..48).collect();
//! let bytes = evaluate(k.expr(), &|_| Ok::<_, std::io::Error>(Cow::Borrowed(&qkv[..])))?;
//! assert_eq!(bytes, (16..32).collect::<Vec<u8>>());
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod apply;
mod byte_range;
pub mod cast;
mod eager;
mod expr;
mod kernel;
mod lower;
mod operation;
mod ops;
mod planned;
mod rewrite;
mod simplify;
mod strided;
mod tensor_set;

#[cfg(test)]
mod tests;

pub use apply::apply_all;
pub use byte_range::{byte_range, ByteRange};
pub use expr::{accept_unequal_merges, dtype_of, numel, shape_of, shape_text, Expr, Init, Leaf, ShapeError};
pub use kernel::{evaluate, evaluate_into, evaluate_slice, narrow_rows, EvalError, SourceError, SourceFn};
pub use lower::{builtin_names, lower, lower_all};
pub use operation::{NoInverse, OpError, OpErrorKind, Operation, OperationClone, ParamInfo};
pub use planned::{NotConcrete, PlannedTensor};
pub use simplify::simplify;
pub use tensor_set::{AuxInfo, EagerSet, EagerTensor, OpContext, Param, ParamValue, TensorSet, TensorValue};
