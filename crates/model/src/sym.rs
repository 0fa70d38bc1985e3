//! Symbolic integers over dims, in a normal form where equal values compare equal.
//!
//! Shape rules (used by the static checker) compute with dims they do not know the
//! value of: splitting `[3 * hidden, hidden]` in three gives `[hidden, hidden]`, and
//! `head_dim * heads` equals `hidden` once `head_dim = hidden / heads` is substituted.
//! A [`Sym`] is a sum of terms `coefficient × product of dims^power`, coefficients
//! rational, powers possibly negative (division by a single term); division by a sum
//! keeps the quotient as an opaque atom. Two syms that are provably equal by this
//! algebra have identical normal forms; different normal forms mean "not provably equal".
//!
//! The property tests at the bottom take their case count from `PROPTEST_CASES`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use safeshift_dsl::ast::{BinOp, Expr, ExprKind};

/// A product of atoms with integer powers, sorted by atom.
type Monomial = BTreeMap<Atom, i32>;

/// A leaf of a symbolic expression.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    /// A named dim.
    Dim(String),
    /// `numerator / denominator` that the algebra could not simplify (denominator a sum).
    Quotient(Box<Sym>, Box<Sym>),
    /// `a % b`, kept opaque.
    Remainder(Box<Sym>, Box<Sym>),
}

/// A rational number `num / den` in lowest terms, `den > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Ratio {
    num: i128,
    den: i128,
}

// Symbolic arithmetic saturates instead of overflowing (no panic on hostile schema
// literals; magnitudes near 2^127 never occur in real shapes); evaluation uses the
// checked forms and reports overflow as "cannot evaluate".
impl Ratio {
    fn new(num: i128, den: i128) -> Ratio {
        Ratio::checked_new(num, den)
            .unwrap_or(Ratio { num: if (num < 0) == (den < 0) { i128::MAX } else { i128::MIN + 1 }, den: 1 })
    }
    fn checked_new(num: i128, den: i128) -> Option<Ratio> {
        if den == 0 {
            return None;
        }
        let divisor = gcd(num.unsigned_abs(), den.unsigned_abs()).max(1);
        let divisor = i128::try_from(divisor).ok()?;
        let sign = if den < 0 { -1 } else { 1 };
        Some(Ratio { num: num.checked_mul(sign)? / divisor, den: den.checked_mul(sign)? / divisor })
    }
    fn int(value: i128) -> Ratio {
        Ratio { num: value, den: 1 }
    }
    fn add(self, other: Ratio) -> Ratio {
        // Integers (every concrete shape) need no gcd: the general form gives the same.
        if let (1, 1, Some(num)) = (self.den, other.den, self.num.checked_add(other.num)) {
            return Ratio::int(num);
        }
        self.checked_add(other).unwrap_or_else(|| {
            Ratio::new(
                self.num.saturating_mul(other.den).saturating_add(other.num.saturating_mul(self.den)),
                self.den.saturating_mul(other.den),
            )
        })
    }
    fn mul(self, other: Ratio) -> Ratio {
        if let (1, 1, Some(num)) = (self.den, other.den, self.num.checked_mul(other.num)) {
            return Ratio::int(num);
        }
        self.checked_mul(other)
            .unwrap_or_else(|| Ratio::new(self.num.saturating_mul(other.num), self.den.saturating_mul(other.den)))
    }
    fn checked_add(self, other: Ratio) -> Option<Ratio> {
        // Integers (every evaluation of a concrete shape) need no gcd: the general form
        // gives the same, and fails on the same overflow.
        if (self.den, other.den) == (1, 1) {
            return self.num.checked_add(other.num).map(Ratio::int);
        }
        self.checked_add_fractions(other)
    }
    /// [`Ratio::checked_add`] in general.
    fn checked_add_fractions(self, other: Ratio) -> Option<Ratio> {
        let num = self.num.checked_mul(other.den)?.checked_add(other.num.checked_mul(self.den)?)?;
        Ratio::checked_new(num, self.den.checked_mul(other.den)?)
    }
    fn checked_mul(self, other: Ratio) -> Option<Ratio> {
        if (self.den, other.den) == (1, 1) {
            return self.num.checked_mul(other.num).map(Ratio::int);
        }
        self.checked_mul_fractions(other)
    }
    /// [`Ratio::checked_mul`] in general.
    fn checked_mul_fractions(self, other: Ratio) -> Option<Ratio> {
        // Cross-reduce first so that products of reduced fractions stay small.
        let g1 = gcd(self.num.unsigned_abs(), other.den.unsigned_abs()).max(1) as i128;
        let g2 = gcd(other.num.unsigned_abs(), self.den.unsigned_abs()).max(1) as i128;
        let num = (self.num / g1).checked_mul(other.num / g2)?;
        let den = (self.den / g2).checked_mul(other.den / g1)?;
        Ratio::checked_new(num, den)
    }
    fn checked_div(self, other: Ratio) -> Option<Ratio> {
        self.checked_mul(Ratio::checked_new(other.den, other.num)?)
    }
    /// The value as a non-negative `i64`, if it is one.
    fn as_size(self) -> Option<i64> {
        (self.den == 1 && self.num >= 0).then(|| i64::try_from(self.num).ok()).flatten()
    }
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A symbolic integer in normal form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sym {
    repr: Repr,
}

/// The two normal forms of a [`Sym`]: a constant needs no map, so the shapes of every
/// compiled plan (all constants) are cloned and dropped without allocating.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// A sym that mentions no dim (zero included).
    Constant(Ratio),
    /// Terms by monomial; no zero coefficients; the empty monomial is the constant term;
    /// never the constant term alone (that is `Constant`).
    Terms(BTreeMap<Monomial, Ratio>),
}

