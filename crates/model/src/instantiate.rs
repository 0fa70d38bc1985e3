//! Instantiating a schema: the concrete layout it describes for given dims (synthetic
//! checkpoints, tests), or a symbolic one with concrete names and shapes over dims (the
//! static checker of migrations).
//!
//! Names: a counted capture `{i < n}` enumerates `0..n`. A capture `{x}` or `{x..}` has
//! no set of values to enumerate: [`instantiate`] refuses it
//! ([`InstantiateError::UncountableCapture`]) unless the caller lists its values
//! ([`instantiate_with_captures`]); [`instantiate_symbolic`] uses the capture's own name
//! as its one representative value (`"{p..}.weight"` gives `p.weight`), which any
//! pattern with a capture in that place matches again.
//!
//! Dtypes: a class picks a canonical member: `float` → `f32`, `int` → `i64`, `any` → `f32`.
//! Optional tensors are included. Metadata: every key the schema expects (its value, or
//! an empty string), and every metadata dim written at its path.

use std::collections::{BTreeMap, HashSet};

use safeshift_dsl::ast::PatternPart;

use crate::pattern::{fill, Captures};
use crate::schema::{pattern_text, substitute_all};
use crate::{DType, DTypeClass, DimKind, Layout, Schema, Sym, TensorDef, TensorInfo};

/// A tensor with a concrete name and a symbolic shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SymTensor {
    /// The name.
    pub name: String,
    /// The dtypes it may have.
    pub dtype: DTypeClass,
    /// One symbolic size per axis, over non-derived dims.
    pub shape: Vec<Sym>,
    /// Whether it may be absent.
    pub optional: bool,
}

/// Why a schema could not be instantiated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstantiateError {
    /// A dim the names or shapes need has no value.
    #[error("dim `{dim}` has no value (needed by \"{pattern}\")")]
    MissingDim {
        /// The dim.
        dim: String,
        /// The tensor pattern that needs it.
        pattern: String,
    },
    /// A derived dim is not a non-negative integer with the dims given.
    #[error("dim `{dim}` = {expr} is not a non-negative integer with {values}")]
    Inexact {
        /// The derived dim.
        dim: String,
        /// Its definition over the given dims.
        expr: Sym,
        /// The values used, `a = 1, b = 2`.
        values: String,
    },
    /// A derived dim was also given, with another value.
    #[error("dim `{dim}` is given as {given}, but its definition {expr} gives {computed}")]
    DerivedConflict {
        /// The derived dim.
        dim: String,
        /// Its definition.
        expr: Sym,
        /// The value given.
        given: i64,
        /// The value computed.
        computed: i64,
    },
    /// A capture other than `{i < n}` has no values to enumerate.
    #[error("tensor \"{pattern}\" has the capture `{capture}`, whose values cannot be enumerated; give them")]
    UncountableCapture {
        /// The tensor pattern.
        pattern: String,
        /// The capture.
        capture: String,
    },
    /// An axis does not evaluate to a size.
    #[error("tensor `{tensor}` axis {axis}: {expr} is not a non-negative integer")]
    BadSize {
        /// The tensor's name.
        tensor: String,
        /// The axis.
        axis: usize,
        /// The axis expression.
        expr: Sym,
    },
    /// A counting bound does not evaluate to a count.
    #[error("tensor \"{pattern}\": the count {bound} is not a non-negative integer")]
    BadCount {
        /// The tensor pattern.
        pattern: String,
        /// The bound.
        bound: Sym,
    },
    /// A metadata dim's path runs through a value that is not a JSON object, or two
    /// dims write different values at one path.
    #[error("dim `{dim}` cannot be written to metadata at `{path}`")]
    MetaConflict {
        /// The dim.
        dim: String,
        /// Its metadata path.
        path: String,
    },
    /// Two tensors get the same name.
    #[error("two tensors are named `{name}`")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A name could not be built (a capture value is not a valid segment).
    #[error("tensor \"{pattern}\": {message}")]
    BadName {
        /// The tensor pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// The schema describes more tensors than a layout may hold.
    #[error("more than {limit} tensors")]
    TooManyTensors {
        /// The limit.
        limit: usize,
    },
}

