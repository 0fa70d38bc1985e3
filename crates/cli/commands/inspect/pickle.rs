//! `safeshift inspect` of a PyTorch pickle: what `convert` would take from it — the state
//! dict, the extras, the metadata keys, the classes read as data and any gadget — read
//! without running anything. A file with gadgets is refused like everywhere else unless
//! `--allow-gadgets`; then they are listed (`safeshift scan` gives the whole verdict).

use safeshift_torch::{Converted, ConvertedTensor};
use serde_json::{json, Value};

use super::InspectArgs;
use crate::exit_codes::ExitStatus;
use crate::json::json_gadget;
use crate::printer::anyhow_like::Error;
use crate::render::{human_size, pickle_format_name, sanitize};

/// Runs `safeshift inspect` on a pickle checkpoint.
pub fn run(args: &InspectArgs) -> Result<ExitStatus, Error> {
    let matcher = match &args.filter {
        Some(glob) => Some(globset::Glob::new(glob)?.compile_matcher()),
        None => None,
    };
    let converted = safeshift_torch::open(&args.path, &args.pickle.read_options().pickle)?;
    let list = args.tensors || matcher.is_some();
    let listed = |tensors: &[ConvertedTensor]| -> Vec<usize> {
        if !list {
            return Vec::new();
        }
        (0..tensors.len()).filter(|&i| matcher.as_ref().is_none_or(|m| m.is_match(&tensors[i].name))).collect()
    };
    let (tensors, extras) = (listed(converted.tensors()), listed(converted.extras()));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_output(args, &converted, list, &tensors, &extras))?);
    } else {
        print!("{}", human_output(args, &converted, &tensors, &extras));
    }
    Ok(ExitStatus::Success)
}

fn bytes_of(tensor: &ConvertedTensor) -> u64 {
    tensor.dtype.byte_len(tensor.shape.iter().product()).unwrap_or(0)
}

fn human_output(args: &InspectArgs, converted: &Converted, tensors: &[usize], extras: &[usize]) -> String {
    let total = |all: &[ConvertedTensor]| all.iter().map(bytes_of).sum::<u64>();
    let format = pickle_format_name(converted.format());
    let mut out = format!("{} (PyTorch pickle, {format})\n", sanitize(&args.path.display().to_string()));
    out.push_str(&format!(
        "  state dict  {} tensors ({})\n",
        converted.tensors().len(),
        human_size(total(converted.tensors()))
    ));
    out.push_str(&format!(
        "  extras      {} tensors ({})\n",
        converted.extras().len(),
        human_size(total(converted.extras()))
    ));
    let keys: Vec<&str> = converted.metadata().keys().map(String::as_str).collect();
    out.push_str(&format!("  metadata    {}\n", sanitize(&keys.join(", "))));
    if !converted.data_classes().is_empty() {
        out.push_str(&format!("  read as data ({} classes)\n", converted.data_classes().len()));
        for class in converted.data_classes() {
            out.push_str(&format!("    {}\n", sanitize(class)));
        }
    }
    for gadget in converted.gadgets() {
        out.push_str(&format!("  gadget (not run, --allow-gadgets): {}\n", sanitize(&gadget.to_string())));
    }
    for (title, all, listed) in [("tensors", converted.tensors(), tensors), ("extras", converted.extras(), extras)] {
        if listed.is_empty() {
            continue;
        }
        out.push_str(&format!("{title} ({} listed)\n", listed.len()));
        for &index in listed {
            let tensor = &all[index];
            let shape = tensor.shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
            out.push_str(&format!(
                "  {}  {}  [{shape}]  {}\n",
                sanitize(&tensor.name),
                tensor.dtype.safetensors_name(),
                bytes_of(tensor)
            ));
        }
    }
    out
}

fn json_output(args: &InspectArgs, converted: &Converted, list: bool, tensors: &[usize], extras: &[usize]) -> Value {
    let rows = |all: &[ConvertedTensor], listed: &[usize]| -> Vec<Value> {
        listed
            .iter()
            .map(|&i| {
                let t = &all[i];
                json!({ "name": t.name, "dtype": t.dtype.safetensors_name(), "shape": t.shape, "bytes": bytes_of(t) })
            })
            .collect()
    };
    let mut data = json!({
        "path": args.path.to_string_lossy(),
        "format": pickle_format_name(converted.format()),
        "tensor_count": converted.tensors().len(),
        "extras_count": converted.extras().len(),
        "metadata": converted.metadata(),
        "data_classes": converted.data_classes(),
        "gadgets": converted.gadgets().iter().map(json_gadget).collect::<Vec<_>>(),
    });
    if list {
        data["tensors"] = Value::Array(rows(converted.tensors(), tensors));
        data["extras"] = Value::Array(rows(converted.extras(), extras));
    }
    json!({ "type": "inspect", "data": data })
}
