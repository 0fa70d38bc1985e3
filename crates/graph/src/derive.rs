//! Derived schemas: the schema of a version declared only through a migration is the
//! source schema with the migration's operations applied.
//!
//! Each tensor pattern of the source schema becomes one representative tensor whose name
//! has a unique numeric *marker* segment in place of every capture; the operations run on
//! those names like on any others (a marker matches `{x}`, `{x..}` and `{i < n}`), and
//! the markers left in the resulting names are turned back into the captures they stand
//! for. Index arithmetic over a captured index (`{c * n + j}`) cannot be expressed as a
//! pattern: such a version needs a schema of its own.

use std::collections::{BTreeMap, BTreeSet};

use safeshift_dsl::ast::{self, PatternPart};
use safeshift_dsl::Diagnostic;
use safeshift_model::{MetaDef, Schema, TensorDef};
use safeshift_ops::{OpContext, TensorSet, TensorValue};

use crate::registry::MigrationDef;
use safeshift_model::pattern::match_name;

use crate::symbolic::{apply_plain, schema_metadata, source_names, symbolic_aux, LoweredOps, UNKNOWN_META};

/// Marker `k` is `MARKER_BASE + k * MARKER_STEP`: ten digits or more, unlikely in real
/// names, and spaced so that arithmetic on one (`{i + 1}`) does not give another.
const MARKER_BASE: u64 = 7_300_000_000;
const MARKER_STEP: u64 = 100_003;

fn marker(index: usize) -> String {
    (MARKER_BASE + index as u64 * MARKER_STEP).to_string()
}

/// The schema of `migration.to`, from `from` (the source schema) and the lowered operations.
pub(crate) fn derive(migration: &MigrationDef, from: &Schema, lowered: &LoweredOps) -> Result<Schema, Diagnostic> {
    let fail = |message: String| {
        Diagnostic::error(
            "underivable-version",
            format!("cannot derive the schema of `{}`: {message}", migration.to),
            migration.source,
            migration.ast.to.span,
        )
        .with_hint(format!("declare `schema {} @ {}` explicitly", migration.to.family, migration.to.version))
    };

    let mut markers: Vec<PatternPart> = Vec::new();
    let mut set = TensorSet::new();
    let mut optional_inputs = BTreeSet::new();
    let mut origins: BTreeMap<String, usize> = BTreeMap::new();
    for (def_index, def) in from.tensors.iter().enumerate() {
        let mut name = String::new();
        let mut local: BTreeMap<String, String> = BTreeMap::new();
        for part in &def.pattern.parts {
            match part {
                PatternPart::Literal(text) => name.push_str(text),
                PatternPart::Capture { name: capture, .. } | PatternPart::Counted { name: capture, .. } => {
                    let marker = local.entry(capture.node.clone()).or_insert_with(|| {
                        markers.push(part.clone());
                        marker(markers.len() - 1)
                    });
                    name.push_str(marker);
                }
                PatternPart::Expr(_) => {
                    return Err(fail("the source schema has index arithmetic in a name".to_owned()))
                }
            }
        }
        let shape = def.shape.iter().map(|axis| from.expand_derived(axis)).collect();
        set.insert(&name, TensorValue::source(&name, def.dtype, shape));
        if def.optional {
            optional_inputs.insert(name.clone());
        }
        origins.insert(name, def_index);
    }
    set.metadata = schema_metadata(from);
    let before_meta = set.metadata.clone();

    let mut ctx = OpContext::new(migration.source);
    let derived = from.derived_definitions();
    for dim in &from.dims {
        ctx.dims.insert(
            dim.name.clone(),
            derived.get(&dim.name).cloned().unwrap_or_else(|| safeshift_model::Sym::dim(&dim.name)),
        );
    }
    let mut extra_dims = Vec::new();
    for decl in &migration.ast.decls {
        if let ast::MigrationDeclKind::Dim(dim) = &decl.kind {
            let value = match &dim.value {
                Some(ast::DimValue::Expr(expr)) => {
                    ctx.resolve(expr).unwrap_or_else(|_| safeshift_model::Sym::from_expr(expr))
                }
                _ => safeshift_model::Sym::dim(&dim.name.node),
            };
            ctx.dims.insert(dim.name.node.clone(), value);
            let (lowered_dim, _) = safeshift_model::lower_dim(migration.source, dim);
            extra_dims.push(lowered_dim);
        }
    }
    let shape_of = |pattern: &ast::Pattern| {
        set.iter().find(|(name, _)| match_name(pattern, name).is_some()).map(|(_, value)| value.shape().to_vec())
    };
    ctx.aux = symbolic_aux(migration, &shape_of);
    crate::symbolic::symbolic_params(migration, &mut ctx);
    apply_plain(&lowered.ops, &mut set, &ctx).map_err(|err| fail(err.to_string()))?;

    let mut tensors = Vec::new();
    for (name, value) in set.iter() {
        let pattern = unmark(name, &markers).ok_or_else(|| {
            fail(format!("the name `{}` computes with a captured index", name_for_humans(name, &markers)))
        })?;
        let mut inputs = BTreeSet::new();
        source_names(value.expr(), &mut inputs);
        let optional = !inputs.is_empty() && inputs.iter().all(|input| optional_inputs.contains(input));
        let span = inputs
            .iter()
            .next()
            .and_then(|input| origins.get(input))
            .map_or(migration.ast.span, |index| from.tensors[*index].span);
        tensors.push(TensorDef { pattern, dtype: value.dtype(), shape: value.shape().to_vec(), optional, span });
    }

    let mut meta: Vec<MetaDef> = Vec::new();
    for (key, value) in &set.metadata {
        let unchanged = before_meta.get(key) == Some(value);
        let known = from.meta.iter().find(|def| &def.key == key);
        let value = match (unchanged, known) {
            (true, Some(def)) => def.value.clone(),
            _ if value == UNKNOWN_META => None,
            _ => Some(serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.clone()))),
        };
        meta.push(MetaDef { key: key.clone(), value, span: known.map_or(migration.ast.span, |def| def.span) });
    }

    let mut dims = from.dims.clone();
    for dim in extra_dims {
        if !dims.iter().any(|existing| existing.name == dim.name) {
            dims.push(dim);
        }
    }
    Ok(Schema {
        family: migration.to.family.clone(),
        version: migration.to.version.clone(),
        doc: migration.ast.doc.as_ref().map(|doc| format!("{} + {}", migration.from, doc.node)),
        dims,
        tensors,
        allows: from.allows.clone(),
        meta,
        source: migration.source,
        span: migration.ast.span,
    })
}

