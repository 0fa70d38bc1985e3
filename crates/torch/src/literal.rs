//! Decoding the literal forms pickle opcodes carry: text integers, quoted strings,
//! raw-unicode-escape, little-endian longs.

use crate::error::PickleError;
use crate::value::Value;

/// Python's default limit on decimal digits in an int conversion.
const MAX_DECIMAL_DIGITS: usize = 4300;

/// A decimal integer line (`INT`, `LONG`): i64 when it fits, else a big integer.
pub(crate) fn decimal_int(line: &[u8]) -> Result<Value, PickleError> {
    let text = std::str::from_utf8(line).map_err(|_| bad("integer is not ASCII"))?.trim();
    if let Ok(value) = text.parse::<i64>() {
        return Ok(Value::Int(value));
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("text integer is not a decimal number"));
    }
    // Python refuses longer decimal integers too (`sys.int_info.default_max_str_digits`);
    // the conversion below is quadratic in the digit count.
    if digits.len() > MAX_DECIMAL_DIGITS {
        return Err(bad(&format!("text integer has more than {MAX_DECIMAL_DIGITS} digits")));
    }
    // Magnitude as little-endian base-256, then two's complement.
    let mut magnitude: Vec<u8> = vec![0];
    for digit in digits.bytes() {
        let mut carry = u32::from(digit - b'0');
        for byte in magnitude.iter_mut() {
            let value = u32::from(*byte) * 10 + carry;
            *byte = value as u8;
            carry = value >> 8;
        }
        while carry > 0 {
            magnitude.push(carry as u8);
            carry >>= 8;
        }
    }
    magnitude.push(0);
    if negative {
        let mut carry = 1u16;
        for byte in magnitude.iter_mut() {
            let value = u16::from(!*byte) + carry;
            *byte = value as u8;
            carry = value >> 8;
        }
    }
    Ok(long_from_le(&magnitude))
}

/// An `INT` line as CPython's C unpickler reads it: `strtol(text, base 0)` (leading
/// whitespace, a sign, `0x` hex, a leading `0` for octal), the whole line consumed; a
/// two-character line worth 0 or 1 is a bool (`I00`, `I01`). Where CPython would fall back
/// to `int(text, 0)` (overflow, anything `strtol` leaves unread), a plain decimal is read
/// as such and anything else is refused, never read another way.
pub(crate) fn int_line(line: &[u8]) -> Result<Value, PickleError> {
    let refuse = || bad("INT is not a number CPython reads the same way");
    let mut rest = line;
    while let [first, tail @ ..] = rest {
        if !b" \t\n\x0b\x0c\r".contains(first) {
            break;
        }
        rest = tail;
    }
    let (negative, rest) = match rest {
        [b'-', tail @ ..] => (true, tail),
        [b'+', tail @ ..] => (false, tail),
        _ => (false, rest),
    };
    let (radix, digits) = match rest {
        [b'0', b'x' | b'X', tail @ ..] if tail.first().is_some_and(u8::is_ascii_hexdigit) => (16, tail),
        [b'0', ..] => (8, rest),
        _ => (10, rest),
    };
    let text = std::str::from_utf8(digits).map_err(|_| refuse())?;
    let parsed = (!text.is_empty() && text.bytes().all(|b| (b as char).is_digit(radix)))
        .then(|| i64::from_str_radix(text, radix).ok())
        .flatten();
    match parsed {
        Some(magnitude) => {
            let value = if negative { -magnitude } else { magnitude };
            Ok(if line.len() == 2 && (value == 0 || value == 1) { Value::Bool(value == 1) } else { Value::Int(value) })
        }
        // CPython's fallback, `int(text, 0)`: the same as ours for a plain decimal.
        None if radix == 10 && line.iter().all(|b| b.is_ascii_digit() || *b == b'-' || *b == b'+') => decimal_int(line),
        None => Err(refuse()),
    }
}

/// A `LONG` line (its `L` removed) as CPython reads it, `int(text, 0)`: a decimal with no
/// leading zero (`0073` is an error there); other forms CPython accepts (`0x…`, `1_0`) are
/// refused here.
pub(crate) fn long_line(line: &[u8]) -> Result<Value, PickleError> {
    let text = line.trim_ascii();
    let digits = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")).unwrap_or(text);
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(bad("LONG with a leading zero (CPython refuses it)"));
    }
    decimal_int(line)
}

/// A memo index line (`GET`, `PUT`).
pub(crate) fn decimal_u64(line: &[u8]) -> Result<u64, PickleError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .ok_or_else(|| bad("memo index is not a decimal number"))
}

/// `LONG1`/`LONG4` payload: little-endian two's complement.
pub(crate) fn long_from_le(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0 };
    // Drop redundant sign bytes, then see whether 8 bytes hold it.
    let mut len = bytes.len();
    while len > 1 && bytes[len - 1] == fill && (bytes[len - 2] & 0x80 != 0) == negative {
        len -= 1;
    }
    if len <= 8 {
        let mut buf = [fill; 8];
        buf[..len].copy_from_slice(&bytes[..len]);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(bytes[..len].into())
}

