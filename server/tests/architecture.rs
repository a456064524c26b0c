//! The import rule of `ARCHITECTURE.md`, checked against the code: in each
//! crate it lists, every module uses only modules of the layers below its
//! own (or of its own subtree), nothing uses the crate root, and no modules
//! import each other in a circle.
//!
//! The layers come from the `layers` blocks of `ARCHITECTURE.md` (one layer
//! a line, top first), so the page and the check cannot drift apart.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path within a crate (`[]` is the crate root).
type ModPath = Vec<String>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `layers` blocks: source dir → layers (top first).
fn layer_blocks() -> Vec<(String, Vec<Vec<String>>)> {
    let page = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let mut blocks = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        let Some(src) = line.strip_prefix("```text layers ") else {
            continue;
        };
        let mut layers = Vec::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            let layer: Vec<String> = line
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect();
            if !layer.is_empty() {
                layers.push(layer);
            }
        }
        blocks.push((src.trim().to_owned(), layers));
    }
    blocks
}

/// Every module of the crate whose sources are in `src`, by path.
fn modules(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    fn walk(dir: &Path, prefix: &ModPath, out: &mut BTreeMap<ModPath, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut p = prefix.clone();
                p.push(name);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut p = prefix.clone();
                match name.as_str() {
                    "mod" => {}
                    "lib" | "main" if prefix.is_empty() => {
                        if name == "main" {
                            continue; // the binary is its own crate
                        }
                    }
                    _ => p.push(name),
                }
                out.insert(p, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &Vec::new(), &mut out);
    out
}

/// The code of a file without comments (doc links are not imports) and
/// without its unit tests (an inline `mod tests`, last in the file by
/// convention, whose `super::` is the file's own module).
fn code(text: &str) -> String {
    let end = text
        .find("\n#[cfg(test)]\nmod tests")
        .or_else(|| text.find("\n#[cfg(test)]\n#[allow(clippy::unwrap_used)]\nmod tests"))
        .unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_chars(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a file names: `crate::…`, `super::…`, `self::…`, and
/// `use child::…` of its own child modules, with one level of braces
/// expanded (`use super::{a::X, b}`).
fn named_paths(code: &str, me: &ModPath, is_dir_module: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // The module `super` and `self` resolve against.
    let here: ModPath = me.clone();
    let parent: ModPath = me[..me.len().saturating_sub(1)].to_vec();
    let _ = is_dir_module;
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !ident_chars(bytes[i - 1]) && bytes[i - 1] != ':';
        let rest: String = bytes[i..bytes.len().min(i + 8)].iter().collect();
        let (base, skip) = if starts_word && rest.starts_with("crate::") {
            (Vec::new(), 7)
        } else if starts_word && rest.starts_with("super::") {
            (parent.clone(), 7)
        } else if starts_word && rest.starts_with("self::") {
            (here.clone(), 6)
        } else {
            i += 1;
            continue;
        };
        let mut j = i + skip;
        let mut segs = Vec::new();
        loop {
            // `super::super::…`
            let tail: String = bytes[j..bytes.len().min(j + 7)].iter().collect();
            if tail == "super::" && segs.is_empty() && base.len() < here.len() {
                segs.push("..".to_owned());
                j += 7;
                continue;
            }
            let start = j;
            while j < bytes.len() && ident_chars(bytes[j]) {
                j += 1;
            }
            if j == start {
                break;
            }
            segs.push(bytes[start..j].iter().collect());
            if bytes.get(j) == Some(&':') && bytes.get(j + 1) == Some(&':') {
                j += 2;
                if bytes.get(j) == Some(&'{') {
                    // One level of braces.
                    let close = (j..bytes.len()).find(|&k| bytes[k] == '}').unwrap_or(j);
                    let inner: String = bytes[j + 1..close].iter().collect();
                    for item in inner.split(',') {
                        let item = item.trim();
                        let first: String = item.chars().take_while(|c| ident_chars(*c)).collect();
                        if !first.is_empty() && first != "self" {
                            let mut p = resolve_base(&base, &segs);
                            p.push(first);
                            out.push(p);
                        }
                    }
                    j = close;
                    segs.push("{".to_owned());
                    break;
                }
            } else {
                break;
            }
        }
        if segs.last().map(String::as_str) != Some("{") {
            out.push(resolve_base(&base, &segs));
        } else {
            let mut s = segs.clone();
            s.pop();
            out.push(resolve_base(&base, &s));
        }
        i = j.max(i + 1);
    }
    // `use child::…` (2018-style paths relative to this module).
    for line in code.lines() {
        let line = line.trim_start();
        let Some(rest) = line
            .strip_prefix("pub(crate) use ")
            .or_else(|| line.strip_prefix("pub(super) use "))
            .or_else(|| line.strip_prefix("pub use "))
            .or_else(|| line.strip_prefix("use "))
        else {
            continue;
        };
        let first: String = rest.chars().take_while(|c| ident_chars(*c)).collect();
        if !first.is_empty() && rest[first.len()..].starts_with("::") {
            let mut p = here.clone();
            p.push(first);
            out.push(p);
        }
    }
    out
}

fn resolve_base(base: &ModPath, segs: &[String]) -> Vec<String> {
    let mut p = base.clone();
    for s in segs {
        if s == ".." {
            p.pop();
        } else {
            p.push(s.clone());
        }
    }
    p
}

/// The longest module path that `path` starts with.
fn module_of(path: &[String], modules: &BTreeMap<ModPath, PathBuf>) -> Option<ModPath> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains_key(p))
}

