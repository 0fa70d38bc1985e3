//! Lowering a schema's syntax tree to a semantic [`Schema`]: names resolved, shapes
//! made symbolic, every problem reported (with a code and a span) rather than the first.
//!
//! Decisions (see the book's "Dims" note):
//! * every dim a shape, a derived dim or a `{i < n}` bound uses must be declared with
//!   `dim` (a typo in a bound would otherwise silently create a new dim);
//! * a plain `dim n` used as a counting bound becomes [`DimKind::Counted`]; a derived or
//!   metadata dim may also be a bound, and then counting must agree with it;
//! * members of a cycle of derived dims are reported (`dim-cycle`) and lowered as free
//!   dims, so later passes always terminate.
//!
//! The language crate's file-local `check` reports several of the same problems with the
//! same codes and spans (`bad-version`, `unknown-dtype`, `unknown-dim`, `duplicate-dim`,
//! `dim-cycle`, `pattern-arithmetic`, `duplicate-pattern`, `duplicate-meta`): lowering
//! repeats them so that it is safe on its own, and a caller running both drops the
//! duplicates by `(code, primary span)`. Lowering alone reports `int-too-large`,
//! `division-by-zero`, `bad-meta-path` and `bad-json-number`.

use std::collections::{BTreeMap, BTreeSet};

use safeshift_dsl::ast::{self, BinOp, Expr, ExprKind, JsonKind, PatternPart, SchemaEntryKind, Span};
use safeshift_dsl::{similar, Diagnostic, SourceId};

use crate::schema::pattern_text;
use crate::{DType, DTypeClass, DimDef, DimKind, MetaDef, Schema, Sym, TensorDef};

/// Lowers one schema item; the schema is usable only if no diagnostic is an error.
pub fn lower_schema(source: SourceId, schema: &ast::Schema) -> (Schema, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let version = semver::Version::parse(&schema.version.node).unwrap_or_else(|err| {
        diagnostics.push(
            Diagnostic::error(
                "bad-version",
                format!("`{}` is not a semantic version: {err}", schema.version.node),
                source,
                schema.version.span,
            )
            .with_hint("versions look like `1.2.0` or `1.0.0-rc.1`"),
        );
        semver::Version::new(0, 0, 0)
    });

    // Dims first: every other entry refers to them.
    // Duplicates are found through maps of name (or pattern text) to index: a linear
    // search per entry made a schema of a few thousand entries take minutes.
    let mut dims: Vec<DimDef> = Vec::new();
    let mut dim_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut dim_exprs: BTreeMap<String, &Expr> = BTreeMap::new();
    for entry in &schema.entries {
        if let SchemaEntryKind::Dim(decl) = &entry.kind {
            let (dim, dim_diagnostics) = lower_dim(source, decl);
            diagnostics.extend(dim_diagnostics);
            if let Some(first) = dim_index.get(&dim.name).map(|&index| &dims[index]) {
                diagnostics.push(
                    Diagnostic::error(
                        "duplicate-dim",
                        format!("dim `{}` is declared twice", dim.name),
                        source,
                        decl.name.span,
                    )
                    .with_secondary(source, first.span, "first declared here"),
                );
                continue;
            }
            if let Some(ast::DimValue::Expr(expr)) = &decl.value {
                dim_exprs.insert(dim.name.clone(), expr);
            }
            dim_index.insert(dim.name.clone(), dims.len());
            dims.push(dim);
        }
    }
    let declared: BTreeSet<String> = dims.iter().map(|dim| dim.name.clone()).collect();
    for expr in dim_exprs.values() {
        check_dims_declared(source, expr, &declared, &mut diagnostics);
    }
    break_cycles(source, &mut dims, &mut diagnostics);

    let mut tensors: Vec<TensorDef> = Vec::new();
    let mut tensor_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut allows = Vec::new();
    let mut meta: Vec<MetaDef> = Vec::new();
    let mut meta_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut counted_dims: BTreeSet<String> = BTreeSet::new();
    for entry in &schema.entries {
        match &entry.kind {
            SchemaEntryKind::Dim(_) => {}
            SchemaEntryKind::Tensor(decl) => {
                check_pattern(source, &decl.pattern, &declared, &mut counted_dims, &mut diagnostics);
                let dtype = resolve_dtype(source, &decl.ty.dtype, &mut diagnostics);
                let shape = decl
                    .ty
                    .shape
                    .iter()
                    .map(|expr| {
                        check_expr(source, expr, &mut diagnostics);
                        check_dims_declared(source, expr, &declared, &mut diagnostics);
                        Sym::from_expr(expr)
                    })
                    .collect();
                let text = pattern_text(&decl.pattern);
                if let Some(first) = tensor_index.get(&text).map(|&index| &tensors[index]) {
                    diagnostics.push(
                        Diagnostic::error(
                            "duplicate-pattern",
                            format!("tensor pattern \"{text}\" is declared twice; the second never matches"),
                            source,
                            decl.pattern.span,
                        )
                        .with_secondary(source, first.span, "first declared here"),
                    );
                }
                tensor_index.entry(text).or_insert(tensors.len());
                tensors.push(TensorDef {
                    pattern: decl.pattern.clone(),
                    dtype,
                    shape,
                    optional: decl.optional,
                    span: entry.span,
                });
            }
            SchemaEntryKind::Allow(pattern) => {
                check_pattern(source, pattern, &declared, &mut BTreeSet::new(), &mut diagnostics);
                allows.push(pattern.clone());
            }
            SchemaEntryKind::Meta(decl) => {
                if let Some(first) = meta_index.get(&decl.key.node).map(|&index| &meta[index]) {
                    diagnostics.push(
                        Diagnostic::error(
                            "duplicate-meta",
                            format!("metadata key `{}` is declared twice", decl.key.node),
                            source,
                            decl.key.span,
                        )
                        .with_secondary(source, first.span, "first declared here"),
                    );
                    continue;
                }
                let value = decl.value.as_ref().and_then(|json| lower_json(source, json, &mut diagnostics));
                meta_index.insert(decl.key.node.clone(), meta.len());
                meta.push(MetaDef { key: decl.key.node.clone(), value, span: entry.span });
            }
        }
    }
    for dim in &mut dims {
        if dim.kind == DimKind::Free && counted_dims.contains(&dim.name) {
            dim.kind = DimKind::Counted;
        }
    }

    let lowered = Schema {
        family: schema.family.node.clone(),
        version,
        doc: schema.doc.as_ref().map(|doc| doc.node.clone()),
        dims,
        tensors,
        allows,
        meta,
        source,
        span: schema.span,
    };
    (lowered, diagnostics)
}