/// The monomial of the constant term.
static CONSTANT_MONOMIAL: Monomial = BTreeMap::new();

impl Default for Sym {
    fn default() -> Sym {
        Sym::from_constant(Ratio::int(0))
    }
}

// Ordered, and shown by `{:?}`, as the map of terms it stands for (the constant term
// first, under the empty monomial): the order of atoms in a monomial, and so the text of
// a sym, does not depend on how a sym is stored.
impl Ord for Sym {
    fn cmp(&self, other: &Sym) -> Ordering {
        if let (Some(a), Some(b)) = (self.constant(), other.constant()) {
            // One term each, under the same monomial; zero has none.
            return (a.num != 0).cmp(&(b.num != 0)).then_with(|| if a.num == 0 { Ordering::Equal } else { a.cmp(&b) });
        }
        self.iter_terms().cmp(other.iter_terms())
    }
}

impl PartialOrd for Sym {
    fn partial_cmp(&self, other: &Sym) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sym").field("terms", &self.terms()).finish()
    }
}

impl Sym {
    /// The constant `value`.
    pub fn int(value: i64) -> Sym {
        Sym::from_constant(Ratio::int(value.into()))
    }

    /// The terms in monomial order, the constant term (if not zero) first.
    fn iter_terms(&self) -> impl Iterator<Item = (&Monomial, &Ratio)> {
        let (constant, terms) = match &self.repr {
            Repr::Constant(ratio) => ((ratio.num != 0).then_some((&CONSTANT_MONOMIAL, ratio)), None),
            Repr::Terms(terms) => (None, Some(terms)),
        };
        constant.into_iter().chain(terms.into_iter().flatten())
    }

