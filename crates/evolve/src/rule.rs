//! Generalizing one kind of change over many tensors into one operation with name
//! patterns: `b.0.norm1.w -> b.0.norm_attn.w` and `b.1.norm1.b -> b.1.norm_attn.b` become
//! `"{p..}.norm1.{s..}" -> "{p}.norm_attn.{s}"`; indices that move are computed
//! (`{n0 - 1}`, `{n0 * blocks + n1}`).
//!
//! A rule is kept only when its source pattern matches exactly the tensors it was made
//! from in the current set of names, and fills exactly their targets; otherwise the
//! prefix is written out, and at last every tensor gets its own operation.

use std::collections::{BTreeMap, BTreeSet};

use crate::diff::common_ends;
use crate::fold::index_of;

/// One use of an operation: source names and target names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Names read (the first is matched; others filled from its captures).
    pub sources: Vec<String>,
    /// Names written.
    pub targets: Vec<String>,
}

/// A token of a name pattern: one whole dotted segment, or several.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Token {
    /// `{name..}` (in a target: `{name}`).
    Multi(String),
    /// `{name}`: one segment.
    One(String),
    /// Literal segment.
    Literal(String),
    /// `{a * factor + b + add}` over integer captures; `factor` is a dim name or number.
    Index { a: String, factor: Option<String>, value: i64, b: Option<String>, add: i64 },
}

/// A generalized operation: one pattern per source and per target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Source patterns, as written.
    pub sources: Vec<String>,
    /// Target patterns, as written.
    pub targets: Vec<String>,
    /// The instances it stands for.
    pub instances: Vec<Instance>,
    /// The first source pattern's tokens (`None`: the rule names its one tensor).
    pub(crate) pattern: Option<Vec<Token>>,
}

impl Rule {
    /// Whether the rule's (first) source pattern matches `name`.
    pub fn matches_source(&self, name: &str) -> bool {
        match &self.pattern {
            Some(tokens) => matches(tokens, name).is_some(),
            None => self.instances.iter().any(|one| one.sources.first().is_some_and(|source| source == name)),
        }
    }
}

/// Count dims of the source schema (name → value), for index arithmetic.
pub type Counts = BTreeMap<String, u64>;

/// Groups `instances` into as few rules as hold exactly over `current`.
pub fn generalize(instances: &[Instance], current: &BTreeSet<String>, counts: &Counts) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut pending: Vec<Instance> = Vec::new();
    for (templates, group) in group_by(instances, counts, false) {
        match accept(&templates, &group, current) {
            Some(rule) => rules.push(rule),
            None => pending.extend(group),
        }
    }
    let mut literal = Vec::new();
    for (templates, group) in group_by(&pending, counts, true) {
        match accept(&templates, &group, current) {
            Some(rule) => rules.push(rule),
            None => literal.extend(group),
        }
    }
    for instance in literal {
        rules.push(Rule {
            sources: instance.sources.iter().map(|name| escape(name)).collect(),
            targets: instance.targets.iter().map(|name| escape(name)).collect(),
            instances: vec![instance],
            pattern: None,
        });
    }
    rules.sort_by_key(|rule| first_position(rule, instances));
    rules
}

fn first_position(rule: &Rule, instances: &[Instance]) -> usize {
    rule.instances.iter().filter_map(|one| instances.iter().position(|other| other == one)).min().unwrap_or(0)
}

type Templates = (Vec<Vec<Token>>, Vec<Vec<Token>>);

