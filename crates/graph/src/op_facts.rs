//! What the graph needs to know about a migration's operations: lossy, invertible.
//!
//! FIXME(ops): read from `safeshift_ops::lower(..).lossy()` / `.inverse()` once the ops
//! crate lands; until then this follows the operation table of the language reference.

use safeshift_dsl::ast;

/// Lossiness and invertibility of a list of operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct OpFacts {
    /// Some operation discards information (`lossy` flag).
    pub lossy: bool,
    /// Every operation has an automatic inverse.
    pub invertible: bool,
}

/// Operations with an automatic inverse (unless flagged `lossy`).
const INVERTIBLE: &[&str] = &[
    "cast",
    "concat",
    "copy",
    "gather",
    "insert",
    "merge-heads",
    "meta-rename",
    "pad",
    "permute",
    "permute-heads",
    "rename",
    "reshape",
    "split",
    "split-heads",
    "transpose",
];

pub(crate) fn facts(ops: &[ast::Op]) -> OpFacts {
    let mut acc = OpFacts { lossy: false, invertible: true };
    for op in ops {
        let lossy = op
            .operands
            .iter()
            .any(|operand| matches!(&operand.kind, ast::OperandKind::Flag(flag) if flag.node == "lossy"));
        acc.lossy |= lossy;
        acc.invertible &= !lossy && INVERTIBLE.contains(&op.name.node.as_str());
    }
    acc
}
