//! Which globals a pickle may name: the allow-list (the set `torch.load(weights_only=True)`
//! accepts), and Python 2 name mapping.
//!
//! Nothing here is ever imported or called: a known global only tells the pickle machine how
//! to build a plain value (a tensor, a dict) from its arguments.

use safeshift_model::DType;

/// What an allow-listed global means to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// `torch._utils._rebuild_tensor` (storage, offset, size, stride).
    RebuildTensorV1,
    /// `torch._utils._rebuild_tensor_v2` (storage, offset, size, stride, requires_grad, hooks[, metadata]).
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3` (…, dtype[, metadata]) over an untyped storage.
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter` (tensor, requires_grad, hooks).
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state` (tensor, requires_grad, hooks, state).
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2` (func, type, args, state).
    RebuildFromTypeV2,
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `collections.Counter` (a dict).
    Counter,
    /// `builtins.set`.
    Set,
    /// `builtins.frozenset`.
    FrozenSet,
    /// `_codecs.encode` (how protocol 2 pickles bytes).
    CodecsEncode,
    /// `torch.Size` (a tuple).
    Size,
    /// A storage class; `None` for `UntypedStorage`.
    Storage(Option<DType>),
    /// A storage class torch knows but safetensors cannot hold (quantized, complex128…).
    UnsupportedStorage,
    /// A torch dtype object (`torch.float32`); `None` when safetensors has no equivalent.
    TorchDType(Option<DType>),
    /// Allow-listed and kept as opaque data (`torch.device`, `builtins.slice`, numpy arrays…).
    Data,
    /// `torch.Tensor` / `torch.nn.parameter.Parameter` as a `_rebuild_from_type_v2` type.
    TensorType,
    /// A torch rebuild function for a tensor kind safetensors cannot hold (sparse, quantized,
    /// meta, nested, numpy-backed, wrapper subclasses): allowed, but not convertible.
    UnsupportedTensor,
}

/// What a [`Known::UnsupportedTensor`] rebuild function builds, for error messages.
pub(crate) fn unsupported_tensor_kind(name: &str) -> &'static str {
    match name {
        "_rebuild_sparse_tensor" => "a sparse tensor",
        "_rebuild_qtensor" => "a quantized tensor",
        "_rebuild_meta_tensor_no_storage" => "a meta tensor (no data)",
        "_rebuild_nested_tensor" => "a nested tensor",
        "_rebuild_wrapper_subclass" => "a tensor subclass without storage",
        _ => "a device tensor",
    }
}

/// The Python 3 name of a Python 2 `(module, name)`, as `pickle` maps it on load with
/// `fix_imports` (`_compat_pickle.IMPORT_MAPPING` and `NAME_MAPPING`, the entries that matter
/// for torch files and for naming attacks correctly).
pub(crate) fn python3_name(module: &str, name: &str) -> Option<(String, String)> {
    let renamed = match (module, name) {
        ("__builtin__", "xrange") => Some(("builtins", "range")),
        ("__builtin__", "unicode") => Some(("builtins", "str")),
        ("__builtin__", "basestring") => Some(("builtins", "str")),
        ("__builtin__", "long") => Some(("builtins", "int")),
        ("__builtin__", "reduce") => Some(("functools", "reduce")),
        ("__builtin__", "intern") => Some(("sys", "intern")),
        ("__builtin__", "unichr") => Some(("builtins", "chr")),
        ("__builtin__", "raw_input") => Some(("builtins", "input")),
        ("itertools", "izip") => Some(("builtins", "zip")),
        ("itertools", "imap") => Some(("builtins", "map")),
        ("itertools", "ifilter") => Some(("builtins", "filter")),
        ("UserDict", "UserDict") | ("UserDict", "IterableUserDict") => Some(("collections", "UserDict")),
        ("UserList", "UserList") => Some(("collections", "UserList")),
        ("UserString", "UserString") => Some(("collections", "UserString")),
        ("exceptions", "StandardError") => Some(("builtins", "Exception")),
        ("whichdb", "whichdb") => Some(("dbm", "whichdb")),
        _ => None,
    };
    if let Some((module, name)) = renamed {
        return Some((module.to_string(), name.to_string()));
    }
    let module3 = match module {
        "__builtin__" | "exceptions" => "builtins",
        "copy_reg" => "copyreg",
        "commands" => "subprocess",
        "cPickle" => "pickle",
        "Queue" => "queue",
        "SocketServer" => "socketserver",
        "ConfigParser" => "configparser",
        "repr" => "reprlib",
        "StringIO" | "cStringIO" => "io",
        "UserDict" | "UserList" | "UserString" => "collections",
        "urllib2" => "urllib.request",
        "urlparse" => "urllib.parse",
        "httplib" => "http.client",
        "cookielib" => "http.cookiejar",
        "thread" => "_thread",
        "dummy_thread" => "_dummy_thread",
        "Tkinter" => "tkinter",
        "anydbm" => "dbm",
        "dbm" => "dbm.ndbm",
        "gdbm" => "dbm.gnu",
        "dumbdbm" => "dbm.dumb",
        "HTMLParser" => "html.parser",
        "htmlentitydefs" => "html.entities",
        "xmlrpclib" => "xmlrpc.client",
        "SimpleXMLRPCServer" | "DocXMLRPCServer" => "xmlrpc.server",
        "BaseHTTPServer" | "SimpleHTTPServer" | "CGIHTTPServer" => "http.server",
        "Cookie" => "http.cookies",
        "robotparser" => "urllib.robotparser",
        "_winreg" => "winreg",
        "future_builtins" => "builtins",
        _ => return None,
    };
    Some((module3.to_string(), name.to_string()))
}

