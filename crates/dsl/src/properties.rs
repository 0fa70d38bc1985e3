//! Properties of the language as a whole.
//!
//! * `normalize(parse(format(tree))) == normalize(tree)` for generated trees, and
//!   `format` is idempotent on what it produces.
//! * No input makes `parse` (or `check` and `format` after it) panic: random text built
//!   from the language's own tokens, and valid files mutated by deleting, inserting and
//!   duplicating characters.
//! * A file of 50,000 tensor lines (about 1 MB) parses; deep nesting is refused with a
//!   diagnostic instead of overflowing the stack.
//!
//! Case counts are modest by default; raise them with `PROPTEST_CASES=10000`.

use proptest::prelude::*;

use crate::strategies::arb_file;
use crate::{check, format, normalize, parse, SourceId};

fn config() -> ProptestConfig {
    // `PROPTEST_CASES` overrides this default through `ProptestConfig::default()`.
    let default = ProptestConfig::default();
    ProptestConfig { cases: if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { 64 }, ..default }
}

/// Parses, and when that works, checks and formats, asserting only "no panic" and, for
/// text that parses, that formatting is stable.
fn exercise(text: &str) {
    if let Ok(file) = parse(SourceId(0), text) {
        let _ = check(SourceId(0), &file);
        let formatted = format(&file);
        let reparsed = parse(SourceId(0), &formatted)
            .unwrap_or_else(|err| panic!("formatted text does not parse: {err:#?}\n{formatted}"));
        assert_eq!(normalize(&reparsed), normalize(&file), "format changed the tree:\n{formatted}");
        assert_eq!(format(&reparsed), formatted, "format is not idempotent");
    }
}

/// Text made of the language's tokens, so random input gets deep into the grammar.
fn arb_token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("schema "),
        Just("migration "),
        Just("dim "),
        Just("tensor "),
        Just("allow "),
        Just("meta"),
        Just("aux "),
        Just("down "),
        Just("{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just("("),
        Just(")"),
        Just("@"),
        Just("->"),
        Just("=>"),
        Just("="),
        Just(":"),
        Just(","),
        Just(" "),
        Just("\n"),
        Just("// c\n"),
        Just("\""),
        Just("\"a.{x}.b\""),
        Just("\"{i < n}\""),
        Just("\"{p..}\""),
        Just("{{"),
        Just("\\"),
        Just("1.0.0"),
        Just("0"),
        Just("1.5e3"),
        Just("-"),
        Just("+"),
        Just("*"),
        Just("/"),
        Just("%"),
        Just("a.b"),
        Just("x"),
        Just("rename"),
        Just("split-heads"),
        Just("into "),
        Just("axis "),
        Just("lossy"),
        Just("f32"),
        Just("true"),
        Just("null"),
        Just("é"),
        Just("\u{0}"),
    ];
    proptest::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize),
    Insert(usize, char),
    Duplicate(usize, usize),
}

