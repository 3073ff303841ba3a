//! The layer rule of `streetsync-core` (see the crate docs and `docs/architecture.md`): a module
//! imports only from layers below it, and there are no import circles. Read from the source
//! text, so a `crate::` path that points up a layer fails here before a reviewer has to spot it.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and its layer; a module may import from strictly lower layers only.
/// `testing` (the test hooks) sits on top and may use everything.
const LAYERS: &[(&str, u32)] = &[
    ("kinds", 0),
    ("clock", 0),
    ("allocator", 0),
    ("error", 1),
    ("crypto", 2),
    ("model", 3),
    ("doc", 4),
    ("query", 4),
    ("store", 5),
    ("engine", 6),
    ("workspace", 7),
    ("sync", 8),
    ("testing", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`engine/remote.rs` -> `engine`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without its `#[cfg(test)]` tail (unit tests may use any layer) and without
/// comments.
fn code(text: &str) -> String {
    // `#[cfg(test)]`, maybe more attributes, then `mod tests`.
    let tail = text.match_indices("#[cfg(test)]").find(|(i, _)| {
        text[*i..]
            .lines()
            .skip(1)
            .find(|l| !l.trim_start().starts_with("#["))
            .is_some_and(|l| l.trim_start().starts_with("mod tests"))
    });
    let text = match tail {
        Some((i, _)) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which names the crate root re-exports from which module (`pub use engine::...::{A, B}`).
fn root_names() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut names = BTreeMap::new();
    let lib = code(&lib);
    for stmt in lib.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let module = rest.split("::").next().unwrap().trim().to_owned();
        let items = match rest.find('{') {
            Some(i) => rest[i + 1..].trim_end_matches('}').to_owned(),
            None => rest.rsplit("::").next().unwrap().to_owned(),
        };
        for item in items.split(',') {
            let item = item.trim();
            if !item.is_empty() {
                names.insert(item.to_owned(), module.clone());
            }
        }
    }
    names
}

/// Every module a file's code names through `crate::`.
fn imports(code: &str, roots: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if rest.starts_with('{') {
            let end = rest.find('}').unwrap_or(rest.len());
            for item in rest[1..end].split(',') {
                let head = item.trim().split("::").next().unwrap_or("").trim();
                add(head, roots, &mut out);
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            add(&head, roots, &mut out);
        }
    }
    out
}

fn add(head: &str, roots: &BTreeMap<String, String>, out: &mut BTreeSet<String>) {
    if head.is_empty() {
        return;
    }
    if LAYERS.iter().any(|(m, _)| *m == head) {
        out.insert(head.to_owned());
    } else if let Some(m) = roots.get(head) {
        out.insert(m.clone());
    }
}

fn layer(m: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, l)| *l)
}

#[test]
fn imports_point_down_the_layers_only() {
    let roots = root_names();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for f in &files {
        if f.file_name().is_some_and(|n| n == "lib.rs") {
            continue;
        }
        let m = module_of(f);
        seen_modules.insert(m.clone());
        let Some(own) = layer(&m) else {
            wrong.push(format!("{}: module `{m}` has no layer", f.display()));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for dep in imports(&code(&text), &roots) {
            if dep == m {
                continue;
            }
            let to = layer(&dep).unwrap();
            if to >= own {
                wrong.push(format!(
                    "{}: `{m}` (layer {own}) imports `{dep}` (layer {to})",
                    f.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
    // Every layer named above exists, so the table cannot rot unnoticed.
    for (m, _) in LAYERS {
        assert!(
            seen_modules.contains(*m),
            "layer table names missing module `{m}`"
        );
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    let roots = root_names();
    // A root re-export resolves to its module: `Workspace` is the facade.
    let deps = imports(
        "use crate::{Error, Workspace};\nlet x = crate::engine::Engine;",
        &roots,
    );
    assert!(deps.contains("workspace"), "{deps:?}");
    assert!(deps.contains("error"), "{deps:?}");
    assert!(deps.contains("engine"), "{deps:?}");
    // Comments and unit tests are not code.
    let c = code("// crate::sync::x\nfn a() {}\n#[cfg(test)]\nmod tests { use crate::sync; }");
    assert!(imports(&c, &roots).is_empty());
}
