//! ## `relabel`
//!
//! ```safeshift
//! relabel SRC at CAPTURE by PARAM [each PATTERN] [optional]
//! ```
//!
//! Renames every tensor matching `SRC` by replacing the text its capture `CAPTURE` matched
//! with the value the migration parameter `PARAM` (declared `param PARAM "…" [= "default"]`,
//! given as `--param PARAM=…`) has for that text. A parameter is one string
//! (`--param PARAM=0`: every key gets it, allowed only while the tensors matched show one
//! distinct key) or a map (`--param PARAM=era5:global,cerra:regional`: each key its own,
//! every key seen must be in it). A missing parameter, or one string for several keys, is an
//! error that names the parameter and the keys, raised when the plan is compiled, before
//! any tensor is read.
//!
//! * **Shape rule:** unchanged.
//! * **Inverse:** relabel back by the inverted map. One string cannot be inverted by itself
//!   (which key it came from is not recorded): with `each PATTERN`, whose `CAPTURE` names
//!   the keys a checkpoint has (its datasets), a label goes back to the one key found there;
//!   otherwise, or with several keys, a downgrade needs the map.
//! * **Lossy:** no.
//!
//! ```safeshift
//! relabel "model.model.encoder.{dataset}.{rest..}" at dataset by encoder_names
//!     each "model.pre_processors.{dataset}.{rest..}"
//! // model.model.encoder.era5.proc.lin_key.weight  →  model.model.encoder.global.proc.lin_key.weight
//! ```

use std::collections::{BTreeMap, BTreeSet};

use safeshift_dsl::ast::{Pattern, PatternPart};

use crate::lower::{word_of, Operands};
use crate::operation::{Entries, NoInverse, OpBase, OpError, OpErrorKind, Operation, ParamInfo, Structural};
use crate::rewrite::{fill_name, matches, pattern_text, Rewrite};
use crate::tensor_set::{OpContext, ParamValue, TensorSet};

/// `relabel SRC at CAPTURE by PARAM`; `invert` maps labels back to keys.
#[derive(Clone, Debug)]
pub(crate) struct Relabel {
    base: OpBase,
    source: Pattern,
    capture: String,
    param: String,
    each: Option<Pattern>,
    invert: bool,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let capture = word_clause(operands, "at", "at dataset", "a capture of the source pattern");
    let param = word_clause(operands, "by", "by encoder_names", "a parameter name");
    let each = operands.pattern_clause("each").ok()?.cloned();
    let optional = operands.flag("optional").is_some();
    let base = operands.base("relabel");
    let (source, capture, param) = (source?, capture?, param?);
    let captured = source
        .parts
        .iter()
        .any(|part| matches!(part, PatternPart::Capture { name, multi: false } if name.node == capture));
    if !captured {
        let message = format!("`{capture}` is not a one-segment capture `{{{capture}}}` of `{}`", pattern_text(source));
        operands.error("bad-value", message, source.span);
        return None;
    }
    Some(Box::new(Relabel { base, source: source.clone(), capture, param, each, invert: false, optional }))
}

/// A clause whose value is one bare word.
fn word_clause(operands: &mut Operands<'_>, keyword: &'static str, example: &str, what: &str) -> Option<String> {
    let (value, span) = operands.required(keyword, example)?;
    match word_of(value) {
        Some(word) => Some(word.to_owned()),
        None => {
            operands.error("bad-value", format!("`{keyword}` takes {what} (`{example}`)"), span);
            None
        }
    }
}

impl Relabel {
    /// The keys the `each` pattern shows in `tensors` (the datasets), if it is given.
    fn witnessed<V>(&self, tensors: &[(String, V)]) -> Option<BTreeSet<String>> {
        let each = self.each.as_ref()?;
        Some(matches(tensors, each).iter().filter_map(|(_, c)| c.get(&self.capture)).map(str::to_owned).collect())
    }

