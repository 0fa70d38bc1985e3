//! Why a checkpoint layout does not fit a schema, as a diff a person can read.
//!
//! Detection unifies a layout with every schema of a registry and shows the nearest ones,
//! ranked by [`Mismatch::score`], each with its diff (`Display`):
//!
//! ```text
//! - model.layers.3.mlp.weight
//! + model.extra.weight
//! ~ model.layers.0.attn.weight: [72, 24], expected [3 * hidden, hidden] (hidden = 16)
//! ~ model.norm.weight: i64, expected float
//! ? dim `heads` unresolved
//! ! dim `hidden` = 24 from --dim `hidden`, but 16 from `model.norm.weight` axis 0
//! ```
//!
//! `{}` lists at most [`Mismatch::DISPLAY_LIMIT`] lines per section; `{:#}` lists all.

use std::collections::BTreeMap;
use std::fmt;

use crate::{DType, DTypeClass, MetaDimError, Sym};

/// The differences between a schema and a layout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mismatch {
    /// Required tensors the layout lacks: a concrete name, or the pattern text for a
    /// family with captures of which nothing matched.
    pub missing: Vec<String>,
    /// Further missing names not listed in `missing` (a huge counted family).
    pub missing_unlisted: u64,
    /// Layout tensors no schema tensor or `allow` pattern matches, in layout order.
    pub unexpected: Vec<String>,
    /// Tensors whose dtype the schema does not accept.
    pub dtype_mismatches: Vec<DtypeMismatch>,
    /// Tensors whose shape does not fit.
    pub shape_mismatches: Vec<ShapeMismatch>,
    /// Dims needed to check a present tensor's shape that nothing determines.
    pub unresolved_dims: Vec<String>,
    /// Dims whose sources disagree, or that do not evaluate to a non-negative integer.
    pub conflicting_dims: Vec<DimConflict>,
    /// Metadata keys the schema expects that are absent or hold another value.
    pub meta_mismatches: Vec<MetaMismatch>,
    /// The dims that were bound, for reading the rest of the diff.
    pub dims: BTreeMap<String, i64>,
    /// How many layout tensors fit their schema tensor (name, dtype, shape).
    pub fitting: usize,
    /// How many layout tensors an `allow` pattern matched (they count for nothing).
    pub allowed: usize,
}

/// A tensor whose dtype the schema does not accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtypeMismatch {
    /// The tensor's name.
    pub tensor: String,
    /// What the schema accepts.
    pub expected: DTypeClass,
    /// What the layout has.
    pub found: DType,
}

/// A metadata key the schema expects that is absent or holds another value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaMismatch {
    /// The key.
    pub key: String,
    /// The value the schema expects, if it names one.
    pub expected: Option<serde_json::Value>,
    /// The value the layout has, if any.
    pub found: Option<String>,
}

/// A tensor whose shape does not fit.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeMismatch {
    /// The tensor's name.
    pub tensor: String,
    /// The schema's shape, as written (derived dims not expanded).
    pub expected: Vec<Sym>,
    /// The layout's shape.
    pub found: Vec<u64>,
    /// The dims of the axes that do not fit (all dims for a rank mismatch), sorted.
    pub failed_dims: Vec<String>,
}

/// Where a dim's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimSource {
    /// Given by the caller (`--dim NAME=VALUE`).
    Given(String),
    /// Read from metadata at this path.
    Meta(String),
    /// Counted from the names matching this pattern (text).
    Count(String),
    /// Read from this tensor's shape.
    Shape {
        /// The tensor's name.
        tensor: String,
        /// The axis.
        axis: usize,
    },
}

/// A dim whose value is contradictory or unusable.
#[derive(Clone, Debug, PartialEq)]
pub enum DimConflict {
    /// One source gives `value`, but the dims bound earlier give `other_value`.
    Disagree {
        /// The dim, or the expression a source constrains (`2 * n`).
        dim: String,
        /// The value this source says.
        value: i64,
        /// This source.
        source: DimSource,
        /// The value the bound dims give.
        other_value: i64,
        /// Where the (first) bound dim came from.
        other_source: DimSource,
    },
    /// A derived dim, or one a source determines, is not a non-negative integer:
    /// `head_dim = hidden / heads` with `hidden = 24, heads = 5`.
    Inexact {
        /// The dim.
        dim: String,
        /// Its expression over bound dims.
        expr: Sym,
        /// The values of the dims it uses.
        values: BTreeMap<String, i64>,
    },
    /// A metadata dim could not be read.
    Meta {
        /// The dim.
        dim: String,
        /// Why.
        error: MetaDimError,
    },
}

impl Mismatch {
    /// Lines listed per section by `{}` (`{:#}` lists all).
    pub const DISPLAY_LIMIT: usize = 10;

