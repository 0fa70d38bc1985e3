//! A zip reader for the archives `torch.save` writes: stored members only, borrowed from
//! the mapped file, found as torch's own reader (miniz, in `PyTorchStreamReader`) finds them.
//!
//! * The end record is the *last* end-of-central-directory signature of the file, as miniz
//!   takes it; its comment must reach exactly to the end of the file, and no other end
//!   record may sit in the directory area.
//! * Sizes and offsets come from the central directory (with ZIP64 fields); every local
//!   header is checked against it (name, method, and CRC and sizes when it carries them);
//!   a member's bytes must lie inside the file, before the central directory, and no two
//!   members may overlap.
//! * Names are looked up without regard to ASCII case, as miniz does, so two names that
//!   differ only in case are refused like a name that appears twice.
//!
//! Whatever another reader could see differently is refused as [`ZipError::Ambiguous`].
//! Nothing is ever inflated: a compressed member is an error when it is read (`torch.save`
//! never compresses, and inflating is how zip bombs work).

use std::collections::HashMap;

use crate::error::ZipError;
use crate::Limits;

/// A parsed archive whose members borrow from `data`.
#[derive(Debug)]
pub(crate) struct ZipArchive<'a> {
    data: &'a [u8],
    members: Vec<Member>,
    /// Member name → position in `members`.
    index: HashMap<String, usize>,
}

/// One member, as the central directory describes it (checked against its local header).
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub name: String,
    pub method: u16,
    pub crc32: u32,
    pub size: u64,
    /// Bytes the member occupies in the file (equal to `size` for stored members).
    pub compressed_size: u64,
    /// Offset of its local header.
    pub header_offset: u64,
    pub data_offset: u64,
}

const END_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_END_SIGNATURE: u32 = 0x0606_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const END_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;

impl<'a> ZipArchive<'a> {
    /// Parses the central directory of `data` as torch's reader (miniz) finds it, and refuses
    /// any archive another reader could see differently (see the module documentation).
    pub fn parse(data: &'a [u8], limits: &Limits) -> Result<ZipArchive<'a>, ZipError> {
        let end = find_end_record(data)?;
        let mut entries = u64::from(le16(data, end + 10));
        let mut cd_size = u64::from(le32(data, end + 12));
        let mut cd_offset = u64::from(le32(data, end + 16));
        // The central directory must end where the (ZIP64) end records begin.
        let mut cd_limit = end as u64;
        if le16(data, end + 4) != 0 || le16(data, end + 6) != 0 {
            return Err(ZipError::Malformed("multi-disk archives are not supported".into()));
        }
        if end >= 20 && le32(data, end - 20) == ZIP64_LOCATOR_SIGNATURE {
            let zip64_end = le64(data, end - 12);
            let at = usize::try_from(zip64_end).ok().filter(|&at| at.checked_add(56).is_some_and(|e| e <= end - 20));
            let Some(at) = at else {
                return Err(ZipError::Malformed(format!("ZIP64 end record offset {zip64_end} lies outside the file")));
            };
            if le32(data, at) != ZIP64_END_SIGNATURE {
                return Err(ZipError::Malformed(format!("no ZIP64 end record at offset {zip64_end}")));
            }
            entries = le64(data, at + 32);
            cd_size = le64(data, at + 40);
            cd_offset = le64(data, at + 48);
            cd_limit = at as u64;
        }
        let cd_end = cd_offset.checked_add(cd_size).filter(|&e| e <= cd_limit).ok_or_else(|| {
            ZipError::Malformed(format!(
                "central directory ({cd_size} bytes at offset {cd_offset}) does not fit before the end record at {cd_limit}"
            ))
        })?;
        // A second end record in the directory area means two readers may pick two
        // directories (torch's takes the last one): ambiguous.
        if let Some(other) = find_signature(&data[cd_offset as usize..end], END_SIGNATURE) {
            return Err(ZipError::Ambiguous(format!(
                "two end-of-central-directory records (at offsets {} and {end})",
                cd_offset as usize + other
            )));
        }
        if entries > cd_size / CENTRAL_LEN as u64 {
            return Err(ZipError::Malformed(format!(
                "{entries} members cannot fit in a {cd_size}-byte central directory"
            )));
        }
        if entries > limits.max_zip_members {
            return Err(ZipError::Malformed(format!(
                "{entries} members exceed the limit of {}",
                limits.max_zip_members
            )));
        }
        let mut members = Vec::with_capacity(entries as usize);
        let mut index = HashMap::with_capacity(entries as usize);
        let mut pos = cd_offset as usize;
        let cd_end = cd_end as usize;
        for _ in 0..entries {
            let (member, next) = parse_central_entry(data, pos, cd_end, cd_offset)?;
            // torch's reader looks names up without regard to ASCII case.
            if let Some(first) = index.insert(lookup_key(&member.name), members.len()) {
                let first: &Member = &members[first];
                let reason = if first.name == member.name {
                    "appears twice in the central directory".to_string()
                } else {
                    format!("and `{}` differ only in case; torch's reader cannot tell them apart", first.name)
                };
                return Err(ZipError::Ambiguous(format!("member `{}` {reason}", member.name)));
            }
            members.push(member);
            pos = next;
        }
        check_no_overlap(&members)?;
        Ok(ZipArchive { data, members, index })
    }

    /// The members in central-directory order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member called `name`, compared without regard to ASCII case as torch's reader does.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.index.get(&lookup_key(name)).map(|&at| &self.members[at])
    }