struct Report {
    problems: Vec<String>,
}

fn check_crate(src_rel: &str, layers: &[Vec<String>], report: &mut Report) {
    let src = repo().join(src_rel);
    let modules = modules(&src);
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().map(move |m| (m.as_str(), i)))
        .collect();
    // Every top-level module has a layer.
    for m in modules.keys().filter(|m| m.len() == 1) {
        if !rank.contains_key(m[0].as_str()) {
            report.problems.push(format!(
                "{src_rel}: module `{}` is in no layer of ARCHITECTURE.md",
                m[0]
            ));
        }
    }
    for listed in rank.keys() {
        if !modules.contains_key(&vec![(*listed).to_owned()]) {
            report.problems.push(format!(
                "{src_rel}: ARCHITECTURE.md lists `{listed}`, which is not a module"
            ));
        }
    }
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (me, file) in &modules {
        let text = code(&std::fs::read_to_string(file).unwrap());
        let is_dir = file.file_name().is_some_and(|n| n == "mod.rs");
        for path in named_paths(&text, me, is_dir) {
            let Some(target) = module_of(&path, &modules) else {
                continue;
            };
            if &target == me {
                continue;
            }
            if me.is_empty() {
                continue; // the root declares and re-exports
            }
            if target.is_empty() {
                report.problems.push(format!(
                    "{src_rel}: `{}` uses the crate root (`{}`); name the module instead",
                    me.join("::"),
                    path.join("::")
                ));
                continue;
            }
            if me[0] != target[0] {
                let (a, b) = (rank.get(me[0].as_str()), rank.get(target[0].as_str()));
                if let (Some(a), Some(b)) = (a, b) {
                    if b <= a {
                        report.problems.push(format!(
                            "{src_rel}: `{}` (layer {a}) uses `{}` (layer {b}); a module may use only the layers below its own",
                            me.join("::"),
                            target.join("::")
                        ));
                    }
                }
            }
            edges.entry(me.clone()).or_default().insert(target);
        }
    }
    // No cycles among modules.
    fn visit(
        m: &ModPath,
        edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        state: &mut BTreeMap<ModPath, u8>,
        stack: &mut Vec<ModPath>,
        cycles: &mut Vec<Vec<ModPath>>,
    ) {
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for n in edges.get(m).into_iter().flatten() {
            match state.get(n) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == n).unwrap_or(0);
                    cycles.push(stack[at..].to_vec());
                }
                Some(_) => {}
                None => visit(n, edges, state, stack, cycles),
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for m in modules.keys() {
        if !state.contains_key(m) {
            visit(m, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    for c in cycles {
        let names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
        report.problems.push(format!(
            "{src_rel}: import cycle: {} -> {}",
            names.join(" -> "),
            names[0]
        ));
    }
}

#[test]
fn modules_use_only_the_layers_below_them_and_never_in_a_circle() {
    let blocks = layer_blocks();
    assert!(
        blocks.iter().any(|(s, _)| s == "server/src")
            && blocks.iter().any(|(s, _)| s == "transport/src"),
        "ARCHITECTURE.md must give the layers of server/src and transport/src"
    );
    let mut report = Report {
        problems: Vec::new(),
    };
    for (src, layers) in &blocks {
        check_crate(src, layers, &mut report);
    }
    assert!(
        report.problems.is_empty(),
        "the import rule is broken:\n{}",
        report.problems.join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle_and_an_upward_import() {
    // A crate in a temporary directory that breaks both rules.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("low")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod high;\nmod low;\n").unwrap();
    std::fs::write(src.join("high.rs"), "use crate::low::a::X;\n").unwrap();
    std::fs::write(
        src.join("low/mod.rs"),
        "mod a;\nmod b;\nuse crate::high::Y;\n",
    )
    .unwrap();
    std::fs::write(src.join("low/a.rs"), "use super::b::Z;\n").unwrap();
    std::fs::write(
        src.join("low/b.rs"),
        "// crate::high::Q in a comment is not an import\nuse super::a::X;\n",
    )
    .unwrap();
    let rel = pathdiff(&src);
    let mut report = Report {
        problems: Vec::new(),
    };
    check_crate(
        &rel,
        &[vec!["high".into()], vec!["low".into()]],
        &mut report,
    );
    let text = report.problems.join("\n");
    assert!(
        text.contains("`low` (layer 1) uses `high` (layer 0)"),
        "{text}"
    );
    assert!(text.contains("import cycle: low::a -> low::b"), "{text}");
    assert!(
        !text.contains("low::b` (layer"),
        "comments are not imports: {text}"
    );
}

/// `path` relative to the repository root (the checker takes such paths).
fn pathdiff(path: &Path) -> String {
    let root = repo().canonicalize().unwrap();
    let up = root.components().count();
    let mut rel = PathBuf::new();
    for _ in 0..up {
        rel.push("..");
    }
    rel.push(path.strip_prefix("/").unwrap_or(path));
    rel.to_string_lossy().into_owned()
}