/// Instances grouped by their templates; with `literal_prefix`, prefixes are written out.
fn group_by(instances: &[Instance], counts: &Counts, literal_prefix: bool) -> Vec<(Templates, Vec<Instance>)> {
    let mut groups: BTreeMap<(Templates, Option<i64>), Vec<Instance>> = BTreeMap::new();
    for instance in instances {
        let (templates, factor) = templates(instance, literal_prefix);
        groups.entry((templates, factor)).or_default().push(instance.clone());
    }
    // Instances whose index factor is undetermined (chunk 0) join the one group with a factor.
    let mut merged: BTreeMap<Templates, (Option<i64>, Vec<Instance>)> = BTreeMap::new();
    let mut open: Vec<(Templates, Vec<Instance>)> = Vec::new();
    for ((templates, factor), group) in groups {
        let has_factor = templates.1.iter().flatten().any(|t| matches!(t, Token::Index { factor: Some(_), .. }));
        if has_factor && factor.is_none() {
            open.push((templates, group));
            continue;
        }
        match merged.get_mut(&templates) {
            Some((existing, members)) if *existing == factor => members.extend(group),
            Some(_) => {
                // Two factors for one template: keep them apart by marking the key.
                let mut key = templates.clone();
                key.1.push(vec![Token::Literal(format!("{factor:?}"))]);
                merged.insert(key, (factor, group));
            }
            None => {
                merged.insert(templates, (factor, group));
            }
        }
    }
    for (templates, group) in open {
        match merged.get_mut(&templates) {
            Some((_, members)) => members.extend(group),
            None => {
                merged.insert(templates, (None, group));
            }
        }
    }
    merged
        .into_iter()
        .map(|((sources, targets), (factor, group))| {
            let targets: Vec<Vec<Token>> = targets
                .into_iter()
                .filter(|tokens| !matches!(tokens.as_slice(), [Token::Literal(text)] if text.starts_with("Some(") || text == "None"))
                .map(|tokens| tokens.into_iter().map(|token| name_factor(token, factor, counts, &sources)).collect())
                .collect();
            ((sources, targets), group)
        })
        .collect()
}

/// Writes an index factor as the count dim of that value (preferring the one named after
/// the segment before the inner index), else as a number.
fn name_factor(token: Token, factor: Option<i64>, counts: &Counts, sources: &[Vec<Token>]) -> Token {
    let Token::Index { a, factor: Some(_), b, add, .. } = token else { return token };
    let value = factor.unwrap_or(0);
    // An inferred schema names it `blocks_2`, a registry schema may name it `blocks`.
    let before_inner = sources.first().and_then(|tokens| {
        let at = tokens.iter().position(|t| matches!(t, Token::One(name) if Some(name) == b.as_ref()))?;
        match tokens.get(at.checked_sub(1)?) {
            Some(Token::Literal(text)) => Some(text.clone()),
            _ => None,
        }
    });
    let candidates = before_inner.iter().flat_map(|segment| {
        [crate::fold::count_name(segment, u64::try_from(value).unwrap_or(0)), crate::fold::identifier(segment)]
    });
    let named = candidates
        .into_iter()
        .find(|name| counts.get(name).is_some_and(|&count| count as i64 == value))
        .or_else(|| counts.iter().find(|(_, &count)| count as i64 == value).map(|(name, _)| name.clone()));
    Token::Index { a, factor: Some(named.unwrap_or_else(|| value.to_string())), value, b, add }
}

