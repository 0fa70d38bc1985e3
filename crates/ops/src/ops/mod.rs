//! The builtin operations, one file each, registered in one alphabetical table.
//!
//! Each file's `//!` docs are its reference entry in `book/src/operations.md` (a test
//! checks that the book holds them verbatim).

mod argsort;
mod cast;
mod concat;
mod copy;
mod drop;
mod gather;
mod insert;
mod merge;
mod merge_heads;
mod meta_delete;
mod meta_rename;
mod meta_set;
mod pad;
mod permute;
mod permute_heads;
mod relabel;
pub(crate) mod rename;
mod reshape;
mod split;
mod split_heads;
mod transpose;
mod truncate;

pub(crate) mod heads;
pub(crate) mod metadata;

#[cfg(test)]
pub(crate) mod testing;

use crate::lower::Operands;
use crate::operation::Operation;

/// Lowers the operands of one op, reporting problems on `operands`.
pub(crate) type LowerFn = fn(&mut Operands<'_>) -> Option<Box<dyn Operation>>;

/// Every builtin, by name, alphabetically.
pub(crate) const BUILTINS: &[(&str, LowerFn)] = &[
    ("cast", cast::lower),
    ("concat", concat::lower),
    ("copy", copy::lower),
    ("drop", drop::lower),
    ("gather", gather::lower),
    ("insert", insert::lower),
    ("merge", merge::lower),
    ("merge-heads", merge_heads::lower),
    ("meta-delete", meta_delete::lower),
    ("meta-rename", meta_rename::lower),
    ("meta-set", meta_set::lower),
    ("pad", pad::lower),
    ("permute", permute::lower),
    ("permute-heads", permute_heads::lower),
    ("relabel", relabel::lower),
    ("rename", rename::lower),
    ("reshape", reshape::lower),
    ("split", split::lower),
    ("split-heads", split_heads::lower),
    ("transpose", transpose::lower),
    ("truncate", truncate::lower),
];

/// The source of every op file, for the book check.
#[cfg(test)]
pub(crate) const SOURCES: &[(&str, &str)] = &[
    ("cast", include_str!("cast.rs")),
    ("concat", include_str!("concat.rs")),
    ("copy", include_str!("copy.rs")),
    ("drop", include_str!("drop.rs")),
    ("gather", include_str!("gather.rs")),
    ("insert", include_str!("insert.rs")),
    ("merge", include_str!("merge.rs")),
    ("merge-heads", include_str!("merge_heads.rs")),
    ("meta-delete", include_str!("meta_delete.rs")),
    ("meta-rename", include_str!("meta_rename.rs")),
    ("meta-set", include_str!("meta_set.rs")),
    ("pad", include_str!("pad.rs")),
    ("permute", include_str!("permute.rs")),
    ("permute-heads", include_str!("permute_heads.rs")),
    ("relabel", include_str!("relabel.rs")),
    ("rename", include_str!("rename.rs")),
    ("reshape", include_str!("reshape.rs")),
    ("split", include_str!("split.rs")),
    ("split-heads", include_str!("split_heads.rs")),
    ("transpose", include_str!("transpose.rs")),
    ("truncate", include_str!("truncate.rs")),
];

/// The source of every index expression's file, for the book check (after the ops).
#[cfg(test)]
pub(crate) const INDEX_SOURCES: &[(&str, &str)] = &[("argsort", include_str!("argsort.rs"))];

/// The reference section of `book/src/operations.md`: every op file's `//!` docs, in
/// table order, headings one level down, then the index expressions'.
#[cfg(test)]
pub(crate) fn book_reference() -> String {
    let mut out = String::new();
    for (_, source) in SOURCES.iter().chain(INDEX_SOURCES) {
        for line in source.lines().take_while(|line| line.starts_with("//!")) {
            let text = line.trim_start_matches("//!").strip_prefix(' ').unwrap_or("");
            match text.strip_prefix("## ") {
                Some(heading) => out.push_str(&format!("### {heading}")),
                None => out.push_str(text),
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../book/src/operations.md");
    const BEGIN: &str = "<!-- generated from crates/ops/src/ops/*.rs: begin -->\n";
    const END: &str = "<!-- generated: end -->";

    /// The book's reference is the op docs verbatim; `UPDATE_BOOK=1` rewrites it.
    #[test]
    fn book_lists_every_builtin_from_its_docs() {
        let book = std::fs::read_to_string(BOOK).expect("book/src/operations.md");
        let (Some(begin), Some(end)) = (book.find(BEGIN), book.find(END)) else {
            panic!("book/src/operations.md lacks the generated-section markers");
        };
        let generated = book_reference();
        let current = &book[begin + BEGIN.len()..end];
        if current != generated && std::env::var_os("UPDATE_BOOK").is_some() {
            let updated = format!("{}{generated}{}", &book[..begin + BEGIN.len()], &book[end..]);
            std::fs::write(BOOK, updated).expect("write the book");
            return;
        }
        assert!(
            current == generated,
            "book/src/operations.md is stale: run `UPDATE_BOOK=1 cargo test -p safeshift-ops book`"
        );
        for (name, _) in BUILTINS {
            assert!(current.contains(&format!("### `{name}`")), "the book does not document `{name}`");
        }
    }

    #[test]
    fn builtins_are_alphabetical_and_documented() {
        let names: Vec<&str> = BUILTINS.iter().map(|(name, _)| *name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let documented: Vec<&str> = SOURCES.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, documented);
    }
}
