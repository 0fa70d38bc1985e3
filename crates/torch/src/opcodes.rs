//! The pickle opcodes (protocols 0 to 5), by name, as `Lib/pickle.py` and `pickletools`
//! define them.

macro_rules! opcodes {
    ($($name:ident = $byte:expr, $doc:literal;)*) => {
        $(#[doc = $doc] pub(crate) const $name: u8 = $byte;)*

        /// The name of opcode `byte`, `None` when no protocol defines it.
        pub(crate) fn name(byte: u8) -> Option<&'static str> {
            match byte {
                $($name => Some(stringify!($name)),)*
                _ => None,
            }
        }
    };
}

opcodes! {
    MARK = b'(', "Pushes a mark on the stack.";
    STOP = b'.', "Ends the pickle; its value is the top of the stack.";
    POP = b'0', "Discards the top of the stack.";
    POP_MARK = b'1', "Discards everything down to the topmost mark.";
    DUP = b'2', "Pushes the top of the stack again.";
    FLOAT = b'F', "A float as decimal text.";
    INT = b'I', "An int (or `00`/`01` booleans) as decimal text.";
    BININT = b'J', "A 4-byte signed int.";
    BININT1 = b'K', "A 1-byte unsigned int.";
    LONG = b'L', "An int as decimal text ending in `L`.";
    BININT2 = b'M', "A 2-byte unsigned int.";
    NONE = b'N', "Pushes None.";
    PERSID = b'P', "A persistent id as text.";
    BINPERSID = b'Q', "A persistent id taken from the stack.";
    REDUCE = b'R', "Calls a callable with an argument tuple.";
    STRING = b'S', "A quoted Python 2 str.";
    BINSTRING = b'T', "A Python 2 str with a 4-byte length.";
    SHORT_BINSTRING = b'U', "A Python 2 str with a 1-byte length.";
    UNICODE = b'V', "A str in raw-unicode-escape text.";
    BINUNICODE = b'X', "A UTF-8 str with a 4-byte length.";
    APPEND = b'a', "Appends to a list.";
    BUILD = b'b', "Sets an object's state (`__setstate__` or `__dict__`).";
    GLOBAL = b'c', "Pushes `module.name` given as two text lines.";
    DICT = b'd', "Builds a dict from the items above the mark.";
    EMPTY_DICT = b'}', "Pushes an empty dict.";
    APPENDS = b'e', "Extends a list with the items above the mark.";
    GET = b'g', "Pushes a memo entry, index as text.";
    BINGET = b'h', "Pushes a memo entry, 1-byte index.";
    INST = b'i', "Instantiates `module.name` with the items above the mark.";
    LONG_BINGET = b'j', "Pushes a memo entry, 4-byte index.";
    LIST = b'l', "Builds a list from the items above the mark.";
    EMPTY_LIST = b']', "Pushes an empty list.";
    OBJ = b'o', "Instantiates the first item above the mark with the others.";
    PUT = b'p', "Stores the top of the stack in the memo, index as text.";
    BINPUT = b'q', "Stores the top of the stack in the memo, 1-byte index.";
    LONG_BINPUT = b'r', "Stores the top of the stack in the memo, 4-byte index.";
    SETITEM = b's', "Sets one dict item.";
    TUPLE = b't', "Builds a tuple from the items above the mark.";
    EMPTY_TUPLE = b')', "Pushes an empty tuple.";
    SETITEMS = b'u', "Sets the dict items above the mark.";
    BINFLOAT = b'G', "An 8-byte big-endian float.";
    PROTO = 0x80, "The protocol version.";
    NEWOBJ = 0x81, "`cls.__new__(cls, *args)`.";
    EXT1 = 0x82, "A global from the extension registry, 1-byte code.";
    EXT2 = 0x83, "A global from the extension registry, 2-byte code.";
    EXT4 = 0x84, "A global from the extension registry, 4-byte code.";
    TUPLE1 = 0x85, "Builds a 1-tuple from the top of the stack.";
    TUPLE2 = 0x86, "Builds a 2-tuple from the top of the stack.";
    TUPLE3 = 0x87, "Builds a 3-tuple from the top of the stack.";
    NEWTRUE = 0x88, "Pushes True.";
    NEWFALSE = 0x89, "Pushes False.";
    LONG1 = 0x8a, "An int, little-endian two's complement, 1-byte length.";
    LONG4 = 0x8b, "An int, little-endian two's complement, 4-byte length.";
    BINBYTES = b'B', "Bytes with a 4-byte length.";
    SHORT_BINBYTES = b'C', "Bytes with a 1-byte length.";
    SHORT_BINUNICODE = 0x8c, "A UTF-8 str with a 1-byte length.";
    BINUNICODE8 = 0x8d, "A UTF-8 str with an 8-byte length.";
    BINBYTES8 = 0x8e, "Bytes with an 8-byte length.";
    EMPTY_SET = 0x8f, "Pushes an empty set.";
    ADDITEMS = 0x90, "Adds the items above the mark to a set.";
    FROZENSET = 0x91, "Builds a frozenset from the items above the mark.";
    NEWOBJ_EX = 0x92, "`cls.__new__(cls, *args, **kwargs)`.";
    STACK_GLOBAL = 0x93, "Pushes `module.name` taken from the stack.";
    MEMOIZE = 0x94, "Stores the top of the stack in the next memo slot.";
    FRAME = 0x95, "Starts a frame of the given length (protocol 4).";
    BYTEARRAY8 = 0x96, "A bytearray with an 8-byte length.";
    NEXT_BUFFER = 0x97, "An out-of-band buffer.";
    READONLY_BUFFER = 0x98, "Makes the top buffer read-only.";
}

/// Whether any protocol defines opcode `byte`.
pub(crate) fn is_known(byte: u8) -> bool {
    name(byte).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_68_opcodes_with_their_pickletools_names() {
        assert_eq!((0..=255u8).filter(|&b| is_known(b)).count(), 68);
        assert_eq!(name(0x95), Some("FRAME"));
        assert_eq!(name(b'c'), Some("GLOBAL"));
        assert_eq!(name(0xff), None);
    }
}
