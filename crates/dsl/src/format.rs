//! The canonical layout of a registry file.
//!
//! * Four spaces per block level, one statement per line, one blank line between items.
//! * Inside a schema: a blank line between the `dim` lines and the rest. Inside a
//!   migration: a blank line between the declarations and the operations, and before
//!   `down {`. A statement with comments before it gets a blank line before them (unless
//!   it is the first of its block), so a comment heads a group.
//! * An operation longer than [`MAX_WIDTH`] columns is broken before each `->` and
//!   `into`, continuation lines indented four more spaces than the statement.
//! * An item, or a `down` block, without statements or comments is written `{}`.
//! * Comments keep their text; trailing blanks are dropped. A comment at the end of a
//!   line stays there, aligned with the trailing comments of the lines around it (same
//!   indentation, no line between); one inside a statement spanning lines moves above it.
//!
//! The layout depends only on the tree, so `format(parse(format(x))) == format(x)`.

use crate::ast::{
    BinOp, Comment, DimDecl, DimValue, DownBlock, Expr, ExprKind, File, Item, Json, JsonKind, Migration,
    MigrationDeclKind, Op, OperandKind, Pattern, PatternPart, Schema, SchemaEntryKind, Trivia, TypeSpec, Value,
};
use crate::strings::{escape_into, quote};

/// Lines longer than this (operations only) are broken before `->` and `into`.
pub const MAX_WIDTH: usize = 100;

const INDENT: usize = 4;

/// The text being written, and where trailing comments start (for aligning them).
struct Out {
    text: String,
    /// Byte offsets of the blank before each trailing `//`, in order.
    comment_starts: Vec<usize>,
}

impl std::ops::Deref for Out {
    type Target = String;
    fn deref(&self) -> &String {
        &self.text
    }
}

impl std::ops::DerefMut for Out {
    fn deref_mut(&mut self) -> &mut String {
        &mut self.text
    }
}

/// Aligns the trailing comments of consecutive lines with the same indentation, as gofmt
/// does: `dim hidden   // width` above `dim mlp_hidden // MLP width`.
fn align_trailing_comments(out: Out) -> String {
    let Out { text, comment_starts } = out;
    // (line start, code end) of every line with a trailing comment, in order.
    let commented: Vec<(usize, usize)> = comment_starts
        .iter()
        .map(|&start| (text[..start].rfind('\n').map_or(0, |newline| newline + 1), start))
        .collect();
    let indent = |line_start: usize| text[line_start..].len() - text[line_start..].trim_start_matches(' ').len();
    let mut aligned = String::with_capacity(text.len());
    let mut copied = 0;
    let mut index = 0;
    while index < commented.len() {
        // A run: each next commented line starts right after the previous line ends.
        let mut end = index + 1;
        while end < commented.len() {
            let (previous_start, _) = commented[end - 1];
            let previous_end = text[previous_start..].find('\n').map_or(text.len(), |offset| previous_start + offset);
            let (start, _) = commented[end];
            if start != previous_end + 1 || indent(start) != indent(previous_start) {
                break;
            }
            end += 1;
        }
        let width = commented[index..end].iter().map(|&(start, code_end)| text[start..code_end].chars().count()).max();
        for &(start, code_end) in &commented[index..end] {
            aligned.push_str(&text[copied..code_end]);
            let padding = width.unwrap_or(0) - text[start..code_end].chars().count();
            aligned.extend(std::iter::repeat_n(' ', padding));
            copied = code_end;
        }
        index = end;
    }
    aligned.push_str(&text[copied..]);
    aligned
}

/// Formats a file in the canonical layout.
pub fn format(file: &File) -> String {
    let mut out = Out { text: String::new(), comment_starts: Vec::new() };
    for (index, item) in file.items.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        match item {
            Item::Schema(schema) => format_schema(&mut out, schema),
            Item::Migration(migration) => format_migration(&mut out, migration),
        }
    }
    if !file.trailing_comments.is_empty() && !file.items.is_empty() {
        out.push('\n');
    }
    for comment in &file.trailing_comments {
        comment_line(&mut out, 0, comment);
    }
    align_trailing_comments(out)
}

