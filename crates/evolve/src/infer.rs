//! `schema infer`: a canonical schema for one concrete layout.
//!
//! * Names: repeated indexed blocks fold into `{i < n}` patterns ([`crate::fold`]), the
//!   count dim named after the segment and the count (`layers_4`), like size dims.
//! * Shapes: every size of 2 or more is a dim, one dim per distinct size (equal sizes are
//!   one dim), named after its size in this checkpoint (`d24`) so that schemas inferred
//!   from two versions of one model agree on names. A size that is 2 or 3 times another
//!   size, and only ever appears next to it in one shape, is written as that product
//!   (`[3 * d24, d24]`: a fused projection). Sizes 0 and 1 stay literal.
//! * Dtypes are exact (`f32`, not `float`); metadata keys are expected (their values are
//!   not: they change from run to run), except safeshift's own `safeshift.*` keys.
//!
//! The text is put through the language's formatter, so it is canonical.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use safeshift_dsl::ast::{FLAGS, KEYWORDS};
use safeshift_dsl::SourceId;
use safeshift_model::Layout;

use crate::fold::{fold, Entry, Segment};

/// Words a generated dim name avoids (clause words, flags, statement words).
const STATEMENT_WORDS: &[&str] = &["schema", "migration", "dim", "tensor", "allow", "meta", "aux", "down", "optional"];

/// Metadata keys safeshift writes itself; a schema does not expect them.
pub use safeshift_model::keys::TOOL_PREFIX as TOOL_METADATA_PREFIX;

/// What to call the inferred schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferOptions {
    /// The family (dotted identifiers).
    pub family: String,
    /// The version (semver).
    pub version: String,
    /// A comment line put above the schema (where it came from), if any.
    pub origin: Option<String>,
}

impl Default for InferOptions {
    fn default() -> InferOptions {
        InferOptions { family: "model".into(), version: "0.0.0".into(), origin: None }
    }
}

/// A schema inferred from a layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferredSchema {
    /// The folded tensor entries, in file order.
    pub entries: Vec<Entry>,
    /// Count dims and their values.
    pub counts: BTreeMap<String, u64>,
    /// How each size is written: a dim name or a product (`3 * d24`) or a literal.
    pub sizes: SizeNames,
    /// The metadata keys expected.
    pub meta: Vec<String>,
}

/// How each concrete size of a layout is written in its inferred schema.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SizeNames {
    /// Base dims: size → name, in order of first use.
    pub dims: Vec<(u64, String)>,
    /// Sizes written as a product: size → (factor, base size).
    pub products: BTreeMap<u64, (u64, u64)>,
}

impl SizeNames {
    /// The expression for `size` (`d24`, `3 * d24`, `1`).
    pub fn expr(&self, size: u64) -> String {
        if let Some((factor, base)) = self.products.get(&size) {
            return format!("{factor} * {}", self.name(*base).unwrap_or_else(|| base.to_string()));
        }
        self.name(size).unwrap_or_else(|| size.to_string())
    }

    /// The dim named for exactly `size`, if there is one.
    pub fn name(&self, size: u64) -> Option<String> {
        self.dims.iter().find(|(value, _)| *value == size).map(|(_, name)| name.clone())
    }

    /// Every dim name with its value.
    pub fn values(&self) -> BTreeMap<String, u64> {
        self.dims.iter().map(|(value, name)| (name.clone(), *value)).collect()
    }
}

/// Why no schema could be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InferError {
    /// The family or version given cannot be written in the language.
    #[error("`{family} @ {version}` is not a valid schema header: {message}")]
    Header {
        /// The family given.
        family: String,
        /// The version given.
        version: String,
        /// What the language says.
        message: String,
    },
}

/// Infers the structure of a schema for `layout`.
pub fn infer(layout: &Layout) -> InferredSchema {
    let reserved = |name: &str| is_reserved(name) || is_size_name(name);
    let folded = fold(layout, &reserved);
    let sizes = name_sizes(&folded.entries);
    let meta = layout.metadata.keys().filter(|key| !key.starts_with(TOOL_METADATA_PREFIX)).cloned().collect();
    InferredSchema { entries: folded.entries, counts: folded.counts, sizes, meta }
}