/// The most tensors an instantiation produces: far beyond real checkpoints, and a bound
/// on memory when counts come from untrusted input.
pub const MAX_INSTANTIATED_TENSORS: usize = 1_000_000;

/// The concrete layout `schema` describes with `dims` (free, metadata and counted dims;
/// derived ones are computed, and checked when also given). Fails on a capture other
/// than `{i < n}`: see [`instantiate_with_captures`].
pub fn instantiate(schema: &Schema, dims: &BTreeMap<String, i64>) -> Result<Layout, InstantiateError> {
    instantiate_with_captures(schema, dims, &BTreeMap::new())
}

/// Like [`instantiate`], with the values each non-counted capture takes (every
/// combination is produced).
pub fn instantiate_with_captures(
    schema: &Schema,
    dims: &BTreeMap<String, i64>,
    captures: &BTreeMap<String, Vec<String>>,
) -> Result<Layout, InstantiateError> {
    let derived = schema.derived_definitions();
    let values = resolve_dims(schema, dims, &derived)?;
    let lookup = |name: &str| values.get(name).copied();
    let mut tensors = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for def in &schema.tensors {
        let pattern = pattern_text(&def.pattern);
        let choices = capture_choices(def, &pattern, &derived, &lookup, &|name, multi| {
            let values = captures.get(name).ok_or_else(|| InstantiateError::UncountableCapture {
                pattern: pattern.clone(),
                capture: name.to_owned(),
            })?;
            // A value must be what the capture could match, or the instance would not
            // match its own schema.
            let fits = |value: &String| {
                !value.is_empty() && if multi { value.split('.').all(|s| !s.is_empty()) } else { !value.contains('.') }
            };
            match values.iter().find(|value| !fits(value)) {
                Some(bad) => Err(InstantiateError::BadName {
                    pattern: pattern.clone(),
                    message: format!("`{bad}` is not a valid value for `{name}`"),
                }),
                None => Ok(values.clone()),
            }
        })?;
        let names = enumerate_names(def, &pattern, &choices, tensors.len())?;
        let shape = def.shape.iter().map(|axis| substitute_all(axis, &derived)).collect::<Vec<_>>();
        for name in names {
            let mut sizes = Vec::with_capacity(shape.len());
            for (axis, sym) in shape.iter().enumerate() {
                if let Some(dim) = sym.dims().into_iter().find(|dim| lookup(dim).is_none()) {
                    return Err(InstantiateError::MissingDim { dim, pattern });
                }
                match sym.eval(&lookup).and_then(|size| u64::try_from(size).ok()) {
                    Some(size) => sizes.push(size),
                    None => {
                        return Err(InstantiateError::BadSize { tensor: name, axis, expr: def.shape[axis].clone() })
                    }
                }
            }
            if !seen.insert(name.clone()) {
                return Err(InstantiateError::DuplicateName { name });
            }
            tensors.push(TensorInfo { name, dtype: canonical_dtype(def.dtype), shape: sizes });
        }
    }
    Ok(Layout { tensors, metadata: instantiate_metadata(schema, &values)? })
}