/// Lowers one `dim` declaration (of a schema or a migration). Whether the dims it uses
/// exist is the caller's business: only the caller knows what is in scope.
pub fn lower_dim(source: SourceId, decl: &ast::DimDecl) -> (DimDef, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let kind = match &decl.value {
        None => DimKind::Free,
        Some(ast::DimValue::Expr(expr)) => {
            check_expr(source, expr, &mut diagnostics);
            DimKind::Derived(Sym::from_expr(expr))
        }
        Some(ast::DimValue::Meta(path)) => {
            if path.node.is_empty() || path.node.split('.').any(str::is_empty) {
                diagnostics.push(
                    Diagnostic::error(
                        "bad-meta-path",
                        format!("`{}` is not a dotted metadata path", path.node),
                        source,
                        path.span,
                    )
                    .with_hint("the first segment is the metadata key: `config.model.num_heads`"),
                );
            }
            DimKind::Meta(path.node.clone())
        }
    };
    (DimDef { name: decl.name.node.clone(), kind, span: decl.name.span }, diagnostics)
}

/// Resolves a dtype or class name; unknown names become `any` after a diagnostic.
fn resolve_dtype(source: SourceId, name: &ast::Name, diagnostics: &mut Vec<Diagnostic>) -> DTypeClass {
    DTypeClass::from_language_name(&name.node).unwrap_or_else(|| {
        let mut names: Vec<&str> = DType::ALL.iter().map(|dtype| dtype.language_name()).collect();
        names.extend(["float", "int", "any"]);
        let mut diagnostic =
            Diagnostic::error("unknown-dtype", format!("unknown dtype `{}`", name.node), source, name.span);
        if let Some(best) = similar(&name.node, names).first() {
            diagnostic = diagnostic.with_hint(format!("did you mean `{best}`?"));
        }
        diagnostics.push(diagnostic);
        DTypeClass::Any
    })
}

/// Literal sizes and divisions the symbolic algebra cannot represent.
fn check_expr(source: SourceId, expr: &Expr, diagnostics: &mut Vec<Diagnostic>) {
    match &expr.kind {
        ExprKind::Int(value) if *value > MAX_LITERAL => diagnostics.push(Diagnostic::error(
            "int-too-large",
            format!("{value} is larger than the largest size allowed ({MAX_LITERAL})"),
            source,
            expr.span,
        )),
        ExprKind::Int(_) | ExprKind::Ident(_) => {}
        ExprKind::Neg(inner) => check_expr(source, inner, diagnostics),
        ExprKind::Binary(op, lhs, rhs) => {
            check_expr(source, lhs, diagnostics);
            check_expr(source, rhs, diagnostics);
            if matches!(op, BinOp::Div | BinOp::Rem) && matches!(rhs.kind, ExprKind::Int(0)) {
                diagnostics.push(Diagnostic::error("division-by-zero", "division by zero", source, rhs.span));
            }
        }
    }
}

