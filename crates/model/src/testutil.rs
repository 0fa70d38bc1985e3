//! Test helpers: schemas from text (through the language's parser), layouts from a
//! compact listing, and the proptest strategies of this crate.

use std::collections::BTreeMap;

use safeshift_dsl::ast;
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

/// Parses schema text (one schema item), panicking on a syntax error.
pub fn schema_ast(text: &str) -> ast::Schema {
    let file = safeshift_dsl::parse(SourceId(0), text).unwrap_or_else(|errors| panic!("{errors:#?}\n{text}"));
    match file.items.into_iter().next() {
        Some(ast::Item::Schema(schema)) => schema,
        other => panic!("expected one schema, got {other:#?}"),
    }
}

/// Parses an expression: `3 * hidden`.
pub fn expr(text: &str) -> ast::Expr {
    let schema = schema_ast(&format!("schema t @ 1.0.0 {{\n dim x = {text}\n}}"));
    match schema.entries.into_iter().next().map(|entry| entry.kind) {
        Some(ast::SchemaEntryKind::Dim(ast::DimDecl { value: Some(ast::DimValue::Expr(expr)), .. })) => expr,
        other => panic!("expected a derived dim, got {other:#?}"),
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
