//! Semantic schemas: what a schema item means once names are resolved.
//!
//! The language gives a [`ast::Schema`](safeshift_dsl::ast::Schema) with dtype names and
//! shape expressions as written; [`lower_schema`](crate::lower_schema) turns it into a
//! [`Schema`]: dtypes resolved to [`DTypeClass`]es, shapes and derived dims as [`Sym`]s,
//! every dim classified by how it gets its value ([`DimKind`]).

use std::collections::BTreeMap;

use safeshift_dsl::ast::{self, PatternPart, Span};
use safeshift_dsl::SourceId;

use crate::{DTypeClass, Sym};

/// The tensor layout of one model family at one version, with meaning attached.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// The model family, dotted (`anemoi.encprocdec`).
    pub family: String,
    /// The version.
    pub version: semver::Version,
    /// The doc string.
    pub doc: Option<String>,
    /// The dims, in source order.
    pub dims: Vec<DimDef>,
    /// The tensors, in source order; a layout tensor belongs to the first that matches.
    pub tensors: Vec<TensorDef>,
    /// Name patterns of tensors the model may carry beyond the schema.
    pub allows: Vec<ast::Pattern>,
    /// Metadata keys the checkpoint records.
    pub meta: Vec<MetaDef>,
    /// The source text it came from.
    pub source: SourceId,
    /// The whole item.
    pub span: Span,
}

/// One dim of a schema (or one a migration declares).
#[derive(Clone, Debug, PartialEq)]
pub struct DimDef {
    /// Its name.
    pub name: String,
    /// How it gets its value.
    pub kind: DimKind,
    /// Where it was declared.
    pub span: Span,
}

/// How a dim gets its value.
#[derive(Clone, Debug, PartialEq)]
pub enum DimKind {
    /// `dim n`: bound by unifying shapes with a checkpoint, or given on the command line.
    Free,
    /// `dim n = EXPR`: computed from other dims (exact division).
    Derived(Sym),
    /// `dim n = meta("key.json.path")`: read from the checkpoint's metadata.
    Meta(String),
    /// `dim n`, used as the bound of a `{i < n}` pattern: bound by counting names.
    Counted,
}

/// One tensor (or family of tensors, with captures) of a schema.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDef {
    /// The name pattern.
    pub pattern: ast::Pattern,
    /// The dtypes it accepts.
    pub dtype: DTypeClass,
    /// One symbolic size per axis; empty for a 0-d tensor.
    pub shape: Vec<Sym>,
    /// Whether it may be absent.
    pub optional: bool,
    /// Where it was declared.
    pub span: Span,
}

/// A metadata key a schema expects.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaDef {
    /// The `__metadata__` key.
    pub key: String,
    /// The value it must have, when given.
    pub value: Option<serde_json::Value>,
    /// Where it was declared.
    pub span: Span,
}

impl Schema {
    /// `family@version`, the way the CLI and diagnostics name a schema.
    pub fn id(&self) -> String {
        format!("{}@{}", self.family, self.version)
    }

    /// The dim called `name`.
    pub fn dim(&self, name: &str) -> Option<&DimDef> {
        self.dims.iter().find(|dim| dim.name == name)
    }

    /// The derived dims' definitions, each expanded so that it mentions no derived dim
    /// (derived dims may use each other). Cycles were reported by lowering, which turned
    /// their members into free dims, so this terminates.
    pub fn derived_definitions(&self) -> BTreeMap<String, Sym> {
        let mut definitions: BTreeMap<String, Sym> = BTreeMap::new();
        for dim in &self.dims {
            if let DimKind::Derived(sym) = &dim.kind {
                definitions.insert(dim.name.clone(), sym.clone());
            }
        }
        // Each round substitutes one level; a chain longer than the number of derived
        // dims would be a cycle, which cannot be here, but the bound keeps it total.
        for _ in 0..definitions.len() {
            let snapshot = definitions.clone();
            let mut changed = false;
            for sym in definitions.values_mut() {
                let expanded = substitute_all(sym, &snapshot);
                if expanded != *sym {
                    *sym = expanded;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        definitions
    }

    /// `sym` with every derived dim replaced by its definition over non-derived dims.
    pub fn expand_derived(&self, sym: &Sym) -> Sym {
        substitute_all(sym, &self.derived_definitions())
    }
}

/// `sym` with each dim named in `definitions` replaced by its definition (one level).
pub(crate) fn substitute_all(sym: &Sym, definitions: &BTreeMap<String, Sym>) -> Sym {
    let mut out = sym.clone();
    for name in sym.dims() {
        if let Some(definition) = definitions.get(&name) {
            out = out.substitute(&name, definition);
        }
    }
    out
}

/// Renders a pattern back to its text, without quotes, escaping braces (`{{`).
pub fn pattern_text(pattern: &ast::Pattern) -> String {
    let mut out = String::new();
    for part in &pattern.parts {
        match part {
            PatternPart::Literal(text) => {
                for ch in text.chars() {
                    match ch {
                        '{' => out.push_str("{{"),
                        '}' => out.push_str("}}"),
                        other => out.push(other),
                    }
                }
            }
            PatternPart::Capture { name, multi } => {
                out.push('{');
                out.push_str(&name.node);
                if *multi {
                    out.push_str("..");
                }
                out.push('}');
            }
            PatternPart::Counted { name, bound } => {
                out.push_str(&format!("{{{} < {}}}", name.node, crate::render::expr_text(bound)));
            }
            PatternPart::Expr(expr) => {
                out.push_str(&format!("{{{}}}", crate::render::expr_text(expr)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::schema;

    #[test]
    fn derived_dims_expand_through_chains() {
        let schema = schema(
            "schema t @ 1.0.0 {\n dim b\n dim c = a + 1\n dim a = b * 2\n dim d = c * a\n tensor \"x\" : f32[d]\n}",
        );
        let definitions = schema.derived_definitions();
        let b = Sym::dim("b");
        let a = b.mul(&Sym::int(2));
        let c = a.add(&Sym::int(1));
        assert_eq!(definitions["c"], c);
        assert_eq!(definitions["d"], c.mul(&a));
        assert_eq!(schema.expand_derived(&schema.tensors[0].shape[0]), c.mul(&a));
        assert_eq!(schema.dim("a").map(|dim| &dim.kind), Some(&DimKind::Derived(b.mul(&Sym::int(2)))));
    }

    #[test]
    fn pattern_text_escapes_braces() {
        let schema = schema("schema t @ 1.0.0 {\n dim n\n tensor \"a{{b}}.{i < n}.{x}.{rest..}\" : f32[]\n}");
        assert_eq!(pattern_text(&schema.tensors[0].pattern), "a{{b}}.{i < n}.{x}.{rest..}");
        assert_eq!(schema.id(), "t@1.0.0");
    }
}
