//! The file-local semantic pass: what can be known wrong from one file alone.
//!
//! Schemas: versions are semver; dims are declared once, used only when declared, and
//! not defined in terms of themselves; dtypes are known; tensor patterns are neither
//! duplicated nor able to match the same name; schema patterns hold no index arithmetic;
//! metadata keys are expected once.
//!
//! Migrations: versions are semver and differ; dims and aux inputs are declared once;
//! each operation's targets (`->` and `into` patterns) use only captures its source
//! patterns bind, never do arithmetic on a multi-segment capture, and its sources hold no
//! arithmetic; types name known dtypes; a clause does not take another clause word as
//! its value (a forgotten value).
//!
//! What needs the meaning of operations or the other files of a registry (unknown op
//! names, lossiness, the source schema's dims) is checked by later layers.

use std::collections::{HashMap, HashSet};

use crate::ast::{
    DimDecl, DimValue, Expr, ExprKind, File, Item, Migration, MigrationDeclKind, Name, Op, OperandKind, Pattern,
    PatternPart, Schema, SchemaEntryKind, Span, TypeSpec, Value, FLAGS, KEYWORDS,
};
use crate::diagnostic::{similar, Diagnostic, SourceId};
use crate::{format, overlap};

/// The dtype names of the language.
const DTYPES: &[&str] = &[
    "bf16", "bool", "c64", "f16", "f32", "f4", "f64", "f6_e2m3", "f6_e3m2", "f8_e4m3", "f8_e5m2", "f8_e8m0", "i16",
    "i32", "i64", "i8", "u16", "u32", "u64", "u8",
];
/// The dtype classes: any float, any integer, anything.
const CLASSES: &[&str] = &["any", "float", "int"];
/// PyTorch and NumPy spellings, for a precise hint.
const ALIASES: &[(&str, &str)] = &[
    ("bfloat16", "bf16"),
    ("complex64", "c64"),
    ("double", "f64"),
    ("float16", "f16"),
    ("float32", "f32"),
    ("float64", "f64"),
    ("half", "f16"),
    ("int16", "i16"),
    ("int32", "i32"),
    ("int64", "i64"),
    ("int8", "i8"),
    ("long", "i64"),
    ("short", "i16"),
    ("uint16", "u16"),
    ("uint32", "u32"),
    ("uint64", "u64"),
    ("uint8", "u8"),
];

/// Checks one parsed file; returns every problem found (empty when none).
pub fn check(source: SourceId, file: &File) -> Vec<Diagnostic> {
    let mut checker = Checker { source, diagnostics: Vec::new() };
    for item in &file.items {
        match item {
            Item::Schema(schema) => checker.schema(schema),
            Item::Migration(migration) => checker.migration(migration),
        }
    }
    checker.diagnostics
}

struct Checker {
    source: SourceId,
    diagnostics: Vec<Diagnostic>,
}

impl Checker {
    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn version(&mut self, version: &Name) {
        if semver::Version::parse(&version.node).is_ok() {
            return;
        }
        let mut diagnostic = Diagnostic::error(
            "bad-version",
            format!("`{}` is not a semantic version", version.node),
            self.source,
            version.span,
        )
        .with_label("expected MAJOR.MINOR.PATCH");
        let trimmed = version.node.trim_start_matches(['v', 'V']);
        let suggestion = [trimmed.to_owned(), format!("{trimmed}.0"), format!("{trimmed}.0.0")]
            .into_iter()
            .find(|candidate| semver::Version::parse(candidate).is_ok());
        if let Some(suggestion) = suggestion {
            diagnostic = diagnostic.with_hint(format!("write `{suggestion}`"));
        } else {
            diagnostic = diagnostic.with_hint("a version looks like `1.4.0` or `1.0.0-rc.1`");
        }
        self.error(diagnostic);
    }

