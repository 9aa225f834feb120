//! Replays the fuzz corpus on the stable toolchain: every seed and crash reproducer of
//! `crates/fuzz/corpus/<target>/` goes through the target's checks
//! (`hotlead_tests::fuzz_checks`), the same ones the fuzz targets run, so a regression of
//! anything a campaign found fails `cargo test`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use hotlead_tests::fuzz_checks::TARGETS;
use hotlead_tests::repo_file;

#[test]
fn every_seed_and_reproducer_passes_its_target_checks() {
    let corpus = repo_file("crates/fuzz/corpus");
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let dir = corpus.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(
            files.len() >= 5,
            "{}: a target has a seed corpus",
            dir.display()
        );
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "checks failed on {failures:#?}");
}

#[test]
fn every_target_has_a_fuzz_target_and_a_corpus() {
    let mut listed: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    listed.sort();
    for (dir, ext) in [
        ("crates/fuzz/fuzz_targets", ".rs"),
        ("crates/fuzz/corpus", ""),
    ] {
        let mut found: Vec<String> = std::fs::read_dir(repo_file(dir))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.strip_suffix(ext).map(str::to_string))
            .collect();
        found.sort();
        assert_eq!(found, listed, "{dir}");
    }
}