    /// The terms as a map (built for a constant).
    fn terms(&self) -> Cow<'_, BTreeMap<Monomial, Ratio>> {
        match &self.repr {
            Repr::Terms(terms) => Cow::Borrowed(terms),
            Repr::Constant(_) => {
                Cow::Owned(self.iter_terms().map(|(monomial, ratio)| (monomial.clone(), *ratio)).collect())
            }
        }
    }

    /// The sym of a map of terms (no zero coefficients), in normal form.
    fn from_terms(terms: BTreeMap<Monomial, Ratio>) -> Sym {
        match terms.len() {
            0 => Sym::from_constant(Ratio::int(0)),
            1 => match terms.first_key_value() {
                Some((monomial, ratio)) if monomial.is_empty() => Sym::from_constant(*ratio),
                _ => Sym { repr: Repr::Terms(terms) },
            },
            _ => Sym { repr: Repr::Terms(terms) },
        }
    }

    /// The dim `name`.
    pub fn dim(name: &str) -> Sym {
        Sym::atom(Atom::Dim(name.to_owned()))
    }

    fn atom(atom: Atom) -> Sym {
        let mut monomial = Monomial::new();
        monomial.insert(atom, 1);
        Sym::from_terms(BTreeMap::from([(monomial, Ratio::int(1))]))
    }

    /// Converts an expression; identifiers become dims.
    pub fn from_expr(expr: &Expr) -> Sym {
        match &expr.kind {
            ExprKind::Int(value) => Sym::int(i64::try_from(*value).unwrap_or(i64::MAX)),
            ExprKind::Ident(name) => Sym::dim(name),
            ExprKind::Neg(inner) => Sym::int(0).sub(&Sym::from_expr(inner)),
            ExprKind::Binary(op, lhs, rhs) => {
                let (a, b) = (Sym::from_expr(lhs), Sym::from_expr(rhs));
                match op {
                    BinOp::Add => a.add(&b),
                    BinOp::Sub => a.sub(&b),
                    BinOp::Mul => a.mul(&b),
                    BinOp::Div => a.div(&b),
                    BinOp::Rem => a.rem(&b),
                }
            }
        }
    }

    /// The value if it is a constant integer.
    pub fn as_int(&self) -> Option<i64> {
        let ratio = self.constant()?;
        (ratio.den == 1).then(|| i64::try_from(ratio.num).ok()).flatten()
    }

    /// The value when it mentions no dim: what the arithmetic below checks first, since
    /// concrete shapes (every compiled plan's) are constants and need no polynomial work.
    fn constant(&self) -> Option<Ratio> {
        match &self.repr {
            Repr::Constant(ratio) => Some(*ratio),
            Repr::Terms(_) => None,
        }
    }

    /// The constant `ratio`, in normal form (zero is `0 / 1`).
    fn from_constant(ratio: Ratio) -> Sym {
        let ratio = if ratio.num == 0 { Ratio::int(0) } else { ratio };
        Sym { repr: Repr::Constant(ratio) }
    }

    /// `self + other`
    pub fn add(&self, other: &Sym) -> Sym {
        if let (Some(a), Some(b)) = (self.constant(), other.constant()) {
            return Sym::from_constant(a.add(b));
        }
        self.add_terms(other)
    }

    /// `self + other`, term by term (the general case of [`Sym::add`]).
    fn add_terms(&self, other: &Sym) -> Sym {
        let mut terms = self.terms().into_owned();
        for (monomial, ratio) in other.iter_terms() {
            let sum = terms.get(monomial).map_or(*ratio, |existing| existing.add(*ratio));
            if sum.num == 0 {
                terms.remove(monomial);
            } else {
                terms.insert(monomial.clone(), sum);
            }
        }
        Sym::from_terms(terms)
    }

    /// `self - other`
    pub fn sub(&self, other: &Sym) -> Sym {
        self.add(&other.scale(Ratio::int(-1)))
    }

    fn scale(&self, factor: Ratio) -> Sym {
        if factor.num == 0 {
            return Sym::default();
        }
        Sym::from_terms(self.iter_terms().map(|(m, r)| (m.clone(), r.mul(factor))).collect())
    }

    /// `self * other`
    pub fn mul(&self, other: &Sym) -> Sym {
        if let (Some(a), Some(b)) = (self.constant(), other.constant()) {
            return Sym::from_constant(a.mul(b));
        }
        self.mul_terms(other)
    }

    /// `self * other`, term by term (the general case of [`Sym::mul`]).
    fn mul_terms(&self, other: &Sym) -> Sym {
        let mut acc = Sym::default();
        for (m1, r1) in self.iter_terms() {
            for (m2, r2) in other.iter_terms() {
                let mut monomial = m1.clone();
                for (atom, power) in m2 {
                    let total = monomial.get(atom).copied().unwrap_or(0) + power;
                    if total == 0 {
                        monomial.remove(atom);
                    } else {
                        monomial.insert(atom.clone(), total);
                    }
                }
                acc = acc.add(&Sym::from_terms(BTreeMap::from([(monomial, r1.mul(*r2))])));
            }
        }
        acc
    }

    /// `self / other`, symbolically. Division by a single term inverts it; division by a
    /// sum is kept as an opaque quotient unless `self` is a constant multiple of `other`.
    pub fn div(&self, other: &Sym) -> Sym {
        if let (Some(a), Some(b)) = (self.constant(), other.constant().filter(|b| b.num != 0)) {
            return Sym::from_constant(a.mul(Ratio::new(b.den, b.num)));
        }
        self.div_terms(other)
    }

    /// `self / other`, term by term (the general case of [`Sym::div`]).
    fn div_terms(&self, other: &Sym) -> Sym {
        let mut terms = other.iter_terms();
        if let (Some((monomial, ratio)), None) = (terms.next(), terms.next()) {
            let inverse: Monomial = monomial.iter().map(|(atom, power)| (atom.clone(), -power)).collect();
            return self.mul(&Sym::from_terms(BTreeMap::from([(inverse, Ratio::new(ratio.den, ratio.num))])));
        }
        if let Some(factor) = self.constant_multiple_of(other) {
            return Sym::from_terms(BTreeMap::from([(Monomial::new(), factor)]));
        }
        Sym::atom(Atom::Quotient(Box::new(self.clone()), Box::new(other.clone())))
    }

    fn constant_multiple_of(&self, other: &Sym) -> Option<Ratio> {
        let (monomial, ratio) = other.iter_terms().next()?;
        let own = *self.iter_terms().find(|(own, _)| *own == monomial)?.1;
        let factor = Ratio::new(own.num * ratio.den, own.den * ratio.num);
        (other.scale(factor) == *self).then_some(factor)
    }

    /// `self % other`, constant-folded when both are constants.
    pub fn rem(&self, other: &Sym) -> Sym {
        match (self.as_int(), other.as_int()) {
            (Some(a), Some(b)) if b != 0 => Sym::int(a % b),
            _ => Sym::atom(Atom::Remainder(Box::new(self.clone()), Box::new(other.clone()))),
        }
    }

    /// Replaces dim `name` by `value` everywhere (derived dims, bound dims).
    pub fn substitute(&self, name: &str, value: &Sym) -> Sym {
        let mut acc = Sym::default();
        for (monomial, ratio) in self.iter_terms() {
            let mut term = Sym::from_constant(*ratio);
            for (atom, power) in monomial {
                let base = match atom {
                    Atom::Dim(dim) if dim == name => value.clone(),
                    Atom::Dim(_) => Sym::atom(atom.clone()),
                    Atom::Quotient(a, b) => a.substitute(name, value).div(&b.substitute(name, value)),
                    Atom::Remainder(a, b) => a.substitute(name, value).rem(&b.substitute(name, value)),
                };
                let factor = if *power >= 0 { base } else { Sym::int(1).div(&base) };
                for _ in 0..power.unsigned_abs() {
                    term = term.mul(&factor);
                }
            }
            acc = acc.add(&term);
        }
        acc
    }

    /// The dims it mentions, sorted.
    pub fn dims(&self) -> Vec<String> {
        let mut out: Vec<&str> = Vec::new();
        self.for_each_dim(&mut |name| out.push(name));
        out.sort_unstable();
        out.dedup();
        out.into_iter().map(str::to_owned).collect()
    }

    /// Calls `f` with each dim it mentions, as often as it occurs.
    fn for_each_dim<'s>(&'s self, f: &mut dyn FnMut(&'s str)) {
        for (monomial, _) in self.iter_terms() {
            for atom in monomial.keys() {
                match atom {
                    Atom::Dim(name) => f(name),
                    Atom::Quotient(a, b) | Atom::Remainder(a, b) => {
                        a.for_each_dim(f);
                        b.for_each_dim(f);
                    }
                }
            }
        }
    }

    /// Evaluates with concrete dims; `None` if a dim is missing, a division is inexact or
    /// by zero, or the value overflows.
    pub fn eval(&self, dim: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        // A dim alone (most shapes and bounds) is its value: what the general form gives.
        if let Some(name) = self.as_dim() {
            return dim(name);
        }
        self.eval_general(dim)
    }

    /// [`Sym::eval`] in general.
    fn eval_general(&self, dim: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        let total = self.eval_ratio(dim)?;
        (total.den == 1).then(|| i64::try_from(total.num).ok()).flatten()
    }

    /// Evaluates to an exact rational, with checked arithmetic.
    fn eval_ratio(&self, dim: &dyn Fn(&str) -> Option<i64>) -> Option<Ratio> {
        let mut total = Ratio::int(0);
        for (monomial, ratio) in self.iter_terms() {
            let mut value = *ratio;
            for (atom, power) in monomial {
                let base = Ratio::int(eval_atom(atom, dim)?.into());
                value = multiply_power(value, base, *power)?;
            }
            total = total.checked_add(value)?;
        }
        Some(total)
    }

    /// Solves `self == value` given the dims `known` returns, when at most one dim is
    /// unknown and it occurs as `a * x + b` or `a / x + b` (`a`, `b` known): the shape
    /// equations of unification (`3 * hidden == 72`, `hidden / heads == 8`).
    pub fn solve(&self, value: i64, known: &dyn Fn(&str) -> Option<i64>) -> Solution {
        match self.solve_borrowed(value, known) {
            BorrowedSolution::Known(value) => Solution::Known(value),
            BorrowedSolution::Solved { dim, value } => Solution::Solved { dim: dim.to_owned(), value },
            BorrowedSolution::Stuck => Solution::Stuck(self.unknown_dims(known)),
        }
    }

    /// [`Sym::solve`] without allocating, for the unification solver, which solves every
    /// equation group once per round: the dim found is borrowed, and stuck dims are not
    /// listed ([`Sym::unknown_dims`] lists them, for reports).
    pub(crate) fn solve_borrowed(&self, value: i64, known: &dyn Fn(&str) -> Option<i64>) -> BorrowedSolution<'_> {
        // `dim == value` (most shape equations): what the general form finds, without its
        // rational arithmetic.
        if let Some(dim) = self.as_dim() {
            return match known(dim) {
                Some(bound) => BorrowedSolution::Known(Some(bound)),
                None => BorrowedSolution::Solved { dim, value: (value >= 0).then_some(value) },
            };
        }
        self.solve_general(value, known)
    }

    /// [`Sym::solve_borrowed`] in general.
    fn solve_general(&self, value: i64, known: &dyn Fn(&str) -> Option<i64>) -> BorrowedSolution<'_> {
        let (mut target, mut several) = (None, false);
        self.for_each_dim(&mut |name| {
            if !several && known(name).is_none() {
                match target {
                    None => target = Some(name),
                    Some(first) => several = first != name,
                }
            }
        });
        let target = match (target, several) {
            (None, _) => return BorrowedSolution::Known(self.eval(known)),
            (Some(one), false) => one,
            (Some(_), true) => return BorrowedSolution::Stuck,
        };
        let not_integral = BorrowedSolution::Solved { dim: target, value: None };
        // self = linear * x + inverse / x + rest
        let (mut linear, mut inverse, mut rest) = (Ratio::int(0), Ratio::int(0), Ratio::int(0));
        for (monomial, ratio) in self.iter_terms() {
            let mut coefficient = *ratio;
            let mut power_of_target = 0;
            for (atom, power) in monomial {
                match atom {
                    Atom::Dim(name) if name == target => power_of_target = *power,
                    _ if atom_mentions(atom, target) => return BorrowedSolution::Stuck,
                    _ => {
                        let Some(base) = eval_atom(atom, known) else { return not_integral };
                        let Some(product) = multiply_power(coefficient, Ratio::int(base.into()), *power) else {
                            return not_integral;
                        };
                        coefficient = product;
                    }
                }
            }
            let slot = match power_of_target {
                0 => &mut rest,
                1 => &mut linear,
                -1 => &mut inverse,
                _ => return BorrowedSolution::Stuck,
            };
            let Some(sum) = slot.checked_add(coefficient) else { return not_integral };
            *slot = sum;
        }
        let negated_rest = rest.num.checked_neg().map(|num| Ratio { num, den: rest.den });
        let Some(remaining) = negated_rest.and_then(|negated| Ratio::int(value.into()).checked_add(negated)) else {
            return not_integral;
        };
        let solved = match (linear.num != 0, inverse.num != 0) {
            (true, false) => remaining.checked_div(linear),
            (false, true) => inverse.checked_div(remaining),
            // Both, or the dim cancelled out of its own equation.
            _ => return BorrowedSolution::Stuck,
        };
        BorrowedSolution::Solved { dim: target, value: solved.and_then(Ratio::as_size) }
    }

    /// The dim it is, when it is one dim alone (`hidden`, not `2 * hidden` or `hidden + 1`).
    fn as_dim(&self) -> Option<&str> {
        let Repr::Terms(terms) = &self.repr else { return None };
        let (monomial, ratio) = terms.first_key_value().filter(|_| terms.len() == 1)?;
        match monomial.first_key_value().filter(|_| monomial.len() == 1 && *ratio == Ratio::int(1))? {
            (Atom::Dim(name), 1) => Some(name),
            _ => None,
        }
    }

    /// The dims it mentions that `known` does not know, sorted and distinct.
    fn unknown_dims(&self, known: &dyn Fn(&str) -> Option<i64>) -> Vec<String> {
        let mut unknown: Vec<&str> = Vec::new();
        self.for_each_dim(&mut |name| {
            if known(name).is_none() {
                unknown.push(name);
            }
        });
        unknown.sort_unstable();
        unknown.dedup();
        unknown.into_iter().map(str::to_owned).collect()
    }

    /// Whether it mentions the dim `name`.
    fn mentions(&self, name: &str) -> bool {
        let mut found = false;
        self.for_each_dim(&mut |dim| found |= dim == name);
        found
    }
}

