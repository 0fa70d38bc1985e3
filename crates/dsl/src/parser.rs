//! Text to [`ast::File`]: pest pairs into the typed tree, one function per rule.
//!
//! pest finds the first syntax error; everything after a successful pest parse (escapes,
//! integer overflow, name patterns, misplaced declarations) is collected so one run
//! reports every problem of this kind.

use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::{
    DimDecl, DimValue, DownBlock, Expr, File, Item, Json, JsonKind, MetaDecl, Migration, MigrationDecl,
    MigrationDeclKind, Name, Op, Operand, OperandKind, Pattern, PatternPart, Schema, SchemaEntry, SchemaEntryKind,
    Span, Spanned, TensorDecl, Trivia, TypeSpec, Value, VersionRef, FLAGS, KEYWORDS,
};
use crate::diagnostic::{similar, Diagnostic, SourceId};
use crate::trivia::CommentCursor;
use crate::{nesting, strings, syntax_error};

/// The pest parser of `grammar.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
pub(crate) struct SsParser;

/// Parses one registry file.
///
/// Returns the tree, or every syntax diagnostic found (pest stops at the first error in
/// the grammar; problems found while building the tree are all reported).
pub fn parse(source: SourceId, text: &str) -> Result<File, Vec<Diagnostic>> {
    if let Some(diagnostic) = nesting::check(source, text, 0, false) {
        return Err(vec![diagnostic]);
    }
    let mut pairs = match SsParser::parse(Rule::file, text) {
        Ok(pairs) => pairs,
        Err(err) => return Err(vec![syntax_error::translate(source, text, 0, &err)]),
    };
    let file = pairs.next().expect("`file` matched");
    assert_eq!(file.as_rule(), Rule::file);
    let mut builder = Builder { source, text, offset: 0, comments: CommentCursor::new(text), diagnostics: Vec::new() };
    let mut items = Vec::new();
    for pair in file.into_inner() {
        match pair.as_rule() {
            Rule::schema => items.push(Item::Schema(builder.schema(pair))),
            Rule::migration => items.push(Item::Migration(builder.migration(pair))),
            Rule::EOI => {}
            rule => unreachable!("not an item: {rule:?}"),
        }
    }
    let trailing_comments = builder.comments.take_before(usize::MAX);
    if builder.diagnostics.is_empty() {
        Ok(File { items, trailing_comments })
    } else {
        Err(builder.diagnostics)
    }
}

/// Builds the tree from pairs, collecting comments and diagnostics on the way.
pub(crate) struct Builder<'t> {
    pub(crate) source: SourceId,
    text: &'t str,
    /// Added to pair positions: non-zero while building a name pattern, whose content
    /// is parsed on its own.
    pub(crate) offset: usize,
    comments: CommentCursor<'t>,
    diagnostics: Vec<Diagnostic>,
}

