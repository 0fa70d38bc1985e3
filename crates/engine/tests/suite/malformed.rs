//! One malformed file per class of error: each gives its own `ReadErrorKind`, a message
//! naming the file and the offending tensor, key or offset, and never a panic.

use safeshift_engine::{Checkpoint, Limits, ReadOptions};

use crate::util::{put, raw_file, variant_name};

/// A header with one `U8` tensor `name` of `len` bytes at `[start, end]`.
fn entry(name: &str, len: u64, start: u64, end: u64) -> String {
    format!(r#""{name}":{{"dtype":"U8","shape":[{len}],"data_offsets":[{start},{end}]}}"#)
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    limits: Limits,
    kind: &'static str,
    /// A string the message must contain besides the path (tensor, key or offset).
    names: &'static str,
}

fn case(name: &'static str, bytes: Vec<u8>, kind: &'static str, names: &'static str) -> Case {
    Case { name, bytes, limits: Limits::default(), kind, names }
}

fn cases() -> Vec<Case> {
    let ok_a = entry("a", 4, 0, 4);
    let mut too_large = 100_000_001u64.to_le_bytes().to_vec();
    too_large.extend_from_slice(b"{}");
    let mut past_end = 64u64.to_le_bytes().to_vec();
    past_end.extend_from_slice(b"{}      ");
    let mut not_utf8 = 8u64.to_le_bytes().to_vec();
    not_utf8.extend_from_slice(b"{\"a\xff\":1}");
    let tight =
        |max_tensors, max_name_len, max_rank| Limits { max_tensors, max_name_len, max_rank, ..Limits::default() };
    vec![
        case("too short for the length prefix", vec![1, 2, 3], "TooShort", "3 bytes"),
        case("header length over the bound", too_large, "HeaderTooLarge", "100000001"),
        case("header length past the file", past_end, "HeaderPastEnd", "64"),
        case("header not UTF-8", not_utf8, "HeaderNotUtf8", "offset 11"),
        case("header not JSON", raw_file("{not json}", b""), "HeaderNotJson", "line 1"),
        case("trailing garbage after the JSON", raw_file("{}\0", b""), "HeaderNotJson", "trailing"),
        case("header not an object", raw_file("[1, 2]", b""), "HeaderNotObject", "sequence"),
        case("duplicate tensor", raw_file(&format!("{{{ok_a},{ok_a}}}"), b"abcd"), "DuplicateKey", "`a`"),
        case(
            "duplicate __metadata__",
            raw_file(r#"{"__metadata__":{},"__metadata__":{}}"#, b""),
            "DuplicateKey",
            "`__metadata__`",
        ),
        case(
            "duplicate metadata key",
            raw_file(r#"{"__metadata__":{"k":"1","k":"2"}}"#, b""),
            "DuplicateKey",
            "`k` in `__metadata__`",
        ),
        case(
            "duplicate field in an entry",
            raw_file(r#"{"a":{"dtype":"U8","dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#, b""),
            "DuplicateKey",
            "`dtype` in `a`",
        ),
        case(
            "unknown dtype",
            raw_file(r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#, &[0; 16]),
            "UnknownDType",
            "`F128`",
        ),
        case(
            "shape product overflows",
            raw_file(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,0]}}"#, b""),
            "ShapeOverflow",
            "`a`",
        ),
        case(
            "packed dtype not filling whole bytes",
            raw_file(r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, &[0; 2]),
            "PartialByte",
            "`a`",
        ),
        case(
            "hole between tensors",
            raw_file(&format!("{{{},{}}}", entry("a", 4, 0, 4), entry("b", 4, 8, 12)), &[0; 12]),
            "OffsetsHole",
            "`b` starts at data offset 8",
        ),
        case(
            "hole before the first tensor",
            raw_file(&format!("{{{}}}", entry("a", 4, 4, 8)), &[0; 8]),
            "OffsetsHole",
            "`a` starts at data offset 4",
        ),
        case(
            "overlapping tensors",
            raw_file(&format!("{{{},{}}}", entry("b", 8, 4, 12), entry("a", 8, 0, 8)), &[0; 12]),
            "OffsetsOverlap",
            "overlapping `a`",
        ),
        case(
            "offsets past the data section",
            raw_file(&format!("{{{}}}", entry("a", 16, 0, 16)), &[0; 8]),
            "OffsetsOutOfBounds",
            "`a`",
        ),
        case(
            "byte count differs from numel times size",
            raw_file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, &[0; 4]),
            "ByteCountMismatch",
            "`a`",
        ),
        case("trailing bytes after the data", raw_file(&format!("{{{ok_a}}}"), &[0; 6]), "TrailingBytes", "2 trailing"),
        case(
            "metadata value not a string",
            raw_file(r#"{"__metadata__":{"k":1}}"#, b""),
            "BadMetadata",
            "`__metadata__`",
        ),
        case("metadata not an object", raw_file(r#"{"__metadata__":[]}"#, b""), "BadMetadata", "`__metadata__`"),
        case(
            "data_offsets of one number",
            raw_file(r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0]}}"#, b""),
            "BadOffsets",
            "`a`",
        ),
        case(
            "data_offsets start after end",
            raw_file(r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}}"#, b""),
            "BadOffsets",
            "`a`",
        ),
        case(
            "negative data_offsets",
            raw_file(r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[-1,0]}}"#, b""),
            "BadField",
            "`data_offsets`",
        ),
        case(
            "entry missing shape",
            raw_file(r#"{"a":{"dtype":"U8","data_offsets":[0,0]}}"#, b""),
            "MissingField",
            "`shape`",
        ),
        case(
            "entry with an unknown field",
            raw_file(r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"extra":1}}"#, b""),
            "UnknownField",
            "`extra`",
        ),
        case(
            "shape of the wrong type",
            raw_file(r#"{"a":{"dtype":"U8","shape":"4","data_offsets":[0,4]}}"#, &[0; 4]),
            "BadField",
            "`shape`",
        ),
        case("entry not an object", raw_file(r#"{"a":[0,4]}"#, &[0; 4]), "BadField", "`a`"),
        Case {
            limits: tight(1, 4096, 64),
            ..case(
                "too many tensors",
                raw_file(&format!("{{{},{}}}", entry("a", 0, 0, 0), entry("b", 0, 0, 0)), b""),
                "TooManyTensors",
                "more than 1",
            )
        },
        Case {
            limits: tight(10, 4, 64),
            ..case(
                "name too long",
                raw_file(&format!("{{{}}}", entry("abcdefgh", 0, 0, 0)), b""),
                "NameTooLong",
                "`abcdefgh`",
            )
        },
        Case {
            limits: tight(10, 4096, 2),
            ..case(
                "rank too large",
                raw_file(r#"{"a":{"dtype":"U8","shape":[1,1,1],"data_offsets":[0,1]}}"#, &[0]),
                "RankTooLarge",
                "`a`",
            )
        },
    ]
}

#[test]
fn every_malformed_class_has_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = String::new();
    for case in cases() {
        let path = put(dir.path(), "case.safetensors", &case.bytes);
        let err = match Checkpoint::open_with(
            &path,
            &ReadOptions { limits: case.limits.clone(), ..ReadOptions::default() },
        ) {
            Ok(_) => panic!("{}: opened", case.name),
            Err(err) => err,
        };
        assert_eq!(err.path, path, "{}", case.name);
        assert_eq!(variant_name(&format!("{:?}", err.kind)), case.kind, "{}: {err}", case.name);
        let message = err.to_string();
        assert!(message.contains(&*path.to_string_lossy()), "{}: {message}", case.name);
        assert!(message.contains(case.names), "{}: {message} lacks {}", case.name, case.names);
        let shown = message.replace(&*dir.path().to_string_lossy(), "[dir]");
        report.push_str(&format!("{}\n  {}: {shown}\n", case.name, case.kind));
    }
    insta::assert_snapshot!("malformed_messages", report);
}

#[test]
fn sharded_index_errors_name_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let shard = raw_file(&format!("{{{}}}", entry("a", 4, 0, 4)), b"abcd");
    put(dir.path(), "s1.safetensors", &shard);
    let check = |index: &str, kind: &str, file: &str| {
        let path = put(dir.path(), "model.safetensors.index.json", index.as_bytes());
        let err = Checkpoint::open(&path).unwrap_err();
        assert_eq!(variant_name(&format!("{:?}", err.kind)), kind, "{err}");
        assert_eq!(err.path.file_name().unwrap(), file, "{err}");
    };
    check(r#"{"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}}"#, "MissingFromShard", "s1.safetensors");
    check(r#"{"metadata":{}}"#, "BadIndex", "model.safetensors.index.json");
    check(r#"{"weight_map":{"a":"../s1.safetensors"}}"#, "BadShardName", "model.safetensors.index.json");
    check(r#"{"weight_map":{"a":"missing.safetensors"}}"#, "Io", "missing.safetensors");
    check(
        r#"{"weight_map":{"a":"s1.safetensors","a":"s1.safetensors"}}"#,
        "DuplicateKey",
        "model.safetensors.index.json",
    );
    let two = raw_file(&format!("{{{},{}}}", entry("a", 4, 0, 4), entry("b", 4, 4, 8)), b"abcdefgh");
    put(dir.path(), "s2.safetensors", &two);
    check(r#"{"weight_map":{"a":"s2.safetensors"}}"#, "UnlistedInIndex", "s2.safetensors");
    let meta = |value: &str| raw_file(&format!(r#"{{"__metadata__":{{"k":"{value}"}},{}}}"#, entry("a", 0, 0, 0)), b"");
    put(dir.path(), "m1.safetensors", &meta("1"));
    let other = raw_file(&format!(r#"{{"__metadata__":{{"k":"2"}},{}}}"#, entry("b", 0, 0, 0)), b"");
    put(dir.path(), "m2.safetensors", &other);
    check(r#"{"weight_map":{"a":"m1.safetensors","b":"m2.safetensors"}}"#, "MetadataConflict", "m2.safetensors");
}
