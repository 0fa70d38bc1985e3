//! The typed syntax tree of a registry file.
//!
//! Every node keeps the byte span of its source text so that later passes (lowering,
//! static checking, planning) can point at the user's text. Nothing here knows what an
//! operation means: an operation is a name plus generic operands, resolved later through
//! the table of builtins in `safeshift-ops`.
//!
//! Comparisons that ignore positions go through [`normalize`](crate::normalize), which
//! sets every span to [`Span::DUMMY`].

/// A byte range `start..end` into the source text of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// The span used by trees built in code or normalised for comparison.
    pub const DUMMY: Span = Span { start: 0, end: 0 };

    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// A value with the span of the text it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Spanned<T> {
    /// The value.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps `node` with `span`.
    pub fn new(node: T, span: Span) -> Spanned<T> {
        Spanned { node, span }
    }
}

/// A name: an identifier, a family (`anemoi.encprocdec`), an op name (`split-heads`).
pub type Name = Spanned<String>;

/// One parsed file: its items in source order, and the comments of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// Schemas and migrations in source order.
    pub items: Vec<Item>,
    /// Comments that stand after the last item (or in an otherwise empty file).
    pub trailing_comments: Vec<Comment>,
}

/// A `// …` line comment, without the slashes and without the line break.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The text after `//`, leading space included as written.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// Comments attached to a statement: whole lines before it, and one at the end of its line.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Trivia {
    /// Whole-line comments directly before the statement.
    pub leading: Vec<Comment>,
    /// A comment after the statement on its last line.
    pub trailing: Option<Comment>,
}

/// A top-level item.
// A file has a handful of items; boxing them would cost every consumer a deref for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `schema family @ version { … }`
    Schema(Schema),
    /// `migration family from -> to { … }`
    Migration(Migration),
}

/// A version as written (`0.4.0`, `1.0.0-rc.1`); checked against semver by the semantic pass.
pub type Version = Spanned<String>;

/// `family @ version`, or a bare version where the family is implied by the item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRef {
    /// The family, when written.
    pub family: Option<Name>,
    /// The version.
    pub version: Version,
    /// The whole reference.
    pub span: Span,
}

/// `schema FAMILY @ VERSION ["doc"] { entries }`
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// The model family, dotted (`anemoi.encprocdec`).
    pub family: Name,
    /// The version.
    pub version: Version,
    /// The doc string, without quotes, escapes resolved.
    pub doc: Option<Spanned<String>>,
    /// Dims, tensors, allowances and metadata expectations in source order.
    pub entries: Vec<SchemaEntry>,
    /// Comments around the item header.
    pub trivia: Trivia,
    /// Comments after the last entry, before the closing brace.
    pub inner_trailing: Vec<Comment>,
    /// The whole item.
    pub span: Span,
}

/// One line inside a schema.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaEntry {
    /// What the line says.
    pub kind: SchemaEntryKind,
    /// Its comments.
    pub trivia: Trivia,
    /// The whole line.
    pub span: Span,
}

/// The kinds of schema lines.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemaEntryKind {
    /// `dim NAME [= VALUE]`
    Dim(DimDecl),
    /// `tensor PATTERN : TYPE [optional]`
    Tensor(TensorDecl),
    /// `allow PATTERN`: tensors the model may carry beyond the schema (training extras);
    /// they pass through migrations untouched and do not count against detection.
    Allow(Pattern),
    /// `meta "KEY" [= JSON]`: a metadata key the checkpoint records (with this value).
    Meta(MetaDecl),
}

/// `dim NAME [= VALUE]`
#[derive(Clone, Debug, PartialEq)]
pub struct DimDecl {
    /// The dim's name.
    pub name: Name,
    /// How it is bound, if not by unification or counting.
    pub value: Option<DimValue>,
}

/// The right-hand side of `dim NAME = …`.
#[derive(Clone, Debug, PartialEq)]
pub enum DimValue {
    /// Derived from other dims: `hidden / heads`, or a constant.
    Expr(Expr),
    /// `meta("json.path")`: read from checkpoint metadata; the first segment is the
    /// metadata key, the rest a path into its JSON value.
    Meta(Spanned<String>),
}

/// `tensor PATTERN : TYPE [optional]`
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDecl {
    /// The name pattern.
    pub pattern: Pattern,
    /// Dtype (or class) and symbolic shape.
    pub ty: TypeSpec,
    /// Whether the tensor may be absent.
    pub optional: bool,
}

