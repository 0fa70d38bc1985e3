//! Anemoi checkpoints of several datasets (0.12 and later): a synthetic two-dataset 0.12.1
//! checkpoint upgrades to 0.19.0 with a map of encoder and decoder names, is refused without
//! one, and per-dataset copies that 0.13 merges must be equal unless a lossy result is allowed.
//! Expected values are computed here from the source file.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::{ok, safeshift};

const DATASETS: [&str; 2] = ["era5", "cerra"];
/// Edge counts of the synthetic checkpoint (`safeshift.yaml`: enc_edges, dec_edges).
const ENC_EDGES: usize = 24;
const DEC_EDGES: usize = 30;

type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn read(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.dtype(), view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

fn write(path: &Path, tensors: &Tensors) {
    let views = tensors.iter().map(|(name, (dtype, shape, data))| {
        (name.clone(), safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap())
    });
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Destination rows of each dataset's edge sets: different per dataset, not sorted.
fn destinations(dataset: usize, edges: usize) -> Vec<i64> {
    (0..edges).map(|edge| ((edge * 7 + dataset * 3) % 5) as i64).collect()
}

/// A graph file with `<ds>_to_hidden.edge_index` and `hidden_to_<ds>.edge_index` per dataset.
fn write_graph(path: &Path) {
    let mut tensors = Tensors::new();
    for (index, dataset) in DATASETS.iter().enumerate() {
        for (name, edges) in [(format!("{dataset}_to_hidden"), ENC_EDGES), (format!("hidden_to_{dataset}"), DEC_EDGES)]
        {
            let src: Vec<i64> = (0..edges as i64).collect();
            let data = src.iter().chain(&destinations(index, edges)).flat_map(|v| v.to_le_bytes()).collect();
            tensors.insert(format!("{name}.edge_index"), (Dtype::I64, vec![2, edges], data));
        }
    }
    write(path, &tensors);
}

/// Rows of `tensor` in the stable order of `keys` (computed here, plainly).
fn sorted_rows(tensor: &(Dtype, Vec<usize>, Vec<u8>), keys: &[i64]) -> Vec<u8> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&edge| keys[edge]);
    let row = tensor.2.len() / tensor.1[0];
    order.iter().flat_map(|&edge| tensor.2[edge * row..(edge + 1) * row].to_vec()).collect()
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// A two-dataset 0.12.1 checkpoint (`equal`: its per-dataset `hidden` copies made equal).
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let random = dir.path().join("random.safetensors");
        let capture = format!("dataset={}", DATASETS.join(","));
        ok(&["synth", "anemoi.encprocdec@0.12.1", "--capture", &capture, "-o", random.to_str().unwrap()]);
        let mut tensors = read(&random);
        for rest in ["latlons_hidden", "trainable_tensors.hidden.trainable"] {
            let first = tensors[&format!("model.model.node_attributes.era5.{rest}")].clone();
            tensors.insert(format!("model.model.node_attributes.cerra.{rest}"), first);
        }
        write(&dir.path().join("equal.safetensors"), &tensors);
        write_graph(&dir.path().join("graph.safetensors"));
        Case { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn upgrade(&self, input: &str, extra: &[&str]) -> std::process::Output {
        let graph = format!("graph={}", self.path("graph.safetensors"));
        let mut args = vec!["upgrade".to_owned(), self.path(input), "-o".into(), self.path("out.safetensors")];
        args.extend(["--aux".to_owned(), graph]);
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        safeshift(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

const NAME_MAP: [&str; 4] =
    ["--param", "encoder_names=era5:global,cerra:regional", "--param", "decoder_names=era5:global,cerra:regional"];

#[test]
fn two_datasets_upgrade_to_0_19_0_with_a_name_map() {
    let case = Case::new();
    let output = case.upgrade("equal.safetensors", &NAME_MAP);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let source = read(&case.dir.path().join("equal.safetensors"));
    let upgraded = read(&case.dir.path().join("out.safetensors"));
    for (index, (dataset, name)) in DATASETS.iter().zip(["global", "regional"]).enumerate() {
        for mapper in ["encoder", "decoder"] {
            let weight = format!("model.model.{mapper}.{dataset}.proc.lin_key.weight");
            assert_eq!(upgraded[&format!("model.model.{mapper}.{name}.proc.lin_key.weight")], source[&weight]);
            let version = &upgraded[&format!("model.model.{mapper}_graph_provider.{dataset}.trainable_layout_version")];
            assert_eq!(version.2, 1i64.to_le_bytes());
        }
        let old = &source[&format!("model.model.encoder_graph_provider.{dataset}.trainable.trainable")];
        let new = &upgraded[&format!("model.model.encoder_graph_provider.{dataset}.trainable.trainable")];
        assert_eq!(new.2, sorted_rows(old, &destinations(index, ENC_EDGES)), "{dataset}: encoder edges by destination");
        let old = &source[&format!("model.model.decoder_graph_provider.{dataset}.trainable.trainable")];
        let new = &upgraded[&format!("model.model.decoder_graph_provider.{dataset}.trainable.trainable")];
        assert_eq!(new.2, sorted_rows(old, &destinations(index, DEC_EDGES)), "{dataset}: decoder edges by destination");
        assert_eq!(
            upgraded[&format!("model.model.node_attributes.latlons_{dataset}")],
            source[&format!("model.model.node_attributes.{dataset}.latlons_data")]
        );
        for side in ["pre", "post"] {
            let p = format!("model.{side}_processors.{dataset}.processors.normalizer");
            assert_eq!(upgraded[&format!("{p}._model_output_idx")], source[&format!("{p}._output_idx")]);
        }
    }
    assert_eq!(
        upgraded["model.model.node_attributes.latlons_hidden"],
        source["model.model.node_attributes.era5.latlons_hidden"]
    );
    let detect = ok(&["detect", &case.path("out.safetensors")]);
    assert!(String::from_utf8_lossy(&detect.stdout).starts_with("anemoi.encprocdec@0.19.0"));

    // The way back to 0.17.0 needs the map too, and then gives the tensors 0.17.0 had.
    let graph = format!("graph={}", case.path("graph.safetensors"));
    let (up, back) = (case.path("out.safetensors"), case.path("back.safetensors"));
    let refused = safeshift(&["downgrade", &up, "-o", &back, "--to", "0.17.0", "--aux", &graph]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("needs the key of each of `global`, `regional`"), "{stderr}");
    let mut args = vec!["downgrade", up.as_str(), "-o", back.as_str(), "--to", "0.17.0", "--aux", graph.as_str()];
    args.extend(NAME_MAP);
    ok(&args);
    let at_0_17 = case.path("at-0.17.safetensors");
    let mut args = vec!["upgrade", "", "-o", at_0_17.as_str(), "--to", "0.17.0", "--aux", graph.as_str()];
    let equal = case.path("equal.safetensors");
    args[1] = equal.as_str();
    ok(&args);
    assert_eq!(read(Path::new(&back)), read(Path::new(&at_0_17)));
}

#[test]
fn two_datasets_without_a_name_map_are_refused_naming_the_parameter() {
    let case = Case::new();
    let output = case.upgrade("equal.safetensors", &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the parameter `encoder_names`")
            && stderr.contains("needs a value for each of `cerra`, `era5`"),
        "{stderr}"
    );
    assert!(stderr.contains("--param encoder_names=cerra:NAME,era5:NAME"), "{stderr}");
    assert!(!case.dir.path().join("out.safetensors").exists());
    let partial = case.upgrade("equal.safetensors", &["--param", "encoder_names=era5:global"]);
    let stderr = String::from_utf8_lossy(&partial.stderr);
    assert!(stderr.contains("needs a value for each of `cerra`"), "{stderr}");
}

#[test]
fn unequal_per_dataset_copies_are_a_lossy_merge() {
    let case = Case::new();
    let output = case.upgrade("random.safetensors", &NAME_MAP);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`model.model.node_attributes.cerra.latlons_hidden`, `model.model.node_attributes.era5.latlons_hidden` differ"),
        "{stderr}"
    );
    assert!(!case.dir.path().join("out.safetensors").exists(), "no output after a refused merge");
    let mut args = NAME_MAP.to_vec();
    args.push("--allow-lossy");
    let output = case.upgrade("random.safetensors", &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let source = read(&case.dir.path().join("random.safetensors"));
    let upgraded = read(&case.dir.path().join("out.safetensors"));
    assert_eq!(
        upgraded["model.model.node_attributes.latlons_hidden"],
        source["model.model.node_attributes.cerra.latlons_hidden"],
        "allowed, the first copy in the file (`cerra`, as synth wrote it) is kept"
    );
}

#[test]
fn a_misspelt_parameter_is_refused_not_ignored() {
    let case = Case::new();
    let output = case.upgrade("equal.safetensors", &["--param", "encoder_name=era5:global,cerra:regional"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "no migration takes a parameter `encoder_name`; the parameters are `decoder_names`, `encoder_names`"
        ),
        "{stderr}"
    );
}