/// The metadata a checkpoint of the schema records: each expected key (with its value,
/// or an empty string when the schema names none) and each metadata dim's value at its
/// path, so that unifying the instance reads the same dims back.
fn instantiate_metadata(
    schema: &Schema,
    values: &BTreeMap<String, i64>,
) -> Result<BTreeMap<String, String>, InstantiateError> {
    use serde_json::Value;
    let mut json: BTreeMap<String, Value> = BTreeMap::new();
    for meta in &schema.meta {
        json.insert(meta.key.clone(), meta.value.clone().unwrap_or_else(|| Value::String(String::new())));
    }
    for dim in &schema.dims {
        let (DimKind::Meta(path), Some(&value)) = (&dim.kind, values.get(&dim.name)) else { continue };
        let conflict = || InstantiateError::MetaConflict { dim: dim.name.clone(), path: path.clone() };
        let mut segments = path.split('.');
        let key = segments.next().unwrap_or_default();
        let rest: Vec<&str> = segments.collect();
        let Some((last, inner)) = rest.split_last() else {
            // The whole value is the dim.
            if json.insert(key.to_owned(), Value::from(value)).is_some_and(|old| old != value) {
                return Err(conflict());
            }
            continue;
        };
        let mut node = json.entry(key.to_owned()).or_insert_with(|| Value::Object(Default::default()));
        for segment in inner {
            let Value::Object(map) = node else { return Err(conflict()) };
            node = map.entry((*segment).to_owned()).or_insert_with(|| Value::Object(Default::default()));
        }
        let Value::Object(map) = node else { return Err(conflict()) };
        if map.insert((*last).to_owned(), Value::from(value)).is_some_and(|old| old != value) {
            return Err(conflict());
        }
    }
    Ok(json
        .into_iter()
        .map(|(key, value)| match value {
            // Plain strings are stored as they are, the way checkpoints record them.
            Value::String(text) => (key, text),
            other => (key, other.to_string()),
        })
        .collect())
}

/// The schema's tensors with concrete names (counted dims take `counts`) and symbolic
/// shapes over the other dims, derived dims expanded (and any dim in `counts` replaced
/// by its value), so shapes of different schemas compare in normal form.
pub fn instantiate_symbolic(
    schema: &Schema,
    counts: &BTreeMap<String, i64>,
) -> Result<Vec<SymTensor>, InstantiateError> {
    let derived = schema.derived_definitions();
    let lookup = |name: &str| counts.get(name).copied();
    let mut tensors = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for def in &schema.tensors {
        let pattern = pattern_text(&def.pattern);
        let choices = capture_choices(def, &pattern, &derived, &lookup, &|name, _| Ok(vec![name.to_owned()]))?;
        let names = enumerate_names(def, &pattern, &choices, tensors.len())?;
        let shape: Vec<Sym> =
            def.shape.iter().map(|axis| substitute_values(&substitute_all(axis, &derived), counts)).collect();
        for name in names {
            if !seen.insert(name.clone()) {
                return Err(InstantiateError::DuplicateName { name });
            }
            tensors.push(SymTensor { name, dtype: def.dtype, shape: shape.clone(), optional: def.optional });
        }
    }
    Ok(tensors)
}

/// The canonical member of a dtype class (`float` → `f32`, `int` → `i64`, `any` → `f32`).
pub fn canonical_dtype(class: DTypeClass) -> DType {
    match class {
        DTypeClass::Exact(dtype) => dtype,
        DTypeClass::Float | DTypeClass::Any => DType::F32,
        DTypeClass::Int => DType::I64,
    }
}

/// `sym` with each dim in `values` replaced by its value.
pub(crate) fn substitute_values(sym: &Sym, values: &BTreeMap<String, i64>) -> Sym {
    let mut out = sym.clone();
    for name in sym.dims() {
        if let Some(value) = values.get(&name) {
            out = out.substitute(&name, &Sym::int(*value));
        }
    }
    out
}

/// All dims: the given ones plus every derived one their values determine.
fn resolve_dims(
    schema: &Schema,
    dims: &BTreeMap<String, i64>,
    derived: &BTreeMap<String, Sym>,
) -> Result<BTreeMap<String, i64>, InstantiateError> {
    let mut values: BTreeMap<String, i64> =
        dims.iter().filter(|(name, _)| !derived.contains_key(*name)).map(|(n, v)| (n.clone(), *v)).collect();
    let base = values.clone();
    for dim in &schema.dims {
        let Some(expr) = derived.get(&dim.name) else { continue };
        let uses = expr.dims();
        if !uses.iter().all(|name| base.contains_key(name)) {
            continue;
        }
        let computed = expr.eval(&|name| base.get(name).copied()).filter(|value| *value >= 0).ok_or_else(|| {
            let shown: Vec<String> = uses.iter().map(|name| format!("{name} = {}", base[name])).collect();
            InstantiateError::Inexact { dim: dim.name.clone(), expr: expr.clone(), values: shown.join(", ") }
        })?;
        if let Some(&given) = dims.get(&dim.name) {
            if given != computed {
                return Err(InstantiateError::DerivedConflict {
                    dim: dim.name.clone(),
                    expr: expr.clone(),
                    given,
                    computed,
                });
            }
        }
        values.insert(dim.name.clone(), computed);
    }
    Ok(values)
}

