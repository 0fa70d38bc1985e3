//! The interface every operation implements, and its errors.

use std::collections::BTreeMap;
use std::fmt;

use safeshift_dsl::ast::Span;
use safeshift_dsl::SourceId;

use crate::expr::ShapeError;
use crate::tensor_set::{EagerSet, OpContext, TensorSet};

/// One lowered operation of a migration.
///
/// [`apply`](Operation::apply) is both the shape rule (over symbolic sets, for the static
/// checker) and the lazy plan (it builds [`Expr`](crate::Expr)s); [`eager`](Operation::eager)
/// is an independent reference implementation over materialised tensors, used to prove the
/// lazy plan right.
pub trait Operation: fmt::Debug + Send + Sync + OperationClone {
    /// The op name as written (`split-heads`).
    fn name(&self) -> &'static str;

    /// The statement in the registry file.
    fn span(&self) -> Span;

    /// Whether the operation loses information (and must be marked `lossy`).
    fn lossy(&self) -> bool;

    /// Transforms the set: matched tensors are replaced by their lazy results.
    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError>;

    /// The reference implementation over materialised tensors: plain index loops, for
    /// tests and small tensors (it favours obviousness over speed and memory).
    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError>;

    /// The operations that undo this one, given the set it was applied to (`before`):
    /// applying `self` then the inverse gives `before` back, bytes included.
    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse>;

    /// The concrete operation, for [`apply_all`](crate::apply_all), which applies some
    /// operations together (a run of renames in one pass).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// What each builtin's file implements: what is particular to that operation.
/// [`Operation`] follows for every builtin, its name and span read from its [`OpBase`].
pub(crate) trait Builtin: fmt::Debug + Clone + Send + Sync + 'static {
    /// The op name and where it was written.
    fn base(&self) -> &OpBase;

    /// See [`Operation::lossy`]; most operations lose nothing.
    fn lossy(&self) -> bool {
        false
    }

    /// See [`Operation::apply`].
    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError>;

    /// See [`Operation::eager`].
    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError>;

    /// See [`Operation::inverse`].
    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse>;
}

/// A builtin that never reads a tensor's values: it renames, copies or drops tensors, or
/// edits metadata. Its lazy plan and its reference implementation are one edit of the
/// set's entries, whatever the values are ([`Builtin`] follows).
pub(crate) trait Structural: fmt::Debug + Clone + Send + Sync + 'static {
    /// The op name and where it was written.
    fn base(&self) -> &OpBase;

    /// See [`Operation::lossy`]; most operations lose nothing.
    fn lossy(&self) -> bool {
        false
    }

    /// Edits the names, order and metadata of a lazy or an eager set alike.
    fn edit<V: Clone>(&self, set: Entries<'_, V>, ctx: &OpContext) -> Result<(), OpError>;

    /// See [`Operation::inverse`].
    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse>;
}

impl<T: Structural> Builtin for T {
    fn base(&self) -> &OpBase {
        Structural::base(self)
    }

    fn lossy(&self) -> bool {
        Structural::lossy(self)
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        self.edit(Entries { tensors: &mut set.tensors, metadata: &mut set.metadata }, ctx)
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        self.edit(Entries { tensors: &mut set.tensors, metadata: &mut set.metadata }, ctx)
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Structural::inverse(self, before, ctx)
    }
}

impl<T: Builtin> Operation for T {
    fn name(&self) -> &'static str {
        Builtin::base(self).name
    }

    fn span(&self) -> Span {
        Builtin::base(self).span
    }

    fn lossy(&self) -> bool {
        Builtin::lossy(self)
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        Builtin::apply(self, set, ctx)
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        Builtin::eager(self, set, ctx)
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Builtin::inverse(self, before, ctx)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// What a [`TensorSet`] and an [`EagerSet`] both hold, whatever their values are: what a
/// [`Structural`] operation edits.
pub(crate) struct Entries<'s, V> {
    /// The tensors by name, in order.
    pub tensors: &'s mut Vec<(String, V)>,
    /// The `__metadata__` map.
    pub metadata: &'s mut BTreeMap<String, String>,
}

/// Cloning of boxed operations (implemented for every `Operation + Clone`).
pub trait OperationClone {
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn Operation>;
}

impl<T: Operation + Clone + 'static> OperationClone for T {
    fn clone_box(&self) -> Box<dyn Operation> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn Operation> {
    fn clone(&self) -> Box<dyn Operation> {
        self.clone_box()
    }
}

/// Why an operation could not be applied.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("`{op}`{}: {kind}", tensor.as_ref().map(|name| format!(" on `{name}`")).unwrap_or_default())]
pub struct OpError {
    /// The op name.
    pub op: &'static str,
    /// The registry file.
    pub file: SourceId,
    /// The statement.
    pub span: Span,
    /// The tensor (or metadata key) at fault, when there is one.
    pub tensor: Option<String>,
    /// What went wrong.
    pub kind: OpErrorKind,
}