    /// The bytes of a stored member, borrowed from the file; checks the CRC when asked.
    pub fn bytes(&self, member: &Member, verify_crc: bool) -> Result<&'a [u8], ZipError> {
        if member.method != 0 {
            return Err(ZipError::Compressed { member: member.name.clone(), method: member.method });
        }
        // Bounds were checked in `parse`.
        let start = member.data_offset as usize;
        let bytes = &self.data[start..start + member.size as usize];
        if verify_crc && crc32(bytes) != member.crc32 {
            return Err(ZipError::Crc { member: member.name.clone() });
        }
        Ok(bytes)
    }
}

/// The key torch's reader (miniz) compares member names by: ASCII case folded.
fn lookup_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Whether `data` looks like a zip archive as torch decides it: the first four bytes are a
/// local header signature (`torch.serialization._is_zipfile`).
pub(crate) fn looks_like_zip(data: &[u8]) -> bool {
    data.len() >= 4 && le32(data, 0) == LOCAL_SIGNATURE
}

/// The end record torch's reader uses: miniz takes the *last* signature in the final
/// 64 KiB + 22 bytes that has a whole record after it, whatever its comment length says.
/// A record whose comment length does not reach exactly to the end of the file is refused
/// (other readers would skip it and look for an earlier one).
fn find_end_record(data: &[u8]) -> Result<usize, ZipError> {
    if data.len() < END_LEN {
        return Err(ZipError::NoEndRecord);
    }
    let last = data.len() - END_LEN;
    let first = last.saturating_sub(u16::MAX as usize);
    let end = (first..=last).rev().find(|&pos| le32(data, pos) == END_SIGNATURE).ok_or(ZipError::NoEndRecord)?;
    let comment = le16(data, end + 20) as usize;
    let after = data.len() - end - END_LEN;
    if comment != after {
        return Err(ZipError::Ambiguous(format!(
            "the last end-of-central-directory record (offset {end}) declares a {comment}-byte comment but {after} bytes follow it"
        )));
    }
    Ok(end)
}

/// The offset of the first occurrence of a four-byte signature in `data`.
fn find_signature(data: &[u8], signature: u32) -> Option<usize> {
    let signature = signature.to_le_bytes();
    data.windows(4).position(|window| window == signature)
}

/// Refuses members whose local header and data overlap another member's: one byte range
/// read as two members is how overlapping-file zip bombs and polyglots work.
fn check_no_overlap(members: &[Member]) -> Result<(), ZipError> {
    let mut spans: Vec<(u64, u64, &str)> =
        members.iter().map(|m| (m.header_offset, m.data_offset + m.compressed_size, m.name.as_str())).collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((_, first_end, first), (second_start, _, second)) = (pair[0], pair[1]);
        if second_start < first_end {
            return Err(ZipError::Ambiguous(format!("members `{first}` and `{second}` overlap")));
        }
    }
    Ok(())
}

