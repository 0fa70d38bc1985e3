//! Recognising torch's oldest container, a tar archive (`torch.save` before 0.4), exactly as
//! `torch.load` does: it hands any file that is not a zip to `tarfile.open`, and reads the
//! file as a tar archive whenever Python's `tarfile` accepts its first 512-byte header. That
//! check is a checksum, not a magic number, so a legacy pickle stream can be crafted to
//! pass it too: torch would then unpickle the tar's members, not the stream.

/// The size of a tar header block.
const BLOCK: usize = 512;

/// Whether `tarfile` would accept the first block of `data` as a header: 512 bytes, not all
/// zero, whose checksum field parses and equals the unsigned or signed sum of the block with
/// that field read as spaces (`tarfile.TarInfo.frombuf`). The field is parsed as leniently as
/// Python's `int(text, 8)` can be (sign, `0o`, underscores, surrounding whitespace), so that
/// every header `tarfile` accepts is recognised (a few it refuses may be too; those are
/// refused, never read another way).
pub(crate) fn is_tar(data: &[u8]) -> bool {
    let Some(block) = data.get(..BLOCK) else { return false };
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let Some(checksum) = checksum_field(&block[148..156]) else { return false };
    let spaces = 8 * u32::from(b' ');
    let unsigned: i64 =
        i64::from(spaces) + block[..148].iter().chain(&block[156..]).map(|&b| i64::from(b)).sum::<i64>();
    let signed: i64 =
        i64::from(spaces) + block[..148].iter().chain(&block[156..]).map(|&b| i64::from(b as i8)).sum::<i64>();
    checksum == unsigned || checksum == signed
}

/// `tarfile.nti` on the checksum field: base-256 when the first byte is 0o200 or 0o377,
/// else octal text up to the first NUL.
fn checksum_field(field: &[u8]) -> Option<i64> {
    if field[0] == 0o200 || field[0] == 0o377 {
        let mut n: i64 = 0;
        for &byte in &field[1..] {
            n = (n << 8) + i64::from(byte);
        }
        if field[0] == 0o377 {
            n -= 1 << (8 * (field.len() - 1));
        }
        return Some(n);
    }
    let text = field.split(|&b| b == 0).next().unwrap_or_default();
    let text = text.trim_ascii_start().trim_ascii_end();
    let text: Vec<u8> = text.iter().copied().filter(|b| !b"\x0b\x0c\x1c\x1d\x1e\x1f".contains(b)).collect::<Vec<u8>>();
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, &text[..]),
    };
    let digits = digits.strip_prefix(b"0o").or_else(|| digits.strip_prefix(b"0O")).unwrap_or(digits);
    let mut n: i64 = 0;
    let mut any = false;
    for &byte in digits {
        match byte {
            b'0'..=b'7' => {
                n = n.checked_mul(8)?.checked_add(i64::from(byte - b'0'))?;
                any = true;
            }
            b'_' => {}
            _ => return None,
        }
    }
    // `int("", 8)` is refused but tarfile turns an empty field into "0".
    if !any && !digits.is_empty() {
        return None;
    }
    Some(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header for one member, as Python's tarfile writes it.
    fn header(name: &str) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK];
        block[..name.len()].copy_from_slice(name.as_bytes());
        block[100..108].copy_from_slice(b"0000644\0");
        block[124..136].copy_from_slice(b"00000000005\0");
        block[156] = b'0';
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        seal(&mut block);
        block
    }

    /// Writes the checksum field as tarfile does (six octal digits, NUL, space).
    fn seal(block: &mut [u8]) {
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn a_header_with_a_good_checksum_is_a_tar_whatever_its_magic() {
        let mut block = header("pickle");
        assert!(is_tar(&block));
        // tarfile does not look at the magic: a v7 header (no `ustar`) with a good sum is one.
        block[257..263].copy_from_slice(&[0; 6]);
        seal(&mut block);
        assert!(is_tar(&block));
    }

    #[test]
    fn a_bad_checksum_short_input_or_zero_block_is_not() {
        let mut block = header("pickle");
        block[0] ^= 1;
        assert!(!is_tar(&block));
        assert!(!is_tar(&header("pickle")[..511]));
        assert!(!is_tar(&[0; 1024]));
        // A legacy torch file starts with a pickle, whose bytes give no valid checksum field.
        let mut legacy = vec![0x80, 0x02, 0x8a, 0x0a];
        legacy.resize(600, b'N');
        assert!(!is_tar(&legacy));
    }

    #[test]
    fn the_checksum_field_is_read_like_python_int_base_8() {
        assert_eq!(checksum_field(b"0001234\0"), Some(0o1234));
        assert_eq!(checksum_field(b" 1_234 \0"), Some(0o1234));
        assert_eq!(checksum_field(b"0o17\0\0\0\0"), Some(0o17));
        assert_eq!(checksum_field(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(checksum_field(b"12389\0\0\0"), None);
        assert_eq!(checksum_field(&[0o200, 0, 0, 0, 0, 0, 1, 2]), Some(0x102));
    }
}