/// `dtype[shape]`: `float[3 * hidden, hidden]`, `i64[]`, `any[n]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeSpec {
    /// A dtype (`f32`, `bf16`, `i64`, …) or a class (`float`, `int`, `any`).
    pub dtype: Name,
    /// One expression per axis; empty for a 0-d tensor.
    pub shape: Vec<Expr>,
    /// The whole `dtype[...]` text.
    pub span: Span,
}

/// `meta "KEY" [= JSON]`
#[derive(Clone, Debug, PartialEq)]
pub struct MetaDecl {
    /// The metadata key.
    pub key: Spanned<String>,
    /// The expected value, when given.
    pub value: Option<Json>,
}

/// `migration FROM -> TO ["doc"] { statements [down { ops }] }` where FROM and TO are
/// `family version` (shared family) or `family@version` each.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    /// Source version; `family` is always set after parsing (the shared family is copied).
    pub from: VersionRef,
    /// Target version; `family` is always set after parsing.
    pub to: VersionRef,
    /// Whether the header used the shared-family form `migration fam a -> b`.
    pub shared_family: bool,
    /// The doc string.
    pub doc: Option<Spanned<String>>,
    /// Dims and auxiliary inputs declared by the migration, in source order.
    pub decls: Vec<MigrationDecl>,
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// The explicit `down { … }` block, when written.
    pub down: Option<DownBlock>,
    /// Comments around the item header.
    pub trivia: Trivia,
    /// Comments after the last statement, before the closing brace.
    pub inner_trailing: Vec<Comment>,
    /// The whole item.
    pub span: Span,
}

/// A declaration inside a migration body.
#[derive(Clone, Debug, PartialEq)]
pub struct MigrationDecl {
    /// What it declares.
    pub kind: MigrationDeclKind,
    /// Its comments.
    pub trivia: Trivia,
    /// The whole line.
    pub span: Span,
}

/// The kinds of migration declarations.
#[derive(Clone, Debug, PartialEq)]
pub enum MigrationDeclKind {
    /// `dim NAME [= VALUE]`: a dim the operations use beyond the source schema's.
    Dim(DimDecl),
    /// `aux NAME "description"`: an input file the user supplies (`--aux NAME=PATH`).
    Aux {
        /// The name operations refer to (`graph`).
        name: Name,
        /// What the user must supply, shown in the error when it is missing.
        doc: Spanned<String>,
    },
    /// `param NAME "description" [= "default"]`: a string, or a map from captured names
    /// to strings, that the user supplies (`--param NAME=VALUE`, `--param NAME=a:x,b:y`).
    Param {
        /// The name operations refer to (`encoder_names`).
        name: Name,
        /// What it means, shown in the error when it is missing or incomplete.
        doc: Spanned<String>,
        /// The value when the user gives none; without one the parameter is required
        /// wherever an operation uses it.
        default: Option<Spanned<String>>,
    },
}

/// `down { ops }`
#[derive(Clone, Debug, PartialEq)]
pub struct DownBlock {
    /// The operations of the downgrade, in order.
    pub ops: Vec<Op>,
    /// Comments around `down {`.
    pub trivia: Trivia,
    /// Comments after the last op, before the closing brace.
    pub inner_trailing: Vec<Comment>,
    /// The whole block.
    pub span: Span,
}

/// One operation: a name and generic operands. `split "a" axis 0 into "b", "c"` is
/// `Op { name: "split", operands: [Pattern("a"), Clause(axis, 0), Clause(into, ["b", "c"])] }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The op name (`rename`, `split-heads`, `meta-set`).
    pub name: Name,
    /// Operands in source order.
    pub operands: Vec<Operand>,
    /// Its comments.
    pub trivia: Trivia,
    /// The whole statement.
    pub span: Span,
}

/// One operand of an operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Operand {
    /// What it is.
    pub kind: OperandKind,
    /// Where it was written.
    pub span: Span,
}

