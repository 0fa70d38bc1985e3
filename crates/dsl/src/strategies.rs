//! proptest strategies for syntax trees, shared by every property test of this crate.
//!
//! Trees are generated in the canonical form the parser produces, so that
//! `normalize(parse(format(tree))) == normalize(tree)` is a fair property:
//! adjacent pattern literals are merged and never empty; a lone `{x}` is a capture, not an
//! expression; comment texts have no line breaks or trailing blanks; a string value after
//! `=` or inside a call is JSON, in a clause it is a pattern list; a plain integer is an
//! expression, never a JSON number, and a bracket of integers is an expression list.
//!
//! Edge cases are weighted up where bugs hide: escapes and control characters in strings
//! (the formatter must re-escape what the parser unescaped), literal braces in patterns
//! (`{{`), `0` and `u64::MAX` (number printing), negation and mixed precedence in
//! expressions (parenthesisation), empty blocks and comments in every position (trivia
//! attachment), and long operations (line breaking).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::ast::*;

fn dummy<T>(node: T) -> Spanned<T> {
    Spanned::new(node, Span::DUMMY)
}

/// Words that cannot be used as a name everywhere (keywords, flags, JSON literals).
const RESERVED: &[&str] = &[
    "allow",
    "aux",
    "dim",
    "down",
    "false",
    "meta",
    "migration",
    "null",
    "param",
    "schema",
    "tensor",
    "true",
    "optional",
];

/// An identifier usable in every name position.
pub(crate) fn arb_ident() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,7}".prop_filter("reserved word", |word| {
        !RESERVED.contains(&word.as_str()) && !KEYWORDS.contains(&word.as_str()) && !FLAGS.contains(&word.as_str())
    })
}

fn arb_name() -> impl Strategy<Value = Name> {
    arb_ident().prop_map(dummy)
}

fn arb_family() -> impl Strategy<Value = Name> {
    vec(arb_ident(), 1..3).prop_map(|parts| dummy(parts.join(".")))
}

fn arb_version() -> impl Strategy<Value = Name> {
    prop_oneof![
        4 => (0u32..20, 0u32..20, 0u32..20).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        1 => Just("1.0.0-rc.1".to_owned()),
        1 => Just("2.1.0+build.5".to_owned()),
        // Not semver, but the grammar reads it: the check reports it, not the parser.
        1 => Just("v1".to_owned()),
    ]
    .prop_map(dummy)
}

/// Text for string literals: mostly plain, with quotes, backslashes, braces, control
/// characters and non-ASCII weighted in because they exercise the escaping.
pub(crate) fn arb_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        8 => proptest::char::range('a', 'z'),
        2 => Just('.'),
        1 => Just(' '),
        1 => prop_oneof![Just('"'), Just('\\'), Just('{'), Just('}'), Just('/')],
        1 => prop_oneof![Just('\n'), Just('\t'), Just('\r'), Just('\u{1}'), Just('\u{7f}'), Just('\u{8}')],
        1 => prop_oneof![Just('é'), Just('😀'), Just('\u{2028}')],
    ];
    vec(ch, 0..12).prop_map(|chars| chars.into_iter().collect())
}

fn arb_comment() -> impl Strategy<Value = Comment> {
    "[ -~é]{0,24}".prop_map(|text| Comment { text: text.trim_end().to_owned(), span: Span::DUMMY })
}

fn arb_trivia() -> impl Strategy<Value = Trivia> {
    prop_oneof![
        // Most statements have no comments.
        3 => Just(Trivia::default()),
        1 => (vec(arb_comment(), 0..3), option::of(arb_comment()))
            .prop_map(|(leading, trailing)| Trivia { leading, trailing }),
    ]
}

fn arb_comments() -> impl Strategy<Value = Vec<Comment>> {
    prop_oneof![2 => Just(Vec::new()), 1 => vec(arb_comment(), 1..3)]
}

fn expr(kind: ExprKind) -> Expr {
    Expr { kind, span: Span::DUMMY }
}

/// Integer expressions, a few levels deep, with every operator and negation.
pub(crate) fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        3 => arb_ident().prop_map(|name| expr(ExprKind::Ident(name))),
        2 => (0u64..1000).prop_map(|value| expr(ExprKind::Int(value))),
        1 => prop_oneof![Just(0u64), Just(u64::MAX)].prop_map(|value| expr(ExprKind::Int(value))),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        let op = prop_oneof![Just(BinOp::Add), Just(BinOp::Sub), Just(BinOp::Mul), Just(BinOp::Div), Just(BinOp::Rem)];
        prop_oneof![
            3 => (op, inner.clone(), inner.clone())
                .prop_map(|(op, lhs, rhs)| expr(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)))),
            1 => inner.prop_map(|operand| expr(ExprKind::Neg(Box::new(operand)))),
        ]
    })
}