    /// Records each dim's first declaration; reports later ones.
    fn declare<'a>(&mut self, declared: &mut HashMap<&'a str, Span>, name: &'a Name, what: &str) {
        if let Some(first) = declared.get(name.node.as_str()) {
            let first = *first;
            self.error(
                Diagnostic::error(
                    match what {
                        "dim" => "duplicate-dim",
                        "param" => "duplicate-param",
                        _ => "duplicate-aux",
                    },
                    format!("{what} `{}` is declared twice", name.node),
                    self.source,
                    name.span,
                )
                .with_label("declared again here")
                .with_secondary(self.source, first, "first declared here"),
            );
        } else {
            declared.insert(&name.node, name.span);
        }
    }

    fn dtype(&mut self, ty: &TypeSpec) {
        let name = ty.dtype.node.as_str();
        if DTYPES.contains(&name) || CLASSES.contains(&name) {
            return;
        }
        let mut diagnostic =
            Diagnostic::error("unknown-dtype", format!("unknown dtype `{name}`"), self.source, ty.dtype.span)
                .with_label("not a dtype or class");
        if let Some((_, canonical)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
            diagnostic = diagnostic.with_hint(format!("write `{canonical}`"));
        } else if let Some(best) = similar(name, DTYPES.iter().chain(CLASSES).copied()).first() {
            diagnostic = diagnostic.with_hint(format!("did you mean `{best}`?"));
        }
        let valid = DTYPES.join(", ");
        self.error(diagnostic.with_hint(format!("dtypes are {valid}; classes are any, float, int")));
    }

    /// Reports every name in `expr` that is not a declared dim.
    fn dims_used(&mut self, expr: &Expr, declared: &HashMap<&str, Span>, what: &str) {
        let mut names = Vec::new();
        idents(expr, &mut names);
        for (name, span) in names {
            if declared.contains_key(name) {
                continue;
            }
            let mut diagnostic = Diagnostic::error("unknown-dim", format!("unknown dim `{name}`"), self.source, span)
                .with_label(format!("not declared in this {what}"));
            match similar(name, declared.keys().copied()).first() {
                Some(best) => diagnostic = diagnostic.with_hint(format!("did you mean `{best}`?")),
                None => diagnostic = diagnostic.with_hint(format!("declare it: `dim {name}`")),
            }
            self.error(diagnostic);
        }
    }

    // ---------------------------------------------------------------------------------
    // Schemas

    fn schema(&mut self, schema: &Schema) {
        self.version(&schema.version);
        let mut dims: HashMap<&str, Span> = HashMap::new();
        let mut derived: Vec<&DimDecl> = Vec::new();
        for entry in &schema.entries {
            if let SchemaEntryKind::Dim(dim) = &entry.kind {
                self.declare(&mut dims, &dim.name, "dim");
                derived.push(dim);
            }
        }
        for dim in &derived {
            if let Some(DimValue::Expr(value)) = &dim.value {
                self.dims_used(value, &dims, "schema");
            }
        }
        self.dim_cycles(&derived);

        let mut patterns: Vec<&Pattern> = Vec::new();
        let mut seen_patterns: HashMap<String, Span> = HashMap::new();
        let mut meta_keys: HashMap<&str, Span> = HashMap::new();
        for entry in &schema.entries {
            match &entry.kind {
                SchemaEntryKind::Dim(_) => {}
                SchemaEntryKind::Tensor(tensor) => {
                    self.dtype(&tensor.ty);
                    for axis in &tensor.ty.shape {
                        self.dims_used(axis, &dims, "schema");
                    }
                    self.schema_pattern(&tensor.pattern, &dims);
                    if self.unique_pattern(&mut seen_patterns, &tensor.pattern, "tensor") {
                        patterns.push(&tensor.pattern);
                    }
                }
                SchemaEntryKind::Allow(allowed) => {
                    self.schema_pattern(allowed, &dims);
                    self.unique_pattern(&mut seen_patterns, allowed, "allow");
                }
                SchemaEntryKind::Meta(meta) => {
                    if let Some(first) = meta_keys.get(meta.key.node.as_str()) {
                        let first = *first;
                        self.error(
                            Diagnostic::error(
                                "duplicate-meta",
                                format!("metadata key `{}` is expected twice", meta.key.node),
                                self.source,
                                meta.key.span,
                            )
                            .with_label("expected again here")
                            .with_secondary(self.source, first, "first expected here"),
                        );
                    } else {
                        meta_keys.insert(&meta.key.node, meta.key.span);
                    }
                }
            }
        }
        self.overlaps(&patterns);
    }

    /// Counted bounds use declared dims; no arithmetic in a pattern that is matched.
    fn schema_pattern(&mut self, pattern: &Pattern, dims: &HashMap<&str, Span>) {
        for part in &pattern.parts {
            match part {
                PatternPart::Counted { bound, .. } => self.dims_used(bound, dims, "schema"),
                PatternPart::Expr(expr) => self.arithmetic_in_source(expr, "a schema pattern"),
                PatternPart::Literal(_) | PatternPart::Capture { .. } => {}
            }
        }
    }

    fn arithmetic_in_source(&mut self, expr: &Expr, place: &str) {
        self.error(
            Diagnostic::error("pattern-arithmetic", format!("index arithmetic in {place}"), self.source, expr.span)
                .with_label("only a target pattern can compute an index")
                .with_hint("match the index with a capture (`{i}`) or a counted index (`{i < n}`)"),
        );
    }

    /// Whether `pattern` is new (up to capture names); reports it when it is not.
    fn unique_pattern(&mut self, seen: &mut HashMap<String, Span>, pattern: &Pattern, what: &str) -> bool {
        let key = shape_key(pattern);
        if let Some(first) = seen.get(&key) {
            let first = *first;
            self.error(
                Diagnostic::error(
                    "duplicate-pattern",
                    format!("{what} pattern {} is declared twice", format::pattern(pattern)),
                    self.source,
                    pattern.span,
                )
                .with_label("declared again here")
                .with_secondary(self.source, first, "first declared here"),
            );
            return false;
        }
        seen.insert(key, pattern.span);
        true
    }

    /// Pairs of tensor patterns that can match one name. Two patterns can only overlap if
    /// the fixed literal prefix of one is a prefix of the other's, and likewise for their
    /// literal suffixes. Candidate pairs come from whichever of the two relations yields
    /// fewer (counted first, in linear time), are filtered by the other, and are decided
    /// exactly by [`overlap::common_name`]. Quadratic only for schemas where most patterns
    /// share both their prefix and their suffix.
    fn overlaps(&mut self, patterns: &[&Pattern]) {
        let prefixes: Vec<String> = patterns
            .iter()
            .map(|pattern| match pattern.parts.first() {
                Some(PatternPart::Literal(text)) => text.clone(),
                _ => String::new(),
            })
            .collect();
        // Reversed, so that "is a suffix of" becomes "is a prefix of".
        let suffixes: Vec<String> = patterns
            .iter()
            .map(|pattern| match pattern.parts.last() {
                Some(PatternPart::Literal(text)) => text.chars().rev().collect(),
                _ => String::new(),
            })
            .collect();
        let compatible =
            |keys: &[String], a: usize, b: usize| keys[a].starts_with(&keys[b]) || keys[b].starts_with(&keys[a]);
        let (driver, filter) = if prefix_chain_pairs(&prefixes, None) <= prefix_chain_pairs(&suffixes, None) {
            (&prefixes, &suffixes)
        } else {
            (&suffixes, &prefixes)
        };
        let mut found: Vec<(usize, usize, String)> = Vec::new();
        prefix_chain_pairs(
            driver,
            Some(&mut |a: usize, b: usize| {
                if !compatible(filter, a, b) {
                    return;
                }
                if let Some(name) = overlap::common_name(patterns[a.min(b)], patterns[a.max(b)]) {
                    found.push((a.min(b), a.max(b), name));
                }
            }),
        );
        found.sort();
        let mut reported = HashSet::new();
        for (first, second, name) in found {
            // A literal name declared first takes precedence over a later pattern that also
            // matches it: a fixed name (`latlons_hidden`) stands out from a family
            // (`latlons_{dataset}`). Matching tries patterns in declaration order.
            if patterns[first].as_literal().is_some() {
                continue;
            }
            if !reported.insert(second) {
                continue;
            }
            self.error(
                Diagnostic::error(
                    "overlapping-patterns",
                    "two tensor patterns can match the same name",
                    self.source,
                    patterns[second].span,
                )
                .with_label("this pattern")
                .with_secondary(self.source, patterns[first].span, "overlaps this one")
                .with_hint(format!("both match `{name}`"))
                .with_hint("make the literal parts tell them apart, or merge the two declarations"),
            );
        }
    }

    /// `dim a = b + 1` with `dim b = a`: no order of evaluation works. An iterative
    /// depth-first search (a hostile file may chain thousands of dims).
    fn dim_cycles(&mut self, dims: &[&DimDecl]) {
        let mut uses: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut spans: HashMap<&str, Span> = HashMap::new();
        for dim in dims {
            spans.entry(&dim.name.node).or_insert(dim.name.span);
            if let Some(DimValue::Expr(value)) = &dim.value {
                let mut names = Vec::new();
                idents(value, &mut names);
                uses.entry(&dim.name.node).or_default().extend(names.into_iter().map(|(name, _)| name));
            }
        }
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let mut state: HashMap<&str, u8> = HashMap::new();
        for dim in dims {
            let root = dim.name.node.as_str();
            if state.contains_key(root) {
                continue;
            }
            state.insert(root, ON_PATH);
            let mut path: Vec<(&str, usize)> = vec![(root, 0)];
            while let Some((node, next_use)) = path.last_mut() {
                let node_uses = uses.get(*node).map_or(&[][..], Vec::as_slice);
                let Some(&next) = node_uses.get(*next_use) else {
                    state.insert(*node, DONE);
                    path.pop();
                    continue;
                };
                *next_use += 1;
                match state.get(next) {
                    Some(&ON_PATH) => {
                        let start = path.iter().position(|(on_path, _)| *on_path == next).unwrap_or(0);
                        let mut cycle: Vec<&str> = path[start..].iter().map(|(name, _)| *name).collect();
                        cycle.push(next);
                        self.error(
                            Diagnostic::error(
                                "dim-cycle",
                                format!("dim `{next}` is defined in terms of itself"),
                                self.source,
                                spans[next],
                            )
                            .with_label("defined here")
                            .with_hint(format!("the definitions go round: {}", cycle.join(" -> "))),
                        );
                    }
                    Some(_) => {}
                    None if uses.contains_key(next) => {
                        state.insert(next, ON_PATH);
                        path.push((next, 0));
                    }
                    None => {
                        state.insert(next, DONE);
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Migrations

    fn migration(&mut self, migration: &Migration) {
        self.version(&migration.from.version);
        self.version(&migration.to.version);
        let family = |reference: &crate::ast::VersionRef| reference.family.as_ref().map(|family| family.node.clone());
        if family(&migration.from) == family(&migration.to) && migration.from.version.node == migration.to.version.node
        {
            self.error(
                Diagnostic::error(
                    "self-migration",
                    format!("migration from version `{}` to itself", migration.from.version.node),
                    self.source,
                    migration.to.span,
                )
                .with_label("the same as the source version")
                .with_secondary(self.source, migration.from.span, "source version"),
            );
        }
        let mut dims = HashMap::new();
        let mut auxes = HashMap::new();
        let mut params = HashMap::new();
        for decl in &migration.decls {
            match &decl.kind {
                MigrationDeclKind::Dim(dim) => self.declare(&mut dims, &dim.name, "dim"),
                MigrationDeclKind::Aux { name, .. } => self.declare(&mut auxes, name, "aux"),
                MigrationDeclKind::Param { name, .. } => self.declare(&mut params, name, "param"),
            }
        }
        let down_ops = migration.down.iter().flat_map(|down| &down.ops);
        for op in migration.ops.iter().chain(down_ops) {
            self.op(op);
        }
    }

    fn op(&mut self, op: &Op) {
        let mut bound: HashMap<&str, bool> = HashMap::new();
        let mut sources: Vec<&Pattern> = Vec::new();
        for operand in &op.operands {
            if let OperandKind::Patterns(patterns) = &operand.kind {
                for pattern in patterns {
                    sources.push(pattern);
                    for part in &pattern.parts {
                        match part {
                            PatternPart::Capture { name, multi } => {
                                *bound.entry(&name.node).or_default() |= *multi;
                            }
                            PatternPart::Counted { name, .. } => {
                                bound.entry(&name.node).or_default();
                            }
                            PatternPart::Expr(expr) => self.arithmetic_in_source(expr, "a source pattern"),
                            PatternPart::Literal(_) => {}
                        }
                    }
                }
            }
        }
        for operand in &op.operands {
            match &operand.kind {
                OperandKind::Arrow(targets) => {
                    for target in targets {
                        self.target(op, target, &bound, &sources);
                    }
                }
                OperandKind::Clause { keyword, value } => {
                    if keyword.node == "into" {
                        if let Value::Patterns(targets) = value {
                            for target in targets {
                                self.target(op, target, &bound, &sources);
                            }
                        }
                    }
                    self.clause_value(keyword, value);
                }
                OperandKind::Type(ty) => self.dtype(ty),
                _ => {}
            }
        }
    }

    fn target(&mut self, op: &Op, target: &Pattern, bound: &HashMap<&str, bool>, sources: &[&Pattern]) {
        for part in &target.parts {
            match part {
                PatternPart::Capture { name, .. } | PatternPart::Counted { name, .. } => {
                    if bound.contains_key(name.node.as_str()) {
                        continue;
                    }
                    let mut diagnostic = Diagnostic::error(
                        "unbound-capture",
                        format!("capture `{}` is not bound by the source pattern", name.node),
                        self.source,
                        name.span,
                    )
                    .with_label(format!("no source pattern of `{}` captures it", op.name.node));
                    if let Some(first) = sources.first() {
                        diagnostic = diagnostic.with_secondary(self.source, first.span, "the source pattern");
                    }
                    match similar(&name.node, bound.keys().copied()).first() {
                        Some(best) => diagnostic = diagnostic.with_hint(format!("did you mean `{best}`?")),
                        None if bound.is_empty() => {
                            diagnostic = diagnostic.with_hint("the source pattern has no captures")
                        }
                        None => {
                            let mut names: Vec<&str> = bound.keys().copied().collect();
                            names.sort_unstable();
                            diagnostic = diagnostic.with_hint(format!("the source captures {}", names.join(", ")));
                        }
                    }
                    self.error(diagnostic);
                }
                PatternPart::Expr(expr) => {
                    let mut names = Vec::new();
                    idents(expr, &mut names);
                    for (name, span) in names {
                        if bound.get(name) == Some(&true) {
                            self.error(
                                Diagnostic::error(
                                    "multi-segment-arithmetic",
                                    format!("arithmetic on multi-segment capture `{name}`"),
                                    self.source,
                                    span,
                                )
                                .with_label("captured as `{…..}`: dotted text, not a number")
                                .with_hint(format!("capture the index alone with `{{{name}}}` in the source")),
                            );
                        }
                    }
                }
                PatternPart::Literal(_) => {}
            }
        }
    }

    /// `axis into "a"`: the clause took the next clause word as its value. `heads`,
    /// `kv_heads` and `head_dim` are also natural dim names (`heads heads`), so they are
    /// accepted as values.
    fn clause_value(&mut self, keyword: &Name, value: &Value) {
        let Value::Expr(Expr { kind: ExprKind::Ident(word), span }) = value else {
            return;
        };
        let dim_like = ["heads", "kv_heads", "head_dim"].contains(&word.as_str());
        if dim_like || !(KEYWORDS.contains(&word.as_str()) || FLAGS.contains(&word.as_str())) {
            return;
        }
        self.error(
            Diagnostic::error("missing-value", format!("`{}` has no value", keyword.node), self.source, keyword.span)
                .with_label(format!("takes `{word}` as its value"))
                .with_secondary(self.source, *span, "this is a clause word or flag")
                .with_hint(format!("write a value after `{}`", keyword.node)),
        );
    }
}

/// The pairs `(a, b)` where `keys[a]` is a prefix of `keys[b]` (each unordered pair once),
/// handed to `visit`; returns how many there are. Sorted order keeps every key that
/// extends a chain of prefixes right after it, so a stack of that chain finds all pairs
/// in O(n log n + pairs).
fn prefix_chain_pairs(keys: &[String], mut visit: Option<&mut dyn FnMut(usize, usize)>) -> usize {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]).then(a.cmp(&b)));
    let mut chain: Vec<usize> = Vec::new();
    let mut count = 0;
    for &index in &order {
        while chain.last().is_some_and(|&top| !keys[index].starts_with(keys[top].as_str())) {
            chain.pop();
        }
        count += chain.len();
        if let Some(visit) = visit.as_mut() {
            for &other in &chain {
                visit(other, index);
            }
        }
        chain.push(index);
    }
    count
}

/// The names an expression uses, with their spans, in order.
fn idents<'e>(expr: &'e Expr, out: &mut Vec<(&'e str, Span)>) {
    match &expr.kind {
        ExprKind::Int(_) => {}
        ExprKind::Ident(name) => out.push((name, expr.span)),
        ExprKind::Neg(operand) => idents(operand, out),
        ExprKind::Binary(_, lhs, rhs) => {
            idents(lhs, out);
            idents(rhs, out);
        }
    }
}

/// A pattern with capture names and bounds erased: equal keys match the same names.
fn shape_key(pattern: &Pattern) -> String {
    let mut key = String::new();
    for part in &pattern.parts {
        match part {
            PatternPart::Literal(text) => {
                key.push('L');
                key.push_str(&text.len().to_string());
                key.push(':');
                key.push_str(text);
            }
            PatternPart::Capture { multi: false, .. } => key.push('S'),
            PatternPart::Capture { multi: true, .. } => key.push('M'),
            PatternPart::Counted { .. } | PatternPart::Expr(_) => key.push('N'),
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use crate::{check, parse, SourceId};

    /// The codes `check` reports for `text` (which must parse).
    fn codes(text: &str) -> Vec<&'static str> {
        let file = parse(SourceId(0), text).unwrap_or_else(|err| panic!("{err:#?}"));
        check(SourceId(0), &file).into_iter().map(|diagnostic| diagnostic.code).collect()
    }

    fn schema(body: &str) -> String {
        format!("schema a @ 1.0.0 {{\n    dim n\n{body}\n}}\n")
    }

    #[test]
    fn schema_checks() {
        let cases: &[(&str, &[&str])] = &[
            ("tensor \"a.{x}.w\" : f32[n]\ntensor \"a.{y}.b\" : f32[n]", &[]),
            ("tensor \"a.{x}.w\" : f32[n]\ntensor \"a.{y}.w\" : f32[n]", &["duplicate-pattern"]),
            ("tensor \"a.{x}.w\" : f32[n]\ntensor \"a.b.w\" : f32[n]", &["overlapping-patterns"]),
            // A literal name declared first takes precedence.
            ("tensor \"a.b.w\" : f32[n]\ntensor \"a.{x}.w\" : f32[n]", &[]),
            ("tensor \"{x..}.w\" : f32[n]\ntensor \"a.{i < n}.w\" : f32[n]", &["overlapping-patterns"]),
            ("tensor \"a.{i < n}.w\" : f32[n]\ntensor \"a.01.w\" : f32[n]", &[]),
            ("tensor \"w\" : f32[m]", &["unknown-dim"]),
            ("tensor \"w.{i < m}\" : f32[n]", &["unknown-dim"]),
            ("dim n", &["duplicate-dim"]),
            ("dim a = b\ndim b = a + 1", &["dim-cycle"]),
            ("dim a = n * 2\ndim b = a / n", &[]),
            ("tensor \"w\" : float32[n]", &["unknown-dtype"]),
            ("tensor \"w\" : any[n]\nallow \"w.{x..}\"", &[]),
            ("tensor \"w.{i + 1}\" : f32[n]", &["pattern-arithmetic"]),
            ("meta \"k\"\nmeta \"k\" = 1", &["duplicate-meta"]),
        ];
        for (body, expected) in cases {
            assert_eq!(codes(&schema(body)), *expected, "{body}");
        }
        assert_eq!(codes("schema a @ 1.0 {}"), ["bad-version"]);
    }

    #[test]
    fn overlaps_are_found_whichever_side_drives_the_search() {
        // Many shared prefixes, distinct suffixes: the suffix side drives.
        let mut body: String = (0..50).map(|index| format!("tensor \"model.{{p..}}.w{index}\" : f32[n]\n")).collect();
        body.push_str("tensor \"model.x.{q}.w7\" : f32[n]\n");
        assert_eq!(codes(&schema(&body)), ["overlapping-patterns"]);
        // Many shared suffixes, distinct prefixes: the prefix side drives.
        let mut body: String = (0..50).map(|index| format!("tensor \"m{index}.{{p..}}.weight\" : f32[n]\n")).collect();
        body.push_str("tensor \"m7.{q}.{r}.weight\" : f32[n]\n");
        assert_eq!(codes(&schema(&body)), ["overlapping-patterns"]);
    }

    #[test]
    fn migration_checks() {
        let migration = |body: &str| format!("migration a 1.0.0 -> 2.0.0 {{\n{body}\n}}\n");
        let cases: &[(&str, &[&str])] = &[
            ("rename \"a.{x}\" -> \"b.{x}\"", &[]),
            ("rename \"a.{x}\" -> \"b.{y}\"", &["unbound-capture"]),
            ("split \"{p..}.qkv\" axis 0 into \"{p}.q\", \"{p}.{k}\"", &["unbound-capture"]),
            ("rename \"a.{c}.{j}\" -> \"b.{c * n + j}\"", &[]),
            ("rename \"a.{c..}.{j}\" -> \"b.{c * n + j}\"", &["multi-segment-arithmetic"]),
            ("rename \"a.{c + 1}\" -> \"b\"", &["pattern-arithmetic"]),
            ("insert \"w\" : bf61[n] = ones", &["unknown-dtype"]),
            ("split \"w\" axis into \"a\", \"b\"", &["missing-value"]),
            ("split-heads \"w\" into \"q\", \"k\" heads heads kv_heads kv_heads", &[]),
            ("dim x\ndim x = 2", &["duplicate-dim"]),
            ("aux g \"one\"\naux g \"two\"", &["duplicate-aux"]),
            ("drop \"w\" lossy\ndown {\n rename \"a\" -> \"{b}\"\n}", &["unbound-capture"]),
        ];
        for (body, expected) in cases {
            assert_eq!(codes(&migration(body)), *expected, "{body}");
        }
        assert_eq!(codes("migration a 1.0.0 -> 1.0.0 {}"), ["self-migration"]);
        assert!(codes("migration a @ 1.0.0 -> b @ 1.0.0 {}").is_empty());
    }
}
