//! `--json` shapes that several commands print (each command's own records live in its
//! file). Library types carry no `Serialize`: their JSON form is written here.

use safeshift_torch::Forbidden;
use serde_json::{json, Value};

/// A gadget of a pickle (`scan`, `convert`, `inspect`).
pub fn json_gadget(gadget: &Forbidden) -> Value {
    json!({
        "global": gadget.global,
        "python3_name": gadget.python3_name,
        "member": gadget.member,
        "offset": gadget.offset,
        "opcode": gadget.opcode,
        "named_at": gadget.global_offset,
        "why": gadget.why,
    })
}
