//! ## `insert`
//!
//! ```safeshift
//! insert DST : TYPE = (zeros | ones | eye | fill(X)) [each PATTERN] [optional]
//! ```
//!
//! Adds a new tensor, so that a feature the old checkpoint lacks starts as a no-op (a
//! norm scale of ones, a gate of zeros, an identity projection). `DST` is a literal name
//! or uses counted captures `{i < n}`, which insert one tensor per index `0..n`. With
//! `each PATTERN`, `DST` may also use the captures of `PATTERN`: one tensor is inserted
//! for each distinct value they take in the names matching `PATTERN` (one per dataset).
//! `TYPE` is an exact dtype and a shape over dims; `eye` needs a 2-d shape.
//!
//! * **Shape rule:** `TYPE`; inserting a name that exists is an error (with `optional`,
//!   existing names are left alone).
//! * **Inverse:** drop the inserted tensors (not lossy: they hold no information).
//! * **Lossy:** no.
//!
//! ```safeshift
//! insert "model.layers.{i < layers}.q_norm.weight" : f32[head_dim] = ones
//! insert "model.{dataset}.version" : i64[] = fill(1) each "model.encoder.{dataset}.{rest..}"
//! ```

use safeshift_dsl::ast::{Pattern, PatternPart, Span, Value};
use safeshift_model::pattern::Captures;
use safeshift_model::{DType, DTypeClass, Sym};