/// What an allow-listed global is, after Python 2 mapping; `None` when it is not allowed.
pub(crate) fn lookup(module: &str, name: &str) -> Option<Known> {
    let mapped = python3_name(module, name);
    let (module, name) = match &mapped {
        Some((module, name)) => (module.as_str(), name.as_str()),
        None => (module, name),
    };
    let known = match (module, name) {
        ("torch._utils", "_rebuild_tensor") => Known::RebuildTensorV1,
        ("torch._utils", "_rebuild_tensor_v2") => Known::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Known::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Known::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Known::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Known::RebuildFromTypeV2,
        ("torch._utils", "_rebuild_sparse_tensor")
        | ("torch._utils", "_rebuild_qtensor")
        | ("torch._utils", "_rebuild_meta_tensor_no_storage")
        | ("torch._utils", "_rebuild_nested_tensor")
        | ("torch._utils", "_rebuild_device_tensor_from_numpy")
        | ("torch._utils", "_rebuild_wrapper_subclass")
        | ("torch._utils", "_rebuild_xla_tensor")
        | ("torch._utils", "_rebuild_mtia_tensor") => Known::UnsupportedTensor,
        ("collections", "OrderedDict") => Known::OrderedDict,
        ("collections", "Counter") => Known::Counter,
        ("builtins", "set") => Known::Set,
        ("builtins", "frozenset") => Known::FrozenSet,
        ("_codecs", "encode") => Known::CodecsEncode,
        ("torch", "Size") => Known::Size,
        ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Known::TensorType,
        ("torch.storage", "UntypedStorage") | ("torch", "UntypedStorage") => Known::Storage(None),
        // `torch.cuda.FloatStorage`: legacy files saved from a GPU name the CUDA classes; the
        // location is ignored, the bytes are the same.
        ("torch" | "torch.cuda", storage) if storage.ends_with("Storage") => match storage_dtype(storage) {
            Some(dtype) => Known::Storage(Some(dtype)),
            None if KNOWN_UNSUPPORTED_STORAGES.contains(&storage) => Known::UnsupportedStorage,
            None => return None,
        },
        ("torch", dtype) if TORCH_DTYPES.iter().any(|(name, _)| *name == dtype) => {
            Known::TorchDType(TORCH_DTYPES.iter().find(|(name, _)| *name == dtype).and_then(|(_, d)| *d))
        }
        ("torch", "device")
        | ("torch", "layout")
        | ("torch", "strided")
        | ("torch", "sparse_coo")
        | ("torch", "memory_format")
        | ("torch", "contiguous_format")
        | ("torch", "channels_last")
        | ("torch", "preserve_format")
        | ("torch.serialization", "_get_layout")
        | ("builtins", "bytearray")
        | ("builtins", "slice")
        | ("builtins", "complex")
        | ("numpy.core.multiarray", "_reconstruct")
        | ("numpy._core.multiarray", "_reconstruct")
        | ("numpy.core.multiarray", "scalar")
        | ("numpy._core.multiarray", "scalar")
        | ("numpy", "ndarray")
        | ("numpy", "dtype") => Known::Data,
        _ => return None,
    };
    Some(known)
}

