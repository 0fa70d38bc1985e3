//! Test helpers: schemas from text, layouts from a compact listing, and the proptest
//! strategies of this crate.
//!
//! Until the language crate's parser is available here, [`schema_ast`] reads the
//! schema subset of the language with a small line-based reader (one entry per line),
//! so tests read like registry files. Spans are real byte offsets.

use std::collections::BTreeMap;

use safeshift_dsl::ast::{
    self, BinOp, DimDecl, DimValue, Expr, ExprKind, Json, JsonKind, MetaDecl, Pattern, PatternPart, SchemaEntry,
    SchemaEntryKind, Span, Spanned, TensorDecl, Trivia, TypeSpec,
};
use safeshift_dsl::SourceId;

use crate::{lower_schema, DType, Layout, Schema, TensorInfo};

/// Lowers schema text, panicking on any error diagnostic (tests of valid schemas).
pub fn schema(text: &str) -> Schema {
    let (schema, diagnostics) = lower_schema(SourceId(0), &schema_ast(text));
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    schema
}

/// A layout from lines `name dtype [d0, d1]`, e.g. `model.w f32 [3, 4]`.
pub fn layout(text: &str) -> Layout {
    let tensors = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, rest) = line.split_once(' ').expect("name dtype [shape]");
            let (dtype, shape) = rest.trim().split_once(' ').expect("dtype [shape]");
            let shape = shape.trim().trim_start_matches('[').trim_end_matches(']');
            TensorInfo {
                name: name.to_owned(),
                dtype: DType::from_language_name(dtype).expect("dtype"),
                shape: shape.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect(),
            }
        })
        .collect();
    Layout { tensors, metadata: BTreeMap::new() }
}

/// `name = value` pairs.
pub fn dims(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), *value)).collect()
}

/// Reads `schema FAMILY @ VERSION ["doc"] { entries }`, one entry per line.
pub fn schema_ast(text: &str) -> ast::Schema {
    let mut reader = Reader { text, pos: 0 };
    reader.skip_ws();
    reader.expect("schema");
    let family = reader.word();
    reader.expect("@");
    let version = reader.word();
    reader.skip_ws();
    let doc = if reader.peek() == Some('"') { Some(reader.string()) } else { None };
    reader.expect("{");
    let mut entries = Vec::new();
    loop {
        reader.skip_ws();
        if reader.eat("}") {
            break;
        }
        let start = reader.pos;
        let kind = if reader.eat("dim ") {
            let name = reader.word();
            reader.skip_ws();
            let value = if reader.eat("=") {
                reader.skip_ws();
                if reader.eat("meta(") {
                    let path = reader.string();
                    reader.expect(")");
                    Some(DimValue::Meta(path))
                } else {
                    Some(DimValue::Expr(reader.expr()))
                }
            } else {
                None
            };
            SchemaEntryKind::Dim(DimDecl { name, value })
        } else if reader.eat("tensor ") {
            reader.skip_ws();
            let pattern = reader.pattern();
            reader.expect(":");
            let type_start = reader.pos;
            let dtype = reader.word();
            reader.expect("[");
            let mut shape = Vec::new();
            reader.skip_ws();
            if !reader.eat("]") {
                loop {
                    shape.push(reader.expr());
                    reader.skip_ws();
                    if reader.eat("]") {
                        break;
                    }
                    reader.expect(",");
                }
            }
            let ty = TypeSpec { dtype, shape, span: Span::new(type_start, reader.pos) };
            reader.skip_inline_ws();
            let optional = reader.eat("optional");
            SchemaEntryKind::Tensor(TensorDecl { pattern, ty, optional })
        } else if reader.eat("allow ") {
            reader.skip_ws();
            SchemaEntryKind::Allow(reader.pattern())
        } else if reader.eat("meta ") {
            reader.skip_ws();
            let key = reader.string();
            reader.skip_inline_ws();
            let value = if reader.eat("=") { Some(reader.json()) } else { None };
            SchemaEntryKind::Meta(MetaDecl { key, value })
        } else {
            panic!("unexpected text at {}: {:?}", reader.pos, &text[reader.pos..]);
        };
        entries.push(SchemaEntry { kind, trivia: Trivia::default(), span: Span::new(start, reader.pos) });
    }
    ast::Schema {
        family,
        version,
        doc,
        entries,
        trivia: Trivia::default(),
        inner_trailing: Vec::new(),
        span: Span::new(0, reader.pos),
    }
}

