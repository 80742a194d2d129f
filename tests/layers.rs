//! The layers run one way: among the modules of `src/`, no module reaches,
//! through the modules it names, back to itself. Checked on the source text:
//! every `crate::a::b` and `super::x` path outside `#[cfg(test)]` (in `use`
//! lines, grouped or not, and in code) is an arrow from the file's module to
//! the module it names, between siblings at the level where the two paths
//! part. `.ci/run` runs this with the rest of the tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every module of `src/` (the library's), by its path, with its source text.
/// `AUTHGRAPH_LAYERS_SRC` names another tree to check (an older checkout).
fn modules() -> BTreeMap<Module, String> {
    let root = std::env::var_os("AUTHGRAPH_LAYERS_SRC")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Module = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => continue, // the binary, above every layer
                Some("lib") if module.len() == 1 => module.clear(),
                Some("mod") => {
                    module.pop();
                }
                _ => {}
            }
            found.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
    // Tests may reach anywhere: drop what follows `#[cfg(test)]` in a file,
    // and the files of modules declared under it (`#[cfg(test)] mod tests;`).
    let test_only: Vec<Module> = found
        .iter()
        .flat_map(|(module, text)| {
            text.split("#[cfg(test)]").skip(1).filter_map(move |after| {
                let name = after.trim_start().strip_prefix("mod ")?.split(';').next()?;
                let mut child = module.clone();
                child.push(name.trim().to_owned());
                Some(child)
            })
        })
        .collect();
    for module in test_only {
        found.remove(&module);
    }
    for text in found.values_mut() {
        *text = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
    }
    found
}

/// The paths `text` names from `crate` or `super`, resolved against `module`.
fn references(module: &Module, text: &str) -> Vec<Module> {
    let mut paths = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (start, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            // `crate::` inside an identifier (`my_crate::`) is not ours.
            if code[..start]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let mut base: Module = module.clone();
            let mut rest = &code[start..];
            if rest.starts_with("crate::") {
                base.clear();
                rest = &rest["crate::".len()..];
            } else {
                while let Some(after) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = after;
                }
            }
            for tail in expand(rest) {
                let mut path = base.clone();
                path.extend(tail);
                paths.push(path);
            }
        }
    }
    paths
}

/// `a::b::C` → [[a, b, C]]; `{a::b, c}` → [[a, b], [c]]; a group's items
/// are split at its own commas.
fn expand(rest: &str) -> Vec<Vec<String>> {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        return items
            .iter()
            .flat_map(|item| expand(item.trim()))
            .filter(|path| !path.is_empty())
            .collect();
    }
    let mut path = Vec::new();
    let mut rest = rest;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(after) if after.starts_with('{') => {
                let mut prefixed = Vec::new();
                for tail in expand(after) {
                    let mut full = path.clone();
                    full.extend(tail);
                    prefixed.push(full);
                }
                return prefixed;
            }
            Some(after) => rest = after,
            None => break,
        }
    }
    vec![path]
}

/// Arrows between sibling modules: (parent, from, to).
fn arrows(modules: &BTreeMap<Module, String>) -> BTreeSet<(Module, String, String)> {
    let mut arrows = BTreeSet::new();
    for (module, text) in modules {
        for target in references(module, text) {
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common >= module.len() || common >= target.len() {
                continue; // into its own children, or up to an item of an ancestor
            }
            let parent = module[..common].to_vec();
            let mut sibling = parent.clone();
            sibling.push(target[common].clone());
            if modules.contains_key(&sibling) {
                arrows.insert((parent, module[common].clone(), target[common].clone()));
            }
        }
    }
    arrows
}

/// A cycle among the arrows under one parent, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_of_src_depends_on_itself_through_others() {
    let modules = modules();
    assert!(
        modules.contains_key(&vec!["store".to_owned()]),
        "found src/"
    );
    let mut levels: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (parent, from, to) in arrows(&modules) {
        levels
            .entry(parent)
            .or_default()
            .entry(from)
            .or_default()
            .insert(to);
    }
    let top = &levels[&Vec::new()];
    // The map, for whoever runs this with --nocapture.
    for (from, to) in top {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        eprintln!("{from} -> {}", to.join(", "));
    }
    for (from, to) in [
        ("graphql", "store"),
        ("http", "graphql"),
        ("graphql", "auth"),
    ] {
        assert!(
            top[from].contains(to),
            "the check sees {from} -> {to}: {top:?}"
        );
    }
    let mut cycles = Vec::new();
    for (parent, edges) in &levels {
        if let Some(found) = cycle(edges) {
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{}::", parent.join("::"))
            };
            cycles.push(format!("{prefix}{}", found.join(&format!(" -> {prefix}"))));
        }
    }
    assert!(cycles.is_empty(), "module cycles: {cycles:#?}");
}

#[test]
fn the_check_finds_a_cycle_and_reads_grouped_uses() {
    let mut modules = BTreeMap::new();
    let module = |path: &str| -> Module { path.split("::").map(str::to_owned).collect() };
    modules.insert(module("a"), "use crate::{b::X, c};".to_owned());
    modules.insert(module("b"), "fn f() { crate::c::g() }".to_owned());
    modules.insert(module("c"), "use super::a::Y;".to_owned());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, from, to) in arrows(&modules) {
        edges.entry(from).or_default().insert(to);
    }
    assert_eq!(edges["a"], BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    assert_eq!(
        cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    modules.insert(module("c"), "// use super::a::Y;".to_owned());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, from, to) in arrows(&modules) {
        edges.entry(from).or_default().insert(to);
    }
    assert_eq!(cycle(&edges), None);
}