/// Sizes up to 2^53: more than any real axis, and small enough that products of a few
/// stay exact in the symbolic algebra.
const MAX_LITERAL: u64 = 1 << 53;

fn check_dims_declared(source: SourceId, expr: &Expr, declared: &BTreeSet<String>, diagnostics: &mut Vec<Diagnostic>) {
    match &expr.kind {
        ExprKind::Ident(name) if !declared.contains(name) => {
            let mut diagnostic = Diagnostic::error("unknown-dim", format!("unknown dim `{name}`"), source, expr.span)
                .with_hint(format!("declare it with `dim {name}`"));
            if let Some(best) = similar(name, declared.iter().map(String::as_str)).first() {
                diagnostic = diagnostic.with_hint(format!("did you mean `{best}`?"));
            }
            diagnostics.push(diagnostic);
        }
        ExprKind::Int(_) | ExprKind::Ident(_) => {}
        ExprKind::Neg(inner) => check_dims_declared(source, inner, declared, diagnostics),
        ExprKind::Binary(_, lhs, rhs) => {
            check_dims_declared(source, lhs, declared, diagnostics);
            check_dims_declared(source, rhs, declared, diagnostics);
        }
    }
}

/// Checks a schema pattern: no index arithmetic, counting bounds over declared dims.
fn check_pattern(
    source: SourceId,
    pattern: &ast::Pattern,
    declared: &BTreeSet<String>,
    counted_dims: &mut BTreeSet<String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for part in &pattern.parts {
        match part {
            PatternPart::Expr(expr) => diagnostics.push(
                Diagnostic::error(
                    "pattern-arithmetic",
                    "index arithmetic cannot match names; it belongs in migration targets",
                    source,
                    expr.span,
                )
                .with_hint("use `{i < n}` to count, or `{x}` to capture"),
            ),
            PatternPart::Counted { bound, .. } => {
                check_expr(source, bound, diagnostics);
                check_dims_declared(source, bound, declared, diagnostics);
                if let ExprKind::Ident(name) = &bound.kind {
                    counted_dims.insert(name.clone());
                }
            }
            PatternPart::Literal(_) | PatternPart::Capture { .. } => {}
        }
    }
}

/// Reports cycles among derived dims and turns their members into free dims.
fn break_cycles(source: SourceId, dims: &mut [DimDef], diagnostics: &mut Vec<Diagnostic>) {
    let uses: BTreeMap<String, Vec<String>> = dims
        .iter()
        .filter_map(|dim| match &dim.kind {
            DimKind::Derived(sym) => Some((dim.name.clone(), sym.dims())),
            _ => None,
        })
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<String, Mark> = BTreeMap::new();
    let mut in_cycle: BTreeSet<String> = BTreeSet::new();
    let mut cycles: Vec<Vec<String>> = Vec::new();
    // Iterative depth-first search: a hostile registry cannot overflow the stack.
    for start in uses.keys() {
        if marks.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(String, usize)> = vec![(start.clone(), 0)];
        marks.insert(start.clone(), Mark::Visiting);
        while let Some((node, next)) = stack.last().cloned() {
            let children = &uses[&node];
            if next >= children.len() {
                marks.insert(node, Mark::Done);
                stack.pop();
                continue;
            }
            stack.last_mut().expect("non-empty").1 += 1;
            let child = &children[next];
            if !uses.contains_key(child) {
                continue;
            }
            match marks.get(child) {
                None => {
                    marks.insert(child.clone(), Mark::Visiting);
                    stack.push((child.clone(), 0));
                }
                Some(Mark::Visiting) => {
                    let from = stack.iter().position(|(name, _)| name == child).expect("visiting is on the stack");
                    let cycle: Vec<String> = stack[from..].iter().map(|(name, _)| name.clone()).collect();
                    in_cycle.extend(cycle.iter().cloned());
                    cycles.push(cycle);
                }
                Some(Mark::Done) => {}
            }
        }
    }
    for cycle in cycles {
        let path: Vec<String> = cycle.iter().chain(cycle.first()).map(|name| format!("`{name}`")).collect();
        let span = dims.iter().find(|dim| dim.name == cycle[0]).map_or(Span::DUMMY, |dim| dim.span);
        let mut diagnostic = Diagnostic::error(
            "dim-cycle",
            format!("derived dims depend on themselves: {}", path.join(" -> ")),
            source,
            span,
        );
        for name in &cycle[1..] {
            if let Some(dim) = dims.iter().find(|dim| dim.name == *name) {
                diagnostic = diagnostic.with_secondary(source, dim.span, "part of the cycle");
            }
        }
        diagnostics.push(diagnostic);
    }
    for dim in dims {
        if in_cycle.contains(&dim.name) {
            dim.kind = DimKind::Free;
        }
    }
}

