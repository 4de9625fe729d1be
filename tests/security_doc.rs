//! SECURITY.md names, for each promise, the tests that check it: every test
//! it names must exist in the file it names, so the page cannot point at a
//! test that was renamed or removed.

use std::path::Path;

#[test]
fn every_test_security_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("SECURITY.md")).unwrap();
    let mut checked = 0;
    for line in page.lines().filter(|l| l.starts_with('|')) {
        // Cells hold `path.rs::name` and then `::name` for more tests in the
        // same file.
        let mut file: Option<String> = None;
        for code in line.split('`').skip(1).step_by(2) {
            let (path, name) = match code.split_once("::") {
                Some((path, name)) if path.ends_with(".rs") => {
                    file = Some(path.to_owned());
                    (path.to_owned(), name)
                }
                Some(("", name)) => match &file {
                    Some(path) => (path.clone(), name),
                    None => panic!("{code} without a file before it: {line}"),
                },
                _ => continue,
            };
            let text = std::fs::read_to_string(root.join(&path))
                .unwrap_or_else(|e| panic!("SECURITY.md names {path}: {e}"));
            assert!(
                text.contains(&format!("fn {name}(")),
                "SECURITY.md names {path}::{name}, which does not exist"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} test references found");
}
