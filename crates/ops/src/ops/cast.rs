//! ## `cast`
//!
//! ```safeshift
//! cast SRC to DTYPE [lossy] [optional]
//! ```
//!
//! Converts every tensor matching `SRC` to `DTYPE` (`bool`, integers, `f16`, `bf16`,
//! `f32`, `f64`), bit for bit as PyTorch's CPU conversion: floats round to nearest even,
//! overflow becomes infinity, NaN becomes PyTorch's canonical NaN (`0x7FC0` for bf16,
//! `sign | 0x7E00` for f16); f64 and integers reach f16/bf16 through f32, as in PyTorch.
//! Float to integer truncates toward zero and saturates, NaN becoming 0 (PyTorch leaves
//! these cases undefined).
//!
//! * **Shape rule:** same shape, dtype `DTYPE`.
//! * **Inverse:** cast back, when the cast widens (every value survives the trip).
//! * **Lossy:** when it narrows (f32 → bf16, f64 → f32, float → int, int → narrower int,
//!   i32 → f32, …), and then it must be marked `lossy`; for a dtype class (`float`) the
//!   cast is narrowing if it narrows any member.
//!
//! ```safeshift
//! cast "{p..}.weight" to bf16 lossy
//! cast "{p..}.running_mean" to f32      // f16 → f32 widens: no `lossy` needed
//! ```

use safeshift_dsl::ast::Pattern;
use safeshift_dsl::similar;
use safeshift_model::{DType, DTypeClass};

use crate::cast::{lossless, supported, CastMode};
use crate::eager;
use crate::expr::Expr;
use crate::lower::{word_of, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::{literal, matches};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `cast SRC to DTYPE`.
#[derive(Clone, Debug)]
pub(crate) struct Cast {
    base: OpBase,
    source: Pattern,
    dtype: DType,
    lossy: bool,
    optional: bool,
    /// `Restore` for the inverse of a widening cast, which narrows exactly what was
    /// widened (and needs no `lossy`).
    mode: CastMode,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let dtype = match operands.required("to", "to bf16") {
        Some((value, span)) => match word_of(value).map(|word| (word, DType::from_language_name(word))) {
            Some((_, Some(dtype))) if supported(dtype) => Some(dtype),
            Some((word, found)) => {
                let message = match found {
                    Some(_) => format!("cannot cast to `{word}`: only bool, integers, f16, bf16, f32 and f64"),
                    None => format!("unknown dtype `{word}`"),
                };
                let names = DType::ALL.iter().filter(|dtype| supported(**dtype)).map(|dtype| dtype.language_name());
                match similar(word, names).first() {
                    Some(best) => {
                        operands.error_with_hint("bad-value", message, span, &format!("did you mean `{best}`?"))
                    }
                    None => operands.error("bad-value", message, span),
                }
                None
            }
            None => {
                operands.error("bad-value", "`to` takes a dtype (`to bf16`)", span);
                None
            }
        },
        None => None,
    };
    let lossy = operands.flag("lossy").is_some();
    let optional = operands.flag("optional").is_some();
    let base = operands.base("cast");
    Some(Box::new(Cast { base, source: source?.clone(), dtype: dtype?, lossy, optional, mode: CastMode::Torch }))
}

impl Cast {
    /// Checks the conversion from `from` (a class) to the target.
    fn check(&self, from: DTypeClass) -> Result<(), OpErrorKind> {
        if self.mode == CastMode::Restore {
            return Ok(());
        }
        if let DTypeClass::Exact(exact) = from {
            if !supported(exact) {
                return Err(OpErrorKind::invalid(format!("cannot cast from `{exact}`")));
            }
        }
        let narrowing = DType::ALL
            .iter()
            .find(|dtype| from.accepts(**dtype) && supported(**dtype) && !lossless(**dtype, self.dtype));
        match narrowing {
            Some(narrowing) if !self.lossy => Err(OpErrorKind::MissingLossy {
                message: format!("casting `{narrowing}` to `{}` loses precision or range", self.dtype),
            }),
            _ => Ok(()),
        }
    }
}

impl Builtin for Cast {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn lossy(&self) -> bool {
        self.lossy
    }

    fn apply(&self, set: &mut TensorSet, _ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|value| {
            self.check(value.dtype())?;
            Ok(TensorValue::new(Expr::Cast {
                input: Box::new(value.expr().clone()),
                dtype: self.dtype,
                mode: self.mode,
            })?)
        })
    }

    fn eager(&self, set: &mut EagerSet, _ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|tensor| {
            self.check(DTypeClass::Exact(tensor.dtype))?;
            eager::cast(tensor, self.dtype, self.mode)
        })
    }

    fn inverse(&self, before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        if self.lossy {
            return Err(self.base.no_inverse(format!("casting to `{}` is marked lossy", self.dtype)));
        }
        let mut back: Vec<Box<dyn Operation>> = Vec::new();
        for (index, _) in matches(&before.tensors, &self.source) {
            let (name, value) = &before.tensors[index];
            let DTypeClass::Exact(dtype) = value.dtype() else {
                return Err(self.base.no_inverse(format!("the dtype of `{name}` is not known exactly")));
            };
            let op = Cast {
                base: self.base,
                source: literal(name, &self.source),
                dtype,
                lossy: false,
                optional: false,
                mode: CastMode::Restore,
            };
            back.push(Box::new(op));
        }
        Ok(back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn widening_round_trips() {
        let op = lower_ok(op("cast", vec![pats(&["w"]), clause_word("to", "f64")]));
        let set = eager_set(&[("w", f32_tensor(&[3], &[1.5, f32::NAN, -0.0]))]);
        check_round_trip(&*op, &set, &OpContext::default());
    }

    #[test]
    fn narrowing_needs_lossy() {
        let strict = lower_ok(op("cast", vec![pats(&["w"]), clause_word("to", "bf16")]));
        let mut set = eager_set(&[("w", f32_tensor(&[1], &[1.0]))]);
        let err = strict.eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`cast` on `w`: casting `f32` to `bf16` loses precision or range; mark the operation `lossy` if that is intended"
        );
        let op = lower_ok(op("cast", vec![pats(&["w"]), clause_word("to", "bf16"), flag("lossy")]));
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(out.get("w").unwrap().data, 0x3F80u16.to_le_bytes());
        assert!(op.inverse(&lazy_of(&set), &OpContext::default()).is_err());
    }

    #[test]
    fn unknown_dtype_suggests() {
        let diagnostics = lower_err(op("cast", vec![pats(&["w"]), clause_word("to", "bf61")]));
        assert_eq!(diagnostics[0].hints, ["did you mean `bf16`?"]);
    }
}
