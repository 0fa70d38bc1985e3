//! Errors: what went wrong (a kind) and in which file.

use std::fmt;
use std::path::PathBuf;

/// An error while reading a PyTorch checkpoint: the file and what went wrong. The message
/// is complete on its own (no cause chain repeats it).
#[derive(Debug, thiserror::Error)]
#[error("`{}`: {kind}", path.display())]
pub struct TorchError {
    /// The checkpoint (for in-memory input, the name it was given).
    pub path: PathBuf,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong while reading a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(std::io::Error),
    /// The file is neither a zip checkpoint nor a legacy pickle checkpoint.
    #[error("not a PyTorch checkpoint: {0}")]
    NotACheckpoint(String),
    /// The zip container is broken, lies about sizes, or uses a feature `torch.save` never writes.
    #[error("zip: {0}")]
    Zip(ZipError),
    /// The pickle stream is malformed or exceeds a limit.
    #[error("`{member}`: byte {offset}: {reason}")]
    Pickle {
        /// The pickle member (`<dir>/data.pkl`, or `pickle N` in a legacy file).
        member: String,
        /// Byte offset of the offending opcode in the pickle.
        offset: u64,
        /// What is wrong.
        reason: PickleError,
    },
    /// The pickle holds code-execution gadgets (deny-listed globals or structural gadget
    /// patterns, see the hazard verdict); refused unless `allow_gadgets` is set. The first
    /// gadget, with every other one in [`Forbidden::also`].
    #[error("refusing to read it: {0} (nothing was run; pass --allow-gadgets to read it anyway)")]
    Forbidden(Box<Forbidden>),
    /// A storage referenced by a tensor is missing or has the wrong size.
    #[error("storage `{key}` (tensor `{tensor}`): {reason}")]
    Storage {
        /// The storage key (`0`, `1`, …; memory addresses in legacy files).
        key: String,
        /// The first tensor that uses it.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's view does not fit its storage, or its dtype has no safetensors equivalent.
    #[error("tensor `{tensor}`: {reason}")]
    Tensor {
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The object in the pickle is not a checkpoint shape we can take tensors from.
    #[error("{0}")]
    Structure(String),
    /// The Anemoi metadata or supporting arrays are malformed.
    #[error("anemoi metadata: {0}")]
    Anemoi(String),
    /// A documented limit was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// What grew too large.
        what: &'static str,
        /// The limit (see [`crate::Limits`]).
        limit: u64,
    },
}

/// A code-execution gadget: a deny-listed global `torch.load` would import and call, or a
/// structural pattern (a call of a computed callable…), with where it is in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forbidden {
    /// The pickle member.
    pub member: String,
    /// The byte offset of the opcode that would call it (REDUCE, NEWOBJ, INST, OBJ, BUILD…),
    /// or that names it (GLOBAL, STACK_GLOBAL) when it is never called.
    pub offset: u64,
    /// The opcode name.
    pub opcode: &'static str,
    /// The global as written (`commands.Popen`), `None` when the callee is not a global.
    pub global: Option<String>,
    /// The Python 3 name when the pickle used a Python 2 alias (`subprocess.Popen`).
    pub python3_name: Option<String>,
    /// Byte offset of the GLOBAL/STACK_GLOBAL opcode that named it, when that is not
    /// `offset`.
    pub global_offset: Option<u64>,
    /// Why it is a gadget.
    pub why: String,
    /// The other gadgets of the file, when this is the first one of a refusal.
    pub also: Vec<Forbidden>,
}

impl Forbidden {
    /// This gadget, then each one in [`Forbidden::also`].
    pub fn all(&self) -> impl Iterator<Item = &Forbidden> {
        std::iter::once(self).chain(self.also.iter())
    }
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.global {
            Some(global) => {
                write!(f, "forbidden global `{global}`")?;
                if let Some(name) = &self.python3_name {
                    write!(f, " (Python 2 name of `{name}`)")?;
                }
                write!(f, ": {} at byte {} of `{}`", self.opcode, self.offset, self.member)?;
                if let Some(at) = self.global_offset {
                    write!(f, " (named at byte {at})")?;
                }
                write!(f, ": {}", self.why)?;
            }
            None => write!(f, "{} at byte {} of `{}` {}", self.opcode, self.offset, self.member, self.why)?,
        }
        if !self.also.is_empty() {
            write!(f, "; {} more gadget(s):", self.also.len())?;
            for other in &self.also {
                write!(f, " [{other}]")?;
            }
        }
        Ok(())
    }
}

/// A malformed zip container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZipError {
    /// No end-of-central-directory record.
    #[error("no end of central directory record (not a zip file, or truncated)")]
    NoEndRecord,
    /// A record is malformed.
    #[error("{0}")]
    Malformed(String),
    /// A member's declared size or offset lies outside the file.
    #[error("member `{member}`: {reason}")]
    BadMember {
        /// The member name.
        member: String,
        /// What is wrong.
        reason: String,
    },
    /// A member is compressed; `torch.save` writes only stored members.
    #[error("member `{member}` is compressed (method {method}); torch.save writes only stored members, refusing to inflate it")]
    Compressed {
        /// The member name.
        member: String,
        /// The zip compression method.
        method: u16,
    },
    /// The archive could be read two ways (several end records, a member named twice,
    /// overlapping members, local and central headers that disagree): torch's reader and
    /// another could see different files, so safeshift reads neither.
    #[error("ambiguous archive: {0}")]
    Ambiguous(String),
    /// A member's CRC-32 does not match its bytes.
    #[error("member `{member}`: CRC-32 mismatch (the file is corrupt)")]
    Crc {
        /// The member name.
        member: String,
    },
}

/// A malformed pickle stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// The stream ended inside an opcode or before STOP.
    #[error("unexpected end of the pickle")]
    UnexpectedEnd,
    /// A byte that is no pickle opcode.
    #[error("unknown opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    /// An opcode we refuse, and why.
    #[error("opcode {opcode} refused: {why}")]
    Refused {
        /// The opcode name.
        opcode: &'static str,
        /// Why.
        why: &'static str,
    },
    /// An opcode needed more values than the stack holds.
    #[error("{0}: stack underflow")]
    StackUnderflow(&'static str),
    /// An opcode needed a MARK and there is none.
    #[error("{0}: no MARK on the stack")]
    NoMark(&'static str),
    /// GET of a memo slot never PUT.
    #[error("memo slot {0} is empty")]
    MemoMissing(u64),
    /// A documented limit was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// What grew too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A read crosses the end of a protocol-4 FRAME (or frames nest, or STOP ends a pickle
    /// inside a frame), where CPython's unpicklers could read other bytes than safeshift.
    #[error("framing: {0}")]
    Framing(String),
    /// A value has the wrong type or content for where it is used.
    #[error("{0}")]
    BadValue(String),
}

impl From<ZipError> for ErrorKind {
    fn from(err: ZipError) -> ErrorKind {
        ErrorKind::Zip(err)
    }
}

impl TorchError {
    /// Wraps `kind` with the file it happened in.
    pub fn new(path: impl Into<PathBuf>, kind: ErrorKind) -> TorchError {
        TorchError { path: path.into(), kind }
    }
}