/// The pattern a marked name stands for; `None` when a number that looks like a marker
/// is not one (arithmetic was done on it).
fn unmark(name: &str, markers: &[PatternPart]) -> Option<ast::Pattern> {
    let mut parts: Vec<PatternPart> = Vec::new();
    let mut literal = String::new();
    let mut rest = name;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            let next = rest.find(|ch: char| ch.is_ascii_digit()).unwrap_or(rest.len());
            literal.push_str(&rest[..next]);
            rest = &rest[next..];
            continue;
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        let index = number
            .parse::<u64>()
            .ok()
            .and_then(|value| value.checked_sub(MARKER_BASE))
            .filter(|offset| offset % MARKER_STEP == 0)
            .and_then(|offset| usize::try_from(offset / MARKER_STEP).ok());
        match index.and_then(|index| markers.get(index)).filter(|_| !number.starts_with('0')) {
            Some(part) => {
                if !literal.is_empty() {
                    parts.push(PatternPart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part.clone());
            }
            // Ten digits or more but not a marker: computed from one.
            _ if digits >= 10 => return None,
            _ => literal.push_str(number),
        }
    }
    if !literal.is_empty() {
        parts.push(PatternPart::Literal(literal));
    }
    Some(ast::Pattern { parts, span: ast::Span::DUMMY })
}

/// A marked name with markers shown as `{…}` for an error message.
fn name_for_humans(name: &str, markers: &[PatternPart]) -> String {
    let mut out = name.to_owned();
    for (index, part) in markers.iter().enumerate() {
        let text = match part {
            PatternPart::Capture { name, .. } | PatternPart::Counted { name, .. } => format!("{{{}}}", name.node),
            _ => continue,
        };
        out = out.replace(&marker(index), &text);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::testutil::{codes, registry};
    use crate::VersionId;

    const BASE: &str = r#"
schema m @ 1.0.0 {
    dim hidden
    dim layers
    tensor "blocks.{i < layers}.qkv.{w}" : f32[3 * hidden, hidden]
    tensor "extra.{name..}" : f32[hidden] optional
    meta "format" = "pt"
}
"#;

    #[test]
    fn derived_schemas_keep_captures_counts_and_optional_tensors() {
        let text = format!(
            "{BASE}{}",
            r#"
migration m 1.0.0 -> 1.1.0 "split and move" {
    split "blocks.{i}.qkv.{w}" axis 0 into "layers.{i}.q.{w}", "layers.{i}.k.{w}", "layers.{i}.v.{w}"
    rename "extra.{name..}" -> "aux.{name}"
    meta-set "format" = "st"
}
"#
        );
        let (registry, diagnostics) = registry(vec![text]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let schema = registry.schema_of(&VersionId::parse("m@1.1.0").unwrap()).expect("derived");
        insta::assert_snapshot!(safeshift_model::render_schema(schema), @r#"
        schema m @ 1.1.0 "m@1.0.0 + split and move" {
            dim hidden
            dim layers
            tensor "layers.{i < layers}.q.{w}" : f32[hidden, hidden]
            tensor "layers.{i < layers}.k.{w}" : f32[hidden, hidden]
            tensor "layers.{i < layers}.v.{w}" : f32[hidden, hidden]
            tensor "aux.{name..}" : f32[hidden] optional
            meta "format" = "st"
        }
        "#);
    }

    #[test]
    fn index_arithmetic_cannot_be_derived() {
        let text = format!(
            "{BASE}{}",
            r#"
migration m 1.0.0 -> 2.0.0 "shift" {
    rename "blocks.{i}.qkv.{w}" -> "blocks.{i + 1}.qkv.{w}"
}
"#
        );
        let (registry, diagnostics) = registry(vec![text]);
        assert_eq!(codes(&diagnostics), ["underivable-version"]);
        assert!(diagnostics[0].message.contains("computes with a captured index"), "{}", diagnostics[0].message);
        assert!(registry.schema_of(&VersionId::parse("m@2.0.0").unwrap()).is_none());
    }
}