fn parse_central_entry(data: &[u8], pos: usize, cd_end: usize, cd_offset: u64) -> Result<(Member, usize), ZipError> {
    if pos + CENTRAL_LEN > cd_end || le32(data, pos) != CENTRAL_SIGNATURE {
        return Err(ZipError::Malformed(format!("no central directory entry at offset {pos}")));
    }
    let flags = le16(data, pos + 8);
    let method = le16(data, pos + 10);
    let crc32 = le32(data, pos + 16);
    let mut compressed_size = u64::from(le32(data, pos + 20));
    let mut size = u64::from(le32(data, pos + 24));
    let name_len = le16(data, pos + 28) as usize;
    let extra_len = le16(data, pos + 30) as usize;
    let comment_len = le16(data, pos + 32) as usize;
    let disk = le16(data, pos + 34);
    let mut header_offset = u64::from(le32(data, pos + 42));
    let next = pos + CENTRAL_LEN + name_len + extra_len + comment_len;
    if next > cd_end {
        return Err(ZipError::Malformed(format!("central directory entry at offset {pos} runs past the directory")));
    }
    let name_bytes = &data[pos + CENTRAL_LEN..pos + CENTRAL_LEN + name_len];
    let name = String::from_utf8(name_bytes.to_vec())
        .map_err(|_| ZipError::Malformed(format!("member name at offset {pos} is not UTF-8")))?;
    let bad = |reason: String| ZipError::BadMember { member: name.clone(), reason };
    // ZIP64 extended information: only the fields whose 32-bit value is saturated, in order.
    let mut extra = &data[pos + CENTRAL_LEN + name_len..pos + CENTRAL_LEN + name_len + extra_len];
    while extra.len() >= 4 {
        let id = le16(extra, 0);
        let len = le16(extra, 2) as usize;
        if 4 + len > extra.len() {
            return Err(bad("extra field runs past its entry".into()));
        }
        if id == 1 {
            let mut field = &extra[4..4 + len];
            for value in [&mut size, &mut compressed_size, &mut header_offset] {
                if *value == u64::from(u32::MAX) {
                    if field.len() < 8 {
                        return Err(bad("ZIP64 extra field too short".into()));
                    }
                    *value = le64(field, 0);
                    field = &field[8..];
                }
            }
        }
        extra = &extra[4 + len..];
    }
    if disk != 0 && disk != u16::MAX {
        return Err(bad("lives on another disk".into()));
    }
    if flags & 1 != 0 {
        return Err(bad("is encrypted".into()));
    }
    // The local header must agree with the central directory.
    let local = usize::try_from(header_offset)
        .ok()
        .filter(|&at| (at as u64).checked_add(LOCAL_LEN as u64).is_some_and(|end| end <= cd_offset))
        .ok_or_else(|| bad(format!("local header offset {header_offset} lies outside the member area")))?;
    if le32(data, local) != LOCAL_SIGNATURE {
        return Err(bad(format!("no local header at offset {header_offset}")));
    }
    let local_flags = le16(data, local + 6);
    let local_method = le16(data, local + 8);
    let local_name_len = le16(data, local + 26) as usize;
    let local_extra_len = le16(data, local + 28) as usize;
    let data_offset = (local + LOCAL_LEN + local_name_len + local_extra_len) as u64;
    if data_offset > cd_offset {
        return Err(bad("local header runs into the central directory".into()));
    }
    if &data[local + LOCAL_LEN..local + LOCAL_LEN + local_name_len] != name_bytes {
        return Err(bad("local header names another member".into()));
    }
    if local_method != method {
        return Err(bad("local header and central directory disagree on the method".into()));
    }
    if data_offset.checked_add(compressed_size).is_none_or(|end| end > cd_offset) {
        return Err(bad(format!(
            "declares {compressed_size} bytes at offset {data_offset}, past the end of the member area ({cd_offset})"
        )));
    }
    if method == 0 && compressed_size != size {
        return Err(bad(format!("stored member declares {compressed_size} stored and {size} uncompressed bytes")));
    }
    // Without a data descriptor (flag bit 3) the local header carries the CRC and sizes, and a
    // reader that trusts it would read other bytes than torch's (which trusts the directory).
    if local_flags & 8 == 0 {
        let local_crc = le32(data, local + 14);
        let local_sizes = [le32(data, local + 18), le32(data, local + 22)];
        let sizes_agree = local_sizes == [u32::MAX; 2]
            || (u64::from(local_sizes[0]) == compressed_size && u64::from(local_sizes[1]) == size);
        if local_crc != crc32 || !sizes_agree {
            return Err(ZipError::Ambiguous(format!(
                "member `{name}`: local header and central directory disagree on its CRC or sizes"
            )));
        }
    }
    let member = Member { name, method, crc32, size, compressed_size, header_offset, data_offset };
    Ok((member, next))
}

