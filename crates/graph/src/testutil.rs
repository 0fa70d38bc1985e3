//! Small registries built as syntax trees in code, for unit tests.

use safeshift_dsl::ast::{self, Span, Spanned};
use safeshift_dsl::Diagnostic;

use crate::{Manifest, Registry, Sources};

fn name(text: &str) -> ast::Name {
    Spanned::new(text.to_owned(), Span::DUMMY)
}

fn version_ref(id: &str) -> ast::VersionRef {
    let (family, version) = id.split_once('@').expect("family@version");
    ast::VersionRef { family: Some(name(family)), version: name(version), span: Span::DUMMY }
}

/// `schema FAMILY @ VERSION {}` from `"family@version"`.
pub fn schema(id: &str) -> ast::Item {
    let (family, version) = id.split_once('@').expect("family@version");
    ast::Item::Schema(ast::Schema {
        family: name(family),
        version: name(version),
        doc: None,
        entries: Vec::new(),
        trivia: ast::Trivia::default(),
        inner_trailing: Vec::new(),
        span: Span::DUMMY,
    })
}

/// An operation `NAME [flags]` with no other operands.
pub fn op(op_name: &str, flags: &[&str]) -> ast::Op {
    ast::Op {
        name: name(op_name),
        operands: flags
            .iter()
            .map(|flag| ast::Operand { kind: ast::OperandKind::Flag(name(flag)), span: Span::DUMMY })
            .collect(),
        trivia: ast::Trivia::default(),
        span: Span::DUMMY,
    }
}

/// `migration FROM -> TO { ops }` from `"family@version"` ids.
pub fn migration(from: &str, to: &str, ops: Vec<ast::Op>) -> ast::Item {
    ast::Item::Migration(ast::Migration {
        from: version_ref(from),
        to: version_ref(to),
        shared_family: false,
        doc: None,
        decls: Vec::new(),
        ops,
        down: None,
        trivia: ast::Trivia::default(),
        inner_trailing: Vec::new(),
        span: Span::DUMMY,
    })
}

/// An invertible migration (one `rename`).
pub fn up(from: &str, to: &str) -> ast::Item {
    migration(from, to, vec![op("rename", &[])])
}

/// A registry of one file holding `items`.
pub fn registry(items: Vec<ast::Item>) -> (Registry, Vec<Diagnostic>) {
    let mut sources = Sources::default();
    let source = sources.add("test.ss".to_owned(), String::new());
    let file = ast::File { items, trailing_comments: Vec::new() };
    Registry::from_parsed(sources, vec![(source, file)], Manifest::default())
}

/// The codes of `diagnostics`, in order.
pub fn codes(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
    diagnostics.iter().map(|diagnostic| diagnostic.code).collect()
}