/// For each capture of the pattern, in order, its name and the values it takes.
type Choices = Vec<(String, Vec<String>)>;

/// The values of a capture other than `{i < n}`, given its name and whether it is `{x..}`.
type FreeValues<'a> = dyn Fn(&str, bool) -> Result<Vec<String>, InstantiateError> + 'a;

fn capture_choices(
    def: &TensorDef,
    pattern: &str,
    derived: &BTreeMap<String, Sym>,
    lookup: &dyn Fn(&str) -> Option<i64>,
    free_values: &FreeValues<'_>,
) -> Result<Choices, InstantiateError> {
    let mut choices: Choices = Vec::new();
    for part in &def.pattern.parts {
        let (name, values) = match part {
            PatternPart::Counted { name, bound } => {
                let bound = substitute_all(&Sym::from_expr(bound), derived);
                if let Some(dim) = bound.dims().into_iter().find(|dim| lookup(dim).is_none()) {
                    return Err(InstantiateError::MissingDim { dim, pattern: pattern.to_owned() });
                }
                let count = bound
                    .eval(lookup)
                    .filter(|count| *count >= 0)
                    .ok_or_else(|| InstantiateError::BadCount { pattern: pattern.to_owned(), bound: bound.clone() })?;
                // Bound the product before building any index text.
                let product = choices.iter().fold(1u64, |acc, (_, values)| acc.saturating_mul(values.len() as u64));
                if product.saturating_mul(count as u64) > MAX_INSTANTIATED_TENSORS as u64 {
                    return Err(InstantiateError::TooManyTensors { limit: MAX_INSTANTIATED_TENSORS });
                }
                (name.node.clone(), (0..count).map(|index| index.to_string()).collect())
            }
            PatternPart::Capture { name, multi } => (name.node.clone(), free_values(&name.node, *multi)?),
            PatternPart::Literal(_) | PatternPart::Expr(_) => continue,
        };
        // A capture repeated in the pattern must take the same value: choose it once.
        if !choices.iter().any(|(existing, _)| *existing == name) {
            choices.push((name, values));
        }
    }
    Ok(choices)
}