/// The templates of one instance, and its index factor when it has one.
fn templates(instance: &Instance, literal_prefix: bool) -> (Templates, Option<i64>) {
    let primary: Vec<&str> =
        instance.sources.first().or(instance.targets.first()).map_or(vec![], |n| n.split('.').collect());
    let others: Vec<Vec<&str>> = instance
        .sources
        .iter()
        .skip(1)
        .chain(instance.targets.iter().skip(usize::from(instance.sources.is_empty())))
        .map(|name| name.split('.').collect())
        .collect();
    let (mut cp, mut cs) = (primary.len(), 0);
    if others.is_empty() {
        cp = 0;
    }
    for other in &others {
        let (p, s) = common_ends(&primary, other);
        cp = cp.min(p);
        cs = if cs == 0 && other == &others[0] { s } else { cs.min(s) };
    }
    cs = cs.min(primary.len() - cp);
    // Indices next to the changed part belong to it (`proc.0.blocks.0` -> `proc.0` shares
    // the `0` only by chance).
    while cp > 0 && index_of(primary[cp - 1]).is_some() {
        cp -= 1;
    }
    while cs > 0 && index_of(primary[primary.len() - cs]).is_some() {
        cs -= 1;
    }
    // The changed part must hold a literal segment, or the pattern matches too much.
    let has_literal = |lo: usize, hi: usize| primary[lo..hi].iter().any(|s| index_of(s).is_none());
    while cp > 0 && !has_literal(cp, primary.len() - cs) {
        cp -= 1;
    }
    while cs > 0 && !has_literal(cp, primary.len() - cs) {
        cs -= 1;
    }
    if literal_prefix {
        cp = 0;
    }
    let mut numbers: Vec<(String, i64)> = Vec::new();
    let source_tokens = |name: &[&str], numbers: &mut Vec<(String, i64)>, record: bool| -> Vec<Token> {
        let mut tokens = Vec::new();
        if cp > 0 {
            tokens.push(Token::Multi("p".into()));
        }
        let end = name.len().saturating_sub(cs);
        for segment in &name[cp.min(end)..end] {
            match index_of(segment) {
                Some(value) => {
                    let capture = format!("n{}", numbers.len());
                    if record {
                        numbers.push((capture.clone(), value as i64));
                    }
                    tokens.push(Token::One(capture));
                }
                _ => tokens.push(Token::Literal((*segment).to_owned())),
            }
        }
        if cs > 0 {
            tokens.push(Token::Multi("s".into()));
        }
        tokens
    };
    let mut sources = vec![source_tokens(&primary, &mut numbers, true)];
    let mut factor = None;
    let mut targets = Vec::new();
    for other in instance.sources.iter().skip(1).chain(instance.targets.iter()) {
        let segments: Vec<&str> = other.split('.').collect();
        let mut tokens = Vec::new();
        if cp > 0 {
            tokens.push(Token::Multi("p".into()));
        }
        let end = segments.len().saturating_sub(cs);
        let window = &segments[cp.min(end)..end];
        // As many indices as the source: each is the source's index at its place, moved.
        let positional = window.iter().filter(|s| index_of(s).is_some()).count() == numbers.len();
        let mut ordinal = 0;
        for segment in window {
            match index_of(segment).filter(|_| !numbers.is_empty()) {
                Some(value) => {
                    let (token, fitted) = if positional {
                        let (a, x) = &numbers[ordinal];
                        (Token::Index { a: a.clone(), factor: None, value: 0, b: None, add: value as i64 - x }, None)
                    } else {
                        fit(value as i64, &numbers)
                    };
                    ordinal += 1;
                    if fitted.is_some() {
                        factor = fitted;
                    }
                    tokens.push(token);
                }
                None => tokens.push(Token::Literal((*segment).to_owned())),
            }
        }
        if cs > 0 {
            tokens.push(Token::Multi("s".into()));
        }
        if instance.sources.iter().skip(1).any(|name| name == other) {
            sources.push(tokens);
        } else {
            targets.push(tokens);
        }
    }
    if instance.sources.is_empty() {
        // An insert: its one target is the primary.
        targets = sources.clone();
        sources.clear();
    }
    ((sources, targets), factor)
}

/// An index of a target as a function of the source's indices: the same index moved
/// by a constant, or (two indices) `outer * factor + inner`.
fn fit(value: i64, numbers: &[(String, i64)]) -> (Token, Option<i64>) {
    if let [(a, x), (b, y)] = numbers {
        if *x > 0 && value >= *y && (value - y) % x == 0 && value != *y {
            let factor = (value - y) / x;
            let token = Token::Index { a: a.clone(), factor: Some("K".into()), value: 0, b: Some(b.clone()), add: 0 };
            return (token, Some(factor));
        }
        if *x == 0 && value == *y {
            let token = Token::Index { a: a.clone(), factor: Some("K".into()), value: 0, b: Some(b.clone()), add: 0 };
            return (token, None);
        }
    }
    let (a, x) = &numbers[numbers.len() - 1];
    (Token::Index { a: a.clone(), factor: None, value: 0, b: None, add: value - x }, None)
}

