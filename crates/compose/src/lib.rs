//! Composition ahead of time: a component whose imports other components
//! export is plugged with them, into one component that imports only what
//! none of them provide. This is what Spin does at load time for
//! `[component.<id>.dependencies]`; `wasmtime serve` and Wasm clouds without
//! it need the composed file.
//!
//! Unlike `wac plug` (one level: plugs into the socket only), plugs here may
//! feed each other: each instance's imports are looked up among the exports
//! of the plugs instantiated before it, so the variables shim can serve both
//! the store plug and the socket. A plug that matches nothing, or an export
//! whose type does not fit the import, is not skipped silently: the import
//! stays an import, and [`imports`] shows it (the build checks the result).

use anyhow::{bail, Context};
use wac_graph::types::{Package, SubtypeChecker, World};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// A component to compose, with a name for messages.
pub struct Part<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// `socket` with its imports plugged from `plugs` (in order: a plug's own
/// imports may be served by the plugs before it), exporting what `socket`
/// exports. Each plug must serve at least one import, or it is an error.
pub fn compose(socket: Part, plugs: &[Part]) -> anyhow::Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let mut instances: Vec<(&str, PackageId, NodeId)> = Vec::new();
    let mut used = vec![false; plugs.len()];
    for part in plugs.iter().chain(std::iter::once(&socket)) {
        let package = register(&mut graph, part)?;
        let instance = graph.instantiate(package);
        let imports: Vec<String> = graph.types()[graph[package].ty()]
            .imports
            .keys()
            .cloned()
            .collect();
        for import in imports {
            if let Some(provider) = provider(&graph, &instances, package, &import) {
                let (_, _, node) = instances[provider];
                let export = graph
                    .alias_instance_export(node, &import)
                    .with_context(|| format!("{}: export `{import}`", instances[provider].0))?;
                graph
                    .set_instantiation_argument(instance, &import, export)
                    .with_context(|| format!("{}: import `{import}`", part.name))?;
                used[provider] = true;
            }
        }
        instances.push((part.name, package, instance));
    }
    if let Some(unused) = used.iter().position(|u| !u) {
        bail!(
            "{} serves no import of {} or of the plugs after it",
            plugs[unused].name,
            socket.name
        );
    }
    let (_, package, instance) = *instances.last().expect("the socket");
    let exports: Vec<String> = graph.types()[graph[package].ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in exports {
        let export = graph.alias_instance_export(instance, &name)?;
        graph.export(export, &name)?;
    }
    graph
        .encode(EncodeOptions::default())
        .with_context(|| format!("encoding {} composed", socket.name))
}

/// The names a component imports (`wasi:http/types@0.2.12`, …), in order.
pub fn imports(bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    names(bytes, |world| world.imports.keys().cloned().collect())
}

/// The names a component exports, in order.
pub fn exports(bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    names(bytes, |world| world.exports.keys().cloned().collect())
}

fn names(bytes: &[u8], pick: impl Fn(&World) -> Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut graph = CompositionGraph::new();
    let part = Part {
        name: "component",
        bytes,
    };
    let package = register(&mut graph, &part)?;
    Ok(pick(&graph.types()[graph[package].ty()]))
}

fn register(graph: &mut CompositionGraph, part: &Part) -> anyhow::Result<PackageId> {
    // Package names only tell parts apart inside the graph.
    let key = format!(
        "cromflag:{}",
        part.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let package = Package::from_bytes(&key, None, part.bytes.to_vec(), graph.types_mut())
        .with_context(|| format!("{} is not a component", part.name))?;
    graph
        .register_package(package)
        .with_context(|| format!("registering {}", part.name))
}

/// The latest instance before this one that exports `import` with a type
/// that fits it.
fn provider(
    graph: &CompositionGraph,
    instances: &[(&str, PackageId, NodeId)],
    package: PackageId,
    import: &str,
) -> Option<usize> {
    let wanted = graph.types()[graph[package].ty()].imports[import];
    let mut cache = Default::default();
    let mut checker = SubtypeChecker::new(&mut cache);
    instances.iter().rposition(|(_, provider, _)| {
        graph.types()[graph[*provider].ty()]
            .exports
            .get(import)
            .is_some_and(|offered| {
                checker
                    .is_subtype(*offered, graph.types(), wanted, graph.types())
                    .is_ok()
            })
    })
}