/// The dtype of a legacy typed storage class (`FloatStorage` → F32).
fn storage_dtype(class: &str) -> Option<DType> {
    Some(match class {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        "ComplexFloatStorage" => DType::C64,
        _ => return None,
    })
}

const KNOWN_UNSUPPORTED_STORAGES: &[&str] =
    &["ComplexDoubleStorage", "QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage"];

/// torch dtype objects by attribute name, with their safetensors dtype when there is one.
const TORCH_DTYPES: &[(&str, Option<DType>)] = &[
    ("float64", Some(DType::F64)),
    ("double", Some(DType::F64)),
    ("float32", Some(DType::F32)),
    ("float", Some(DType::F32)),
    ("float16", Some(DType::F16)),
    ("half", Some(DType::F16)),
    ("bfloat16", Some(DType::BF16)),
    ("int64", Some(DType::I64)),
    ("long", Some(DType::I64)),
    ("int32", Some(DType::I32)),
    ("int", Some(DType::I32)),
    ("int16", Some(DType::I16)),
    ("short", Some(DType::I16)),
    ("int8", Some(DType::I8)),
    ("uint8", Some(DType::U8)),
    ("uint16", Some(DType::U16)),
    ("uint32", Some(DType::U32)),
    ("uint64", Some(DType::U64)),
    ("bool", Some(DType::Bool)),
    ("complex64", Some(DType::C64)),
    ("cfloat", Some(DType::C64)),
    ("float8_e4m3fn", Some(DType::F8E4M3)),
    ("float8_e5m2", Some(DType::F8E5M2)),
    ("float8_e8m0fnu", Some(DType::F8E8M0)),
    ("float8_e4m3fnuz", Some(DType::F8E4M3Fnuz)),
    ("float8_e5m2fnuz", Some(DType::F8E5M2Fnuz)),
    ("complex128", None),
    ("cdouble", None),
    ("complex32", None),
    ("qint8", None),
    ("quint8", None),
    ("qint32", None),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python2_aliases_resolve_to_their_python3_names() {
        assert_eq!(python3_name("commands", "Popen"), Some(("subprocess".into(), "Popen".into())));
        assert_eq!(python3_name("__builtin__", "set"), Some(("builtins".into(), "set".into())));
        assert_eq!(python3_name("torch", "FloatStorage"), None);
    }

    #[test]
    fn the_allow_list_holds_torch_rebuilders_and_not_code() {
        assert_eq!(lookup("torch._utils", "_rebuild_tensor_v2"), Some(Known::RebuildTensorV2));
        assert_eq!(lookup("__builtin__", "set"), Some(Known::Set));
        assert_eq!(lookup("torch", "FloatStorage"), Some(Known::Storage(Some(DType::F32))));
        assert_eq!(lookup("torch.cuda", "HalfStorage"), Some(Known::Storage(Some(DType::F16))));
        assert_eq!(lookup("torch", "float8_e4m3fn"), Some(Known::TorchDType(Some(DType::F8E4M3))));
        for (module, name) in [
            ("os", "system"),
            ("posix", "system"),
            ("nt", "system"),
            ("builtins", "eval"),
            ("__builtin__", "eval"),
            ("builtins", "exec"),
            ("builtins", "getattr"),
            ("commands", "Popen"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("torch", "NotAStorage"),
            ("copy_reg", "_reconstructor"),
        ] {
            assert_eq!(lookup(module, name), None, "{module}.{name}");
        }
    }
}
