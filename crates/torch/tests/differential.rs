//! The differential test: random pickles (mostly well-formed programs over every opcode,
//! some mutated) read by safeshift's machine and by CPython's C unpickler with a recording
//! `find_class` (`differential.py`, standard library only, run as one `python3` process).
//! Wherever safeshift reads a pickle to the end, CPython must read the same value, name
//! the same globals and invoke the same ones; wherever CPython invokes something before
//! failing, safeshift must have reported it. Skipped, saying so, without `python3`.
//!
//! `SAFESHIFT_DIFFERENTIAL_CASES` sets the number of cases (default 400),
//! `SAFESHIFT_DIFFERENTIAL_SEED` the seed, and `SAFESHIFT_DIFFERENTIAL_REPLAY` a file of
//! hex pickles (one a line) to compare instead; `fuzz/fuzz_targets/pickle_differential.rs` runs
//! the same comparison on fuzzer-made inputs for long runs.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use safeshift_torch::interpret::{disagreement, interpret, Interpretation};

mod generate {
    /// A small xorshift generator: reproducible cases without a dependency.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        pub fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
    }

    /// What the generator knows of a stack slot.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Slot {
        /// Hashable: None, bool, int, float, str, bytes, a global.
        Key,
        List,
        Dict,
        Set,
        Tuple,
        Object,
        Other,
    }

    /// A pickle program: a protocol, then opcodes chosen so that most of them are valid
    /// where they stand, then STOP.
    pub fn pickle(rng: &mut Rng) -> Vec<u8> {
        let protocol = rng.below(6) as u8;
        let mut out = Vec::new();
        if protocol >= 2 {
            out.extend_from_slice(&[0x80, protocol]);
        }
        let mut stack: Vec<Slot> = Vec::new();
        let mut marks: Vec<usize> = Vec::new();
        let mut memo: Vec<u32> = Vec::new();
        let steps = 1 + rng.below(40);
        for _ in 0..steps {
            let top = stack.len();
            let floor = marks.last().copied().unwrap_or(0);
            let above = top - floor;
            match rng.below(30) {
                0..=5 => {
                    scalar(rng, &mut out);
                    stack.push(Slot::Key);
                }
                6 => {
                    out.push([b']', b'}', b')', 0x8f][rng.below(4)]);
                    stack.push(
                        [Slot::List, Slot::Dict, Slot::Tuple, Slot::Set][(out.last().copied().map(|b| match b {
                            b']' => 0,
                            b'}' => 1,
                            b')' => 2,
                            _ => 3,
                        }))
                        .unwrap_or(0)],
                    );
                }
                7 => {
                    out.push(b'(');
                    marks.push(top);
                }
                8 if !marks.is_empty() => {
                    let (op, slot) = [(b'l', Slot::List), (b't', Slot::Tuple), (b'd', Slot::Dict), (0x91, Slot::Other)]
                        [rng.below(4)];
                    if op == b'd' && !stack[floor..].chunks(2).all(|pair| pair[0] == Slot::Key) {
                        continue;
                    }
                    out.push(op);
                    stack.truncate(marks.pop().unwrap());
                    stack.push(slot);
                }
                9 if above >= 1 => {
                    let n = 1 + rng.below(above.min(3));
                    out.push(0x84 + n as u8);
                    stack.truncate(top - n);
                    stack.push(Slot::Tuple);
                }
                10 if above >= 2 && stack[top - 2] == Slot::List => {
                    out.push(b'a');
                    stack.pop();
                }
                11 if above >= 3 && stack[top - 3] == Slot::Dict && stack[top - 2] == Slot::Key => {
                    out.push(b's');
                    stack.truncate(top - 2);
                }
                12 if !marks.is_empty() && floor >= 1 => {
                    let target = stack[floor - 1];
                    let op = match target {
                        Slot::List | Slot::Object => b'e',
                        Slot::Dict if above % 2 == 0 && stack[floor..].chunks(2).all(|p| p[0] == Slot::Key) => b'u',
                        Slot::Set if stack[floor..].iter().all(|s| *s == Slot::Key) => 0x90,
                        _ => continue,
                    };
                    out.push(op);
                    stack.truncate(marks.pop().unwrap());
                }
                13 if above >= 1 => {
                    // Memo: PUT, BINPUT, LONG_BINPUT or MEMOIZE.
                    let index = match rng.below(4) {
                        0 => {
                            let index = rng.below(300) as u32;
                            out.extend_from_slice(format!("p{index}\n").as_bytes());
                            index
                        }
                        1 => {
                            let index = rng.below(256) as u32;
                            out.extend_from_slice(&[b'q', index as u8]);
                            index
                        }
                        2 => {
                            let index = rng.below(1000) as u32;
                            out.push(b'r');
                            out.extend_from_slice(&index.to_le_bytes());
                            index
                        }
                        _ => {
                            out.push(0x94);
                            memo.len() as u32
                        }
                    };
                    memo.push(index);
                    let _ = memo.last();
                }
                14 if !memo.is_empty() => {
                    let index = memo[rng.below(memo.len())];
                    match rng.below(3) {
                        0 => out.extend_from_slice(format!("g{index}\n").as_bytes()),
                        1 if index < 256 => out.extend_from_slice(&[b'h', index as u8]),
                        _ => {
                            out.push(b'j');
                            out.extend_from_slice(&index.to_le_bytes());
                        }
                    }
                    stack.push(Slot::Other);
                }
                15 => {
                    global(rng, &mut out);
                    stack.push(Slot::Key);
                }
                16 if above >= 2 => {
                    // REDUCE, NEWOBJ or BUILD on whatever is there.
                    out.push([b'R', 0x81, b'b'][rng.below(3)]);
                    stack.truncate(top - 2);
                    stack.push(Slot::Object);
                }
                17 => {
                    // A call of a global on a tuple: `G (args) REDUCE` or NEWOBJ.
                    global(rng, &mut out);
                    let n = rng.below(3);
                    for _ in 0..n {
                        scalar(rng, &mut out);
                    }
                    out.push([b')', 0x85, 0x86][n]);
                    out.push([b'R', 0x81][rng.below(2)]);
                    stack.push(Slot::Object);
                }
                18 => {
                    // INST, OBJ, NEWOBJ_EX.
                    match rng.below(3) {
                        0 => {
                            out.push(b'(');
                            scalar(rng, &mut out);
                            out.extend_from_slice(format!("i{}\n{}\n", module(rng), name(rng)).as_bytes());
                        }
                        1 => {
                            out.push(b'(');
                            global(rng, &mut out);
                            if rng.chance(50) {
                                scalar(rng, &mut out);
                            }
                            out.push(b'o');
                        }
                        _ => {
                            global(rng, &mut out);
                            out.extend_from_slice(b")}");
                            out.push(0x92);
                        }
                    }
                    stack.push(Slot::Object);
                }
                19 if above >= 1 => {
                    out.push(b'0');
                    stack.pop();
                }
                20 if above >= 1 => {
                    out.push(b'2');
                    stack.push(stack[top - 1]);
                }
                21 if above >= 1 && stack[top - 1] == Slot::Key => {
                    out.push(b'Q');
                    stack.pop();
                    stack.push(Slot::Other);
                }
                22 => {
                    // A persistent id as text.
                    out.extend_from_slice(b"P");
                    out.extend_from_slice(text(rng).as_bytes());
                    out.push(b'\n');
                    stack.push(Slot::Other);
                }
                23 if !marks.is_empty() => {
                    out.push(b'1');
                    stack.truncate(marks.pop().unwrap());
                }
                _ => {}
            }
        }
        // Close: everything into one list so that STOP has one value.
        while let Some(mark) = marks.pop() {
            out.push(b'l');
            stack.truncate(mark);
            stack.push(Slot::List);
        }
        out.push(b'(');
        out.push(b'l');
        let _ = stack;
        // `(l` made an empty list on top; put the rest under it: use LIST over everything.
        out.truncate(out.len() - 2);
        let mut wrapped = Vec::new();
        if protocol >= 2 {
            wrapped.extend_from_slice(&out[..2]);
            wrapped.push(b'(');
            wrapped.extend_from_slice(&out[2..]);
        } else {
            wrapped.push(b'(');
            wrapped.extend_from_slice(&out);
        }
        wrapped.extend_from_slice(b"l.");
        if protocol >= 4 && rng.chance(60) {
            wrapped = framed(rng, &wrapped);
        }
        if rng.chance(15) {
            mutate(rng, &mut wrapped);
        }
        wrapped
    }

    /// Puts FRAMEs around runs of the body, at opcode-agnostic byte positions: some end
    /// between opcodes, some inside one (which safeshift must refuse).
    fn framed(rng: &mut Rng, pickle: &[u8]) -> Vec<u8> {
        let mut out = pickle[..2].to_vec();
        let mut at = 2;
        while at < pickle.len() {
            let len = 1 + rng.below(pickle.len() - at);
            out.push(0x95);
            out.extend_from_slice(&(len as u64).to_le_bytes());
            out.extend_from_slice(&pickle[at..at + len]);
            at += len;
        }
        out
    }

    fn mutate(rng: &mut Rng, pickle: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(pickle.len());
            match rng.below(3) {
                0 => pickle[at] = rng.next() as u8,
                1 => pickle.insert(at, rng.next() as u8),
                _ => {
                    pickle.remove(at);
                }
            }
            if pickle.is_empty() {
                pickle.push(b'.');
            }
        }
    }

    fn text(rng: &mut Rng) -> String {
        let alphabet = ["a", "b", "key", "é", "\u{1f600}", " ", "_", "\\", "'", "\""];
        (0..rng.below(5)).map(|_| alphabet[rng.below(alphabet.len())]).collect()
    }

    fn module(rng: &mut Rng) -> &'static str {
        ["os", "posix", "builtins", "__builtin__", "torch._utils", "collections", "a.b"][rng.below(7)]
    }

    fn name(rng: &mut Rng) -> &'static str {
        ["system", "eval", "OrderedDict", "_rebuild_tensor_v2", "C", "getattr"][rng.below(6)]
    }

    fn global(rng: &mut Rng, out: &mut Vec<u8>) {
        if rng.chance(50) {
            out.extend_from_slice(format!("c{}\n{}\n", module(rng), name(rng)).as_bytes());
        } else {
            for part in [module(rng), name(rng)] {
                out.push(0x8c);
                out.push(part.len() as u8);
                out.extend_from_slice(part.as_bytes());
            }
            out.push(0x93);
        }
    }

    /// One hashable scalar, by any of the opcodes that make one.
    fn scalar(rng: &mut Rng, out: &mut Vec<u8>) {
        let int =
            [0i64, 1, -1, 255, 256, 65535, 65536, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN][rng.below(11)];
        match rng.below(20) {
            0 => out.push(b'N'),
            1 => out.push([0x88, 0x89][rng.below(2)]),
            2 => out.extend_from_slice(format!("I{}\n", ["00", "01", "7", "-3", "+4", "007"][rng.below(6)]).as_bytes()),
            3 => {
                out.push(b'J');
                out.extend_from_slice(&(int as i32).to_le_bytes());
            }
            4 => out.extend_from_slice(&[b'K', int as u8]),
            5 => {
                out.push(b'M');
                out.extend_from_slice(&(int as u16).to_le_bytes());
            }
            6 => out.extend_from_slice(format!("L{int}{}\n", if rng.chance(50) { "L" } else { "" }).as_bytes()),
            7 => {
                let bytes: Vec<u8> = (0..rng.below(12)).map(|_| rng.next() as u8).collect();
                out.extend_from_slice(&[0x8a, bytes.len() as u8]);
                out.extend_from_slice(&bytes);
            }
            8 => {
                let bytes: Vec<u8> = (0..rng.below(12)).map(|_| rng.next() as u8).collect();
                out.push(0x8b);
                out.extend_from_slice(&(bytes.len() as i32).to_le_bytes());
                out.extend_from_slice(&bytes);
            }
            9 => out.extend_from_slice(
                format!("F{}\n", ["1.5", "-0.0", "1e300", "nan", "inf", "3"][rng.below(6)]).as_bytes(),
            ),
            10 => {
                out.push(b'G');
                out.extend_from_slice(&f64::from_bits(rng.next()).to_be_bytes());
            }
            11 => out.extend_from_slice(
                format!("S{}\n", ["'a'", "\"b\"", "'\\x41\\n'", "'é'", "''"][rng.below(5)]).as_bytes(),
            ),
            12 => {
                let t = text(rng);
                out.push(b'T');
                out.extend_from_slice(&(t.len() as i32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            13 => {
                let t = text(rng);
                out.extend_from_slice(&[b'U', t.len() as u8]);
                out.extend_from_slice(t.as_bytes());
            }
            14 => out.extend_from_slice(
                format!("V{}\n", ["a", "\\u00e9", "\\U0001f600", "x\\\\y"][rng.below(4)]).as_bytes(),
            ),
            15 => {
                let t = text(rng);
                out.push(b'X');
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            16 => {
                let t = text(rng);
                out.extend_from_slice(&[0x8c, t.len() as u8]);
                out.extend_from_slice(t.as_bytes());
            }
            17 => {
                let t = text(rng);
                out.push(0x8d);
                out.extend_from_slice(&(t.len() as u64).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            18 => {
                let t = text(rng);
                out.extend_from_slice(&[b'C', t.len() as u8]);
                out.extend_from_slice(t.as_bytes());
            }
            _ => {
                let t = text(rng);
                out.push([b'B', 0x8e, 0x96][rng.below(3)]);
                if *out.last().unwrap() == b'B' {
                    out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                } else {
                    out.extend_from_slice(&(t.len() as u64).to_le_bytes());
                }
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
}

/// CPython's reading of each pickle, from one `python3` process; `None` without python3.
fn cpython(cases: &[Vec<u8>]) -> Option<Vec<Interpretation>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/differential.py");
    let mut child = match Command::new("python3").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("differential: skipped, python3 is not available ({err})");
            return None;
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let input: String = cases.iter().map(|case| hex(case) + "\n").collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let results = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|line| Interpretation::from_json(&line.unwrap()).unwrap())
        .collect();
    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    Some(results)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn safeshift_reads_random_pickles_as_cpython_does() {
    let count: usize = std::env::var("SAFESHIFT_DIFFERENTIAL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let seed: u64 = std::env::var("SAFESHIFT_DIFFERENTIAL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(19);
    let mut rng = generate::Rng(seed | 1);
    let cases: Vec<Vec<u8>> = match std::env::var("SAFESHIFT_DIFFERENTIAL_REPLAY") {
        // Findings of a long run or the fuzz target: one hex pickle per line.
        Ok(file) => std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| (0..line.len()).step_by(2).map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap()).collect())
            .collect(),
        Err(_) => (0..count).map(|_| generate::pickle(&mut rng)).collect(),
    };
    let count = cases.len();
    let Some(theirs) = cpython(&cases) else { return };
    assert_eq!(theirs.len(), cases.len());
    let mut failures = Vec::new();
    let (mut both_read, mut we_refused, mut they_refused) = (0, 0, 0);
    for (case, theirs) in cases.iter().zip(&theirs) {
        let ours = interpret(case);
        match (&ours.error, &theirs.error) {
            (None, None) => both_read += 1,
            (Some(_), _) => we_refused += 1,
            (None, Some(_)) => they_refused += 1,
        }
        if let Some(why) = disagreement(&ours, theirs) {
            failures.push(format!("{}\n  {why}\n  ours: {:?}\n  theirs: {:?}", hex(case), ours.error, theirs.error));
        }
    }
    eprintln!("differential: {count} cases, {both_read} read by both, {we_refused} stopped by safeshift, {they_refused} only by CPython");
    assert!(both_read > count / 4 || count < 100, "too few cases read by both: the generator is off");
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures[..failures.len().min(8)].join("\n"));
}
