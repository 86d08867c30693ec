//! Every checked-in fuzz input through the entry its target runs, under the normal
//! `cargo test`: the corpora the fuzzers grew (`fuzz/corpus/<target>/`, and
//! `fuzz/corpus/common/` through every plugin target) and every input that once crashed a
//! target (`fuzz/regressions/<target>/`). A failure names the file.

use std::path::{Path, PathBuf};

use cni_fuzz_entries::{COMMON, PLUGINS, run, targets};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/entries has a parent")
        .to_path_buf()
}

/// The files of `fuzz/<kind>/<dir>/`, none when it is missing (git keeps no empty
/// directory: a plugin whose inputs all add to the common corpus has none).
fn inputs(kind: &str, dir: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(dir)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("list a corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file of `fuzz/<kind>/<dir>/` through each of `targets`; returns how many runs
/// there were and the failures, each naming its file.
fn replay(kind: &str, dir: &str, targets: &[&str], failures: &mut Vec<String>) -> usize {
    let mut ran = 0;
    for file in inputs(kind, dir) {
        let data = std::fs::read(&file).expect("read a corpus file");
        for target in targets {
            match std::panic::catch_unwind(|| run(target, &data)) {
                Ok(Some(())) => ran += 1,
                Ok(None) => failures.push(format!("{target}: no such target")),
                Err(_) => failures.push(format!(
                    "{target}: {} (see the panic above)",
                    file.display()
                )),
            }
        }
    }
    ran
}

#[test]
fn every_corpus_input_runs_without_a_panic() {
    assert!(
        !inputs("corpus", COMMON).is_empty() && !inputs("corpus", "control").is_empty(),
        "fuzz/corpus/common/ and fuzz/corpus/control/ hold the checked-in corpus"
    );
    let mut failures = Vec::new();
    let mut ran = replay("corpus", COMMON, PLUGINS, &mut failures);
    for target in targets() {
        ran += replay("corpus", target, &[target], &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{ran} runs of corpus inputs");
}

#[test]
fn every_regression_runs_without_a_panic() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for target in targets() {
        ran += replay("regressions", target, &[target], &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{ran} regression inputs ran");
}

#[test]
fn every_corpus_directory_is_a_target() {
    for kind in ["corpus", "regressions"] {
        let Ok(dirs) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for dir in dirs {
            let name = dir.expect("list the fuzz directory").file_name();
            let name = name.to_string_lossy();
            assert!(
                targets().any(|t| t == name.as_ref()) || (kind == "corpus" && name == COMMON),
                "fuzz/{kind}/{name} names no target: its files would never run"
            );
        }
    }
}