fn arb_pattern_part() -> impl Strategy<Value = PatternPart> {
    prop_oneof![
        4 => arb_text().prop_filter("non-empty", |text| !text.is_empty()).prop_map(PatternPart::Literal),
        3 => (arb_name(), any::<bool>()).prop_map(|(name, multi)| PatternPart::Capture { name, multi }),
        1 => (arb_name(), arb_expr()).prop_map(|(name, bound)| PatternPart::Counted { name, bound }),
        // `{x}` alone is a capture, so an expression part is never a lone name.
        1 => arb_expr()
            .prop_filter("a lone name is a capture", |item| !matches!(item.kind, ExprKind::Ident(_)))
            .prop_map(PatternPart::Expr),
    ]
}

/// Name patterns with literals merged, as the parser builds them.
pub(crate) fn arb_pattern() -> impl Strategy<Value = Pattern> {
    vec(arb_pattern_part(), 0..5).prop_map(|parts| {
        let mut merged: Vec<PatternPart> = Vec::new();
        for part in parts {
            match (merged.last_mut(), part) {
                (Some(PatternPart::Literal(previous)), PatternPart::Literal(text)) => previous.push_str(&text),
                (_, part) => merged.push(part),
            }
        }
        Pattern { parts: merged, span: Span::DUMMY }
    })
}

fn arb_patterns() -> impl Strategy<Value = Vec<Pattern>> {
    vec(arb_pattern(), 1..3)
}

fn json(kind: JsonKind) -> Json {
    Json { kind, span: Span::DUMMY }
}

fn arb_json_number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,3})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?"
}

/// Any JSON value (numbers as written).
fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(json(JsonKind::Null)),
        any::<bool>().prop_map(|flag| json(JsonKind::Bool(flag))),
        arb_json_number().prop_map(|text| json(JsonKind::Number(text))),
        arb_text().prop_map(|text| json(JsonKind::String(text))),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|items| json(JsonKind::Array(items))),
            vec((arb_text().prop_map(dummy), inner), 0..3).prop_map(|members| json(JsonKind::Object(members))),
        ]
    })
}

fn is_integer_text(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// JSON in a value position: never a plain integer (that is an expression), never a
/// bracket of integers (an expression list), never a string (a pattern or JSON string
/// depending on the place, chosen by the caller).
fn arb_value_json() -> impl Strategy<Value = Json> {
    arb_json().prop_filter("reads back as another value form", |value| match &value.kind {
        JsonKind::Number(text) => !is_integer_text(text),
        JsonKind::String(_) => false,
        JsonKind::Array(items) => {
            !items.iter().all(|item| matches!(&item.kind, JsonKind::Number(text) if is_integer_text(text)))
        }
        _ => true,
    })
}

/// A value that reads the same in every value position (no bare string).
fn arb_common_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        2 => arb_expr().prop_map(Value::Expr),
        1 => vec(arb_expr(), 0..3).prop_map(Value::List),
        1 => (arb_name(), arb_text().prop_map(dummy)).prop_map(|(input, tensor)| Value::Aux { input, tensor }),
        1 => arb_value_json().prop_map(Value::Json),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        let arg = prop_oneof![3 => inner, 1 => arb_text().prop_map(|text| Value::Json(json(JsonKind::String(text))))];
        (arb_name(), vec(arg, 0..3)).prop_map(|(name, args)| Value::Call { name, args })
    })
}

fn arb_clause_value() -> impl Strategy<Value = Value> {
    prop_oneof![2 => arb_patterns().prop_map(Value::Patterns), 3 => arb_common_value()]
}

fn arb_assign_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => arb_text().prop_map(|text| Value::Json(json(JsonKind::String(text)))),
        3 => arb_common_value(),
    ]
}

fn arb_type_spec() -> impl Strategy<Value = TypeSpec> {
    let dtype = prop_oneof![
        3 => prop::sample::select(vec!["f32", "bf16", "i64", "float", "any", "f8_e4m3"]).prop_map(str::to_owned),
        1 => arb_ident(),
    ];
    (dtype, vec(arb_expr(), 0..3)).prop_map(|(dtype, shape)| TypeSpec { dtype: dummy(dtype), shape, span: Span::DUMMY })
}

fn arb_operand() -> impl Strategy<Value = Operand> {
    let keyword = prop::sample::select(KEYWORDS.to_vec()).prop_map(|word| dummy(word.to_owned()));
    let flag = prop::sample::select(FLAGS.to_vec()).prop_map(|word| dummy(word.to_owned()));
    prop_oneof![
        3 => arb_patterns().prop_map(OperandKind::Patterns),
        2 => arb_patterns().prop_map(OperandKind::Arrow),
        3 => (keyword, arb_clause_value()).prop_map(|(keyword, value)| OperandKind::Clause { keyword, value }),
        1 => flag.prop_map(OperandKind::Flag),
        1 => arb_type_spec().prop_map(OperandKind::Type),
        1 => arb_assign_value().prop_map(OperandKind::Assign),
    ]
    .prop_map(|kind| Operand { kind, span: Span::DUMMY })
}

