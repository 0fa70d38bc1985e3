//! Trees without positions, for comparisons: every span becomes [`Span::DUMMY`].

use crate::ast::{
    Comment, DimDecl, DimValue, DownBlock, Expr, ExprKind, File, Item, Json, JsonKind, MigrationDeclKind, Op,
    OperandKind, Pattern, PatternPart, SchemaEntryKind, Span, Spanned, Trivia, TypeSpec, Value, VersionRef,
};

/// A copy of `file` with every span set to [`Span::DUMMY`], so that trees parsed from
/// different text (or built in code) compare equal when they mean the same.
pub fn normalize(file: &File) -> File {
    let mut file = file.clone();
    for item in &mut file.items {
        match item {
            Item::Schema(schema) => {
                name(&mut schema.family);
                name(&mut schema.version);
                schema.doc.iter_mut().for_each(name);
                trivia(&mut schema.trivia);
                comments(&mut schema.inner_trailing);
                schema.span = Span::DUMMY;
                for entry in &mut schema.entries {
                    entry.span = Span::DUMMY;
                    trivia(&mut entry.trivia);
                    match &mut entry.kind {
                        SchemaEntryKind::Dim(dim) => dim_decl(dim),
                        SchemaEntryKind::Tensor(tensor) => {
                            pattern(&mut tensor.pattern);
                            type_spec(&mut tensor.ty);
                        }
                        SchemaEntryKind::Allow(allowed) => pattern(allowed),
                        SchemaEntryKind::Meta(meta) => {
                            name(&mut meta.key);
                            meta.value.iter_mut().for_each(json);
                        }
                    }
                }
            }
            Item::Migration(migration) => {
                version_ref(&mut migration.from);
                version_ref(&mut migration.to);
                migration.doc.iter_mut().for_each(name);
                trivia(&mut migration.trivia);
                comments(&mut migration.inner_trailing);
                migration.span = Span::DUMMY;
                for decl in &mut migration.decls {
                    decl.span = Span::DUMMY;
                    trivia(&mut decl.trivia);
                    match &mut decl.kind {
                        MigrationDeclKind::Dim(dim) => dim_decl(dim),
                        MigrationDeclKind::Aux { name: aux, doc } => {
                            name(aux);
                            name(doc);
                        }
                        MigrationDeclKind::Param { name: param, doc, default } => {
                            name(param);
                            name(doc);
                            default.iter_mut().for_each(name);
                        }
                    }
                }
                migration.ops.iter_mut().for_each(op);
                migration.down.iter_mut().for_each(down);
            }
        }
    }
    comments(&mut file.trailing_comments);
    file
}

fn name<T>(spanned: &mut Spanned<T>) {
    spanned.span = Span::DUMMY;
}

fn comments(comments: &mut [Comment]) {
    comments.iter_mut().for_each(|comment| comment.span = Span::DUMMY);
}

fn trivia(trivia: &mut Trivia) {
    comments(&mut trivia.leading);
    trivia.trailing.iter_mut().for_each(|comment| comment.span = Span::DUMMY);
}

fn version_ref(reference: &mut VersionRef) {
    reference.family.iter_mut().for_each(name::<String>);
    name(&mut reference.version);
    reference.span = Span::DUMMY;
}

fn dim_decl(dim: &mut DimDecl) {
    name(&mut dim.name);
    match &mut dim.value {
        Some(DimValue::Expr(value)) => expr(value),
        Some(DimValue::Meta(path)) => name(path),
        None => {}
    }
}

fn down(block: &mut DownBlock) {
    block.ops.iter_mut().for_each(op);
    trivia(&mut block.trivia);
    comments(&mut block.inner_trailing);
    block.span = Span::DUMMY;
}

fn op(op: &mut Op) {
    name(&mut op.name);
    trivia(&mut op.trivia);
    op.span = Span::DUMMY;
    for operand in &mut op.operands {
        operand.span = Span::DUMMY;
        match &mut operand.kind {
            OperandKind::Patterns(patterns) | OperandKind::Arrow(patterns) => patterns.iter_mut().for_each(pattern),
            OperandKind::Clause { keyword, value: clause_value } => {
                name(keyword);
                value(clause_value);
            }
            OperandKind::Flag(flag) => name(flag),
            OperandKind::Type(ty) => type_spec(ty),
            OperandKind::Assign(assigned) => value(assigned),
        }
    }
}

fn value(value_node: &mut Value) {
    match value_node {
        Value::Patterns(patterns) => patterns.iter_mut().for_each(pattern),
        Value::List(items) => items.iter_mut().for_each(expr),
        Value::Expr(item) => expr(item),
        Value::Call { name: function, args } => {
            name(function);
            args.iter_mut().for_each(value);
        }
        Value::Aux { input, tensor } => {
            name::<String>(input);
            name(tensor);
        }
        Value::Json(item) => json(item),
    }
}

fn type_spec(ty: &mut TypeSpec) {
    name::<String>(&mut ty.dtype);
    ty.shape.iter_mut().for_each(expr);
    ty.span = Span::DUMMY;
}

fn pattern(pattern: &mut Pattern) {
    pattern.span = Span::DUMMY;
    for part in &mut pattern.parts {
        match part {
            PatternPart::Literal(_) => {}
            PatternPart::Capture { name: capture, .. } => name::<String>(capture),
            PatternPart::Counted { name: capture, bound } => {
                name::<String>(capture);
                expr(bound);
            }
            PatternPart::Expr(item) => expr(item),
        }
    }
}

fn expr(item: &mut Expr) {
    item.span = Span::DUMMY;
    match &mut item.kind {
        ExprKind::Int(_) | ExprKind::Ident(_) => {}
        ExprKind::Neg(operand) => expr(operand),
        ExprKind::Binary(_, lhs, rhs) => {
            expr(lhs);
            expr(rhs);
        }
    }
}

fn json(item: &mut Json) {
    item.span = Span::DUMMY;
    match &mut item.kind {
        JsonKind::Array(items) => items.iter_mut().for_each(json),
        JsonKind::Object(members) => members.iter_mut().for_each(|(key, member)| {
            name(key);
            json(member);
        }),
        _ => {}
    }
}
