//! ## `argsort` (an index expression)
//!
//! ```safeshift
//! gather SRC axis N index argsort(AUX["tensor"], ROW)
//! gather SRC axis N index argsort(AUX["tensor"])
//! ```
//!
//! An index computed from a tensor instead of stored: the stable argsort of row `ROW` of a
//! 2-d integer tensor (or of a 1-d one): position `i` holds the index of the `i`-th
//! smallest value, equal values keep their order — torch's `sort(stable=True).indices`.
//! So a graph's `edge_index` [2, E] gives the order that sorts its edges by destination
//! (`ROW` 1) without anyone having stored that permutation. The tensor comes from the aux
//! input: from `--aux AUX=FILE`, or else from the checkpoint's own extras named
//! `AUX.tensor` (`graph.data_to_hidden.edge_index`). Its name may use the captures of the
//! source pattern: `graph["{dataset}_to_hidden.edge_index"]`.
//!
//! * **Shape rule:** `[E]` (`i64`) from `[rows, E]` with `ROW < rows`, or from `[E]`.
//! * **Inverse:** an argsort is always a permutation, so the `gather` it indexes is undone
//!   by gathering with its inverse permutation (computed from the same tensor).
//! * **Lossy:** no.
//!
//! ```safeshift
//! gather "model.model.encoder_graph_provider.{dataset}.trainable.trainable" axis 0
//!     index argsort(graph["{dataset}_to_hidden.edge_index"], 1)
//! ```

use std::collections::BTreeMap;

use safeshift_dsl::ast::{ExprKind, Value};
use safeshift_model::pattern::Captures;
use safeshift_model::{DTypeClass, Sym};

use crate::eager;
use crate::expr::{shape_text, Expr, Leaf};
use crate::operation::OpErrorKind;
use crate::tensor_set::{EagerTensor, OpContext};

/// The index a `gather` reorders by: a tensor as stored, or the argsort of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Index {
    /// The aux input.
    pub input: String,
    /// The tensor's name in it, possibly with `{capture}`s of the source pattern.
    pub tensor: String,
    /// `None`: the tensor is the index. `Some(None)`: the argsort of a 1-d tensor.
    /// `Some(Some(row))`: the argsort of row `row` of a 2-d tensor.
    pub argsort: Option<Option<u64>>,
}

/// Reads `AUX["t"]` or `argsort(AUX["t"][, ROW])`; the error says what was expected.
pub(crate) fn lower_index(value: &Value) -> Result<Index, String> {
    let aux = |value: &Value| match value {
        Value::Aux { input, tensor } => Some((input.node.clone(), tensor.node.clone())),
        _ => None,
    };
    if let Some((input, tensor)) = aux(value) {
        return Ok(Index { input, tensor, argsort: None });
    }
    let expected = "`index` takes an aux tensor (`index graph[\"perm\"]`) or the argsort of one \
                    (`index argsort(graph[\"edges.edge_index\"], 1)`)";
    let Value::Call { name, args } = value else { return Err(expected.to_owned()) };
    if name.node != "argsort" {
        return Err(format!("unknown index function `{}`; {expected}", name.node));
    }
    let row = match args.get(1) {
        None => None,
        Some(Value::Expr(expr)) => match expr.kind {
            ExprKind::Int(row) => Some(row),
            _ => return Err("the row of `argsort` is an integer literal (`argsort(graph[\"e\"], 1)`)".to_owned()),
        },
        Some(_) => return Err("the row of `argsort` is an integer literal (`argsort(graph[\"e\"], 1)`)".to_owned()),
    };
    match (args.first().and_then(aux), args.len()) {
        (Some((input, tensor)), 1 | 2) => Ok(Index { input, tensor, argsort: Some(row) }),
        _ => Err(expected.to_owned()),
    }
}

impl Index {
    /// The tensor's name for a source tensor with these captures: `{x}` replaced by its value.
    pub fn tensor_name(&self, captures: &Captures) -> String {
        let mut name = self.tensor.clone();
        for (capture, value) in &captures.0 {
            name = name.replace(&format!("{{{capture}}}"), value);
        }
        name
    }

    /// `graph["…"]` or `argsort(graph["…"], 1)`, for messages.
    pub fn text(&self, captures: &Captures) -> String {
        let stored = format!("{}[{:?}]", self.input, self.tensor_name(captures));
        match self.argsort {
            None => stored,
            Some(None) => format!("argsort({stored})"),
            Some(Some(row)) => format!("argsort({stored}, {row})"),
        }
    }

    fn missing(&self, captures: &Captures) -> OpErrorKind {
        OpErrorKind::Aux { input: self.input.clone(), tensor: self.tensor_name(captures) }
    }

    /// The lazy index expression. The aux tensor is looked up under its filled name, then
    /// (for symbolic checks, which know only what the migration wrote) under its raw one.
    pub fn expr(&self, ctx: &OpContext, captures: &Captures) -> Result<Expr, OpErrorKind> {
        let filled = self.tensor_name(captures);
        let (name, info) = [filled, self.tensor.clone()]
            .into_iter()
            .find_map(|name| ctx.aux.get(&(self.input.clone(), name.clone())).map(|info| (name, info)))
            .ok_or_else(|| self.missing(captures))?;
        let integer =
            matches!(info.dtype, DTypeClass::Int) || matches!(info.dtype, DTypeClass::Exact(dtype) if dtype.is_int());
        let leaf =
            Expr::Source(Leaf { aux: Some(self.input.clone()), name, dtype: info.dtype, shape: info.shape.clone() });
        let rank_ok = match self.argsort {
            None | Some(None) => info.shape.len() == 1,
            Some(Some(row)) => info.shape.len() == 2 && info.shape[0].as_int().is_none_or(|rows| (row as i64) < rows),
        };
        if !integer || !rank_ok {
            let wanted = match self.argsort {
                Some(Some(row)) => format!("a 2-d integer tensor with a row {row}"),
                _ => "a 1-d integer tensor".to_owned(),
            };
            let message =
                format!("`{}` must be {wanted}, not {}[{}]", self.text(captures), info.dtype, shape_text(&info.shape));
            return Err(OpErrorKind::invalid(message));
        }
        Ok(match self.argsort {
            None => leaf,
            Some(None) => Expr::Argsort { input: Box::new(leaf) },
            Some(Some(row)) => {
                let length = info.shape[1].clone();
                let one_row =
                    Expr::Narrow { input: Box::new(leaf), axis: 0, start: Sym::int(row as i64), len: Sym::int(1) };
                Expr::Argsort { input: Box::new(Expr::Reshape { input: Box::new(one_row), shape: vec![length] }) }
            }
        })
    }