/// The rule for a group when its patterns hold exactly over `current`.
fn accept(templates: &Templates, group: &[Instance], current: &BTreeSet<String>) -> Option<Rule> {
    let (sources, targets) = templates;
    if let Some(primary) = sources.first() {
        let matched: BTreeSet<&String> = current.iter().filter(|name| matches(primary, name).is_some()).collect();
        let expected: BTreeSet<&String> = group.iter().filter_map(|one| one.sources.first()).collect();
        if matched != expected {
            return None;
        }
        for instance in group {
            let captures = matches(primary, &instance.sources[0])?;
            for (tokens, name) in sources.iter().skip(1).zip(instance.sources.iter().skip(1)) {
                if fill(tokens, &captures).as_ref() != Some(name) {
                    return None;
                }
            }
            for (tokens, name) in targets.iter().zip(&instance.targets) {
                if fill(tokens, &captures).as_ref() != Some(name) {
                    return None;
                }
            }
        }
    } else if group.len() != 1 || targets.iter().flatten().any(|t| !matches!(t, Token::Literal(_))) {
        // An insert stands for itself.
        return None;
    }
    Some(Rule {
        sources: sources.iter().map(|tokens| render(tokens, true)).collect(),
        targets: targets.iter().map(|tokens| render(tokens, sources.is_empty())).collect(),
        instances: group.to_vec(),
        pattern: sources.first().cloned(),
    })
}

/// Matches a name the way the language does for these patterns: captures take the
/// fewest segments that let the rest match, left to right.
fn matches(tokens: &[Token], name: &str) -> Option<BTreeMap<String, String>> {
    fn go(tokens: &[Token], segments: &[&str], out: &mut BTreeMap<String, String>) -> bool {
        let Some((first, rest)) = tokens.split_first() else { return segments.is_empty() };
        match first {
            Token::Literal(text) => segments.first() == Some(&text.as_str()) && go(rest, &segments[1..], out),
            Token::One(name) => {
                let Some(segment) = segments.first().filter(|s| !s.is_empty()) else { return false };
                out.insert(name.clone(), (*segment).to_owned());
                go(rest, &segments[1..], out) || {
                    out.remove(name);
                    false
                }
            }
            Token::Multi(name) => (1..=segments.len()).any(|take| {
                if segments[..take].iter().any(|s| s.is_empty()) {
                    return false;
                }
                out.insert(name.clone(), segments[..take].join("."));
                go(rest, &segments[take..], out)
            }),
            Token::Index { .. } => false,
        }
    }
    let segments: Vec<&str> = name.split('.').collect();
    let mut out = BTreeMap::new();
    go(tokens, &segments, &mut out).then_some(out)
}

fn fill(tokens: &[Token], captures: &BTreeMap<String, String>) -> Option<String> {
    let int = |name: &str| captures.get(name).and_then(|text| index_of(text)).map(|v| v as i64);
    let mut parts = Vec::new();
    for token in tokens {
        parts.push(match token {
            Token::Literal(text) => text.clone(),
            Token::One(name) | Token::Multi(name) => captures.get(name)?.clone(),
            Token::Index { a, factor, value: times, b, add } => {
                let mut value = int(a)?;
                if factor.is_some() {
                    value *= times;
                }
                if let Some(b) = b {
                    value += int(b)?;
                }
                value += add;
                if value < 0 {
                    return None;
                }
                value.to_string()
            }
        });
    }
    Some(parts.join("."))
}