/// The repr of a Python 2 `str` (`STRING`): quotes stripped, `string-escape` decoded.
pub(crate) fn quoted_string(line: &[u8]) -> Result<Vec<u8>, PickleError> {
    let quote = *line.first().ok_or_else(|| bad("STRING is empty"))?;
    if line.len() < 2 || !(quote == b'\'' || quote == b'"') || line[line.len() - 1] != quote {
        return Err(bad("STRING is not quoted"));
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let byte = body[i];
        i += 1;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let Some(&escape) = body.get(i) else {
            return Err(bad("STRING ends with a backslash"));
        };
        i += 1;
        match escape {
            b'\\' | b'\'' | b'"' => out.push(escape),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\n' => {}
            b'x' => {
                let hex = body.get(i..i + 2).ok_or_else(|| bad("truncated \\x escape"))?;
                let value = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| bad("invalid \\x escape"))?;
                out.push(value);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut value = u32::from(escape - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&digit @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(digit - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// A Python 2 `str` as `torch.load` decodes it (`encoding="utf-8"`).
pub(crate) fn py2_str(bytes: Vec<u8>) -> Result<Value, PickleError> {
    String::from_utf8(bytes).map(|text| Value::Str(text.into())).map_err(|_| bad("Python 2 string is not UTF-8"))
}

/// `UNICODE`: latin-1 text with `\uXXXX` and `\UXXXXXXXX` escapes.
pub(crate) fn raw_unicode_escape(line: &[u8]) -> Result<String, PickleError> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let byte = line[i];
        let width = match (byte, line.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            _ => 0,
        };
        if width == 0 {
            out.push(char::from(byte));
            i += 1;
            continue;
        }
        let hex = line.get(i + 2..i + 2 + width).ok_or_else(|| bad("truncated unicode escape"))?;
        let code = std::str::from_utf8(hex)
            .ok()
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .and_then(char::from_u32)
            .ok_or_else(|| bad("invalid unicode escape"))?;
        out.push(code);
        i += 2 + width;
    }
    Ok(out)
}

/// UTF-8 text (`BINUNICODE` and friends).
pub(crate) fn utf8(bytes: &[u8]) -> Result<Value, PickleError> {
    std::str::from_utf8(bytes).map(|text| Value::Str(text.into())).map_err(|_| bad("string is not valid UTF-8"))
}

/// A module or attribute name of GLOBAL/INST.
pub(crate) fn ascii_name(line: &[u8]) -> Result<String, PickleError> {
    let text = std::str::from_utf8(line).map_err(|_| bad("global name is not UTF-8"))?;
    Ok(text.to_string())
}

fn bad(message: &str) -> PickleError {
    PickleError::BadValue(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_lines_are_read_as_strtol_base_0_reads_them() {
        let int = |line: &[u8]| match int_line(line) {
            Ok(Value::Int(value)) => Some(value),
            Ok(Value::Bool(flag)) => Some(i64::from(flag) + 100),
            _ => None,
        };
        assert_eq!(int(b"0073"), Some(0o73));
        assert_eq!(int(b"0x1f"), Some(31));
        assert_eq!(int(b" -12"), Some(-12));
        assert_eq!(int(b"00"), Some(100));
        assert_eq!(int(b"+1"), Some(101));
        assert_eq!(int(b"001"), Some(1));
        assert_eq!(int(b"12 "), None);
        assert_eq!(int(b"08"), None);
        assert!(matches!(int_line(b"99999999999999999999"), Ok(Value::BigInt(_))));
        assert!(long_line(b"0073").is_err());
    }

    fn int(value: Value) -> i64 {
        match value {
            Value::Int(value) => value,
            other => panic!("not an int: {other:?}"),
        }
    }

    #[test]
    fn longs_decode_like_python() {
        assert_eq!(int(long_from_le(&[])), 0);
        assert_eq!(int(long_from_le(&[0xff])), -1);
        assert_eq!(int(long_from_le(&[0x80, 0x00])), 128);
        assert_eq!(int(long_from_le(&[7, 0, 0, 0, 0, 1])), (1 << 40) + 7);
        assert_eq!(int(long_from_le(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), -1);
        assert!(matches!(long_from_le(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), Value::BigInt(_)));
    }

    #[test]
    fn decimal_ints_become_big_ints_when_needed() {
        assert_eq!(int(decimal_int(b"-42").unwrap()), -42);
        let Value::BigInt(bytes) = decimal_int(b"18446744073709551616").unwrap() else { panic!() };
        assert_eq!(&*bytes, &[0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let Value::BigInt(bytes) = decimal_int(b"-18446744073709551616").unwrap() else { panic!() };
        assert_eq!(&*bytes, &[0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert!(decimal_int(b"12x").is_err());
        assert!(decimal_int(&[b'9'; 5000]).is_err());
    }

    #[test]
    fn quoted_strings_decode_escapes() {
        assert_eq!(quoted_string(br"'a\'b\x41\n\101'").unwrap(), b"a'bA\nA");
        assert!(quoted_string(b"'unterminated").is_err());
    }

    #[test]
    fn raw_unicode_escape_decodes_escapes_and_latin1() {
        assert_eq!(raw_unicode_escape(b"Z\\u00fcrich \xe9 \\U0001F600").unwrap(), "Z\u{fc}rich \u{e9} \u{1F600}");
    }
}