/// Reads an expression: `3 * hidden`.
pub fn expr(text: &str) -> Expr {
    Reader { text, pos: 0 }.expr()
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }
    fn skip_inline_ws(&mut self) {
        let trimmed = self.rest().trim_start_matches([' ', '\t']);
        self.pos = self.text.len() - trimmed.len();
    }
    fn eat(&mut self, token: &str) -> bool {
        self.skip_inline_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, token: &str) {
        self.skip_ws();
        assert!(self.eat(token), "expected {token:?} at {}: {:?}", self.pos, self.rest());
    }
    fn word(&mut self) -> Spanned<String> {
        self.skip_ws();
        let start = self.pos;
        let len = self
            .rest()
            .find(|ch: char| !(ch.is_alphanumeric() || matches!(ch, '_' | '.' | '-' | '+')))
            .unwrap_or(self.rest().len());
        self.pos += len;
        Spanned::new(self.text[start..self.pos].to_owned(), Span::new(start, self.pos))
    }
    fn string(&mut self) -> Spanned<String> {
        self.skip_ws();
        let start = self.pos;
        assert!(self.eat("\""), "expected a string at {start}");
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((index, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.pos += index + 1;
                    return Spanned::new(out, Span::new(start, self.pos));
                }
                '\\' => out.push(chars.next().expect("escape").1),
                other => out.push(other),
            }
        }
        panic!("unterminated string at {start}");
    }
    fn pattern(&mut self) -> Pattern {
        let literal = self.string();
        let text = literal.node.as_str();
        let mut parts: Vec<PatternPart> = Vec::new();
        let mut pending = String::new();
        let mut index = 0;
        while index < text.len() {
            let rest = &text[index..];
            if rest.starts_with("{{") || rest.starts_with("}}") {
                pending.push_str(&rest[..1]);
                index += 2;
            } else if let Some(inner) = rest.strip_prefix('{') {
                let close = inner.find('}').expect("closing brace");
                let body = &inner[..close];
                if !pending.is_empty() {
                    parts.push(PatternPart::Literal(std::mem::take(&mut pending)));
                }
                let name = |text: &str| Spanned::new(text.trim().to_owned(), literal.span);
                parts.push(if let Some((capture, bound)) = body.split_once('<') {
                    PatternPart::Counted { name: name(capture), bound: expr(bound.trim()) }
                } else if let Some(capture) = body.strip_suffix("..") {
                    PatternPart::Capture { name: name(capture), multi: true }
                } else if body.chars().all(|ch| ch.is_alphanumeric() || ch == '_') {
                    PatternPart::Capture { name: name(body), multi: false }
                } else {
                    PatternPart::Expr(expr(body))
                });
                index += close + 2;
            } else {
                let ch = rest.chars().next().expect("non-empty");
                pending.push(ch);
                index += ch.len_utf8();
            }
        }
        if !pending.is_empty() {
            parts.push(PatternPart::Literal(pending));
        }
        Pattern { parts, span: literal.span }
    }
    fn expr(&mut self) -> Expr {
        self.binary(1)
    }
    fn binary(&mut self, min_precedence: u8) -> Expr {
        let mut lhs = self.unary();
        loop {
            self.skip_inline_ws();
            let op = match self.peek() {
                Some('+') => (BinOp::Add, 1),
                Some('-') => (BinOp::Sub, 1),
                Some('*') => (BinOp::Mul, 2),
                Some('/') => (BinOp::Div, 2),
                Some('%') => (BinOp::Rem, 2),
                _ => return lhs,
            };
            if op.1 < min_precedence {
                return lhs;
            }
            self.pos += 1;
            let rhs = self.binary(op.1 + 1);
            let span = lhs.span.to(rhs.span);
            lhs = Expr { kind: ExprKind::Binary(op.0, Box::new(lhs), Box::new(rhs)), span };
        }
    }
    fn unary(&mut self) -> Expr {
        self.skip_inline_ws();
        let start = self.pos;
        if self.eat("-") {
            let inner = self.unary();
            let span = Span::new(start, inner.span.end);
            return Expr { kind: ExprKind::Neg(Box::new(inner)), span };
        }
        if self.eat("(") {
            let inner = self.expr();
            self.expect(")");
            return inner;
        }
        let len = self.rest().find(|ch: char| !(ch.is_alphanumeric() || ch == '_')).unwrap_or(self.rest().len());
        assert!(len > 0, "expected an expression at {start}: {:?}", self.rest());
        self.pos += len;
        let word = &self.text[start..self.pos];
        let span = Span::new(start, self.pos);
        match word.parse::<u64>() {
            Ok(value) => Expr { kind: ExprKind::Int(value), span },
            Err(_) => Expr { kind: ExprKind::Ident(word.to_owned()), span },
        }
    }
    fn json(&mut self) -> Json {
        self.skip_inline_ws();
        let start = self.pos;
        let kind = match self.peek() {
            Some('"') => JsonKind::String(self.string().node),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                while !self.eat("]") {
                    items.push(self.json());
                    self.eat(",");
                }
                JsonKind::Array(items)
            }
            _ => {
                let word = self.word().node;
                match word.as_str() {
                    "null" => JsonKind::Null,
                    "true" => JsonKind::Bool(true),
                    "false" => JsonKind::Bool(false),
                    _ => JsonKind::Number(word),
                }
            }
        };
        Json { kind, span: Span::new(start, self.pos) }
    }
}