/// Infers a schema for `layout` and writes it in canonical text.
pub fn infer_schema_text(layout: &Layout, options: &InferOptions) -> Result<String, InferError> {
    let inferred = infer(layout);
    let text = inferred.render(options);
    canonical(&text).map_err(|message| InferError::Header {
        family: options.family.clone(),
        version: options.version.clone(),
        message,
    })
}

/// `text` parsed and formatted; the first diagnostic's message if it does not parse.
pub fn canonical(text: &str) -> Result<String, String> {
    let file = safeshift_dsl::parse(SourceId(0), text)
        .map_err(|errors| errors.first().map(|error| error.message.clone()).unwrap_or_default())?;
    if let Some(problem) = safeshift_dsl::check(SourceId(0), &file).into_iter().find(|d| d.is_error()) {
        return Err(problem.message);
    }
    Ok(safeshift_dsl::format(&file))
}

impl InferredSchema {
    /// The schema as language text (not yet formatted).
    pub fn render(&self, options: &InferOptions) -> String {
        let mut out = String::new();
        if let Some(origin) = &options.origin {
            for line in origin.lines() {
                let _ = writeln!(out, "// {line}");
            }
        }
        let _ = writeln!(out, "schema {} @ {} {{", options.family, options.version);
        for (name, count) in &self.counts {
            let _ = writeln!(out, "dim {name} // {count} blocks");
        }
        for (size, name) in &self.sizes.dims {
            let _ = writeln!(out, "dim {name} // {size}");
        }
        out.push('\n');
        for entry in &self.entries {
            let shape: Vec<String> = entry.shape.iter().map(|&size| self.sizes.expr(size)).collect();
            let _ = writeln!(
                out,
                "tensor {} : {}[{}]",
                quoted(&pattern(&entry.segments)),
                entry.dtype.language_name(),
                shape.join(", ")
            );
        }
        for key in &self.meta {
            let _ = writeln!(out, "meta {}", quoted(key));
        }
        out.push_str("}\n");
        out
    }
}

/// A folded name as pattern text: counted segments become `{i < dim}`, captures named
/// `i`, `j`, `k`, … from the left; literal braces doubled.
pub fn pattern(segments: &[Segment]) -> String {
    const NAMES: [&str; 6] = ["i", "j", "k", "l", "m", "n"];
    let mut counted = 0;
    let parts: Vec<String> = segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => text.replace('{', "{{").replace('}', "}}"),
            Segment::Counted(dim) => {
                let name = NAMES.get(counted).map_or_else(|| format!("i{counted}"), |name| (*name).to_owned());
                counted += 1;
                format!("{{{name} < {dim}}}")
            }
        })
        .collect();
    parts.join(".")
}

/// A string literal with the language's (JSON's) escapes.
pub fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn is_reserved(name: &str) -> bool {
    KEYWORDS.contains(&name) || FLAGS.contains(&name) || STATEMENT_WORDS.contains(&name)
}

/// The names size dims take (`d` and digits), which count dims must not take.
fn is_size_name(name: &str) -> bool {
    name.len() > 1 && name.starts_with('d') && name[1..].bytes().all(|byte| byte.is_ascii_digit())
}

/// Names every size of the entries' shapes (see the module docs).
fn name_sizes(entries: &[Entry]) -> SizeNames {
    // Sizes in order of first use.
    let mut order: Vec<u64> = Vec::new();
    for entry in entries {
        for &size in &entry.shape {
            if size >= 2 && !order.contains(&size) {
                order.push(size);
            }
        }
    }
    let mut products = BTreeMap::new();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    for &size in &sorted {
        for factor in [2, 3] {
            if size % factor != 0 || products.contains_key(&(size / factor)) {
                continue;
            }
            let base = size / factor;
            if base >= 2 && always_next_to(entries, size, base) {
                products.insert(size, (factor, base));
                break;
            }
        }
    }
    let dims =
        order.into_iter().filter(|size| !products.contains_key(size)).map(|size| (size, format!("d{size}"))).collect();
    SizeNames { dims, products }
}