fn render(tokens: &[Token], source: bool) -> String {
    tokens
        .iter()
        .map(|token| match token {
            Token::Literal(text) => text.replace('{', "{{").replace('}', "}}"),
            Token::Multi(name) if source => format!("{{{name}..}}"),
            Token::Multi(name) | Token::One(name) => format!("{{{name}}}"),
            Token::Index { a, factor, b, add, .. } => {
                let mut text = a.clone();
                if let Some(factor) = factor {
                    text = format!("{text} * {factor}");
                }
                if let Some(b) = b {
                    text = format!("{text} + {b}");
                }
                match add.signum() {
                    1 => text = format!("{text} + {add}"),
                    -1 => text = format!("{text} - {}", -add),
                    _ => {}
                }
                format!("{{{text}}}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A literal name as pattern text.
fn escape(name: &str) -> String {
    name.replace('{', "{{").replace('}', "}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(sources: &[&str], targets: &[&str]) -> Instance {
        Instance {
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            targets: targets.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn text(rules: &[Rule]) -> Vec<String> {
        rules.iter().map(|rule| format!("{} -> {}", rule.sources.join(", "), rule.targets.join(", "))).collect()
    }

    #[test]
    fn shifts_insertions_and_flattening() {
        let current = names(&["e.mlp.1.w", "e.mlp.3.w", "e.mlp.1.b", "d.mlp.1.w", "keep.0"]);
        let instances = [
            instance(&["e.mlp.1.w"], &["e.mlp.0.w"]),
            instance(&["e.mlp.3.w"], &["e.mlp.2.w"]),
            instance(&["e.mlp.1.b"], &["e.mlp.0.b"]),
            instance(&["d.mlp.1.w"], &["d.mlp.0.w"]),
        ];
        assert_eq!(
            text(&generalize(&instances, &current, &Counts::new())),
            ["{p..}.mlp.{n0}.{s..} -> {p}.mlp.{n0 - 1}.{s}"]
        );

        let current = names(&["x.mlp.0.w", "x.mlp.2.w", "y.mlp.0.w", "x.mlpx"]);
        let instances = [
            instance(&["x.mlp.0.w"], &["x.mlp.mlp.0.w"]),
            instance(&["x.mlp.2.w"], &["x.mlp.mlp.2.w"]),
            instance(&["y.mlp.0.w"], &["y.mlp.mlp.0.w"]),
        ];
        assert_eq!(
            text(&generalize(&instances, &current, &Counts::new())),
            ["{p..}.mlp.{n0}.{s..} -> {p}.mlp.mlp.{n0}.{s}"]
        );

        let mut current = BTreeSet::new();
        let mut instances = Vec::new();
        for c in 0..2 {
            for j in 0..3 {
                let from = format!("proc.{c}.blocks.{j}.w");
                current.insert(from.clone());
                instances.push(Instance { sources: vec![from], targets: vec![format!("proc.{}.w", c * 3 + j)] });
            }
        }
        let counts = Counts::from([("blocks".into(), 3), ("proc".into(), 2)]);
        assert_eq!(
            text(&generalize(&instances, &current, &counts)),
            ["{p..}.{n0}.blocks.{n1}.{s..} -> {p}.{n0 * blocks + n1}.{s}"]
        );
        // With inferred names, and as many chunks as blocks: the inner segment's dim.
        let counts = Counts::from([("blocks_3".into(), 3), ("a_3".into(), 3), ("proc_2".into(), 2)]);
        assert_eq!(
            text(&generalize(&instances, &current, &counts)),
            ["{p..}.{n0}.blocks.{n1}.{s..} -> {p}.{n0 * blocks_3 + n1}.{s}"]
        );
    }

    #[test]
    fn over_matching_rules_write_prefixes_or_names() {
        let current = names(&["enc.ln1.w", "dec.ln1.w", "proc.ln1.w"]);
        let instances = [instance(&["enc.ln1.w"], &["enc.ln_src.w"]), instance(&["dec.ln1.w"], &["dec.ln_src.w"])];
        assert_eq!(
            text(&generalize(&instances, &current, &Counts::new())),
            ["enc.ln1.{s..} -> enc.ln_src.{s}", "dec.ln1.{s..} -> dec.ln_src.{s}"]
        );
    }

    #[test]
    fn splits_and_single_names() {
        let current = names(&["b.0.qkv.w", "b.1.qkv.w", "b.0.x"]);
        let instances = [
            instance(&["b.0.qkv.w"], &["b.0.q.w", "b.0.k.w", "b.0.v.w"]),
            instance(&["b.1.qkv.w"], &["b.1.q.w", "b.1.k.w", "b.1.v.w"]),
        ];
        assert_eq!(
            text(&generalize(&instances, &current, &Counts::new())),
            ["{p..}.{n0}.qkv.{s..} -> {p}.{n0}.q.{s}, {p}.{n0}.k.{s}, {p}.{n0}.v.{s}"]
        );
        let drops = [instance(&["b.0.qkv.w"], &[]), instance(&["b.1.qkv.w"], &[])];
        assert_eq!(text(&generalize(&drops, &current, &Counts::new())), ["b.{n0}.qkv.w -> "]);
    }
}