    /// The reference: the index values, by plain loops.
    pub fn eager(
        &self,
        aux: &BTreeMap<(String, String), EagerTensor>,
        captures: &Captures,
    ) -> Result<Vec<i64>, OpErrorKind> {
        let tensor =
            aux.get(&(self.input.clone(), self.tensor_name(captures))).ok_or_else(|| self.missing(captures))?;
        let values = eager::int_values(tensor)?;
        let row = match self.argsort {
            None | Some(None) if tensor.shape.len() == 1 => values,
            Some(Some(row)) if tensor.shape.len() == 2 && row < tensor.shape[0] => {
                let width = tensor.shape[1] as usize;
                values[row as usize * width..(row as usize + 1) * width].to_vec()
            }
            _ => return Err(OpErrorKind::Data { message: format!("`{}` has the wrong shape", self.text(captures)) }),
        };
        if self.argsort.is_none() {
            return Ok(row);
        }
        // Insertion by position among equal values keeps the sort stable.
        let mut order: Vec<i64> = Vec::with_capacity(row.len());
        for (position, value) in row.iter().enumerate() {
            let at = order.partition_point(|&earlier| row[earlier as usize] <= *value);
            order.insert(at, position as i64);
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;
    use crate::tensor_set::EagerSet;
    use safeshift_model::DType;

    fn edge_index(dst: &[i64]) -> EagerTensor {
        let src: Vec<i64> = (0..dst.len() as i64).collect();
        let data = src.iter().chain(dst).flat_map(|value| value.to_le_bytes()).collect();
        tensor(DType::I64, &[2, dst.len() as u64], data)
    }

    fn with_edges(mut set: EagerSet, name: &str, dst: &[i64]) -> EagerSet {
        set.aux.insert(("graph".into(), name.into()), edge_index(dst));
        set
    }

    fn gather_by_argsort() -> Box<dyn crate::operation::Operation> {
        lower_text(r#"gather "{ds}.w" axis 0 index argsort(graph["{ds}_to_h.edge_index"], 1)"#)
    }

    #[test]
    fn sorts_rows_by_destination_stably_and_back() {
        // Destinations 2, 0, 2, 1, 0: sorted stably the edges are 1, 4, 3, 0, 2.
        let set = with_edges(eager_set(&[("a.w", iota(&[5, 2]))]), "a_to_h.edge_index", &[2, 0, 2, 1, 0]);
        let ctx = with_aux(&OpContext::default(), &set);
        let out = check_lazy_eager(&*gather_by_argsort(), &set, &ctx);
        assert_eq!(i32_values(out.get("a.w").unwrap()), [2, 3, 8, 9, 6, 7, 0, 1, 4, 5]);
        check_round_trip(&*gather_by_argsort(), &set, &ctx);
    }

    #[test]
    fn each_source_reads_the_edges_its_captures_name() {
        let set = with_edges(
            with_edges(eager_set(&[("a.w", iota(&[2])), ("b.w", iota(&[2]))]), "a_to_h.edge_index", &[1, 0]),
            "b_to_h.edge_index",
            &[0, 1],
        );
        let ctx = with_aux(&OpContext::default(), &set);
        let out = check_lazy_eager(&*gather_by_argsort(), &set, &ctx);
        assert_eq!(i32_values(out.get("a.w").unwrap()), [1, 0]);
        assert_eq!(i32_values(out.get("b.w").unwrap()), [0, 1]);
    }

    #[test]
    fn wrong_shapes_and_missing_tensors_are_named() {
        let set = with_edges(eager_set(&[("a.w", iota(&[2]))]), "x", &[1, 0]);
        let ctx = with_aux(&OpContext::default(), &set);
        let err = gather_by_argsort().apply(&mut lazy_of(&set), &ctx).unwrap_err();
        assert_eq!(err.kind.to_string(), "aux tensor `graph[\"a_to_h.edge_index\"]` is not available");
        let op = lower_text(r#"gather "{ds}.w" axis 0 index argsort(graph["x"], 2)"#);
        let err = op.apply(&mut lazy_of(&set), &ctx).unwrap_err();
        assert!(err.to_string().contains("must be a 2-d integer tensor with a row 2"), "{err}");
    }

    #[test]
    fn lowering_reports_bad_index_values() {
        let bad = |text: &str| {
            let ops = parse_ops(text);
            crate::lower(safeshift_dsl::SourceId(0), &ops[0]).map(|_| ()).expect_err("an error")
        };
        let diagnostics = bad(r#"gather "w" axis 0 index sort(graph["e"], 1)"#);
        assert!(diagnostics[0].message.contains("unknown index function `sort`"), "{:?}", diagnostics);
        let diagnostics = bad(r#"gather "w" axis 0 index argsort(graph["e"], n)"#);
        assert!(diagnostics[0].message.contains("integer literal"), "{:?}", diagnostics);
    }
}