fn le16(data: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([data[at], data[at + 1]])
}

fn le32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"))
}

/// CRC-32 (IEEE), as zip uses it; slicing-by-8 (about 8x faster than a byte at a time,
/// which matters because every storage is checked).
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    const TABLES: [[u32; 256]; 8] = {
        let mut tables = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 != 0 { 0xEDB8_8320 ^ (crc >> 1) } else { crc >> 1 };
                bit += 1;
            }
            tables[0][i] = crc;
            i += 1;
        }
        let mut k = 1;
        while k < 8 {
            let mut i = 0;
            while i < 256 {
                let prev = tables[k - 1][i];
                tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
                i += 1;
            }
            k += 1;
        }
        tables
    };
    let t = &TABLES;
    let mut crc = !0u32;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let low = crc ^ u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        crc = t[7][(low & 0xff) as usize]
            ^ t[6][((low >> 8) & 0xff) as usize]
            ^ t[5][((low >> 16) & 0xff) as usize]
            ^ t[4][(low >> 24) as usize]
            ^ t[3][chunk[4] as usize]
            ^ t[2][chunk[5] as usize]
            ^ t[1][chunk[6] as usize]
            ^ t[0][chunk[7] as usize];
    }
    for &byte in chunks.remainder() {
        crc = t[0][((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a minimal zip of stored members (no ZIP64), for tests that need to craft archives.
    pub(crate) fn build_zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, bytes) in members {
            let offset = out.len() as u32;
            let crc = crc32(bytes);
            out.extend_from_slice(&LOCAL_SIGNATURE.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(bytes);
            central.extend_from_slice(&CENTRAL_SIGNATURE.to_le_bytes());
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&crc.to_le_bytes());
            central.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            central.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&END_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    /// Like torch's writer: saturated 32-bit fields in the central directory with a ZIP64
    /// extra field, a ZIP64 end record and locator, and a classic end record of 0xFFFF…s.
    fn build_zip64(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, bytes) in members {
            let offset = out.len() as u64;
            let crc = crc32(bytes);
            out.extend_from_slice(&LOCAL_SIGNATURE.to_le_bytes());
            out.extend_from_slice(&[45, 0, 8, 8, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&[0; 12]); // CRC and sizes in a data descriptor, as torch does
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(bytes);
            out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            central.extend_from_slice(&CENTRAL_SIGNATURE.to_le_bytes());
            central.extend_from_slice(&[45, 0, 45, 0, 8, 8, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&crc.to_le_bytes());
            central.extend_from_slice(&u32::MAX.to_le_bytes());
            central.extend_from_slice(&u32::MAX.to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&28u16.to_le_bytes());
            central.extend_from_slice(&[0; 10]); // comment length, disk, attributes
            central.extend_from_slice(&u32::MAX.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
            central.extend_from_slice(&1u16.to_le_bytes());
            central.extend_from_slice(&24u16.to_le_bytes());
            central.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            central.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
        }
        let cd_offset = out.len() as u64;
        out.extend_from_slice(&central);
        let zip64_end = out.len() as u64;
        out.extend_from_slice(&ZIP64_END_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(members.len() as u64).to_le_bytes());
        out.extend_from_slice(&(members.len() as u64).to_le_bytes());
        out.extend_from_slice(&(central.len() as u64).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&ZIP64_LOCATOR_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&zip64_end.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&END_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&[0xff; 4]);
        out.extend_from_slice(&[0xff; 8]);
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn zip64_fields_are_read() {
        let zip = build_zip64(&[("d/data.pkl", b"pickle"), ("d/data/0", &[7; 100])]);
        let archive = ZipArchive::parse(&zip, &Limits::default()).unwrap();
        let member = archive.member("d/data/0").unwrap();
        assert_eq!(archive.bytes(member, true).unwrap(), &[7; 100]);
        assert_eq!(archive.bytes(archive.member("d/data.pkl").unwrap(), true).unwrap(), b"pickle");
    }

    #[test]
    fn a_zip64_locator_pointing_outside_the_file_is_refused() {
        let mut zip = build_zip64(&[("d/data.pkl", b"pickle")]);
        let locator = zip.len() - END_LEN - 20;
        zip[locator + 8..locator + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(ZipArchive::parse(&zip, &Limits::default()), Err(ZipError::Malformed(_))));
    }

    #[test]
    fn crc32_matches_reference_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414F_A339);
        // Every length around the 8-byte blocks.
        let data: Vec<u8> = (0..40u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            let bitwise = !data[..len].iter().fold(!0u32, |mut crc, &byte| {
                crc ^= u32::from(byte);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 { 0xEDB8_8320 ^ (crc >> 1) } else { crc >> 1 };
                }
                crc
            });
            assert_eq!(crc32(&data[..len]), bitwise, "length {len}");
        }
    }

    #[test]
    fn reads_members_it_wrote() {
        let zip = build_zip(&[("a/data.pkl", b"hello"), ("a/data/0", b"")]);
        let archive = ZipArchive::parse(&zip, &Limits::default()).unwrap();
        assert_eq!(archive.members().len(), 2);
        let member = archive.member("a/data.pkl").unwrap();
        assert_eq!(archive.bytes(member, true).unwrap(), b"hello");
    }

    #[test]
    fn refuses_lies_about_sizes() {
        let mut zip = build_zip(&[("a/data.pkl", b"hello")]);
        // Central directory size field of the first entry (local header 30 + 10 name + 5 data).
        let cd = 45;
        zip[cd + 20..cd + 24].copy_from_slice(&1000u32.to_le_bytes());
        zip[cd + 24..cd + 28].copy_from_slice(&1000u32.to_le_bytes());
        let err = ZipArchive::parse(&zip, &Limits::default()).unwrap_err();
        assert!(matches!(err, ZipError::BadMember { .. }), "{err}");
    }

    #[test]
    fn refuses_a_member_count_the_directory_cannot_hold() {
        let mut zip = build_zip(&[("a/data.pkl", b"hello")]);
        let end = zip.len() - END_LEN;
        zip[end + 10..end + 12].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(ZipArchive::parse(&zip, &Limits::default()), Err(ZipError::Malformed(_))));
    }

    #[test]
    fn detects_corruption_by_crc() {
        let mut zip = build_zip(&[("a/data.pkl", b"hello")]);
        zip[40] ^= 1;
        let archive = ZipArchive::parse(&zip, &Limits::default()).unwrap();
        let member = archive.member("a/data.pkl").unwrap();
        assert!(matches!(archive.bytes(member, true), Err(ZipError::Crc { .. })));
    }

    #[test]
    fn duplicate_members_are_refused() {
        let zip = build_zip(&[("a/data.pkl", b"x"), ("a/data.pkl", b"y")]);
        assert!(matches!(ZipArchive::parse(&zip, &Limits::default()), Err(ZipError::Ambiguous(_))));
        // torch's reader folds ASCII case when it looks a name up.
        let zip = build_zip(&[("a/data.pkl", b"x"), ("a/DATA.pkl", b"y")]);
        let err = ZipArchive::parse(&zip, &Limits::default()).unwrap_err();
        assert!(matches!(&err, ZipError::Ambiguous(why) if why.contains("case")), "{err}");
    }

    #[test]
    fn the_last_end_record_is_the_one_and_a_lying_comment_is_refused() {
        // A second archive's end record appended after the first: torch reads the last one,
        // which here says its comment is longer than what follows.
        let first = build_zip(&[("a/data.pkl", b"first")]);
        let mut zip = first.clone();
        let end = zip.len() - END_LEN;
        zip.extend_from_within(end..end + END_LEN);
        let last = zip.len() - END_LEN;
        zip[last + 20..last + 22].copy_from_slice(&7u16.to_le_bytes());
        let err = ZipArchive::parse(&zip, &Limits::default()).unwrap_err();
        assert!(matches!(&err, ZipError::Ambiguous(why) if why.contains("comment")), "{err}");
        // Two well-formed end records: the earlier one sits in the directory area of the last.
        let mut zip = first.clone();
        zip[last - END_LEN + 20..last - END_LEN + 22].copy_from_slice(&(END_LEN as u16).to_le_bytes());
        zip.extend_from_slice(&first[end..end + END_LEN]);
        let err = ZipArchive::parse(&zip, &Limits::default()).unwrap_err();
        assert!(matches!(&err, ZipError::Ambiguous(why) if why.contains("two end")), "{err}");
        // A comment that is exactly what follows is fine.
        let mut zip = first;
        zip[end + 20..end + 22].copy_from_slice(&3u16.to_le_bytes());
        zip.extend_from_slice(b"abc");
        assert!(ZipArchive::parse(&zip, &Limits::default()).is_ok());
    }

    #[test]
    fn overlapping_members_are_refused() {
        let mut zip = build_zip(&[("a/data.pkl", b"hello"), ("a/x", b"world")]);
        // Point the second central entry at the first local header's data.
        let cd = zip.len() - END_LEN - 2 * CENTRAL_LEN - "a/data.pkl".len() - "a/x".len();
        let second = cd + CENTRAL_LEN + "a/data.pkl".len();
        zip[second + 42..second + 46].copy_from_slice(&0u32.to_le_bytes());
        let err = ZipArchive::parse(&zip, &Limits::default()).unwrap_err();
        assert!(matches!(err, ZipError::Ambiguous(_) | ZipError::BadMember { .. }), "{err}");
        // The first member's sizes stretched over the second (its local header defers the
        // sizes to a data descriptor, so only the directory says how long it is).
        let mut zip = build_zip(&[("a/x", b"hello"), ("a/y", b"world")]);
        zip[6] = 8;
        let cd = zip.len() - END_LEN - 2 * (CENTRAL_LEN + 3);
        zip[cd + 20..cd + 24].copy_from_slice(&43u32.to_le_bytes());
        zip[cd + 24..cd + 28].copy_from_slice(&43u32.to_le_bytes());
        let err = ZipArchive::parse(&zip, &Limits::default()).unwrap_err();
        assert!(matches!(&err, ZipError::Ambiguous(why) if why.contains("overlap")), "{err}");
    }

    #[test]
    fn local_headers_that_disagree_with_the_directory_are_refused() {
        let mut zip = build_zip(&[("a/data.pkl", b"hello")]);
        // The local header's sizes (no data descriptor): claim 4 bytes instead of 5.
        zip[18..22].copy_from_slice(&4u32.to_le_bytes());
        let err = ZipArchive::parse(&zip, &Limits::default()).unwrap_err();
        assert!(matches!(&err, ZipError::Ambiguous(why) if why.contains("disagree")), "{err}");
    }

    #[test]
    fn names_are_looked_up_without_case() {
        let zip = build_zip(&[("a/DATA.PKL", b"hello")]);
        let archive = ZipArchive::parse(&zip, &Limits::default()).unwrap();
        assert_eq!(archive.member("a/data.pkl").unwrap().name, "a/DATA.PKL");
    }

    #[test]
    fn empty_and_garbage_are_not_zips() {
        assert_eq!(ZipArchive::parse(b"", &Limits::default()).unwrap_err(), ZipError::NoEndRecord);
        assert_eq!(ZipArchive::parse(&[7u8; 100], &Limits::default()).unwrap_err(), ZipError::NoEndRecord);
    }
}