fn arb_op_name() -> impl Strategy<Value = Name> {
    vec(arb_ident(), 1..3).prop_map(|words| dummy(words.join("-")))
}

fn arb_op() -> impl Strategy<Value = Op> {
    // Up to six operands: long enough to cross the line width and be broken.
    (arb_op_name(), vec(arb_operand(), 0..6), arb_trivia()).prop_map(|(name, operands, trivia)| Op {
        name,
        operands,
        trivia,
        span: Span::DUMMY,
    })
}

fn arb_dim_decl() -> impl Strategy<Value = DimDecl> {
    let value = prop_oneof![
        2 => Just(None),
        2 => arb_expr().prop_map(|item| Some(DimValue::Expr(item))),
        1 => arb_text().prop_map(|path| Some(DimValue::Meta(dummy(path)))),
    ];
    (arb_name(), value).prop_map(|(name, value)| DimDecl { name, value })
}

fn arb_schema_entry() -> impl Strategy<Value = SchemaEntry> {
    let kind = prop_oneof![
        2 => arb_dim_decl().prop_map(SchemaEntryKind::Dim),
        3 => (arb_pattern(), arb_type_spec(), any::<bool>())
            .prop_map(|(pattern, ty, optional)| SchemaEntryKind::Tensor(TensorDecl { pattern, ty, optional })),
        1 => arb_pattern().prop_map(SchemaEntryKind::Allow),
        1 => (arb_text().prop_map(dummy), option::of(arb_json()))
            .prop_map(|(key, value)| SchemaEntryKind::Meta(MetaDecl { key, value })),
    ];
    (kind, arb_trivia()).prop_map(|(kind, trivia)| SchemaEntry { kind, trivia, span: Span::DUMMY })
}

fn arb_schema() -> impl Strategy<Value = Schema> {
    (
        arb_family(),
        arb_version(),
        option::of(arb_text().prop_map(dummy)),
        vec(arb_schema_entry(), 0..6),
        arb_trivia(),
        arb_comments(),
    )
        .prop_map(|(family, version, doc, entries, trivia, inner_trailing)| Schema {
            family,
            version,
            doc,
            entries,
            trivia,
            inner_trailing,
            span: Span::DUMMY,
        })
}

fn arb_migration_decl() -> impl Strategy<Value = MigrationDecl> {
    let kind = prop_oneof![
        arb_dim_decl().prop_map(MigrationDeclKind::Dim),
        (arb_name(), arb_text().prop_map(dummy)).prop_map(|(name, doc)| MigrationDeclKind::Aux { name, doc }),
        (arb_name(), arb_text().prop_map(dummy), proptest::option::of(arb_text().prop_map(dummy)))
            .prop_map(|(name, doc, default)| MigrationDeclKind::Param { name, doc, default }),
    ];
    (kind, arb_trivia()).prop_map(|(kind, trivia)| MigrationDecl { kind, trivia, span: Span::DUMMY })
}

fn arb_down() -> impl Strategy<Value = DownBlock> {
    (vec(arb_op(), 0..3), arb_trivia(), arb_comments()).prop_map(|(ops, trivia, inner_trailing)| DownBlock {
        ops,
        trivia,
        inner_trailing,
        span: Span::DUMMY,
    })
}

fn arb_migration() -> impl Strategy<Value = Migration> {
    (
        (arb_family(), arb_version(), arb_family(), arb_version(), any::<bool>()),
        option::of(arb_text().prop_map(dummy)),
        vec(arb_migration_decl(), 0..3),
        vec(arb_op(), 0..4),
        option::of(arb_down()),
        arb_trivia(),
        arb_comments(),
    )
        .prop_map(|(header, doc, decls, ops, down, trivia, inner_trailing)| {
            let (from_family, from_version, to_family, to_version, shared_family) = header;
            let to_family = if shared_family { from_family.clone() } else { to_family };
            let reference = |family, version| VersionRef { family: Some(family), version, span: Span::DUMMY };
            Migration {
                from: reference(from_family, from_version),
                to: reference(to_family, to_version),
                shared_family,
                doc,
                decls,
                ops,
                down,
                trivia,
                inner_trailing,
                span: Span::DUMMY,
            }
        })
}

/// Whole files: a few items and trailing comments.
pub(crate) fn arb_file() -> impl Strategy<Value = File> {
    let item = prop_oneof![arb_schema().prop_map(Item::Schema), arb_migration().prop_map(Item::Migration)];
    (vec(item, 0..4), arb_comments()).prop_map(|(items, trailing_comments)| File { items, trailing_comments })
}
