//! The workspace's structure as data: which source file of a crate uses which (through `crate::`
//! and `super::` paths), the import cycles among them, and the files too long to read in one
//! sitting. Read from the text of the sources; no compiler involved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's sources: file path (relative to the crate) → text.
pub type Sources = BTreeMap<String, String>;

/// Reads the non-test sources of the crate at `dir` (`src/**/*.rs`, without `tests.rs` files
/// and `tests/` folders inside `src/`).
pub fn read_crate(dir: &Path) -> std::io::Result<Sources> {
    let mut out = Sources::new();
    let mut stack = vec![dir.join("src")];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "tests" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(relative, std::fs::read_to_string(&path)?);
            }
        }
    }
    Ok(out)
}

/// The module path of a source file: `src/a/b.rs` and `src/a/b/mod.rs` → `[a, b]`.
fn module_of(file: &str) -> Vec<String> {
    let inner = file.strip_prefix("src/").unwrap_or(file);
    let inner = inner.strip_suffix(".rs").unwrap_or(inner);
    let mut parts: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Every `crate::…` / `super::…` / `self::…` path a text names outside comments, `use` groups
/// expanded.
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    let mut out = Vec::new();
    // `use` declarations (at the start of a line), with their `{…}` groups.
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        let declaration = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p));
        let Some(tail) = declaration else { continue };
        let from = start + (line.len() - tail.len());
        let Some(end) = text[from..].find(';') else {
            continue;
        };
        // `a as b` becomes `a@b`; every other blank goes.
        let tree: String = text[from..from + end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace(" as ", "@")
            .replace(' ', "");
        expand(&tree, &mut Vec::new(), &mut out);
    }
    // Paths written inline (`crate::text::quoted(…)`, `super::ClusterState`).
    let bytes = text.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            if at > 0 && bytes[at - 1] == b':' {
                continue; // the middle of a longer path, counted from its start
            }
            let path: Vec<String> = text[at..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            out.push(path);
        }
    }
    out
}

/// Expands one `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree.find('{') {
        None => {
            let mut path = prefix.clone();
            path.extend(
                tree.split('@')
                    .next()
                    .unwrap_or("")
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            out.push(path);
        }
        Some(open) => {
            let head = &tree[..open];
            let Some(close) = tree.rfind('}').filter(|c| *c > open) else {
                return;
            };
            let depth = prefix.len();
            prefix.extend(
                head.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            for part in split_top(&tree[open + 1..close]) {
                expand(part, prefix, out);
            }
            prefix.truncate(depth);
        }
    }
}

/// Splits a `use` group's inside at its top-level commas.
fn split_top(inside: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inside.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(inside[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(inside[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Which file of the crate `path`, named from the module `from`, lands in.
fn resolve(
    path: &[String],
    from: &[String],
    modules: &BTreeMap<Vec<String>, String>,
) -> Option<String> {
    let (mut base, mut rest): (Vec<String>, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (from.to_vec(), &path[1..]),
        Some("super") => {
            let mut base = from.to_vec();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => return None,
    };
    let mut best = modules.get(&base).cloned();
    while let Some(segment) = rest.first() {
        base.push(segment.clone());
        rest = &rest[1..];
        if let Some(file) = modules.get(&base) {
            best = Some(file.clone());
        }
    }
    best
}

/// True when one module is the other or contains it (a module's face and its parts).
fn nested(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// File → the files it uses. Uses between a module and the modules inside it (a `mod.rs` that
/// re-exports its parts, a part that names its parent's type) are not counted: they are one
/// concept's face and body.
pub fn uses(sources: &Sources) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<Vec<String>, String> =
        sources.keys().map(|f| (module_of(f), f.clone())).collect();
    let mut graph = BTreeMap::new();
    for (file, text) in sources {
        let from = module_of(file);
        let mut targets = BTreeSet::new();
        for path in paths_in(text) {
            if let Some(target) = resolve(&path, &from, &modules)
                && !nested(&module_of(&target), &from)
            {
                targets.insert(target);
            }
        }
        graph.insert(file.clone(), targets);
    }
    graph
}

/// The import cycles: sets of two or more files that use each other, each sorted.
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components, iteratively.
    let names: Vec<&String> = graph.keys().collect();
    let index_of: BTreeMap<&String, usize> =
        names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            graph[*n]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let n = names.len();
    let (mut index, mut low, mut on_stack) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next, mut found) = (Vec::new(), 0usize, Vec::new());
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some((v, edge)) = work.pop() {
            if edge == 0 {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(edge) {
                work.push((v, edge + 1));
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(names[w].clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    found.push(component);
                }
            }
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
        }
    }
    found.sort();
    found
}

/// Files longer than `max` lines, with their length.
pub fn too_long(sources: &Sources, max: usize) -> Vec<(String, usize)> {
    sources
        .iter()
        .map(|(f, text)| (f.clone(), text.lines().count()))
        .filter(|(_, lines)| *lines > max)
        .collect()
}

/// The workspace's crates (folders with a `Cargo.toml` and a `src/`).
pub fn workspace_crates(root: &Path) -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file() && p.join("src").is_dir())
        .collect();
    crates.sort();
    crates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_of(files: &[(&str, &str)]) -> Sources {
        files
            .iter()
            .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn finds_a_cycle_through_grouped_and_inline_paths() {
        let sources = crate_of(&[
            ("src/lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("src/a.rs", "use crate::{b::{self, Thing}, c};\n"),
            (
                "src/b.rs",
                "/// Not `crate::a`.\nfn f() { crate::c::g(); }\n",
            ),
            ("src/c.rs", "use super::a::X;\n"),
        ]);
        assert_eq!(
            cycles(&uses(&sources)),
            vec![vec!["src/a.rs", "src/b.rs", "src/c.rs"]]
        );
    }

    #[test]
    fn sibling_cycles_inside_a_folder_count_but_a_face_and_its_parts_do_not() {
        let sources = crate_of(&[
            ("src/lib.rs", "pub mod m;\n"),
            (
                "src/m/mod.rs",
                "mod x;\nmod y;\npub use x::X;\npub struct State;\n",
            ),
            ("src/m/x.rs", "use super::State;\nuse super::y::Y;\n"),
            ("src/m/y.rs", "use super::{State, x::X};\n"),
        ]);
        assert_eq!(
            cycles(&uses(&sources)),
            vec![vec!["src/m/x.rs", "src/m/y.rs"]]
        );
    }

    #[test]
    fn a_layered_crate_has_no_cycle() {
        let sources = crate_of(&[
            ("src/lib.rs", "pub mod a;\npub mod b;\n"),
            ("src/a.rs", "pub struct A;\n"),
            (
                "src/b.rs",
                "use crate::a::A;\nuse std::collections::BTreeMap;\n",
            ),
        ]);
        assert!(cycles(&uses(&sources)).is_empty());
        assert_eq!(
            uses(&sources)["src/b.rs"],
            BTreeSet::from(["src/a.rs".to_owned()])
        );
    }

    #[test]
    fn long_files_are_named() {
        let sources = crate_of(&[("src/lib.rs", "x\n"), ("src/big.rs", &"x\n".repeat(801))]);
        assert_eq!(
            too_long(&sources, 800),
            vec![("src/big.rs".to_owned(), 801)]
        );
    }
}
