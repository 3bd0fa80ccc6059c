//! Checks that no two top-level modules of the agent's library import each
//! other, directly or around a longer loop (docs/architecture.md says which
//! layer each is in). Only production code counts: a file is read up to its
//! first `#[cfg(test)]`, and test-only files are skipped.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fs;
    use std::path::{Path, PathBuf};

    /// The top-level module a file of `src` belongs to.
    fn module_of(src: &Path, file: &Path) -> Option<String> {
        let relative = file.strip_prefix(src).ok()?;
        let first = relative.components().next()?.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (!matches!(name, "lib" | "main")).then(|| name.to_owned())
    }

    fn is_test_file(file: &Path) -> bool {
        file.components().any(|part| {
            let part = part.as_os_str().to_string_lossy();
            let stem = part.strip_suffix(".rs").unwrap_or(&part);
            stem == "tests"
                || stem.ends_with("_tests")
                || matches!(stem, "fakes" | "fixtures" | "mock_tests")
        })
    }

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("readable source tree") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    /// The first segments of every `crate::` path in `code`, grouped
    /// imports (`crate::{a::x, b}`) included.
    fn crate_modules(code: &str) -> BTreeSet<String> {
        let mut modules = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0usize;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            modules.extend(first_segment(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        item.push(c);
                    }
                }
                modules.extend(first_segment(&item));
            } else {
                modules.extend(first_segment(rest));
            }
        }
        modules
    }

    fn first_segment(path: &str) -> Option<String> {
        let name: String = path
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty() && name.chars().next().is_some_and(|c| c.is_lowercase())).then_some(name)
    }

    /// Which top-level module imports which, from production code only.
    fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in files.iter().filter(|f| !is_test_file(f)) {
            let Some(module) = module_of(src, file) else {
                continue;
            };
            let text = fs::read_to_string(file).expect("readable source");
            let production = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: String = production
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let is_module = |name: &str| {
                name != module
                    && (src.join(format!("{name}.rs")).exists() || src.join(name).is_dir())
            };
            let used: BTreeSet<String> = crate_modules(&code)
                .into_iter()
                .filter(|name| is_module(name))
                .collect();
            graph.entry(module).or_default().extend(used);
        }
        graph
    }

    /// A loop through `graph`, if any, as the modules along it.
    fn a_loop(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            node: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
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
            for next in graph.get(node).into_iter().flatten() {
                if let Some(found) = visit(next, graph, path, done) {
                    return Some(found);
                }
            }
            path.pop();
            done.insert(node.to_owned());
            None
        }
        let mut done = BTreeSet::new();
        graph
            .keys()
            .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
    }

    #[test]
    fn no_top_level_module_of_the_agent_imports_one_that_imports_it_back() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../responder-user/src");
        let graph = imports(&src);
        assert!(
            graph.contains_key("cluster") && graph.contains_key("k8s"),
            "{graph:?}"
        );
        assert!(
            graph["cluster"].contains("k8s"),
            "the graph is read: {graph:?}"
        );
        assert_eq!(a_loop(&graph), None, "{graph:#?}");
    }

    #[test]
    fn a_loop_is_found_and_grouped_imports_are_read() {
        let modules = crate_modules("use crate::{a::x, b::{y, z}, c};\nlet v = crate::d::f();");
        assert_eq!(modules, ["a", "b", "c", "d"].map(String::from).into());
        let graph: BTreeMap<String, BTreeSet<String>> = [
            ("a".to_owned(), ["b".to_owned()].into()),
            ("b".to_owned(), ["c".to_owned()].into()),
            ("c".to_owned(), ["a".to_owned()].into()),
        ]
        .into();
        assert_eq!(
            a_loop(&graph),
            Some(["a", "b", "c", "a"].map(String::from).to_vec())
        );
    }
}