/// Converts a JSON literal; a number that is not valid JSON is reported and dropped.
fn lower_json(source: SourceId, json: &ast::Json, diagnostics: &mut Vec<Diagnostic>) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match &json.kind {
        JsonKind::Null => Value::Null,
        JsonKind::Bool(value) => Value::Bool(*value),
        JsonKind::Number(text) => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Number(_)) => value,
            _ => {
                diagnostics.push(Diagnostic::error(
                    "bad-json-number",
                    format!("`{text}` is not a JSON number"),
                    source,
                    json.span,
                ));
                return None;
            }
        },
        JsonKind::String(text) => Value::String(text.clone()),
        JsonKind::Array(items) => {
            Value::Array(items.iter().map(|item| lower_json(source, item, diagnostics)).collect::<Option<_>>()?)
        }
        JsonKind::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| lower_json(source, value, diagnostics).map(|value| (key.node.clone(), value)))
                .collect::<Option<_>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::schema_ast;

    fn lower(text: &str) -> (Schema, Vec<Diagnostic>) {
        lower_schema(SourceId(7), &schema_ast(text))
    }

    fn codes(text: &str) -> Vec<&'static str> {
        lower(text).1.iter().map(|diagnostic| diagnostic.code).collect()
    }

    #[test]
    fn lowers_dims_tensors_allows_and_meta() {
        let (schema, diagnostics) = lower(
            r#"schema llama.hf @ 1.0.0-rc.1 "doc" {
                dim hidden
                dim layers
                dim heads = meta("config.num_heads")
                dim head_dim = hidden / heads
                tensor "model.layers.{i < layers}.q.weight" : bf16[heads * head_dim, hidden]
                tensor "model.norm.weight" : float[hidden] optional
                allow "extra.{x..}"
                meta "format" = "pt"
                meta "sizes" = [1, 2.5, null]
            }"#,
        );
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert_eq!(schema.id(), "llama.hf@1.0.0-rc.1");
        assert_eq!(schema.doc.as_deref(), Some("doc"));
        let kinds: Vec<(&str, &DimKind)> = schema.dims.iter().map(|d| (d.name.as_str(), &d.kind)).collect();
        let head_dim = Sym::dim("hidden").div(&Sym::dim("heads"));
        assert_eq!(
            kinds,
            vec![
                ("hidden", &DimKind::Free),
                ("layers", &DimKind::Counted),
                ("heads", &DimKind::Meta("config.num_heads".into())),
                ("head_dim", &DimKind::Derived(head_dim)),
            ]
        );
        let q = &schema.tensors[0];
        assert_eq!(q.dtype, DTypeClass::Exact(DType::BF16));
        assert_eq!(schema.expand_derived(&q.shape[0]), Sym::dim("hidden"));
        assert!(schema.tensors[1].optional && schema.tensors[1].dtype == DTypeClass::Float);
        assert_eq!(schema.allows.len(), 1);
        assert_eq!(schema.meta[0].value, Some(serde_json::json!("pt")));
        assert_eq!(schema.meta[1].value, Some(serde_json::json!([1, 2.5, null])));
        assert_eq!(schema.source, SourceId(7));
    }

    #[test]
    fn reports_every_problem_with_a_code() {
        let cases: &[(&str, &[&str])] = &[
            ("schema a @ 1.0 {\n}", &["bad-version"]),
            ("schema a @ 1.0.0 {\n tensor \"x\" : flaot[1]\n}", &["unknown-dtype"]),
            ("schema a @ 1.0.0 {\n dim hidden\n tensor \"x\" : f32[hiden]\n}", &["unknown-dim"]),
            ("schema a @ 1.0.0 {\n tensor \"l.{i < n}.w\" : f32[]\n}", &["unknown-dim"]),
            ("schema a @ 1.0.0 {\n dim a = b * 2\n}", &["unknown-dim"]),
            ("schema a @ 1.0.0 {\n dim a\n dim a\n}", &["duplicate-dim"]),
            ("schema a @ 1.0.0 {\n dim a = b\n dim b = c + 1\n dim c = a\n dim d = d\n}", &["dim-cycle", "dim-cycle"]),
            ("schema a @ 1.0.0 {\n dim n\n tensor \"l.{n + 1}.w\" : f32[]\n}", &["pattern-arithmetic"]),
            ("schema a @ 1.0.0 {\n dim n = 4 / 0\n}", &["division-by-zero"]),
            ("schema a @ 1.0.0 {\n tensor \"x\" : f32[99999999999999999]\n}", &["int-too-large"]),
            ("schema a @ 1.0.0 {\n dim n = meta(\"a..b\")\n}", &["bad-meta-path"]),
            ("schema a @ 1.0.0 {\n meta \"k\" = 1\n meta \"k\"\n}", &["duplicate-meta"]),
            ("schema a @ 1.0.0 {\n meta \"k\" = 1e999\n}", &["bad-json-number"]),
            ("schema a @ 1.0.0 {\n tensor \"x\" : f32[]\n tensor \"x\" : f32[]\n}", &["duplicate-pattern"]),
        ];
        for (text, expected) in cases {
            assert_eq!(&codes(text), expected, "{text}");
        }
    }

    #[test]
    fn diagnostics_point_at_the_text_and_suggest() {
        let text = "schema a @ 1.0.0 {\n dim hidden\n tensor \"x\" : flaot[hiden]\n}";
        let (_, diagnostics) = lower(text);
        let dtype = &diagnostics[0];
        assert_eq!(&text[dtype.primary.span.start..dtype.primary.span.end], "flaot");
        assert_eq!(dtype.hints, vec!["did you mean `float`?"]);
        let dim = &diagnostics[1];
        assert_eq!((dim.code, &text[dim.primary.span.start..dim.primary.span.end]), ("unknown-dim", "hiden"));
        assert_eq!(dim.message, "unknown dim `hiden`");
        assert!(dim.hints.contains(&"did you mean `hidden`?".to_owned()));
        assert_eq!(dim.primary.source, SourceId(7));
    }

    #[test]
    fn cycles_name_their_members_and_become_free() {
        let (schema, diagnostics) = lower("schema a @ 1.0.0 {\n dim a = b\n dim b = a * 2\n dim c = a + 1\n}");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].message, "derived dims depend on themselves: `a` -> `b` -> `a`");
        assert_eq!(schema.dims[0].kind, DimKind::Free);
        assert_eq!(schema.dims[1].kind, DimKind::Free);
        assert_eq!(schema.dims[2].kind, DimKind::Derived(Sym::dim("a").add(&Sym::int(1))));
    }

    #[test]
    fn lower_dim_for_migrations() {
        let name = |text: &str| ast::Name::new(text.to_owned(), Span::new(0, text.len()));
        let decl = ast::DimDecl { name: name("n"), value: Some(ast::DimValue::Expr(crate::testutil::expr("k / 0"))) };
        let (dim, diagnostics) = lower_dim(SourceId(1), &decl);
        assert_eq!(dim.name, "n");
        assert!(matches!(dim.kind, DimKind::Derived(_)));
        assert_eq!(diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(), vec!["division-by-zero"]);
        let (dim, diagnostics) = lower_dim(SourceId(1), &ast::DimDecl { name: name("m"), value: None });
        assert_eq!((dim.kind, diagnostics.len()), (DimKind::Free, 0));
    }

    /// Found while bounding registry costs: duplicate checks searched linearly, so a
    /// 5,000-tensor schema took minutes to lower. 20,000 entries (and their duplicates)
    /// now take well under a second, even unoptimised.
    #[test]
    fn large_schemas_lower_in_linear_time() {
        let mut text = String::from("schema big @ 1.0.0 {\n");
        for index in 0..20_000 {
            text.push_str(&format!("    dim d{index}\n    tensor \"{{a}}.t{index}\" : f32[d{index}]\n"));
            text.push_str(&format!("    meta \"k{index}\"\n"));
        }
        text.push_str("    dim d7\n    tensor \"{a}.t7\" : f32[1]\n    meta \"k7\"\n}\n");
        let start = std::time::Instant::now();
        let (schema, diagnostics) = lower(&text);
        // Not a speed target: the quadratic checks this guards against took minutes here, so a
        // bound far above any load's noise still catches them.
        assert!(start.elapsed() < std::time::Duration::from_secs(90), "took {:?}", start.elapsed());
        assert_eq!(schema.tensors.len(), 20_001);
        let codes: Vec<_> = diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["duplicate-dim", "duplicate-pattern", "duplicate-meta"]);
    }
}