/// What [`Sym::solve_borrowed`] found: a [`Solution`] that borrows its dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BorrowedSolution<'s> {
    /// Every dim is known: the value.
    Known(Option<i64>),
    /// The one unknown dim and its value.
    Solved { dim: &'s str, value: Option<i64> },
    /// The equation does not determine its unknown dims alone.
    Stuck,
}

/// What [`Sym::solve`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Solution {
    /// Every dim is known: the value (`None` if inexact, by zero, or overflowing).
    Known(Option<i64>),
    /// The one unknown dim and its value, `None` if that is not a non-negative integer.
    Solved {
        /// The dim.
        dim: String,
        /// Its value.
        value: Option<i64>,
    },
    /// These dims are unknown and the equation does not determine them alone.
    Stuck(Vec<String>),
}

fn eval_atom(atom: &Atom, dim: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
    match atom {
        Atom::Dim(name) => dim(name),
        Atom::Quotient(a, b) => {
            let (a, b) = (a.eval(dim)?, b.eval(dim)?);
            if b == 0 || a.checked_rem(b)? != 0 {
                return None;
            }
            a.checked_div(b)
        }
        Atom::Remainder(a, b) => {
            let (a, b) = (a.eval(dim)?, b.eval(dim)?);
            if b == 0 {
                return None;
            }
            a.checked_rem(b)
        }
    }
}