/// Whether every shape holding `size` also holds `base` on another axis.
fn always_next_to(entries: &[Entry], size: u64, base: u64) -> bool {
    let holding: Vec<&Entry> = entries.iter().filter(|entry| entry.shape.contains(&size)).collect();
    !holding.is_empty()
        && holding.iter().all(|entry| {
            let axes: BTreeSet<usize> =
                entry.shape.iter().enumerate().filter(|(_, &s)| s == size).map(|(axis, _)| axis).collect();
            entry.shape.iter().enumerate().any(|(axis, &s)| s == base && !axes.contains(&axis))
        })
}

/// The names a registry schema gives sizes, once its dims are bound (`dims`): a draft
/// written against it uses them (`f32[hidden]`, `{c * blocks_per_chunk + j}`).
pub fn schema_names(schema: &safeshift_model::Schema, dims: &BTreeMap<String, i64>) -> InferredSchema {
    use safeshift_model::DimKind;
    let mut counts = BTreeMap::new();
    let mut sizes = SizeNames::default();
    for dim in &schema.dims {
        let Some(&value) = dims.get(&dim.name) else { continue };
        let Ok(value) = u64::try_from(value) else { continue };
        match dim.kind {
            DimKind::Counted => {
                counts.insert(dim.name.clone(), value);
            }
            DimKind::Free | DimKind::Meta(_) => {
                if value >= 2 && sizes.name(value).is_none() {
                    sizes.dims.push((value, dim.name.clone()));
                }
            }
            DimKind::Derived(_) => {}
        }
    }
    InferredSchema { entries: Vec::new(), counts, sizes, meta: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeshift_model::{DType, TensorInfo};

    fn layout(tensors: &[(&str, DType, &[u64])]) -> Layout {
        Layout {
            tensors: tensors
                .iter()
                .map(|(name, dtype, shape)| TensorInfo { name: (*name).into(), dtype: *dtype, shape: shape.to_vec() })
                .collect(),
            metadata: BTreeMap::from([("format".into(), "pt".into()), ("safeshift.schema".into(), "x@1.0.0".into())]),
        }
    }

    #[test]
    fn writes_folded_products_and_metadata_keys() {
        let layout = layout(&[
            ("embed.weight", DType::BF16, &[10, 8]),
            ("layers.0.qkv.weight", DType::BF16, &[24, 8]),
            ("layers.1.qkv.weight", DType::BF16, &[24, 8]),
            ("layers.0.mlp.weight", DType::BF16, &[32, 8]),
            ("layers.1.mlp.weight", DType::BF16, &[32, 8]),
            ("norm.weight", DType::F32, &[8]),
            ("step", DType::I64, &[]),
            ("inc", DType::I64, &[2, 1]),
        ]);
        let options = InferOptions { family: "toy".into(), version: "1.0.0".into(), origin: Some("from x".into()) };
        let text = infer_schema_text(&layout, &options).unwrap();
        assert_eq!(
            text,
            r#"// from x
schema toy @ 1.0.0 {
    dim layers_2 // 2 blocks
    dim d10      // 10
    dim d8       // 8
    dim d32      // 32
    dim d2       // 2

    tensor "embed.weight" : bf16[d10, d8]
    tensor "layers.{i < layers_2}.qkv.weight" : bf16[3 * d8, d8]
    tensor "layers.{i < layers_2}.mlp.weight" : bf16[d32, d8]
    tensor "norm.weight" : f32[d8]
    tensor "step" : i64[]
    tensor "inc" : i64[d2, 1]
    meta "format"
}
"#
        );
        assert_eq!(canonical(&text).unwrap(), text);
    }

    #[test]
    fn a_bad_header_is_an_error() {
        let options = InferOptions { family: "toy".into(), version: "1.0".into(), origin: None };
        let err = infer_schema_text(&Layout::default(), &options).unwrap_err();
        assert!(err.to_string().starts_with("`toy @ 1.0` is not a valid schema header"), "{err}");
    }

    #[test]
    fn patterns_escape_braces_and_name_captures() {
        let segments = [
            Segment::Literal("a{b}".into()),
            Segment::Counted("x".into()),
            Segment::Counted("y".into()),
            Segment::Literal("w".into()),
        ];
        assert_eq!(pattern(&segments), "a{{b}}.{i < x}.{j < y}.w");
    }
}
