//! Printing a semantic schema back in the language's syntax (`safeshift schema
//! FAMILY@VERSION` prints derived schemas this way); the text parses back to an equal
//! schema.

use std::fmt::Write as _;

use safeshift_dsl::ast::{BinOp, Expr, ExprKind};

use crate::schema::pattern_text;
use crate::{DimKind, Schema};

/// The schema as language text, in canonical layout: dims, tensors, allows, metadata.
pub fn render_schema(schema: &Schema) -> String {
    let mut out = String::new();
    let _ = write!(out, "schema {} @ {}", schema.family, schema.version);
    if let Some(doc) = &schema.doc {
        let _ = write!(out, " {}", quoted(doc));
    }
    out.push_str(" {\n");
    for dim in &schema.dims {
        let _ = match &dim.kind {
            DimKind::Free | DimKind::Counted => writeln!(out, "    dim {}", dim.name),
            DimKind::Derived(sym) => writeln!(out, "    dim {} = {sym}", dim.name),
            DimKind::Meta(path) => writeln!(out, "    dim {} = meta({})", dim.name, quoted(path)),
        };
    }
    for tensor in &schema.tensors {
        let shape: Vec<String> = tensor.shape.iter().map(ToString::to_string).collect();
        let _ = write!(
            out,
            "    tensor {} : {}[{}]",
            quoted(&pattern_text(&tensor.pattern)),
            tensor.dtype,
            shape.join(", ")
        );
        out.push_str(if tensor.optional { " optional\n" } else { "\n" });
    }
    for allow in &schema.allows {
        let _ = writeln!(out, "    allow {}", quoted(&pattern_text(allow)));
    }
    for meta in &schema.meta {
        let _ = match &meta.value {
            Some(value) => writeln!(out, "    meta {} = {value}", quoted(&meta.key)),
            None => writeln!(out, "    meta {}", quoted(&meta.key)),
        };
    }
    out.push_str("}\n");
    out
}

/// A string literal with the language's escapes, which are JSON's (so no raw line break).
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// An expression as written, with the parentheses precedence needs.
pub(crate) fn expr_text(expr: &Expr) -> String {
    fn precedence(op: BinOp) -> u8 {
        match op {
            BinOp::Add | BinOp::Sub => 1,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 2,
        }
    }
    fn go(expr: &Expr, out: &mut String) {
        match &expr.kind {
            ExprKind::Int(value) => {
                let _ = write!(out, "{value}");
            }
            ExprKind::Ident(name) => out.push_str(name),
            ExprKind::Neg(inner) => {
                out.push('-');
                let wrap = matches!(inner.kind, ExprKind::Binary(..));
                wrapped(inner, wrap, out);
            }
            ExprKind::Binary(op, lhs, rhs) => {
                let own = precedence(*op);
                let left_wrap = matches!(&lhs.kind, ExprKind::Binary(inner, ..) if precedence(*inner) < own);
                // Left-associative: an equal-precedence right operand needs parentheses.
                let right_wrap = matches!(&rhs.kind, ExprKind::Binary(inner, ..) if precedence(*inner) <= own);
                wrapped(lhs, left_wrap, out);
                out.push_str(match op {
                    BinOp::Add => " + ",
                    BinOp::Sub => " - ",
                    BinOp::Mul => " * ",
                    BinOp::Div => " / ",
                    BinOp::Rem => " % ",
                });
                wrapped(rhs, right_wrap, out);
            }
        }
    }
    fn wrapped(expr: &Expr, wrap: bool, out: &mut String) {
        if wrap {
            out.push('(');
        }
        go(expr, out);
        if wrap {
            out.push(')');
        }
    }
    let mut out = String::new();
    go(expr, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{expr, schema};

    const SOURCE: &str = r#"
        schema anemoi.encprocdec @ 0.4.0-rc.1 "a \"quoted\" doc" {
            dim hidden
            dim layers
            dim heads = meta("config.model.num_heads")
            dim head_dim = hidden / heads
            dim half = (hidden - 2) / 2
            tensor "proc.{i < layers}.{{literal}}.lin_qkv.{w}" : float[3 * hidden, hidden]
            tensor "proc.{i < layers}.norm" : f32[head_dim, half + 1] optional
            tensor "scalar" : i64[]
            allow "extras.{rest..}"
            meta "format" = "pt"
            meta "sizes" = [1, 2]
            meta "origin"
        }
    "#;

    #[test]
    fn renders_canonical_text() {
        let text = render_schema(&schema(SOURCE));
        let expected = r#"schema anemoi.encprocdec @ 0.4.0-rc.1 "a \"quoted\" doc" {
    dim hidden
    dim layers
    dim heads = meta("config.model.num_heads")
    dim head_dim = hidden / heads
    dim half = hidden / 2 - 1
    tensor "proc.{i < layers}.{{literal}}.lin_qkv.{w}" : float[3 * hidden, hidden]
    tensor "proc.{i < layers}.norm" : f32[head_dim, half + 1] optional
    tensor "scalar" : i64[]
    allow "extras.{rest..}"
    meta "format" = "pt"
    meta "sizes" = [1,2]
    meta "origin"
}
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn rendered_text_reads_back_to_the_same_schema() {
        let original = schema(SOURCE);
        let reread = schema(&render_schema(&original));
        let strip = |schema: &Schema| {
            let dims: Vec<_> = schema.dims.iter().map(|d| (d.name.clone(), d.kind.clone())).collect();
            let tensors: Vec<_> = schema
                .tensors
                .iter()
                .map(|t| (pattern_text(&t.pattern), t.dtype, t.shape.clone(), t.optional))
                .collect();
            let allows: Vec<_> = schema.allows.iter().map(pattern_text).collect();
            let meta: Vec<_> = schema.meta.iter().map(|m| (m.key.clone(), m.value.clone())).collect();
            (schema.id(), schema.doc.clone(), dims, tensors, allows, meta)
        };
        assert_eq!(strip(&reread), strip(&original));
    }

    #[test]
    fn expressions_keep_needed_parentheses() {
        for (text, rendered) in [
            ("a - (b - c)", "a - (b - c)"),
            ("(a - b) - c", "a - b - c"),
            ("a * (b + c)", "a * (b + c)"),
            ("a / (b * c)", "a / (b * c)"),
            ("-(a + b)", "-(a + b)"),
            ("a + b * c % 4", "a + b * c % 4"),
        ] {
            assert_eq!(expr_text(&expr(text)), rendered);
        }
    }
}