fn comment_line(out: &mut String, indent: usize, comment: &Comment) {
    push_indent(out, indent);
    out.push_str("//");
    out.push_str(&comment.text);
    out.push('\n');
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Writes `line` with its comments: leading comment lines, then the line (which may
/// hold line breaks of its own) with the trailing comment.
fn statement(out: &mut Out, indent: usize, trivia: &Trivia, line: &str) {
    for comment in &trivia.leading {
        comment_line(out, indent, comment);
    }
    push_indent(out, indent);
    out.push_str(line);
    trailing(out, trivia);
    out.push('\n');
}

fn trailing(out: &mut Out, trivia: &Trivia) {
    if let Some(comment) = &trivia.trailing {
        out.comment_starts.push(out.text.len());
        out.push_str(" //");
        out.push_str(&comment.text);
    }
}

/// `{` with the header's trailing comment, the body, `}`; `{}` when all is empty.
fn block(
    out: &mut Out,
    indent: usize,
    trivia: &Trivia,
    inner_trailing: &[Comment],
    empty: bool,
    body: impl FnOnce(&mut Out),
) {
    if empty && inner_trailing.is_empty() && trivia.trailing.is_none() {
        out.push_str(" {}\n");
        return;
    }
    out.push_str(" {");
    trailing(out, trivia);
    out.push('\n');
    body(out);
    for comment in inner_trailing {
        comment_line(out, indent + INDENT, comment);
    }
    push_indent(out, indent);
    out.push_str("}\n");
}

fn format_schema(out: &mut Out, schema: &Schema) {
    for comment in &schema.trivia.leading {
        comment_line(out, 0, comment);
    }
    out.push_str("schema ");
    out.push_str(&schema.family.node);
    out.push_str(" @ ");
    out.push_str(&schema.version.node);
    if let Some(doc) = &schema.doc {
        out.push(' ');
        out.push_str(&quote(&doc.node));
    }
    block(out, 0, &schema.trivia, &schema.inner_trailing, schema.entries.is_empty(), |out| {
        let mut previous_is_dim = None;
        for entry in &schema.entries {
            let is_dim = matches!(entry.kind, SchemaEntryKind::Dim(_));
            let group_changed = previous_is_dim.is_some_and(|previous| previous != is_dim);
            if previous_is_dim.is_some() && (group_changed || !entry.trivia.leading.is_empty()) {
                out.push('\n');
            }
            previous_is_dim = Some(is_dim);
            let line = match &entry.kind {
                SchemaEntryKind::Dim(dim) => dim_line(dim),
                SchemaEntryKind::Tensor(tensor) => {
                    let mut line = format!("tensor {} : {}", pattern(&tensor.pattern), type_spec(&tensor.ty));
                    if tensor.optional {
                        line.push_str(" optional");
                    }
                    line
                }
                SchemaEntryKind::Allow(allowed) => format!("allow {}", pattern(allowed)),
                SchemaEntryKind::Meta(meta) => match &meta.value {
                    Some(value) => format!("meta {} = {}", quote(&meta.key.node), json(value)),
                    None => format!("meta {}", quote(&meta.key.node)),
                },
            };
            statement(out, INDENT, &entry.trivia, &line);
        }
    });
}

fn dim_line(dim: &DimDecl) -> String {
    match &dim.value {
        None => format!("dim {}", dim.name.node),
        Some(DimValue::Expr(value)) => format!("dim {} = {}", dim.name.node, expr(value)),
        Some(DimValue::Meta(path)) => format!("dim {} = meta({})", dim.name.node, quote(&path.node)),
    }
}

fn format_migration(out: &mut Out, migration: &Migration) {
    for comment in &migration.trivia.leading {
        comment_line(out, 0, comment);
    }
    let family = |reference: &crate::ast::VersionRef| {
        reference.family.as_ref().map_or("", |family| family.node.as_str()).to_owned()
    };
    out.push_str("migration ");
    if migration.shared_family {
        out.push_str(&format!(
            "{} {} -> {}",
            family(&migration.from),
            migration.from.version.node,
            migration.to.version.node
        ));
    } else {
        out.push_str(&format!(
            "{} @ {} -> {} @ {}",
            family(&migration.from),
            migration.from.version.node,
            family(&migration.to),
            migration.to.version.node
        ));
    }
    if let Some(doc) = &migration.doc {
        out.push(' ');
        out.push_str(&quote(&doc.node));
    }
    let empty = migration.decls.is_empty() && migration.ops.is_empty() && migration.down.is_none();
    block(out, 0, &migration.trivia, &migration.inner_trailing, empty, |out| {
        for (index, decl) in migration.decls.iter().enumerate() {
            if index > 0 && !decl.trivia.leading.is_empty() {
                out.push('\n');
            }
            let line = match &decl.kind {
                MigrationDeclKind::Dim(dim) => dim_line(dim),
                MigrationDeclKind::Aux { name, doc } => format!("aux {} {}", name.node, quote(&doc.node)),
                MigrationDeclKind::Param { name, doc, default } => match default {
                    Some(default) => format!("param {} {} = {}", name.node, quote(&doc.node), quote(&default.node)),
                    None => format!("param {} {}", name.node, quote(&doc.node)),
                },
            };
            statement(out, INDENT, &decl.trivia, &line);
        }
        let mut something_before = !migration.decls.is_empty();
        ops(out, INDENT, &migration.ops, something_before);
        something_before |= !migration.ops.is_empty();
        if let Some(down) = &migration.down {
            if something_before {
                out.push('\n');
            }
            format_down(out, down);
        }
    });
}

fn ops(out: &mut Out, indent: usize, ops: &[Op], something_before: bool) {
    for (index, op) in ops.iter().enumerate() {
        let first = index == 0;
        if (first && something_before) || (!first && !op.trivia.leading.is_empty()) {
            out.push('\n');
        }
        statement(out, indent, &op.trivia, &op_text(op, indent));
    }
}

fn format_down(out: &mut Out, down: &DownBlock) {
    for comment in &down.trivia.leading {
        comment_line(out, INDENT, comment);
    }
    push_indent(out, INDENT);
    out.push_str("down");
    block(out, INDENT, &down.trivia, &down.inner_trailing, down.ops.is_empty(), |out| {
        ops(out, 2 * INDENT, &down.ops, false);
    });
}

/// An operation on one line, or broken before each `->` and `into` when too long.
fn op_text(op: &Op, indent: usize) -> String {
    let operands: Vec<(bool, String)> = op
        .operands
        .iter()
        .map(|operand| {
            let breaks_before = match &operand.kind {
                OperandKind::Arrow(_) => true,
                OperandKind::Clause { keyword, .. } => keyword.node == "into",
                _ => false,
            };
            (breaks_before, operand_text(&operand.kind))
        })
        .collect();
    let mut one_line = op.name.node.clone();
    for (_, text) in &operands {
        one_line.push(' ');
        one_line.push_str(text);
    }
    let trailing_width = op.trivia.trailing.as_ref().map_or(0, |comment| comment.text.chars().count() + 3);
    if indent + one_line.chars().count() + trailing_width <= MAX_WIDTH || !operands.iter().any(|(breaks, _)| *breaks) {
        return one_line;
    }
    let mut text = op.name.node.clone();
    for (breaks_before, operand) in &operands {
        if *breaks_before {
            text.push('\n');
            push_indent(&mut text, indent + INDENT);
        } else {
            text.push(' ');
        }
        text.push_str(operand);
    }
    text
}

fn operand_text(operand: &OperandKind) -> String {
    match operand {
        OperandKind::Patterns(patterns) => pattern_list(patterns),
        OperandKind::Arrow(patterns) => format!("-> {}", pattern_list(patterns)),
        OperandKind::Clause { keyword, value: clause_value } => format!("{} {}", keyword.node, value(clause_value)),
        OperandKind::Flag(flag) => flag.node.clone(),
        OperandKind::Type(ty) => format!(": {}", type_spec(ty)),
        OperandKind::Assign(assigned) => format!("= {}", value(assigned)),
    }
}

fn pattern_list(patterns: &[Pattern]) -> String {
    patterns.iter().map(pattern).collect::<Vec<_>>().join(", ")
}

fn value(node: &Value) -> String {
    match node {
        Value::Patterns(patterns) => pattern_list(patterns),
        Value::List(items) => format!("[{}]", items.iter().map(expr).collect::<Vec<_>>().join(", ")),
        Value::Expr(item) => expr(item),
        Value::Call { name, args } => {
            let args: Vec<String> = args.iter().map(value).collect();
            format!("{}({})", name.node, args.join(", "))
        }
        Value::Aux { input, tensor } => format!("{}[{}]", input.node, quote(&tensor.node)),
        Value::Json(item) => json(item),
    }
}

fn type_spec(ty: &TypeSpec) -> String {
    format!("{}[{}]", ty.dtype.node, ty.shape.iter().map(expr).collect::<Vec<_>>().join(", "))
}

/// A name pattern as a string literal: literal braces doubled, captures in braces.
pub(crate) fn pattern(pattern: &Pattern) -> String {
    let mut out = String::from("\"");
    for part in &pattern.parts {
        match part {
            PatternPart::Literal(text) => escape_into(&mut out, text, true),
            PatternPart::Capture { name, multi } => {
                out.push('{');
                out.push_str(&name.node);
                if *multi {
                    out.push_str("..");
                }
                out.push('}');
            }
            PatternPart::Counted { name, bound } => out.push_str(&format!("{{{} < {}}}", name.node, expr(bound))),
            PatternPart::Expr(item) => out.push_str(&format!("{{{}}}", expr(item))),
        }
    }
    out.push('"');
    out
}

fn json(value: &Json) -> String {
    match &value.kind {
        JsonKind::Null => "null".to_owned(),
        JsonKind::Bool(flag) => flag.to_string(),
        JsonKind::Number(text) => text.clone(),
        JsonKind::String(text) => quote(text),
        JsonKind::Array(items) => format!("[{}]", items.iter().map(json).collect::<Vec<_>>().join(", ")),
        JsonKind::Object(members) => {
            let members: Vec<String> =
                members.iter().map(|(key, member)| format!("{}: {}", quote(&key.node), json(member))).collect();
            format!("{{{}}}", members.join(", "))
        }
    }
}

/// Binding strength: `+ -` 1, `* / %` 2, prefix `-` 3, atoms 4.
fn precedence(item: &Expr) -> u8 {
    match &item.kind {
        ExprKind::Int(_) | ExprKind::Ident(_) => 4,
        ExprKind::Neg(_) => 3,
        ExprKind::Binary(BinOp::Add | BinOp::Sub, ..) => 1,
        ExprKind::Binary(..) => 2,
    }
}

/// An expression with the fewest parentheses that parse back to the same tree.
pub(crate) fn expr(item: &Expr) -> String {
    match &item.kind {
        ExprKind::Int(value) => value.to_string(),
        ExprKind::Ident(name) => name.clone(),
        ExprKind::Neg(operand) => {
            // `- -a`, not `-(-a)`: parentheses would add a nesting level per negation, and
            // a long chain would format to text deeper than the parser accepts.
            if let ExprKind::Neg(_) = operand.kind {
                format!("- {}", expr(operand))
            } else if precedence(operand) == 4 {
                format!("-{}", expr(operand))
            } else {
                format!("-({})", expr(operand))
            }
        }
        ExprKind::Binary(op, lhs, rhs) => {
            let own = precedence(item);
            let symbol = match op {
                BinOp::Add => "+",
                BinOp::Sub => "-",
                BinOp::Mul => "*",
                BinOp::Div => "/",
                BinOp::Rem => "%",
            };
            // Left-associative: the left operand may bind equally, the right must bind tighter.
            let left = if precedence(lhs) < own { format!("({})", expr(lhs)) } else { expr(lhs) };
            let right = if precedence(rhs) <= own { format!("({})", expr(rhs)) } else { expr(rhs) };
            format!("{left} {symbol} {right}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, SourceId};

    fn reformat(text: &str) -> String {
        format(&parse(SourceId(0), text).unwrap_or_else(|err| panic!("{err:#?}")))
    }

    #[test]
    fn canonical_layout() {
        let messy = "// head\nschema  a.b@1.0.0{tensor \"x.{i<n}\":f32[n,2*n] optional dim n // count\n}\n\
                     migration a.b 1.0.0->2.0.0{aux g \"graph\" rename \"x\"->\"y\" down{rename \"y\"->\"x\"}}";
        let expected = "// head\nschema a.b @ 1.0.0 {\n    tensor \"x.{i < n}\" : f32[n, 2 * n] optional\n\n    \
                        dim n // count\n}\n\nmigration a.b 1.0.0 -> 2.0.0 {\n    aux g \"graph\"\n\n    \
                        rename \"x\" -> \"y\"\n\n    down {\n        rename \"y\" -> \"x\"\n    }\n}\n";
        assert_eq!(reformat(messy), expected);
        assert_eq!(reformat(expected), expected);
    }

    #[test]
    fn trailing_comments_of_consecutive_lines_align() {
        let text = "schema a @ 1.0.0 { // header\n    dim hidden // width\n    dim mlp_hidden // MLP\n    dim x\n    \
                    dim y = 2 // alone\n\n    tensor \"w\" : f32[hidden] // a\n    tensor \"b\" : f32[] // b\n}\n";
        let expected = "schema a @ 1.0.0 { // header\n    dim hidden     // width\n    dim mlp_hidden // MLP\n    dim x\n    \
                        dim y = 2 // alone\n\n    tensor \"w\" : f32[hidden] // a\n    tensor \"b\" : f32[]       // b\n}\n";
        assert_eq!(reformat(text), expected);
        assert_eq!(reformat(expected), expected);
    }

    #[test]
    fn trailing_commas_are_accepted_and_dropped() {
        let text = "migration a 1.0.0 -> 2.0.0 {\n    concat \"a\", \"b\", axis 0 into \"c\",\n    rename \"x\" -> \"y\",\n}\n";
        let expected =
            "migration a 1.0.0 -> 2.0.0 {\n    concat \"a\", \"b\" axis 0 into \"c\"\n    rename \"x\" -> \"y\"\n}\n";
        assert_eq!(reformat(text), expected);
    }

    #[test]
    fn long_operations_break_before_targets() {
        let text = "migration a 1.0.0 -> 2.0.0 {\n    split \"{p..}.attention.lin_qkv.{w}\" axis 0 into \
                    \"{p}.attention.lin_q.{w}\", \"{p}.attention.lin_k.{w}\", \"{p}.attention.lin_v.{w}\" layout chunked\n}\n";
        let expected = "migration a 1.0.0 -> 2.0.0 {\n    split \"{p..}.attention.lin_qkv.{w}\" axis 0\n        \
                        into \"{p}.attention.lin_q.{w}\", \"{p}.attention.lin_k.{w}\", \"{p}.attention.lin_v.{w}\" layout chunked\n}\n";
        assert_eq!(reformat(text), expected);
    }

    #[test]
    fn windows_line_endings_and_a_byte_order_mark_are_blanks() {
        let text = "\u{feff}// c\r\nschema a @ 1.0.0 {\r\n    dim n // d\r\n}\r\n";
        assert_eq!(reformat(text), "// c\nschema a @ 1.0.0 {\n    dim n // d\n}\n");
    }

    #[test]
    fn expressions_keep_their_meaning_with_few_parentheses() {
        let cases = [
            ("a - (b - c)", "a - (b - c)"),
            ("(a - b) - c", "a - b - c"),
            ("(a + b) * c", "(a + b) * c"),
            ("a * (b * c)", "a * (b * c)"),
            ("-(a + b)", "-(a + b)"),
            ("- -a", "- -a"),
            ("-(-a)", "- -a"),
            ("a % -b", "a % -b"),
        ];
        for (input, expected) in cases {
            let text = format!("schema a @ 1.0.0 {{\n    dim x = {input}\n}}\n");
            assert_eq!(reformat(&text), format!("schema a @ 1.0.0 {{\n    dim x = {expected}\n}}\n"), "{input}");
        }
    }

    /// Found by the `dsl_roundtrip` fuzz target: `a--null` parsed `null` as a name (the
    /// keyword check saw `-` as part of a longer word) but the formatted `a - -null` did
    /// not parse. `null`, `true` and `false` are never names now, whatever follows.
    #[test]
    fn json_keywords_are_never_names_in_expressions() {
        for expr in ["a--null", "a - null-b", "true-1", "-false"] {
            let text = format!("schema a @ 1.0.0 {{\n    dim x = {expr}\n}}\n");
            assert!(parse(SourceId(0), &text).is_err(), "{expr}");
        }
        for expr in ["a - nullable", "true_size - 1", "-falsey"] {
            let text = format!("schema a @ 1.0.0 {{\n    dim x = {expr}\n}}\n");
            let formatted = reformat(&text);
            assert_eq!(reformat(&formatted), formatted, "{expr}");
        }
    }

    /// Found by the `dsl_roundtrip` fuzz target: `rename "x" down-> "y"` parsed (`down-` read
    /// as a longer word than the keyword `down`) but its formatted form `down -> "y"` did not.
    /// A `-` continues a word only before a letter or digit now, so both spellings are the
    /// keyword `down` (an error in an operation), and `meta-set` is still one word.
    #[test]
    fn a_keyword_before_an_arrow_reads_the_same_with_or_without_a_space() {
        for ops in [r#"rename "x" down-> "y""#, r#"rename "x" down -> "y""#] {
            let text = format!("migration a 1.0.0 -> 2.0.0 {{\n    {ops}\n}}\n");
            assert!(parse(SourceId(0), &text).is_err(), "{ops}");
        }
        let text = "migration a 1.0.0 -> 2.0.0 {\n    meta-set \"k\" = 1\n    split-heads \"q\" into \"a\", \"b\", \"c\" layout chunked heads 2\n}\n";
        let formatted = reformat(text);
        assert_eq!(reformat(&formatted), formatted);
    }

    /// Found by the `dsl_roundtrip` fuzz target: 70 negations in a row formatted to 69
    /// nested parentheses, which the parser rejects as too deep.
    #[test]
    fn long_negation_chains_format_to_text_that_parses() {
        let text = format!("schema a @ 1.0.0 {{\n    dim x = {}a\n}}\n", "-".repeat(70));
        let formatted = reformat(&text);
        assert_eq!(reformat(&formatted), formatted);
        let original = crate::normalize(&parse(SourceId(0), &text).unwrap());
        assert!(crate::normalize(&parse(SourceId(0), &formatted).unwrap()) == original);
    }
}