use super::drop::Drop;
use crate::eager;
use crate::expr::{Expr, Init};
use crate::lower::{number_of, word_of, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::{literal, pattern_text, Rewrite};
use crate::tensor_set::{concrete, concrete_shape, resolve_shape};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `insert DST : TYPE = INIT`.
#[derive(Clone, Debug)]
pub(crate) struct Insert {
    base: OpBase,
    target: Pattern,
    dtype: DType,
    shape: Vec<Sym>,
    init: Init,
    each: Option<Pattern>,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let target = operands.pattern("the name of the new tensor");
    let each = operands.pattern_clause("each").ok()?.cloned();
    let bound_by_each = |name: &str| {
        each.as_ref().is_some_and(|each| {
            each.parts.iter().any(|part| matches!(part, PatternPart::Capture { name: bound, .. } if bound.node == name))
        })
    };
    if let Some(part) = target.and_then(|target| {
        target.parts.iter().find(|part| match part {
            PatternPart::Capture { name, .. } => !bound_by_each(&name.node),
            PatternPart::Expr(_) => true,
            _ => false,
        })
    }) {
        let span = match part {
            PatternPart::Capture { name, .. } => name.span,
            _ => target.map_or(Span::DUMMY, |target| target.span),
        };
        operands.error_with_hint(
            "bad-value",
            "`insert` can only expand counted captures and those of its `each` pattern",
            span,
            "write `{i < layers}` to insert one tensor per layer, or `each \"PATTERN\"` to bind the capture",
        );
    }
    let ty = operands.ty();
    let dtype = match ty {
        Some(ty) => match DType::from_language_name(&ty.dtype.node) {
            Some(dtype) if crate::cast::supported(dtype) => Some(dtype),
            _ => {
                operands.error(
                    "bad-value",
                    format!("`insert` needs an exact computable dtype, not `{}`", ty.dtype.node),
                    ty.dtype.span,
                );
                None
            }
        },
        None => {
            let span = operands.base("insert").span;
            operands.error_with_hint("missing-operand", "`insert` needs a type", span, "write `: f32[hidden]`");
            None
        }
    };
    let shape: Option<Vec<Sym>> = ty.map(|ty| ty.shape.iter().map(Sym::from_expr).collect());
    let init = match operands.assign() {
        Some((value, span)) => {
            let init = match value {
                Value::Call { name, args } if name.node == "fill" && args.len() == 1 => {
                    number_of(&args[0]).map(Init::Value)
                }
                other => match word_of(other) {
                    Some("zeros") => Some(Init::Zeros),
                    Some("ones") => Some(Init::Ones),
                    Some("eye") => Some(Init::Eye),
                    _ => None,
                },
            };
            if init.is_none() {
                operands.error_with_hint(
                    "bad-value",
                    "unknown initial value",
                    span,
                    "write `zeros`, `ones`, `eye` or `fill(0.5)`",
                );
            }
            if init == Some(Init::Eye) && shape.as_ref().is_some_and(|shape| shape.len() != 2) {
                operands.error("bad-value", "`eye` needs a 2-d shape", span);
                return None;
            }
            init
        }
        None => {
            let span = operands.base("insert").span;
            operands.error_with_hint("missing-operand", "`insert` needs an initial value", span, "write `= zeros`");
            None
        }
    };
    let optional = operands.flag("optional").is_some();
    let base = operands.base("insert");
    Some(Box::new(Insert { base, target: target?.clone(), dtype: dtype?, shape: shape?, init: init?, each, optional }))
}

impl Insert {
    /// The values the `each` pattern's captures take in `tensors`, distinct, in order; one
    /// empty binding without `each`.
    fn bindings<V>(&self, tensors: &[(String, V)]) -> Vec<Captures> {
        let Some(each) = &self.each else { return vec![Captures::default()] };
        let mut out: Vec<Captures> = Vec::new();
        for (_, captures) in crate::rewrite::matches(tensors, each) {
            if !out.contains(&captures) {
                out.push(captures);
            }
        }
        out
    }

    /// The names to insert: counted captures expanded over `0..n`, the `each` pattern's
    /// captures over the values they take in `tensors`.
    fn names<V>(&self, ctx: &OpContext, tensors: &[(String, V)]) -> Result<Vec<String>, OpError> {
        let mut all = Vec::new();
        for binding in self.bindings(tensors) {
            for name in self.names_for(ctx, &binding)? {
                if !all.contains(&name) {
                    all.push(name);
                }
            }
        }
        Ok(all)
    }

    fn names_for(&self, ctx: &OpContext, binding: &Captures) -> Result<Vec<String>, OpError> {
        let mut names = vec![String::new()];
        for part in &self.target.parts {
            match part {
                PatternPart::Literal(text) => names.iter_mut().for_each(|name| name.push_str(text)),
                PatternPart::Capture { name: capture, .. } if binding.get(&capture.node).is_some() => {
                    let value = binding.get(&capture.node).unwrap_or_default();
                    names.iter_mut().for_each(|name| name.push_str(value));
                }
                PatternPart::Counted { bound, .. } => {
                    let count = concrete(ctx, &Sym::from_expr(bound)).map_err(|kind| self.base.error(None, kind))?;
                    names =
                        names.iter().flat_map(|name| (0..count).map(move |index| format!("{name}{index}"))).collect();
                }
                _ => {
                    let message = format!("cannot expand `{}`", pattern_text(&self.target));
                    return Err(self.base.error(None, OpErrorKind::Name { message }));
                }
            }
        }
        Ok(names)
    }

    fn run<V>(
        &self,
        tensors: &mut Vec<(String, V)>,
        ctx: &OpContext,
        value: impl Fn() -> Result<V, OpErrorKind>,
    ) -> Result<(), OpError> {
        let mut rewrite = Rewrite::new();
        for name in self.names(ctx, tensors)? {
            if self.optional && tensors.iter().any(|(existing, _)| *existing == name) {
                continue;
            }
            rewrite.add(None, name.clone(), value().map_err(|kind| self.base.error(Some(&name), kind))?);
        }
        rewrite.commit(&self.base, tensors)
    }
}

impl Builtin for Insert {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        let shape = resolve_shape(ctx, &self.shape).map_err(|kind| self.base.error(None, kind))?;
        self.run(&mut set.tensors, ctx, || {
            Ok(TensorValue::new(Expr::Fill {
                dtype: DTypeClass::Exact(self.dtype),
                shape: shape.clone(),
                init: self.init,
            })?)
        })
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        let shape = concrete_shape(ctx, &self.shape).map_err(|kind| self.base.error(None, kind))?;
        self.run(&mut set.tensors, ctx, || eager::fill(self.dtype, &shape, self.init))
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        if self.each.is_some() {
            // Which names the way back drops depends on the set it runs on: the pattern.
            let patterns = vec![self.target.clone()];
            return Ok(vec![Box::new(Drop {
                base: self.base.renamed("drop"),
                patterns,
                lossy: false,
                optional: true,
            })]);
        }
        let names = self.names(ctx, &before.tensors).map_err(|err| self.base.no_inverse(err.kind.to_string()))?;
        let patterns =
            names.iter().filter(|name| before.get(name).is_none()).map(|name| literal(name, &self.target)).collect();
        Ok(vec![Box::new(Drop { base: self.base.renamed("drop"), patterns, lossy: false, optional: false })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;
    use safeshift_dsl::ast::{Name, Spanned};

    fn insert(target: &str, dtype: &str, shape: Vec<safeshift_dsl::ast::Expr>, init: Value) -> Box<dyn Operation> {
        lower_ok(op("insert", vec![pats(&[target]), type_spec(dtype, shape), assign(init)]))
    }

    #[test]
    fn inserts_per_layer_and_drops_back() {
        let op = insert("l.{i < layers}.norm", "bf16", vec![ident("d")], Value::Expr(ident("ones")));
        let set = eager_set(&[("x", iota(&[1]))]);
        let ctx = ctx_with(&[("layers", 2), ("d", 3)]);
        let out = check_lazy_eager(&*op, &set, &ctx);
        assert_eq!(names(&out), ["x", "l.0.norm", "l.1.norm"]);
        assert_eq!(out.get("l.1.norm").unwrap().data, [0x80, 0x3F].repeat(3));
        check_round_trip(&*op, &set, &ctx);
    }

    #[test]
    fn eye_and_fill() {
        let set = EagerSet::new();
        let eye = insert("e", "i32", vec![int(2), int(3)], Value::Expr(ident("eye")));
        let out = check_lazy_eager(&*eye, &set, &OpContext::default());
        assert_eq!(i32_values(out.get("e").unwrap()), [1, 0, 0, 0, 1, 0]);
        let call = Value::Call { name: Name::new("fill".into(), Span::DUMMY), args: vec![Value::Expr(int(-7))] };
        let out = check_lazy_eager(&*insert("f", "i32", vec![int(2)], call), &set, &OpContext::default());
        assert_eq!(i32_values(out.get("f").unwrap()), [-7, -7]);
        let _ = Spanned::new((), Span::DUMMY);
    }

    #[test]
    fn scalar_fill_as_the_anemoi_registry_writes_it() {
        let op = lower_text(r#"insert "p.trainable_layout_version" : i64[] = fill(1)"#);
        let out = check_lazy_eager(&*op, &EagerSet::new(), &OpContext::default());
        let inserted = out.get("p.trainable_layout_version").unwrap();
        assert_eq!((inserted.shape.as_slice(), inserted.data.as_slice()), (&[][..], &1i64.to_le_bytes()[..]));
    }

    #[test]
    fn existing_name_is_a_collision() {
        let op = insert("x", "f32", vec![int(1)], Value::Expr(ident("zeros")));
        let mut set = eager_set(&[("x", iota(&[1]))]);
        let err = op.eager(&mut set, &OpContext::default()).unwrap_err();
        assert!(matches!(err.kind, OpErrorKind::Collision { .. }));
    }

    #[test]
    fn bad_init_and_free_capture_are_diagnostics() {
        let diagnostics = lower_err(op(
            "insert",
            vec![pats(&["{p..}.x"]), type_spec("f32", vec![int(1)]), assign(Value::Expr(ident("twos")))],
        ));
        assert_eq!(codes(&diagnostics), ["bad-value", "bad-value"]);
        let diagnostics = lower_err(op(
            "insert",
            vec![pats(&["x"]), type_spec("f32", vec![int(3)]), assign(Value::Expr(ident("eye")))],
        ));
        assert_eq!(codes(&diagnostics), ["bad-value"]);
    }

    #[test]
    fn each_inserts_one_tensor_per_captured_value_and_drops_them_back() {
        let op = lower_text(r#"insert "{ds}.version" : i64[] = fill(1) each "enc.{ds}.{rest..}""#);
        let set = eager_set(&[("enc.a.w", iota(&[2])), ("enc.a.b", iota(&[2])), ("enc.b.w", iota(&[2]))]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(names(&out), ["enc.a.w", "enc.a.b", "enc.b.w", "a.version", "b.version"]);
        check_round_trip(&*op, &set, &OpContext::default());
        let unbound = lower_err(parse_ops(r#"insert "{ds}.version" : i64[] = fill(1) each "enc.{x}""#).remove(0));
        assert_eq!(codes(&unbound), ["bad-value"]);
    }
}