/// The generic operand forms.
#[derive(Clone, Debug, PartialEq)]
pub enum OperandKind {
    /// Comma-separated string literals, each a name pattern or a metadata key:
    /// `"a"`, or `"a", "b", "c"`.
    Patterns(Vec<Pattern>),
    /// `-> "pattern"`, `-> "a", "b"`: the target(s) of a rename-like operation.
    Arrow(Vec<Pattern>),
    /// A clause word and its value: `axis 0`, `into "a", "b"`, `to [h, d]`, `layout interleaved`.
    Clause {
        /// One of the clause words of the grammar (see `KEYWORDS`).
        keyword: Name,
        /// Its value.
        value: Value,
    },
    /// A flag word: `lossy`, `optional`, `derived`.
    Flag(Name),
    /// `: dtype[shape]`
    Type(TypeSpec),
    /// `= value`: an initialiser (`zeros`, `fill(1)`) or a JSON value for metadata.
    Assign(Value),
}

/// A clause or assignment value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// One or more string literals: `"a", "b"`.
    Patterns(Vec<Pattern>),
    /// A bracketed list of expressions: `[heads, 3, head_dim]`.
    List(Vec<Expr>),
    /// An integer expression or a bare word: `0`, `hidden / 2`, `interleaved`, `bf16`.
    Expr(Expr),
    /// A call: `fill(0.5)`, `meta("a.b")`; arguments are values.
    Call {
        /// The function name.
        name: Name,
        /// Its arguments.
        args: Vec<Value>,
    },
    /// An auxiliary tensor: `graph["data_to_hidden.perm_sort_by_dst"]`.
    Aux {
        /// The aux input's name.
        input: Name,
        /// The tensor name inside it.
        tensor: Spanned<String>,
    },
    /// A JSON literal other than a plain integer: `"text"`, `1.5`, `true`, `null`, `[…]`, `{…}`.
    Json(Json),
}

/// A JSON literal as written; numbers keep their source text.
#[derive(Clone, Debug, PartialEq)]
pub struct Json {
    /// The value.
    pub kind: JsonKind,
    /// Where it was written.
    pub span: Span,
}

/// JSON literal kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as written (`-1.5e3`).
    Number(String),
    /// A string, escapes resolved.
    String(String),
    /// `[…]`
    Array(Vec<Json>),
    /// `{"k": v, …}` in source order.
    Object(Vec<(Spanned<String>, Json)>),
}

/// An integer expression over dims and pattern captures.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// Expression kinds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExprKind {
    /// A non-negative integer literal (negative numbers are `Neg`).
    Int(u64),
    /// A dim, a capture, or a bare word (`interleaved`, `bf16`) interpreted by the op.
    Ident(String),
    /// `-e`
    Neg(Box<Expr>),
    /// `a op b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// Binary operators, by increasing precedence: `+ -` then `* / %`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`: exact division (a remainder is an error where it is evaluated).
    Div,
    /// `%`
    Rem,
}

/// A parsed name pattern (the content of a string literal in pattern position).
///
/// `"model.{i < layers}.blocks.{j}.{rest..}"` is literal `model.`, a counted capture,
/// literal `.blocks.`, a one-segment capture, literal `.`, a multi-segment capture.
/// `"proc.{c * blocks + j}.w"` (in a target) holds an expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The pieces in order. Adjacent literals are merged.
    pub parts: Vec<PatternPart>,
    /// The string literal, quotes included.
    pub span: Span,
}

/// One piece of a name pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PatternPart {
    /// Literal text (escapes resolved).
    Literal(String),
    /// `{x}`: one dotted segment (no `.`); `{x..}`: one or more segments.
    Capture {
        /// The capture's name.
        name: Name,
        /// Whether it spans several dotted segments.
        multi: bool,
    },
    /// `{i < n}`: a decimal index segment; the number of distinct values binds dim `n`
    /// (indices must be exactly `0..n`).
    Counted {
        /// The index capture's name.
        name: Name,
        /// The dim it counts, an expression (usually a dim name).
        bound: Expr,
    },
    /// `{expr}` other than a lone identifier: index arithmetic in a target pattern.
    Expr(Expr),
}

impl Pattern {
    /// The literal text of a pattern without any capture, if it is one.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [PatternPart::Literal(s)] => Some(s),
            _ => None,
        }
    }
}

/// The clause words the grammar knows (the value-taking words between operands).
pub const KEYWORDS: &[&str] = &[
    "at", "axes", "axis", "by", "each", "from", "head_dim", "heads", "index", "into", "kv_heads", "layout", "sizes",
    "to", "value",
];

/// The flag words the grammar knows (operands without a value).
pub const FLAGS: &[&str] = &["derived", "lossy", "optional"];
