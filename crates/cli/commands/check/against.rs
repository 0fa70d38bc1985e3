//! `safeshift check --against LAYOUT`: does today's model layout equal the registry
//! head's schema? If not, the difference and a drafted migration to the new layout.

use std::collections::BTreeMap;

use safeshift_evolve::{diff, draft, schema_names, DraftOptions};
use safeshift_graph::{detect, DetectError, Registry};
use safeshift_model::unify;

use crate::exit_codes::ExitStatus;
use crate::printer::anyhow_like::Error;
use crate::registry::RegistryArgs;

/// Compares the layout in `input` with the head schema of `family` (or of the family the
/// layout is nearest to).
pub fn run(
    input: &str,
    family: Option<&str>,
    registry_args: &RegistryArgs,
    pickle: &crate::pickle::PickleArgs,
    registry: &Registry,
) -> Result<ExitStatus, Error> {
    let opened = crate::layout_input::open(input, registry_args, pickle)?;
    let layout = &opened.layout;
    let family = match family {
        Some(family) => family.to_owned(),
        None => match detect(registry, layout, &BTreeMap::new()) {
            Ok(found) => found.version.family,
            Err(DetectError::NoFit { nearest }) if !nearest.is_empty() => nearest[0].version.family.clone(),
            Err(err) => return Err(format!("cannot tell the family of `{input}` ({err}); pass --family").into()),
        },
    };
    let head = registry.graph().head(&family).ok_or_else(|| format!("no single head version for family `{family}`"))?;
    let schema = registry.schema_of(&head).ok_or_else(|| format!("`{head}` has no usable schema"))?;
    let mismatch = match unify(schema, layout, &BTreeMap::new()) {
        Ok(_) => {
            println!("`{input}` matches `{head}`, the head of `{family}`");
            return Ok(ExitStatus::Success);
        }
        Err(mismatch) => mismatch,
    };
    println!("`{input}` does not match `{head}`, the head of `{family}`:");
    print!("{mismatch}");
    if !mismatch.to_string().ends_with('\n') {
        println!();
    }
    // The head's layout at the sizes the new layout binds, so that shapes line up.
    let dims = safeshift_graph::synth_dims(registry, &head, &mismatch.dims);
    let head_layout = safeshift_graph::synth(registry, &head, &dims, 0)?.layout;
    let found = diff(&head_layout, layout, None);
    println!("\nDifference from `{head}`:");
    print!("{}", found.table());
    let next =
        semver::Version { patch: head.version.patch + 1, pre: semver::Prerelease::EMPTY, ..head.version.clone() };
    let options = DraftOptions {
        family: family.clone(),
        from: head.version.to_string(),
        to: next.to_string(),
        ..DraftOptions::default()
    };
    let drafted = draft(&head_layout, &found, &schema_names(schema, &dims), &options)?;
    println!(
        "\nA drafted migration ({} unresolved; also add the schema: `safeshift schema infer {input} --family {family} --version {next}`):\n",
        drafted.unresolved
    );
    print!("{}", drafted.text);
    Ok(ExitStatus::No)
}