/// `value * base^power`, checked; `None` on overflow or division by zero.
fn multiply_power(mut value: Ratio, base: Ratio, power: i32) -> Option<Ratio> {
    for _ in 0..power.unsigned_abs() {
        value = if power > 0 { value.checked_mul(base)? } else { value.checked_div(base)? };
    }
    Some(value)
}

fn atom_mentions(atom: &Atom, name: &str) -> bool {
    match atom {
        Atom::Dim(dim) => dim == name,
        Atom::Quotient(a, b) | Atom::Remainder(a, b) => a.mentions(name) || b.mentions(name),
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.iter_terms().next().is_none() {
            return f.write_str("0");
        }
        // Constants last reads naturally: `3 * hidden + 1`.
        let mut terms: Vec<_> = self.iter_terms().collect();
        terms.sort_by_key(|(monomial, _)| monomial.is_empty());
        for (index, (monomial, ratio)) in terms.into_iter().enumerate() {
            let negative = ratio.num < 0;
            if index > 0 {
                f.write_str(if negative { " - " } else { " + " })?;
            } else if negative {
                f.write_str("-")?;
            }
            let magnitude = ratio.num.abs();
            let mut factors: Vec<String> = Vec::new();
            if magnitude != 1 || monomial.is_empty() {
                factors.push(magnitude.to_string());
            }
            let mut divisors: Vec<String> = Vec::new();
            for (atom, power) in monomial {
                let text = match atom {
                    Atom::Dim(name) => name.clone(),
                    Atom::Quotient(a, b) => format!("({a}) / ({b})"),
                    Atom::Remainder(a, b) => format!("({a}) % ({b})"),
                };
                for _ in 0..power.unsigned_abs() {
                    if *power > 0 {
                        factors.push(text.clone())
                    } else {
                        divisors.push(text.clone())
                    }
                }
            }
            if ratio.den != 1 {
                divisors.insert(0, ratio.den.to_string());
            }
            if factors.is_empty() {
                // `1 / heads`, not a dangling ` / heads`.
                factors.push("1".to_owned());
            }
            f.write_str(&factors.join(" * "))?;
            for divisor in divisors {
                write!(f, " / {divisor}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_a_fused_dim_gives_the_part() {
        let fused = Sym::int(3).mul(&Sym::dim("hidden"));
        assert_eq!(fused.div(&Sym::int(3)), Sym::dim("hidden"));
    }

    #[test]
    fn derived_dims_cancel() {
        let head_dim = Sym::dim("hidden").div(&Sym::dim("heads"));
        assert_eq!(head_dim.mul(&Sym::dim("heads")), Sym::dim("hidden"));
        let substituted = Sym::dim("head_dim").mul(&Sym::dim("heads")).substitute("head_dim", &head_dim);
        assert_eq!(substituted, Sym::dim("hidden"));
    }

    #[test]
    fn sums_normalise() {
        let a = Sym::dim("q").add(&Sym::dim("kv").mul(&Sym::int(2)));
        let b = Sym::dim("kv").add(&Sym::dim("q")).add(&Sym::dim("kv"));
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2 * kv + q");
        assert_eq!(a.div(&a), Sym::int(1));
    }

    #[test]
    fn eval_requires_exact_division() {
        let half = Sym::dim("n").div(&Sym::int(2));
        assert_eq!(half.eval(&|_| Some(6)), Some(3));
        assert_eq!(half.eval(&|_| Some(7)), None);
        assert_eq!(half.to_string(), "n / 2");
        assert_eq!(Sym::int(1).div(&Sym::dim("heads")).to_string(), "1 / heads");
    }

    #[test]
    fn eval_reports_overflow_instead_of_panicking() {
        let cube = Sym::dim("a").mul(&Sym::dim("a")).mul(&Sym::dim("a")).mul(&Sym::dim("a"));
        assert_eq!(cube.eval(&|_| Some(i64::MAX)), None);
        let huge = Sym::int(i64::MAX).mul(&Sym::int(i64::MAX)).mul(&Sym::int(i64::MAX));
        assert_eq!(huge.eval(&|_| None), None);
        assert_eq!(Sym::dim("a").div(&Sym::dim("b")).eval(&|name| Some(if name == "a" { 4 } else { 0 })), None);
    }

    /// A small rational constant, or a dim, or a sum of both: what the fast paths and the
    /// general arithmetic must agree on.
    fn operand() -> impl proptest::strategy::Strategy<Value = Sym> {
        use proptest::prelude::*;
        prop_oneof![
            (-1000i64..1000).prop_map(Sym::int),
            (-1000i64..1000, 1i64..12).prop_map(|(num, den)| Sym::int(num).div_terms(&Sym::int(den))),
            (-5i64..5).prop_map(|k| Sym::int(k).mul_terms(&Sym::dim("n"))),
            (-5i64..5, -9i64..9).prop_map(|(k, c)| Sym::dim("n").mul_terms(&Sym::int(k)).add_terms(&Sym::int(c))),
            Just(Sym::int(i64::MAX)),
            Just(Sym::int(i64::MIN)),
        ]
    }

    proptest::proptest! {
        /// The constant fast paths of add, mul and div give the normal form the general
        /// term-by-term arithmetic gives.
        #[test]
        fn constant_fast_paths_agree_with_the_general_arithmetic(a in operand(), b in operand()) {
            proptest::prop_assert_eq!(a.add(&b), a.add_terms(&b));
            proptest::prop_assert_eq!(a.mul(&b), a.mul_terms(&b));
            proptest::prop_assert_eq!(a.div(&b), a.div_terms(&b));
            let huge = a.mul(&b).mul(&Sym::int(i64::MAX)).mul(&Sym::int(i64::MAX));
            proptest::prop_assert_eq!(huge.clone(), a.mul_terms(&b).mul_terms(&Sym::int(i64::MAX)).mul_terms(&Sym::int(i64::MAX)));
            proptest::prop_assert_eq!(huge.add(&huge), huge.add_terms(&huge));
        }

        /// The integer fast paths of checked addition and multiplication give what the
        /// general fraction arithmetic gives, overflow included.
        #[test]
        fn integer_ratio_fast_paths_agree(a in proptest::num::i128::ANY, b in proptest::num::i128::ANY, small in -1000i128..1000) {
            for (x, y) in [(a, b), (a, small), (small, b), (small, small + 1)] {
                let (x, y) = (Ratio::int(x), Ratio::int(y));
                proptest::prop_assert_eq!(x.checked_add(y), x.checked_add_fractions(y));
                proptest::prop_assert_eq!(x.checked_mul(y), x.checked_mul_fractions(y));
            }
        }

        /// Evaluating and solving a dim alone agree with the general arithmetic, whatever
        /// is known.
        #[test]
        fn a_dim_alone_solves_and_evaluates_as_in_general(
            sym in proptest::prop_oneof![operand(), proptest::strategy::Just(Sym::dim("n")), proptest::strategy::Just(Sym::dim("m"))],
            n in proptest::option::of(-3i64..1000),
            value in proptest::prop_oneof![-5i64..1000, proptest::strategy::Just(i64::MAX), proptest::strategy::Just(i64::MIN)],
        ) {
            let known = |name: &str| if name == "n" { n } else { None };
            proptest::prop_assert_eq!(sym.eval(&known), sym.eval_general(&known));
            proptest::prop_assert_eq!(sym.solve_borrowed(value, &known), sym.solve_general(value, &known));
        }

        /// A sym orders as the map of terms it stands for, however it is stored (the text
        /// of a monomial's atoms follows that order).
        #[test]
        fn syms_order_as_their_terms(a in operand(), b in operand()) {
            proptest::prop_assert_eq!(a.cmp(&b), a.terms().cmp(&b.terms()));
            proptest::prop_assert_eq!(a == b, a.terms() == b.terms());
            proptest::prop_assert_eq!(Sym::from_terms(a.terms().into_owned()), a);
        }

        /// Solving `a * x / d + b * known + c == value` recovers `x` whenever the value
        /// came from a non-negative integer `x`.
        #[test]
        fn solve_inverts_linear_evaluation(a in 1i64..50, d in 1i64..6, b in -20i64..20, c in -50i64..50, known in 0i64..100, x in 0i64..10_000) {
            let sym = Sym::int(a).mul(&Sym::dim("x")).div(&Sym::int(d)).add(&Sym::int(b).mul(&Sym::dim("k"))).add(&Sym::int(c));
            let lookup = |name: &str| (name == "k").then_some(known);
            let all = |name: &str| if name == "x" { Some(x) } else { lookup(name) };
            match sym.eval(&all) {
                Some(value) => proptest::prop_assert_eq!(sym.solve(value, &lookup), Solution::Solved { dim: "x".into(), value: Some(x) }),
                // `a * x / d` not whole: evaluation refuses, as it must.
                None => proptest::prop_assert_ne!((a * x) % d, 0),
            }
        }
    }

    #[test]
    fn solve_handles_linear_and_inverse_occurrences() {
        let known = |name: &str| match name {
            "hidden" => Some(64),
            "two" => Some(2),
            _ => None,
        };
        let solved = |dim: &str, value| Solution::Solved { dim: dim.into(), value };
        let cases: Vec<(Sym, i64, Solution)> = vec![
            (Sym::int(3).mul(&Sym::dim("x")), 72, solved("x", Some(24))),
            (Sym::int(3).mul(&Sym::dim("x")), 10, solved("x", None)),
            (Sym::dim("x").add(&Sym::int(4)), 2, solved("x", None)),
            (Sym::dim("hidden").div(&Sym::dim("heads")), 8, solved("heads", Some(8))),
            (Sym::dim("hidden").div(&Sym::dim("heads")), 0, solved("heads", None)),
            (Sym::dim("x").mul(&Sym::dim("two")).add(&Sym::dim("hidden")), 70, solved("x", Some(3))),
            (Sym::dim("x").div(&Sym::int(2)), 5, solved("x", Some(10))),
            (Sym::dim("x").mul(&Sym::dim("x")), 16, Solution::Stuck(vec!["x".into()])),
            (Sym::dim("x").mul(&Sym::dim("y")), 16, Solution::Stuck(vec!["x".into(), "y".into()])),
            (Sym::dim("x").rem(&Sym::int(4)), 1, Solution::Stuck(vec!["x".into()])),
            (Sym::dim("hidden").mul(&Sym::int(3)), 192, Solution::Known(Some(192))),
            (Sym::dim("hidden").div(&Sym::int(3)), 21, Solution::Known(None)),
        ];
        for (sym, value, expected) in cases {
            assert_eq!(sym.solve(value, &known), expected, "{sym} == {value}");
        }
    }
}