/// Proptest strategies: random schemas with dim values, and random layouts.
pub mod strategies {
    use proptest::prelude::*;

    use super::*;

    /// A random schema (as text) and values for its free dims.
    ///
    /// Every free dim appears alone as the first axis of some tensor, so shapes
    /// determine it; counted dims are at least 1 (absent families are tested apart);
    /// derived dims divide exactly by construction (`d = a * k` for a literal `k`, and
    /// `a / k` only appears as `(a * k) / k`-style products). Patterns get distinct
    /// literal heads so no name matches an earlier pattern than its own.
    pub fn arb_schema_with_dims() -> impl Strategy<Value = (String, BTreeMap<String, i64>)> {
        (1usize..4, 0usize..3, prop::collection::vec((0usize..4, 0usize..3, any::<bool>()), 1..6))
            .prop_flat_map(|(n_free, n_counted, tensors)| {
                let free_values = prop::collection::vec(0i64..6, n_free);
                let counted_values = prop::collection::vec(1i64..4, n_counted);
                let multiplier = 1i64..4;
                (Just((n_free, n_counted, tensors)), free_values, counted_values, multiplier)
            })
            .prop_map(|((n_free, n_counted, tensors), free_values, counted_values, multiplier)| {
                let mut text = String::from("schema test.random @ 1.0.0 {\n");
                let mut values = BTreeMap::new();
                for (i, value) in free_values.iter().enumerate() {
                    text.push_str(&format!("    dim f{i}\n"));
                    values.insert(format!("f{i}"), *value);
                }
                for (i, value) in counted_values.iter().enumerate() {
                    text.push_str(&format!("    dim n{i}\n"));
                    values.insert(format!("n{i}"), *value);
                }
                text.push_str(&format!("    dim d = f0 * {multiplier}\n"));
                // A metadata dim: instantiation writes it, unification reads it back.
                text.push_str("    dim m = meta(\"cfg.inner.m\")\n");
                text.push_str("    tensor \"meta.w\" : float[m, f0]\n");
                values.insert("m".to_owned(), multiplier + 1);
                // Each free dim alone on an axis, so the shapes determine it.
                for i in 0..n_free {
                    text.push_str(&format!("    tensor \"free{i}.weight\" : float[f{i}]\n"));
                }
                for (index, (shape_kind, counted, optional)) in tensors.iter().enumerate() {
                    let free = format!("f{}", shape_kind % n_free);
                    let shape = match shape_kind {
                        0 => format!("[3 * {free}, f0]"),
                        1 => "[d, 2]".to_owned(),
                        2 => format!("[{free} + 1]"),
                        _ => "[]".to_owned(),
                    };
                    let name = if n_counted > 0 && *counted > 0 {
                        let bound = format!("n{}", counted % n_counted);
                        format!("t{index}.{{i < {bound}}}.w")
                    } else {
                        format!("t{index}.w")
                    };
                    let dtype = ["float", "bf16", "int"][index % 3];
                    let optional = if *optional { " optional" } else { "" };
                    text.push_str(&format!(
                        "    tensor \"{name}\" : {dtype}[{}]{optional}\n",
                        &shape[1..shape.len() - 1]
                    ));
                }
                // Every counted dim is counted by a required family.
                for i in 0..n_counted {
                    text.push_str(&format!("    tensor \"layers{i}.{{k < n{i}}}.norm\" : f32[f0]\n"));
                }
                text.push_str("    allow \"extra.{rest..}\"\n}\n");
                let derived = values["f0"] * multiplier;
                values.insert("d".to_owned(), derived);
                (text, values)
            })
    }

    /// A random layout: names from a small alphabet of segments (so that some match),
    /// random dtypes and shapes, including huge and zero sizes.
    pub fn arb_layout() -> impl Strategy<Value = Layout> {
        let segment = prop::sample::select(vec![
            "t0", "t1", "layers0", "w", "norm", "weight", "0", "1", "2", "07", "extra", "free0",
        ]);
        let name = prop::collection::vec(segment, 1..4).prop_map(|segments| segments.join("."));
        // Sizes weighted towards small values, with the extremes hostile headers can hold.
        let size = prop_oneof![4 => 0u64..8, 1 => Just(u64::MAX), 1 => Just(i64::MAX as u64), 1 => Just(1u64 << 40)];
        let dtype = prop::sample::select(DType::ALL.to_vec());
        let tensor = (name, dtype, prop::collection::vec(size, 0..3)).prop_map(|(name, dtype, shape)| TensorInfo {
            name,
            dtype,
            shape,
        });
        prop::collection::vec(tensor, 0..12).prop_map(|mut tensors| {
            let mut seen = std::collections::HashSet::new();
            tensors.retain(|t| seen.insert(t.name.clone()));
            Layout { tensors, metadata: BTreeMap::new() }
        })
    }
}