/// Every name of the pattern, captures enumerated outer (leftmost) first.
fn enumerate_names(
    def: &TensorDef,
    pattern: &str,
    choices: &Choices,
    already: usize,
) -> Result<Vec<String>, InstantiateError> {
    let total = choices.iter().try_fold(1usize, |acc, (_, values)| acc.checked_mul(values.len()));
    match total {
        Some(total) if total.saturating_add(already) <= MAX_INSTANTIATED_TENSORS => {}
        _ => return Err(InstantiateError::TooManyTensors { limit: MAX_INSTANTIATED_TENSORS }),
    }
    if choices.iter().any(|(_, values)| values.is_empty()) {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    let mut indices = vec![0usize; choices.len()];
    loop {
        let captures = Captures(
            choices.iter().zip(&indices).map(|((name, values), &i)| (name.clone(), values[i].clone())).collect(),
        );
        let name = fill(&def.pattern, &captures, &|_| None)
            .map_err(|err| InstantiateError::BadName { pattern: pattern.to_owned(), message: err.to_string() })?;
        names.push(name);
        let mut axis = choices.len();
        loop {
            if axis == 0 {
                return Ok(names);
            }
            axis -= 1;
            indices[axis] += 1;
            if indices[axis] < choices[axis].1.len() {
                break;
            }
            indices[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{dims, schema};
    use crate::unify;

    const BLOCKS: &str = r#"
        schema t @ 1.0.0 {
            dim hidden
            dim chunks
            dim blocks
            dim heads
            dim head_dim = hidden / heads
            tensor "proc.{c < chunks}.blocks.{j < blocks}.qkv.weight" : float[3 * hidden, hidden]
            tensor "proc.{c < chunks}.blocks.{j < blocks}.q_norm.weight" : bf16[head_dim] optional
            tensor "step" : int[]
        }
    "#;

    #[test]
    fn enumerates_counted_names_with_concrete_shapes() {
        let schema = schema(BLOCKS);
        let layout = instantiate(&schema, &dims(&[("hidden", 8), ("chunks", 2), ("blocks", 2), ("heads", 2)])).unwrap();
        let listing: Vec<String> =
            layout.tensors.iter().map(|t| format!("{} {} {:?}", t.name, t.dtype, t.shape)).collect();
        assert_eq!(
            listing,
            vec![
                "proc.0.blocks.0.qkv.weight f32 [24, 8]",
                "proc.0.blocks.1.qkv.weight f32 [24, 8]",
                "proc.1.blocks.0.qkv.weight f32 [24, 8]",
                "proc.1.blocks.1.qkv.weight f32 [24, 8]",
                "proc.0.blocks.0.q_norm.weight bf16 [4]",
                "proc.0.blocks.1.q_norm.weight bf16 [4]",
                "proc.1.blocks.0.q_norm.weight bf16 [4]",
                "proc.1.blocks.1.q_norm.weight bf16 [4]",
                "step i64 []",
            ]
        );
        let matched = unify(&schema, &layout, &BTreeMap::new()).unwrap();
        assert_eq!(matched.dims["head_dim"], 4);
    }

    #[test]
    fn metadata_carries_expected_keys_and_meta_dims() {
        let schema = schema(
            r#"
            schema t @ 1.0.0 {
                dim hidden
                dim heads = meta("config.model.heads")
                dim kv = meta("config.model.kv")
                dim layers = meta("layers")
                dim head_dim = hidden / heads
                tensor "l.{i < layers}.q" : f32[hidden, hidden]
                tensor "l.{i < layers}.norm" : f32[head_dim] optional
                meta "format" = "pt"
                meta "sizes" = [1, 2]
                meta "origin"
            }
        "#,
        );
        let given = dims(&[("hidden", 8), ("heads", 2), ("kv", 1), ("layers", 2)]);
        let layout = instantiate(&schema, &given).unwrap();
        let metadata: Vec<(&str, &str)> = layout.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            metadata,
            vec![
                ("config", r#"{"model":{"heads":2,"kv":1}}"#),
                ("format", "pt"),
                ("layers", "2"),
                ("origin", ""),
                ("sizes", "[1,2]"),
            ]
        );
        let mut expected = given.clone();
        expected.insert("head_dim".into(), 4);
        assert_eq!(unify(&schema, &layout, &BTreeMap::new()).unwrap().dims, expected);
        let clash = schema_with_meta_clash();
        assert!(matches!(
            instantiate(&clash, &dims(&[("a", 1)])),
            Err(InstantiateError::MetaConflict { dim, .. }) if dim == "a"
        ));
    }

    fn schema_with_meta_clash() -> Schema {
        schema("schema t @ 1.0.0 {\n dim a = meta(\"config.x\")\n meta \"config\" = \"text\"\n}")
    }

    #[test]
    fn refuses_what_it_cannot_build() {
        let schema = schema(BLOCKS);
        let base = [("hidden", 8), ("chunks", 2), ("blocks", 2), ("heads", 2)];
        let with = |extra: &[(&str, i64)]| {
            let mut all = dims(&base);
            all.extend(dims(extra));
            instantiate(&schema, &all).unwrap_err()
        };
        assert_eq!(
            with(&[("heads", 3)]),
            InstantiateError::Inexact {
                dim: "head_dim".into(),
                expr: Sym::dim("hidden").div(&Sym::dim("heads")),
                values: "heads = 3, hidden = 8".into()
            }
        );
        assert!(matches!(with(&[("head_dim", 5)]), InstantiateError::DerivedConflict { given: 5, computed: 4, .. }));
        assert!(matches!(with(&[("chunks", -1)]), InstantiateError::BadCount { .. }));
        assert!(matches!(with(&[("chunks", 10_000_000)]), InstantiateError::TooManyTensors { .. }));
        assert!(matches!(with(&[("chunks", 2000), ("blocks", 2000)]), InstantiateError::TooManyTensors { .. }));
        assert!(matches!(with(&[("hidden", -8), ("heads", -2)]), InstantiateError::BadSize { axis: 0, .. }));
        let err = instantiate(&schema, &dims(&[("chunks", 1), ("blocks", 1)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dim `hidden` has no value (needed by \"proc.{c < chunks}.blocks.{j < blocks}.qkv.weight\")"
        );
    }

    #[test]
    fn free_captures_need_values() {
        let schema = schema(
            r#"
            schema t @ 1.0.0 {
                dim n
                tensor "{side}.layers.{i < n}.w" : f32[n]
                tensor "{side}.norm" : f32[]
            }
        "#,
        );
        let err = instantiate(&schema, &dims(&[("n", 2)])).unwrap_err();
        assert_eq!(
            err,
            InstantiateError::UncountableCapture { pattern: "{side}.layers.{i < n}.w".into(), capture: "side".into() }
        );
        let captures = BTreeMap::from([("side".to_owned(), vec!["enc".to_owned(), "dec".to_owned()])]);
        let layout = instantiate_with_captures(&schema, &dims(&[("n", 2)]), &captures).unwrap();
        let names: Vec<&str> = layout.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["enc.layers.0.w", "enc.layers.1.w", "dec.layers.0.w", "dec.layers.1.w", "enc.norm", "dec.norm"]
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let schema =
            schema("schema t @ 1.0.0 {\n dim n\n tensor \"l.{i < n}\" : f32[]\n tensor \"l.1\" : f32[] optional\n}");
        assert_eq!(
            instantiate(&schema, &dims(&[("n", 2)])).unwrap_err(),
            InstantiateError::DuplicateName { name: "l.1".into() }
        );
    }

    #[test]
    fn symbolic_instances_expand_derived_dims_and_counts() {
        let schema = schema(
            r#"
            schema llama @ 1.0.0 {
                dim hidden
                dim layers
                dim heads
                dim kv_heads
                dim head_dim = hidden / heads
                tensor "layers.{i < layers}.q.weight" : float[heads * head_dim, hidden]
                tensor "layers.{i < layers}.k.weight" : float[kv_heads * head_dim, hidden]
                tensor "stack" : float[layers, hidden] optional
                tensor "{p..}.bias" : float[hidden] optional
            }
        "#,
        );
        let tensors = instantiate_symbolic(&schema, &dims(&[("layers", 2)])).unwrap();
        let listing: Vec<String> = tensors
            .iter()
            .map(|t| {
                let shape: Vec<String> = t.shape.iter().map(Sym::to_string).collect();
                format!("{} {} [{}] {}", t.name, t.dtype, shape.join(", "), t.optional)
            })
            .collect();
        assert_eq!(
            listing,
            vec![
                "layers.0.q.weight float [hidden, hidden] false",
                "layers.1.q.weight float [hidden, hidden] false",
                "layers.0.k.weight float [hidden * kv_heads / heads, hidden] false",
                "layers.1.k.weight float [hidden * kv_heads / heads, hidden] false",
                "stack float [2, hidden] true",
                "p.bias float [hidden] true",
            ]
        );
        assert!(matches!(instantiate_symbolic(&schema, &BTreeMap::new()), Err(InstantiateError::MissingDim { .. })));
    }
}