impl<'t> Builder<'t> {
    /// The file span of `pair`.
    pub(crate) fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = pair.as_span();
        let start = self.offset + span.start();
        Span::new(start, self.comments.trim_end(start, self.offset + span.end()))
    }

    /// Records a problem and goes on.
    pub(crate) fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn name(&self, pair: &Pair<'_, Rule>) -> Name {
        Spanned::new(pair.as_str().to_owned(), self.span(pair))
    }

    /// A `string` pair as plain text (escapes resolved).
    fn plain_string(&mut self, pair: &Pair<'_, Rule>) -> Spanned<String> {
        assert_eq!(pair.as_rule(), Rule::string);
        let span = self.span(pair);
        let raw = pair.as_str();
        let content = &raw[1..raw.len() - 1];
        match strings::unescape(content, span.start + 1, false) {
            Ok(text) => Spanned::new(text, span),
            Err(err) => {
                self.escape_error(err);
                Spanned::new(String::new(), span)
            }
        }
    }

    fn escape_error(&mut self, err: strings::EscapeError) {
        self.error(
            Diagnostic::error("bad-escape", err.message, self.source, err.span)
                .with_label("in this string")
                .with_hint("escapes are `\\\"`, `\\\\`, `\\/`, `\\b`, `\\f`, `\\n`, `\\r`, `\\t` and `\\uXXXX`"),
        );
    }

    // ---------------------------------------------------------------------------------
    // Items

    fn schema(&mut self, pair: Pair<'_, Rule>) -> Schema {
        let span = self.span(&pair);
        let mut family = None;
        let mut version = None;
        let mut doc = None;
        let mut trivia = Trivia::default();
        let mut entries = Vec::new();
        let mut inner_trailing = Vec::new();
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::family => family = Some(self.name(&child)),
                Rule::version => version = Some(self.name(&child)),
                Rule::doc => doc = Some(self.doc(child)),
                Rule::lbrace => trivia = self.header_trivia(&child),
                Rule::rbrace => inner_trailing = self.comments.take_before(self.span(&child).start),
                Rule::dim_decl | Rule::tensor_decl | Rule::allow_decl | Rule::meta_decl => {
                    entries.push(self.schema_entry(child))
                }
                _ => {}
            }
        }
        Schema {
            family: family.expect("grammar: schema has a family"),
            version: version.expect("grammar: schema has a version"),
            doc,
            entries,
            trivia,
            inner_trailing,
            span,
        }
    }

    /// Comments before an item's (or block's) `{`, and the one after it on its line.
    fn header_trivia(&mut self, lbrace: &Pair<'_, Rule>) -> Trivia {
        let brace = self.span(lbrace);
        let leading = self.comments.take_before(brace.start);
        let trailing = self.comments.take_trailing(brace.end);
        Trivia { leading, trailing }
    }

    fn doc(&mut self, pair: Pair<'_, Rule>) -> Spanned<String> {
        let string = pair.into_inner().next().expect("grammar: doc is a string");
        self.plain_string(&string)
    }

    fn schema_entry(&mut self, pair: Pair<'_, Rule>) -> SchemaEntry {
        let span = self.span(&pair);
        let trivia = self.comments.statement(span.end);
        let kind = match pair.as_rule() {
            Rule::dim_decl => SchemaEntryKind::Dim(self.dim_decl(pair)),
            Rule::tensor_decl => SchemaEntryKind::Tensor(self.tensor_decl(pair)),
            Rule::allow_decl => {
                let pattern = pair.into_inner().find(|child| child.as_rule() == Rule::pattern);
                SchemaEntryKind::Allow(self.pattern(pattern.expect("grammar: allow has a pattern")))
            }
            Rule::meta_decl => SchemaEntryKind::Meta(self.meta_decl(pair)),
            rule => unreachable!("not a schema entry: {rule:?}"),
        };
        SchemaEntry { kind, trivia, span }
    }

    fn dim_decl(&mut self, pair: Pair<'_, Rule>) -> DimDecl {
        let mut name = None;
        let mut value = None;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::ident => name = Some(self.name(&child)),
                Rule::expr => value = Some(DimValue::Expr(self.expr(child))),
                Rule::meta_call => {
                    let string = child.into_inner().find(|inner| inner.as_rule() == Rule::string);
                    value = Some(DimValue::Meta(self.plain_string(&string.expect("grammar: meta(\"…\")"))));
                }
                _ => {}
            }
        }
        DimDecl { name: name.expect("grammar: dim has a name"), value }
    }

    fn tensor_decl(&mut self, pair: Pair<'_, Rule>) -> TensorDecl {
        let mut pattern = None;
        let mut ty = None;
        let mut optional = false;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::pattern => pattern = Some(self.pattern(child)),
                Rule::type_spec => ty = Some(self.type_spec(child)),
                Rule::kw_optional => optional = true,
                _ => {}
            }
        }
        TensorDecl {
            pattern: pattern.expect("grammar: tensor has a pattern"),
            ty: ty.expect("grammar: tensor has a type"),
            optional,
        }
    }

    fn type_spec(&mut self, pair: Pair<'_, Rule>) -> TypeSpec {
        assert_eq!(pair.as_rule(), Rule::type_spec);
        let span = self.span(&pair);
        let mut dtype = None;
        let mut shape = Vec::new();
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::ident => dtype = Some(self.name(&child)),
                Rule::shape => shape = self.exprs(child),
                _ => {}
            }
        }
        TypeSpec { dtype: dtype.expect("grammar: type has a dtype"), shape, span }
    }

    /// The `expr` children of a bracketed list.
    fn exprs(&mut self, pair: Pair<'_, Rule>) -> Vec<Expr> {
        pair.into_inner().filter(|child| child.as_rule() == Rule::expr).map(|child| self.expr(child)).collect()
    }

    fn meta_decl(&mut self, pair: Pair<'_, Rule>) -> MetaDecl {
        let mut key = None;
        let mut value = None;
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::string => key = Some(self.plain_string(&child)),
                Rule::kw_meta | Rule::equals => {}
                _ => value = Some(self.json(child)),
            }
        }
        MetaDecl { key: key.expect("grammar: meta has a key"), value }
    }

    fn migration(&mut self, pair: Pair<'_, Rule>) -> Migration {
        let span = self.span(&pair);
        let mut header = None;
        let mut doc = None;
        let mut trivia = Trivia::default();
        let mut decls = Vec::new();
        let mut ops = Vec::new();
        let mut down = None;
        let mut inner_trailing = Vec::new();
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::cross_header | Rule::shared_header => header = Some(self.migration_header(child)),
                Rule::doc => doc = Some(self.doc(child)),
                Rule::lbrace => trivia = self.header_trivia(&child),
                Rule::rbrace => inner_trailing = self.comments.take_before(self.span(&child).start),
                Rule::dim_decl | Rule::aux_decl | Rule::param_decl => decls.push(self.migration_decl(child)),
                Rule::op => ops.push(self.op(child)),
                Rule::misplaced_decl => self.misplaced_decl(child, ops.first().map(|op: &Op| op.span)),
                Rule::down_block => down = Some(self.down_block(child)),
                _ => {}
            }
        }
        self.check_run_on_ops(&ops);
        let (from, to, shared_family) = header.expect("grammar: migration has a header");
        Migration { from, to, shared_family, doc, decls, ops, down, trivia, inner_trailing, span }
    }

    fn migration_header(&mut self, pair: Pair<'_, Rule>) -> (VersionRef, VersionRef, bool) {
        let shared = pair.as_rule() == Rule::shared_header;
        let mut family = None;
        let mut refs = Vec::new();
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::family => family = Some(self.name(&child)),
                Rule::version => {
                    let version = self.name(&child);
                    let span = if refs.is_empty() {
                        family.as_ref().map_or(version.span, |family: &Name| family.span.to(version.span))
                    } else {
                        version.span
                    };
                    refs.push(VersionRef { family: family.clone(), version, span });
                }
                Rule::version_ref => {
                    let span = self.span(&child);
                    let mut inner = child.into_inner().filter(|inner| inner.as_rule() != Rule::at_sign);
                    let family = inner.next().map(|family| self.name(&family));
                    let version = self.name(&inner.next().expect("grammar: version_ref has a version"));
                    refs.push(VersionRef { family, version, span });
                }
                _ => {}
            }
        }
        let to = refs.pop().expect("grammar: two versions");
        let from = refs.pop().expect("grammar: two versions");
        (from, to, shared)
    }

    fn migration_decl(&mut self, pair: Pair<'_, Rule>) -> MigrationDecl {
        let span = self.span(&pair);
        let trivia = self.comments.statement(span.end);
        let kind = match pair.as_rule() {
            Rule::dim_decl => MigrationDeclKind::Dim(self.dim_decl(pair)),
            Rule::aux_decl => {
                let mut name = None;
                let mut doc = None;
                for child in pair.into_inner() {
                    match child.as_rule() {
                        Rule::ident => name = Some(self.name(&child)),
                        Rule::string => doc = Some(self.plain_string(&child)),
                        _ => {}
                    }
                }
                MigrationDeclKind::Aux {
                    name: name.expect("grammar: aux has a name"),
                    doc: doc.expect("grammar: aux has a description"),
                }
            }
            Rule::param_decl => {
                let mut name = None;
                let mut doc = None;
                let mut default = None;
                for child in pair.into_inner() {
                    match child.as_rule() {
                        Rule::ident => name = Some(self.name(&child)),
                        Rule::string => doc = Some(self.plain_string(&child)),
                        Rule::param_default => {
                            let string = child.into_inner().next().expect("grammar: a default is a string");
                            default = Some(self.plain_string(&string));
                        }
                        _ => {}
                    }
                }
                MigrationDeclKind::Param {
                    name: name.expect("grammar: param has a name"),
                    doc: doc.expect("grammar: param has a description"),
                    default,
                }
            }
            rule => unreachable!("not a migration declaration: {rule:?}"),
        };
        MigrationDecl { kind, trivia, span }
    }

    fn misplaced_decl(&mut self, pair: Pair<'_, Rule>, first_op: Option<Span>) {
        let decl = pair.into_inner().next().expect("grammar: misplaced_decl wraps a declaration");
        let span = self.span(&decl);
        let word = match decl.as_rule() {
            Rule::aux_decl => "aux",
            Rule::param_decl => "param",
            _ => "dim",
        };
        // Still consume its comments so the cursor stays in order.
        let _ = self.comments.statement(span.end);
        let mut diagnostic = Diagnostic::error(
            "misplaced-declaration",
            format!("`{word}` declaration after an operation"),
            self.source,
            span,
        )
        .with_label("declared here")
        .with_hint(format!("move this `{word}` above the first operation: declarations come first"));
        if let Some(first_op) = first_op {
            diagnostic = diagnostic.with_secondary(self.source, first_op, "the first operation");
        }
        self.error(diagnostic);
    }

    fn down_block(&mut self, pair: Pair<'_, Rule>) -> DownBlock {
        let span = self.span(&pair);
        let mut trivia = Trivia::default();
        let mut ops = Vec::new();
        let mut inner_trailing = Vec::new();
        for child in pair.into_inner() {
            match child.as_rule() {
                Rule::lbrace => trivia = self.header_trivia(&child),
                Rule::rbrace => inner_trailing = self.comments.take_before(self.span(&child).start),
                Rule::op => ops.push(self.op(child)),
                _ => {}
            }
        }
        self.check_run_on_ops(&ops);
        DownBlock { ops, trivia, inner_trailing, span }
    }

    /// Two operations on one line where one has no operands is almost always a
    /// misreading: a misspelt flag (`drop "x" lossyy`: the unknown word became the name of
    /// a new operation) or an unquoted pattern (`rename x -> "y"`: `x` became one).
    fn check_run_on_ops(&mut self, ops: &[Op]) {
        for pair in ops.windows(2) {
            let (previous, op) = (&pair[0], &pair[1]);
            let same_line = !self.text[previous.span.end..op.span.start].contains('\n');
            if !same_line {
                continue;
            }
            if op.operands.is_empty() {
                let words = KEYWORDS.iter().chain(FLAGS).copied();
                let mut diagnostic = Diagnostic::error(
                    "unknown-word",
                    format!("unknown clause word or flag `{}`", op.name.node),
                    self.source,
                    op.name.span,
                )
                .with_label(format!("not an operand of `{}`", previous.name.node))
                .with_secondary(self.source, previous.name.span, "in this operation");
                if let Some(hint) = syntax_error::did_you_mean(&similar(&op.name.node, words)) {
                    diagnostic = diagnostic.with_hint(hint);
                }
                diagnostic = diagnostic.with_hint(format!("flags are {}", list_words(FLAGS)));
                self.error(diagnostic);
            } else if previous.operands.is_empty() {
                self.error(
                    Diagnostic::error(
                        "syntax",
                        format!("expected a quoted name pattern after `{}`", previous.name.node),
                        self.source,
                        op.name.span,
                    )
                    .with_label("not in quotes")
                    .with_hint(format!("name patterns are string literals: write `\"{}\"`", op.name.node)),
                );
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Operations

    fn op(&mut self, pair: Pair<'_, Rule>) -> Op {
        let span = self.span(&pair);
        let trivia = self.comments.statement(span.end);
        let mut name = None;
        let mut operands = Vec::new();
        for child in pair.into_inner() {
            if child.as_rule() == Rule::op_name {
                name = Some(self.name(&child));
            } else {
                operands.push(self.operand(child));
            }
        }
        Op { name: name.expect("grammar: op has a name"), operands, trivia, span }
    }

    fn operand(&mut self, pair: Pair<'_, Rule>) -> Operand {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::patterns => OperandKind::Patterns(self.patterns(pair)),
            Rule::arrow_targets => OperandKind::Arrow(self.patterns(pair)),
            Rule::flag => OperandKind::Flag(self.name(&pair)),
            Rule::type_operand => {
                let ty = pair.into_inner().find(|child| child.as_rule() == Rule::type_spec);
                OperandKind::Type(self.type_spec(ty.expect("grammar: `:` is followed by a type")))
            }
            Rule::clause => {
                let mut inner = pair.into_inner();
                let keyword = self.name(&inner.next().expect("grammar: clause word"));
                let value = self.value(inner.next().expect("grammar: clause value"));
                OperandKind::Clause { keyword, value }
            }
            Rule::assign => {
                let value = pair.into_inner().find(|child| child.as_rule() != Rule::equals);
                OperandKind::Assign(self.value(value.expect("grammar: `=` is followed by a value")))
            }
            rule => unreachable!("not an operand: {rule:?}"),
        };
        Operand { kind, span }
    }

    /// The `pattern` children of `patterns` or `arrow_targets`.
    fn patterns(&mut self, pair: Pair<'_, Rule>) -> Vec<Pattern> {
        pair.into_inner().filter(|child| child.as_rule() == Rule::pattern).map(|child| self.pattern(child)).collect()
    }

    fn value(&mut self, pair: Pair<'_, Rule>) -> Value {
        match pair.as_rule() {
            Rule::patterns => Value::Patterns(self.patterns(pair)),
            Rule::expr_list => Value::List(self.exprs(pair)),
            Rule::expr => Value::Expr(self.expr(pair)),
            Rule::call => {
                let mut name = None;
                let mut args = Vec::new();
                for child in pair.into_inner() {
                    match child.as_rule() {
                        Rule::ident => name = Some(self.name(&child)),
                        Rule::lparen | Rule::rparen | Rule::comma => {}
                        _ => args.push(self.value(child)),
                    }
                }
                Value::Call { name: name.expect("grammar: call has a name"), args }
            }
            Rule::aux_ref => {
                let mut input = None;
                let mut tensor = None;
                for child in pair.into_inner() {
                    match child.as_rule() {
                        Rule::ident => input = Some(self.name(&child)),
                        Rule::string => tensor = Some(self.plain_string(&child)),
                        _ => {}
                    }
                }
                Value::Aux {
                    input: input.expect("grammar: aux reference has an input"),
                    tensor: tensor.expect("grammar: aux reference has a tensor"),
                }
            }
            _ => Value::Json(self.json(pair)),
        }
    }

    fn json(&mut self, pair: Pair<'_, Rule>) -> Json {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::json_null => JsonKind::Null,
            Rule::json_true => JsonKind::Bool(true),
            Rule::json_false => JsonKind::Bool(false),
            Rule::json_number | Rule::json_number_nonint => JsonKind::Number(pair.as_str().to_owned()),
            Rule::json_string => {
                let string = pair.into_inner().next().expect("grammar: json_string wraps a string");
                JsonKind::String(self.plain_string(&string).node)
            }
            Rule::json_array => JsonKind::Array(
                pair.into_inner()
                    .filter(|child| !matches!(child.as_rule(), Rule::lbracket | Rule::rbracket | Rule::comma))
                    .map(|child| self.json(child))
                    .collect(),
            ),
            Rule::json_object => {
                let mut members = Vec::new();
                for member in pair.into_inner().filter(|child| child.as_rule() == Rule::json_member) {
                    let mut inner = member.into_inner().filter(|child| child.as_rule() != Rule::colon);
                    let key = self.plain_string(&inner.next().expect("grammar: member key"));
                    let value = self.json(inner.next().expect("grammar: member value"));
                    members.push((key, value));
                }
                JsonKind::Object(members)
            }
            rule => unreachable!("not a JSON value: {rule:?}"),
        };
        Json { kind, span }
    }

    // ---------------------------------------------------------------------------------
    // Name patterns

    /// A `pattern` pair: its string's content parsed as a name pattern.
    fn pattern(&mut self, pair: Pair<'_, Rule>) -> Pattern {
        assert_eq!(pair.as_rule(), Rule::pattern);
        let span = self.span(&pair);
        let raw = pair.as_str();
        let content = &raw[1..raw.len() - 1];
        let content_offset = span.start + 1;
        let parts = self.pattern_parts(content, content_offset).unwrap_or_default();
        Pattern { parts, span }
    }

    fn pattern_parts(&mut self, content: &str, content_offset: usize) -> Option<Vec<PatternPart>> {
        // Most patterns are plain names: no holes, no escapes, nothing to parse.
        if !content.contains(['{', '}', '\\']) {
            return Some(if content.is_empty() { Vec::new() } else { vec![PatternPart::Literal(content.to_owned())] });
        }
        if let Some(diagnostic) = nesting::check(self.source, content, content_offset, true) {
            self.error(diagnostic);
            return None;
        }
        let body = match SsParser::parse(Rule::pattern_body, content) {
            Ok(mut pairs) => pairs.next().expect("`pattern_body` matched"),
            Err(err) => {
                let diagnostic = syntax_error::translate(self.source, self.text, content_offset, &err);
                self.error(diagnostic);
                return None;
            }
        };
        let saved_offset = std::mem::replace(&mut self.offset, content_offset);
        let mut parts: Vec<PatternPart> = Vec::new();
        for piece in body.into_inner() {
            match piece.as_rule() {
                Rule::pattern_literal => {
                    let start = self.span(&piece).start;
                    let text = match strings::unescape(piece.as_str(), start, true) {
                        Ok(text) => text,
                        Err(err) => {
                            self.escape_error(err);
                            String::new()
                        }
                    };
                    // Adjacent literals are merged (the AST's invariant).
                    if let Some(PatternPart::Literal(previous)) = parts.last_mut() {
                        previous.push_str(&text);
                    } else {
                        parts.push(PatternPart::Literal(text));
                    }
                }
                Rule::hole => parts.push(self.hole(piece)),
                Rule::EOI => {}
                rule => unreachable!("not a pattern piece: {rule:?}"),
            }
        }
        self.offset = saved_offset;
        Some(parts)
    }

    fn hole(&mut self, pair: Pair<'_, Rule>) -> PatternPart {
        let body = pair
            .into_inner()
            .find(|child| !matches!(child.as_rule(), Rule::lbrace | Rule::rbrace))
            .expect("grammar: a hole has a body");
        match body.as_rule() {
            Rule::counted => {
                let mut inner = body.into_inner().filter(|child| child.as_rule() != Rule::less);
                let name = self.name(&inner.next().expect("grammar: counted name"));
                let bound = self.expr(inner.next().expect("grammar: counted bound"));
                PatternPart::Counted { name, bound }
            }
            Rule::multi_capture => {
                let ident = body.into_inner().next().expect("grammar: capture name");
                PatternPart::Capture { name: self.name(&ident), multi: true }
            }
            Rule::expr => {
                let expr = self.expr(body);
                match expr.kind {
                    crate::ast::ExprKind::Ident(name) => {
                        PatternPart::Capture { name: Spanned::new(name, expr.span), multi: false }
                    }
                    _ => PatternPart::Expr(expr),
                }
            }
            rule => unreachable!("not a hole body: {rule:?}"),
        }
    }
}

/// `a`, `b` and `c`
pub(crate) fn list_words(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|word| format!("`{word}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}