    /// Whether there is no difference at all.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.missing_unlisted == 0
            && self.unexpected.is_empty()
            && self.dtype_mismatches.is_empty()
            && self.shape_mismatches.is_empty()
            && self.unresolved_dims.is_empty()
            && self.conflicting_dims.is_empty()
            && self.meta_mismatches.is_empty()
    }

    /// How near the layout is to the schema, in `0.0..=1.0` (1 = fits): the fitting
    /// tensors over all tensors involved (present ones not allowed, plus missing ones),
    /// with each dim problem counting as one more unfit tensor.
    pub fn score(&self) -> f64 {
        let misfits = self.unexpected.len() + self.dtype_or_shape_misfits();
        let missing = self.missing.len() as u64 + self.missing_unlisted;
        let dim_problems = self.unresolved_dims.len() + self.conflicting_dims.len() + self.meta_mismatches.len();
        let total = self.fitting as f64 + misfits as f64 + missing as f64 + dim_problems as f64;
        if total == 0.0 {
            1.0
        } else {
            self.fitting as f64 / total
        }
    }

    fn dtype_or_shape_misfits(&self) -> usize {
        let mut names: Vec<&str> = self.dtype_mismatches.iter().map(|m| m.tensor.as_str()).collect();
        names.extend(self.shape_mismatches.iter().map(|m| m.tensor.as_str()));
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = if f.alternate() { usize::MAX } else { Mismatch::DISPLAY_LIMIT };
        let mut lines = Lines { f, first: true };
        let missing_extra = self.missing.len().saturating_sub(limit) as u64 + self.missing_unlisted;
        for name in self.missing.iter().take(limit) {
            lines.line(format_args!("- {name}"))?;
        }
        if missing_extra > 0 {
            lines.line(format_args!("- … and {missing_extra} more missing"))?;
        }
        for name in self.unexpected.iter().take(limit) {
            lines.line(format_args!("+ {name}"))?;
        }
        if self.unexpected.len() > limit {
            lines.line(format_args!("+ … and {} more unexpected", self.unexpected.len() - limit))?;
        }
        let changed = self.shape_mismatches.len() + self.dtype_mismatches.len();
        for mismatch in self.shape_mismatches.iter().take(limit) {
            let expected = bracketed(&mismatch.expected);
            let bound: Vec<String> = mismatch
                .failed_dims
                .iter()
                .filter_map(|dim| self.dims.get(dim).map(|value| format!("{dim} = {value}")))
                .collect();
            let found = format!("{:?}", mismatch.found);
            if bound.is_empty() {
                lines.line(format_args!("~ {}: {found}, expected {expected}", mismatch.tensor))?;
            } else {
                lines.line(format_args!(
                    "~ {}: {found}, expected {expected} ({})",
                    mismatch.tensor,
                    bound.join(", ")
                ))?;
            }
        }
        for mismatch in self.dtype_mismatches.iter().take(limit.saturating_sub(self.shape_mismatches.len())) {
            lines.line(format_args!("~ {}: {}, expected {}", mismatch.tensor, mismatch.found, mismatch.expected))?;
        }
        if changed > limit {
            lines.line(format_args!("~ … and {} more changed", changed - limit))?;
        }
        for meta in &self.meta_mismatches {
            match (&meta.found, &meta.expected) {
                (None, _) => lines.line(format_args!("- meta `{}`", meta.key))?,
                (Some(found), Some(expected)) => {
                    lines.line(format_args!("~ meta `{}`: {found}, expected {expected}", meta.key))?
                }
                (Some(found), None) => lines.line(format_args!("~ meta `{}`: {found}", meta.key))?,
            }
        }
        for dim in &self.unresolved_dims {
            lines.line(format_args!("? dim `{dim}` unresolved"))?;
        }
        for conflict in &self.conflicting_dims {
            lines.line(format_args!("! {conflict}"))?;
        }
        Ok(())
    }
}

struct Lines<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl Lines<'_, '_> {
    fn line(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        if !self.first {
            self.f.write_str("\n")?;
        }
        self.first = false;
        self.f.write_fmt(args)
    }
}

fn bracketed(shape: &[Sym]) -> String {
    let axes: Vec<String> = shape.iter().map(Sym::to_string).collect();
    format!("[{}]", axes.join(", "))
}

impl fmt::Display for DimSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DimSource::Given(name) => write!(f, "--dim `{name}`"),
            DimSource::Meta(path) => write!(f, "metadata `{path}`"),
            DimSource::Count(pattern) => write!(f, "counting `{pattern}`"),
            DimSource::Shape { tensor, axis } => write!(f, "`{tensor}` axis {axis}"),
        }
    }
}

impl fmt::Display for DimConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DimConflict::Disagree { dim, value, source, other_value, other_source } => {
                write!(f, "dim `{dim}` = {value} from {source}, but {other_value} from {other_source}")
            }
            DimConflict::Inexact { dim, expr, values } => {
                let values: Vec<String> = values.iter().map(|(name, value)| format!("{name} = {value}")).collect();
                write!(f, "dim `{dim}` = {expr} is not a non-negative integer with {}", values.join(", "))
            }
            DimConflict::Meta { dim, error } => write!(f, "dim `{dim}`: {error}"),
        }
    }
}
