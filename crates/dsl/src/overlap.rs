//! Whether two name patterns can match the same tensor name, with an example name.
//!
//! A pattern is read as a regular language over characters: literal text, `{x}` as
//! `[^.]+`, `{x..}` as `[^.]+(\.[^.]+)*`, `{i < n}` (and `{expr}`) as a decimal index
//! `0|[1-9][0-9]*`. Two patterns overlap when the product of their automata reaches both
//! accepting states; the path spells a name both match.
//!
//! The check is sound but conservative in one way: a capture used twice in one pattern
//! (`{x}.{x}`) must match the same text twice, which a regular language cannot say, so
//! such a pattern is treated as if its captures were independent. It may then report an
//! overlap that no real name has; it never misses one.

use std::collections::{HashMap, VecDeque};

use crate::ast::{Pattern, PatternPart};

/// A set of characters on an automaton edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Exact(char),
    NonDot,
    Digit,
    NonZeroDigit,
}

impl Class {
    fn intersect(self, other: Class) -> Option<Class> {
        use Class::*;
        let contains = |class: Class, ch: char| match class {
            Exact(exact) => exact == ch,
            NonDot => ch != '.',
            Digit => ch.is_ascii_digit(),
            NonZeroDigit => ('1'..='9').contains(&ch),
        };
        match (self, other) {
            (Exact(ch), class) | (class, Exact(ch)) => contains(class, ch).then_some(Exact(ch)),
            (NonDot, class) | (class, NonDot) => Some(class),
            (Digit, class) | (class, Digit) => Some(class),
            (NonZeroDigit, NonZeroDigit) => Some(NonZeroDigit),
        }
    }

    fn example(self) -> char {
        match self {
            Class::Exact(ch) => ch,
            Class::NonDot => 'x',
            Class::Digit => '0',
            Class::NonZeroDigit => '1',
        }
    }
}

/// A nondeterministic automaton with character-class edges and empty moves.
struct Automaton {
    edges: Vec<Vec<(Class, usize)>>,
    empty: Vec<Vec<usize>>,
    accept: usize,
}

impl Automaton {
    fn state(&mut self) -> usize {
        self.edges.push(Vec::new());
        self.empty.push(Vec::new());
        self.edges.len() - 1
    }

    fn of(pattern: &Pattern) -> Automaton {
        let mut automaton = Automaton { edges: Vec::new(), empty: Vec::new(), accept: 0 };
        let mut current = automaton.state();
        for part in &pattern.parts {
            match part {
                PatternPart::Literal(text) => {
                    for ch in text.chars() {
                        let next = automaton.state();
                        automaton.edges[current].push((Class::Exact(ch), next));
                        current = next;
                    }
                }
                PatternPart::Capture { multi, .. } => {
                    let segment = automaton.state();
                    automaton.edges[current].push((Class::NonDot, segment));
                    automaton.edges[segment].push((Class::NonDot, segment));
                    if *multi {
                        let dot = automaton.state();
                        automaton.edges[segment].push((Class::Exact('.'), dot));
                        automaton.edges[dot].push((Class::NonDot, segment));
                    }
                    current = segment;
                }
                PatternPart::Counted { .. } | PatternPart::Expr(_) => {
                    let zero = automaton.state();
                    let digits = automaton.state();
                    let end = automaton.state();
                    automaton.edges[current].push((Class::Exact('0'), zero));
                    automaton.edges[current].push((Class::NonZeroDigit, digits));
                    automaton.edges[digits].push((Class::Digit, digits));
                    automaton.empty[zero].push(end);
                    automaton.empty[digits].push(end);
                    current = end;
                }
            }
        }
        automaton.accept = current;
        automaton
    }
}

/// A pair of automaton states: one of each pattern.
type StatePair = (usize, usize);
/// How a state pair was first reached: from which pair, reading which character.
type Parents = HashMap<StatePair, Option<(StatePair, Option<char>)>>;

/// A name both patterns match, if there is one (see the module docs for the one
/// over-approximation).
pub(crate) fn common_name(a: &Pattern, b: &Pattern) -> Option<String> {
    let (left, right) = (Automaton::of(a), Automaton::of(b));
    // Breadth-first over state pairs; each visited pair remembers how it was reached.
    let mut parent: Parents = HashMap::new();
    let mut queue = VecDeque::new();
    parent.insert((0, 0), None);
    queue.push_back((0, 0));
    while let Some(pair @ (l, r)) = queue.pop_front() {
        if l == left.accept && r == right.accept {
            return Some(spell(&parent, pair));
        }
        let mut next = Vec::new();
        next.extend(left.empty[l].iter().map(|&to| ((to, r), None)));
        next.extend(right.empty[r].iter().map(|&to| ((l, to), None)));
        for &(left_class, left_to) in &left.edges[l] {
            for &(right_class, right_to) in &right.edges[r] {
                if let Some(class) = left_class.intersect(right_class) {
                    next.push(((left_to, right_to), Some(class.example())));
                }
            }
        }
        for (to, ch) in next {
            parent.entry(to).or_insert_with(|| {
                queue.push_back(to);
                Some((pair, ch))
            });
        }
    }
    None
}

fn spell(parent: &Parents, mut at: StatePair) -> String {
    let mut chars: Vec<char> = Vec::new();
    while let Some(Some((from, ch))) = parent.get(&at) {
        chars.extend(ch);
        at = *from;
    }
    chars.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Expr, ExprKind, Span, Spanned};

    fn pattern(text: &str) -> Pattern {
        // A tiny reader for tests: `{x}`, `{x..}`, `{#}` (counted) and literal text.
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').unwrap();
                let hole = &after[..end];
                let name = Spanned::new("x".to_owned(), Span::DUMMY);
                parts.push(match hole {
                    "#" => PatternPart::Counted {
                        name,
                        bound: Expr { kind: ExprKind::Ident("n".into()), span: Span::DUMMY },
                    },
                    hole if hole.ends_with("..") => PatternPart::Capture { name, multi: true },
                    _ => PatternPart::Capture { name, multi: false },
                });
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                parts.push(PatternPart::Literal(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        Pattern { parts, span: Span::DUMMY }
    }

    #[test]
    fn overlaps_come_with_a_name_both_match() {
        let cases = [
            ("a.{x}.w", "a.{y}.w", Some("a.x.w")),
            ("{p..}.weight", "model.{x}.weight", Some("model.x.weight")),
            ("layers.{#}.w", "layers.{x}.w", Some("layers.0.w")),
            ("layers.{#}.w", "layers.01.w", None),
            ("layers.{#}.w", "layers.10.w", Some("layers.10.w")),
            ("a.{x}.w", "a.b.c.w", None),
            ("a.{x..}.w", "a.b.c.w", Some("a.b.c.w")),
            ("a.weight", "a.bias", None),
            ("{x}", "a.b", None),
            ("{x..}", "a..b", None),
        ];
        for (left, right, expected) in cases {
            assert_eq!(common_name(&pattern(left), &pattern(right)).as_deref(), expected, "{left} vs {right}");
            assert_eq!(common_name(&pattern(right), &pattern(left)).is_some(), expected.is_some());
        }
    }
}