fn arb_mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let mutation = prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (
            any::<usize>(),
            prop_oneof![
                Just('{'),
                Just('}'),
                Just('"'),
                Just('['),
                Just('('),
                Just('-'),
                Just('>'),
                Just('\n'),
                Just('/'),
                Just('\\'),
                Just('.'),
                Just('@'),
                Just('x'),
                Just('0'),
                Just('é'),
                Just('\r'),
                Just('\u{feff}'),
                Just(' '),
            ]
        )
            .prop_map(|(at, ch)| Mutation::Insert(at, ch)),
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
    ];
    proptest::collection::vec(mutation, 1..5)
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for mutation in mutations {
        let len = chars.len().max(1);
        match *mutation {
            Mutation::Delete(at) if !chars.is_empty() => {
                chars.remove(at % chars.len());
            }
            Mutation::Delete(_) => {}
            Mutation::Insert(at, ch) => chars.insert(at % (chars.len() + 1), ch),
            Mutation::Duplicate(at, span) => {
                let start = at % len;
                let end = (start + span).min(chars.len());
                let copy: Vec<char> = chars[start.min(chars.len())..end].to_vec();
                let at = end;
                chars.splice(at..at, copy);
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn format_then_parse_gives_the_same_tree(file in arb_file()) {
        let text = format(&file);
        let parsed = parse(SourceId(0), &text);
        prop_assert!(parsed.is_ok(), "does not parse: {:#?}\n{}", parsed.err(), text);
        let parsed = parsed.unwrap();
        prop_assert_eq!(normalize(&parsed), normalize(&file), "{}", text);
        prop_assert_eq!(format(&parsed), text);
    }

    #[test]
    fn token_soup_never_panics(text in arb_token_soup()) {
        exercise(&text);
    }

    #[test]
    fn mutated_files_never_panic(file in arb_file(), mutations in arb_mutations()) {
        exercise(&mutate(&format(&file), &mutations));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        exercise(&text);
    }
}

#[test]
fn mutated_book_examples_never_panic() {
    let examples = crate::book_examples::examples();
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let strategy = (0..examples.len().max(1), arb_mutations());
    runner
        .run(&strategy, |(index, mutations)| {
            if let Some(example) = examples.get(index) {
                exercise(&mutate(&example.code, &mutations));
            }
            Ok(())
        })
        .unwrap();
}

/// About 1.3 MB: 50,000 tensor lines in one schema. Timing is in the report, measured with
/// `cargo test --release -p safeshift-dsl large_file -- --nocapture`.
#[test]
fn large_file_parses() {
    let mut text = String::from("schema big.model @ 1.0.0 {\n    dim n\n\n");
    for index in 0..50_000 {
        text.push_str(&format!("    tensor \"w{index}\" : f32[n]\n"));
    }
    text.push_str("}\n");
    assert!(text.len() > 1_000_000);
    let start = std::time::Instant::now();
    let file = parse(SourceId(0), &text).expect("parses");
    let parsed = start.elapsed();
    let start = std::time::Instant::now();
    let formatted = format(&file);
    let formatting = start.elapsed();
    let start = std::time::Instant::now();
    assert!(check(SourceId(0), &file).is_empty());
    let checking = start.elapsed();
    eprintln!("{} bytes: parse {parsed:?}, format {formatting:?}, check {checking:?}", text.len());
    assert_eq!(formatted, text);
}

#[test]
fn hostile_nesting_is_a_diagnostic_not_a_crash() {
    let depth = 100_000;
    let cases = [
        format!("schema a @ 1.0.0 {{\n    meta \"k\" = {}{}\n}}\n", "[".repeat(depth), "]".repeat(depth)),
        format!("schema a @ 1.0.0 {{\n    dim x = {}1{}\n}}\n", "(".repeat(depth), ")".repeat(depth)),
        format!(
            "migration a 1.0.0 -> 2.0.0 {{\n    rename \"{{{}x{}}}\" -> \"y\"\n}}\n",
            "(".repeat(depth),
            ")".repeat(depth)
        ),
        format!("schema a @ 1.0.0 {{\n    dim x = {}1\n}}\n", "-".repeat(depth)),
        format!("schema a @ 1.0.0 {{\n    dim x = 1{}\n}}\n", " + 1".repeat(depth)),
    ];
    for text in cases {
        let diagnostics = parse(SourceId(0), &text).expect_err("refused");
        assert!(
            diagnostics.iter().any(|diagnostic| matches!(diagnostic.code, "too-deep" | "too-long")),
            "{diagnostics:#?}"
        );
    }
    // Just inside the bound still parses.
    let depth = crate::nesting::MAX_DEPTH - 2;
    let text = format!("schema a @ 1.0.0 {{\n    meta \"k\" = {}{}\n}}\n", "[".repeat(depth), "]".repeat(depth));
    exercise(&text);
    let text = format!("schema a @ 1.0.0 {{\n    dim x = {}1{}\n}}\n", "(".repeat(depth), ")".repeat(depth));
    exercise(&text);
}