    /// The new text of each key, checked against the parameter, before anything is renamed.
    fn labels(
        &self,
        keys: &BTreeSet<String>,
        witnessed: Option<BTreeSet<String>>,
        ctx: &OpContext,
    ) -> Result<BTreeMap<String, String>, OpErrorKind> {
        let param = ctx.params.get(&self.param);
        let doc = param.map(|param| param.doc.clone()).unwrap_or_default();
        let Some(value) = param.and_then(|param| param.value.as_ref()) else {
            return Err(OpErrorKind::MissingParam { param: Box::new(ParamInfo { name: self.param.clone(), doc }) });
        };
        let info = || Box::new(ParamInfo { name: self.param.clone(), doc: doc.clone() });
        let needs_map = |keys: Vec<String>| OpErrorKind::ParamNeedsMap { param: info(), keys };
        let map: BTreeMap<String, String> = match (value, self.invert) {
            (ParamValue::Symbolic, _) => return Ok(keys.iter().map(|key| (key.clone(), key.clone())).collect()),
            (ParamValue::One(label), false) if keys.len() <= 1 => {
                return Ok(keys.iter().map(|key| (key.clone(), label.clone())).collect())
            }
            // One label, one key in the checkpoint: the label came from that key.
            (ParamValue::One(_), true)
                if keys.len() == 1 && witnessed.as_ref().is_some_and(|witnessed| witnessed.len() == 1) =>
            {
                let key = witnessed.into_iter().flatten().next().unwrap_or_default();
                return Ok(keys.iter().map(|label| (label.clone(), key.clone())).collect());
            }
            (ParamValue::One(_), true) => {
                let labels = keys.iter().cloned().collect();
                return Err(OpErrorKind::ParamNeedsInverse { param: info(), labels });
            }
            (ParamValue::One(_), false) => return Err(needs_map(keys.iter().cloned().collect())),
            (ParamValue::Map(map), false) => map.clone(),
            (ParamValue::Map(map), true) => {
                let mut inverse = BTreeMap::new();
                for (key, label) in map {
                    if inverse.insert(label.clone(), key.clone()).is_some() {
                        let message = format!("`{}` maps two keys to `{label}`: it cannot be undone", self.param);
                        return Err(OpErrorKind::invalid(message));
                    }
                }
                inverse
            }
        };
        let missing: Vec<String> = keys.iter().filter(|key| !map.contains_key(*key)).cloned().collect();
        if !missing.is_empty() && self.invert {
            return Err(OpErrorKind::ParamNeedsInverse { param: info(), labels: missing });
        }
        if !missing.is_empty() {
            return Err(needs_map(missing));
        }
        Ok(keys.iter().map(|key| (key.clone(), map[key].clone())).collect())
    }
}