/// The kinds of [`OpError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OpErrorKind {
    /// A pattern that must match matched no tensor.
    #[error("no tensor matches `{pattern}`")]
    NoMatch {
        /// The pattern, as written.
        pattern: String,
    },
    /// Two tensors would end up with one name.
    #[error("two tensors would be named `{name}`")]
    Collision {
        /// The name.
        name: String,
    },
    /// A tensor the operation needs is missing.
    #[error("tensor `{name}` does not exist")]
    MissingTensor {
        /// Its name.
        name: String,
    },
    /// A dim not in scope.
    #[error("unknown dim `{name}`")]
    UnknownDim {
        /// Its name.
        name: String,
    },
    /// A target name could not be built.
    #[error("cannot build the target name: {message}")]
    Name {
        /// Why.
        message: String,
    },
    /// An ill-formed result shape.
    #[error(transparent)]
    Shape(Box<ShapeError>),
    /// An operand that does not fit the tensor (axis out of range, size not divisible).
    #[error("{message}")]
    Invalid {
        /// Why.
        message: String,
    },
    /// A narrowing the statement did not mark `lossy`.
    #[error("{message}; mark the operation `lossy` if that is intended")]
    MissingLossy {
        /// What is lost.
        message: String,
    },
    /// A metadata edit that cannot be made.
    #[error("{message}")]
    Metadata {
        /// Why.
        message: String,
    },
    /// An aux tensor that is not available.
    #[error("aux tensor `{input}[\"{tensor}\"]` is not available")]
    Aux {
        /// The aux input.
        input: String,
        /// The tensor.
        tensor: String,
    },
    /// A parameter the operation needs has no value.
    #[error("the parameter `{}` ({}) has no value; give it with `--param {}=VALUE`", param.name, param.doc, param.name)]
    MissingParam {
        /// The parameter.
        param: Box<ParamInfo>,
    },
    /// A one-string parameter used where it must name several things apart, or a map
    /// without an entry for one of them.
    #[error(
        "the parameter `{}` ({}) needs a value for each of {}: give `--param {}={}`",
        param.name, param.doc, keys_text(keys), param.name, example(keys)
    )]
    ParamNeedsMap {
        /// The parameter.
        param: Box<ParamInfo>,
        /// Every key that needs a value (those missing from a map, or all of them).
        keys: Vec<String>,
    },
    /// Undoing a relabelling needs to know which key each label came from.
    #[error(
        "undoing `{}` ({}) needs the key of each of {}: give `--param {}={}`",
        param.name, param.doc, keys_text(labels), param.name, inverse_example(labels)
    )]
    ParamNeedsInverse {
        /// The parameter.
        param: Box<ParamInfo>,
        /// The labels whose key is unknown.
        labels: Vec<String>,
    },
    /// The reference implementation failed on data.
    #[error("{message}")]
    Data {
        /// Why.
        message: String,
    },
}

/// A migration parameter, named in an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// Its name.
    pub name: String,
    /// What it means (its declaration's description).
    pub doc: String,
}

fn keys_text(keys: &[String]) -> String {
    keys.iter().map(|key| format!("`{key}`")).collect::<Vec<_>>().join(", ")
}

fn inverse_example(labels: &[String]) -> String {
    labels.iter().map(|label| format!("KEY:{label}")).collect::<Vec<_>>().join(",")
}

fn example(keys: &[String]) -> String {
    keys.iter().map(|key| format!("{key}:NAME")).collect::<Vec<_>>().join(",")
}

impl From<ShapeError> for OpErrorKind {
    fn from(err: ShapeError) -> OpErrorKind {
        OpErrorKind::Shape(Box::new(err))
    }
}

impl OpErrorKind {
    /// An [`OpErrorKind::Invalid`] with `message`.
    pub(crate) fn invalid(message: impl Into<String>) -> OpErrorKind {
        OpErrorKind::Invalid { message: message.into() }
    }
}

/// Why an operation has no automatic inverse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{op}` has no inverse: {reason}")]
pub struct NoInverse {
    /// The op name.
    pub op: &'static str,
    /// The statement.
    pub span: Span,
    /// Why (`it drops data`, `index arithmetic in the target`).
    pub reason: String,
}

/// What every operation records about where it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpBase {
    pub name: &'static str,
    pub file: SourceId,
    pub span: Span,
}

impl OpBase {
    pub fn error(&self, tensor: Option<&str>, kind: OpErrorKind) -> OpError {
        OpError { op: self.name, file: self.file, span: self.span, tensor: tensor.map(str::to_owned), kind }
    }

    pub fn no_inverse(&self, reason: impl Into<String>) -> NoInverse {
        NoInverse { op: self.name, span: self.span, reason: reason.into() }
    }

    /// The same base for an inverse op named `name`.
    pub fn renamed(&self, name: &'static str) -> OpBase {
        OpBase { name, ..*self }
    }
}
