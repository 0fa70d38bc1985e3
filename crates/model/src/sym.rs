//! Symbolic integers over dims, in a normal form where equal values compare equal.
//!
//! Shape rules (used by the static checker) compute with dims they do not know the
//! value of: splitting `[3 * hidden, hidden]` in three gives `[hidden, hidden]`, and
//! `head_dim * heads` equals `hidden` once `head_dim = hidden / heads` is substituted.
//! A [`Sym`] is a sum of terms `coefficient × product of dims^power`, coefficients
//! rational, powers possibly negative (division by a single term); division by a sum
//! keeps the quotient as an opaque atom. Two syms that are provably equal by this
//! algebra have identical normal forms; different normal forms mean "not provably equal".

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

impl Ratio {
    fn new(num: i128, den: i128) -> Ratio {
        let divisor = gcd(num.unsigned_abs(), den.unsigned_abs()).max(1) as i128;
        let sign = if den < 0 { -1 } else { 1 };
        Ratio { num: sign * num / divisor, den: sign * den / divisor }
    }
    fn int(value: i128) -> Ratio {
        Ratio { num: value, den: 1 }
    }
    fn add(self, other: Ratio) -> Ratio {
        Ratio::new(self.num * other.den + other.num * self.den, self.den * other.den)
    }
    fn mul(self, other: Ratio) -> Ratio {
        Ratio::new(self.num * other.num, self.den * other.den)
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
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sym {
    /// Terms by monomial; no zero coefficients; the empty monomial is the constant.
    terms: BTreeMap<Monomial, Ratio>,
}

impl Sym {
    /// The constant `value`.
    pub fn int(value: i64) -> Sym {
        let mut terms = BTreeMap::new();
        if value != 0 {
            terms.insert(Monomial::new(), Ratio::int(value.into()));
        }
        Sym { terms }
    }

    /// The dim `name`.
    pub fn dim(name: &str) -> Sym {
        Sym::atom(Atom::Dim(name.to_owned()))
    }

    fn atom(atom: Atom) -> Sym {
        let mut monomial = Monomial::new();
        monomial.insert(atom, 1);
        let mut terms = BTreeMap::new();
        terms.insert(monomial, Ratio::int(1));
        Sym { terms }
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
        match self.terms.len() {
            0 => Some(0),
            1 => {
                let (monomial, ratio) = self.terms.iter().next()?;
                (monomial.is_empty() && ratio.den == 1).then(|| i64::try_from(ratio.num).ok()).flatten()
            }
            _ => None,
        }
    }

    /// `self + other`
    pub fn add(&self, other: &Sym) -> Sym {
        let mut terms = self.terms.clone();
        for (monomial, ratio) in &other.terms {
            let sum = terms.get(monomial).map_or(*ratio, |existing| existing.add(*ratio));
            if sum.num == 0 {
                terms.remove(monomial);
            } else {
                terms.insert(monomial.clone(), sum);
            }
        }
        Sym { terms }
    }

    /// `self - other`
    pub fn sub(&self, other: &Sym) -> Sym {
        self.add(&other.scale(Ratio::int(-1)))
    }

    fn scale(&self, factor: Ratio) -> Sym {
        if factor.num == 0 {
            return Sym::default();
        }
        Sym { terms: self.terms.iter().map(|(m, r)| (m.clone(), r.mul(factor))).collect() }
    }

    /// `self * other`
    pub fn mul(&self, other: &Sym) -> Sym {
        let mut acc = Sym::default();
        for (m1, r1) in &self.terms {
            for (m2, r2) in &other.terms {
                let mut monomial = m1.clone();
                for (atom, power) in m2 {
                    let total = monomial.get(atom).copied().unwrap_or(0) + power;
                    if total == 0 {
                        monomial.remove(atom);
                    } else {
                        monomial.insert(atom.clone(), total);
                    }
                }
                let mut term = BTreeMap::new();
                term.insert(monomial, r1.mul(*r2));
                acc = acc.add(&Sym { terms: term });
            }
        }
        acc
    }

    /// `self / other`, symbolically. Division by a single term inverts it; division by a
    /// sum is kept as an opaque quotient unless `self` is a constant multiple of `other`.
    pub fn div(&self, other: &Sym) -> Sym {
        if other.terms.len() == 1 {
            let (monomial, ratio) = other.terms.iter().next().expect("one term");
            let inverse: Monomial = monomial.iter().map(|(atom, power)| (atom.clone(), -power)).collect();
            let mut term = BTreeMap::new();
            term.insert(inverse, Ratio::new(ratio.den, ratio.num));
            return self.mul(&Sym { terms: term });
        }
        if let Some(factor) = self.constant_multiple_of(other) {
            let mut term = BTreeMap::new();
            term.insert(Monomial::new(), factor);
            return Sym { terms: term };
        }
        Sym::atom(Atom::Quotient(Box::new(self.clone()), Box::new(other.clone())))
    }

    fn constant_multiple_of(&self, other: &Sym) -> Option<Ratio> {
        let (monomial, ratio) = other.terms.iter().next()?;
        let own = self.terms.get(monomial)?;
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
        for (monomial, ratio) in &self.terms {
            let mut term = Sym { terms: BTreeMap::from([(Monomial::new(), *ratio)]) };
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
        let mut out = Vec::new();
        for monomial in self.terms.keys() {
            for atom in monomial.keys() {
                match atom {
                    Atom::Dim(name) => out.push(name.clone()),
                    Atom::Quotient(a, b) | Atom::Remainder(a, b) => {
                        out.extend(a.dims());
                        out.extend(b.dims());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Evaluates with concrete dims; `None` if a dim is missing or a division is inexact.
    pub fn eval(&self, dim: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        let mut total = Ratio::int(0);
        for (monomial, ratio) in &self.terms {
            let mut value = *ratio;
            for (atom, power) in monomial {
                let base = match atom {
                    Atom::Dim(name) => dim(name)?,
                    Atom::Quotient(a, b) => {
                        let (a, b) = (a.eval(dim)?, b.eval(dim)?);
                        if b == 0 || a % b != 0 {
                            return None;
                        }
                        a / b
                    }
                    Atom::Remainder(a, b) => {
                        let (a, b) = (a.eval(dim)?, b.eval(dim)?);
                        if b == 0 {
                            return None;
                        }
                        a % b
                    }
                };
                for _ in 0..power.unsigned_abs() {
                    value = if *power > 0 {
                        value.mul(Ratio::int(base.into()))
                    } else if base == 0 {
                        return None;
                    } else {
                        value.mul(Ratio::new(1, base.into()))
                    };
                }
            }
            total = total.add(value);
        }
        (total.den == 1).then(|| i64::try_from(total.num).ok()).flatten()
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Constants last reads naturally: `3 * hidden + 1`.
        let mut terms: Vec<_> = self.terms.iter().collect();
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
    }
}