impl Structural for Relabel {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn edit<V: Clone>(&self, set: Entries<'_, V>, ctx: &OpContext) -> Result<(), OpError> {
        let tensors = set.tensors;
        let found = self.base.find(tensors, &self.source, self.optional)?;
        if found.is_empty() {
            // Nothing to relabel: the parameter is not needed (an optional relabel).
            return Ok(());
        }
        let keys: BTreeSet<String> =
            found.iter().filter_map(|(_, captures)| captures.get(&self.capture)).map(str::to_owned).collect();
        let labels = self.labels(&keys, self.witnessed(tensors), ctx).map_err(|kind| self.base.error(None, kind))?;
        let mut rewrite = Rewrite::new();
        for (index, mut captures) in found {
            let (name, value) = &tensors[index];
            if let Some(label) = captures.get(&self.capture).and_then(|key| labels.get(key)) {
                captures.0.insert(self.capture.clone(), label.clone());
            }
            let new_name = fill_name(&self.base, name, &self.source, &captures, ctx)?;
            rewrite.remove(name);
            rewrite.add(Some(name), new_name, value.clone());
        }
        rewrite.commit(&self.base, tensors)
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        // The map is checked when the inverse runs: with the parameter of that run.
        Ok(vec![Box::new(Relabel { invert: !self.invert, optional: true, ..self.clone() })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;
    use crate::tensor_set::Param;

    fn relabel_op() -> Box<dyn Operation> {
        lower_text(r#"relabel "enc.{dataset}.{rest..}" at dataset by names"#)
    }

    fn ctx_param(value: Option<ParamValue>) -> OpContext {
        let mut ctx = OpContext::default();
        ctx.params.insert("names".into(), Param { doc: "the encoder names".into(), value });
        ctx
    }

    fn map(pairs: &[(&str, &str)]) -> ParamValue {
        ParamValue::Map(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn one_dataset_takes_the_single_value_and_comes_back_with_the_map() {
        let set = eager_set(&[("enc.data.w", iota(&[2])), ("dec.data.w", iota(&[3]))]);
        let out = check_lazy_eager(&*relabel_op(), &set, &ctx_param(Some(ParamValue::One("0".into()))));
        assert_eq!(names(&out), ["enc.0.w", "dec.data.w"]);
        check_round_trip(&*relabel_op(), &set, &ctx_param(Some(map(&[("data", "0")]))));
    }

    #[test]
    fn several_datasets_need_a_map_with_every_key() {
        let set = eager_set(&[("enc.a.w", iota(&[2])), ("enc.b.w", iota(&[2]))]);
        let err = relabel_op().eager(&mut set.clone(), &ctx_param(Some(ParamValue::One("0".into())))).unwrap_err();
        assert_eq!(
            err.kind.to_string(),
            "the parameter `names` (the encoder names) needs a value for each of `a`, `b`: give `--param names=a:NAME,b:NAME`"
        );
        let err = relabel_op().eager(&mut set.clone(), &ctx_param(Some(map(&[("a", "x")])))).unwrap_err();
        assert!(err.to_string().contains("each of `b`"), "{err}");
        let err = relabel_op().eager(&mut set.clone(), &ctx_param(None)).unwrap_err();
        assert!(err.to_string().contains("`--param names=VALUE`"), "{err}");
        let ctx = ctx_param(Some(map(&[("a", "global"), ("b", "regional")])));
        let out = check_lazy_eager(&*relabel_op(), &set, &ctx);
        assert_eq!(names(&out), ["enc.global.w", "enc.regional.w"]);
        check_round_trip(&*relabel_op(), &set, &ctx);
    }

    #[test]
    fn one_value_cannot_be_undone_and_two_keys_on_one_label_collide() {
        let set = eager_set(&[("enc.a.w", iota(&[2])), ("enc.b.w", iota(&[2]))]);
        let err = relabel_op().eager(&mut set.clone(), &ctx_param(Some(map(&[("a", "0"), ("b", "0")])))).unwrap_err();
        assert!(err.to_string().contains("enc.0.w"), "{err}");
        let back = relabel_op().inverse(&lazy_of(&set), &OpContext::default()).unwrap();
        let mut upgraded = eager_set(&[("enc.0.w", iota(&[2]))]);
        let err = back[0].eager(&mut upgraded, &ctx_param(Some(ParamValue::One("0".into())))).unwrap_err();
        assert!(err.to_string().contains("give `--param names=KEY:0`"), "{err}");
    }

    #[test]
    fn the_capture_must_be_a_segment_of_the_source() {
        let diagnostics = lower_err(op(
            "relabel",
            vec![pats(&["enc.{rest..}"]), clause_word("at", "dataset"), clause_word("by", "names")],
        ));
        assert_eq!(codes(&diagnostics), ["bad-value"]);
    }

    #[test]
    fn one_name_goes_back_to_the_one_dataset_the_checkpoint_shows() {
        let op = lower_text(r#"relabel "enc.{dataset}.{rest..}" at dataset by names each "pre.{dataset}.{rest..}""#);
        let set = eager_set(&[("enc.data.w", iota(&[2])), ("pre.data.w", iota(&[3]))]);
        check_round_trip(&*op, &set, &ctx_param(Some(ParamValue::One("0".into()))));
        let two = eager_set(&[("enc.data.w", iota(&[2])), ("pre.data.w", iota(&[3])), ("pre.b.w", iota(&[3]))]);
        let back = op.inverse(&lazy_of(&two), &OpContext::default()).unwrap();
        let mut upgraded = eager_set(&[("enc.0.w", iota(&[2])), ("pre.data.w", iota(&[3])), ("pre.b.w", iota(&[3]))]);
        let err = back[0].eager(&mut upgraded, &ctx_param(Some(ParamValue::One("0".into())))).unwrap_err();
        assert!(err.to_string().contains("give `--param names=KEY:0`"), "{err}");
    }
}
