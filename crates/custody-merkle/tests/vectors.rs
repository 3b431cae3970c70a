//! The published transparency-dev/merkle proof vectors (a copy lives in
//! `tests/data/transparency-dev-merkle`, see its SOURCE.md): every case with `wantErr: false`
//! must verify and every other case must be rejected, and the happy paths over the RFC 6962
//! reference tree must be exactly the proofs this crate builds. The tests count the files they
//! check per directory, so missing data fails them instead of passing vacuously.
//!
//! The Go verifier these vectors were written for takes hashes as byte strings of any length; here
//! a hash is a `[u8; 32]`, so a value in a vector that is not 32 bytes (an empty string, the
//! placeholders "don't care 1", "WrongRoot", "WrongLeaf") cannot even be passed. Rather than let
//! the decoding step reject those cases, the test feeds the verifier a stand-in,
//! `SHA-256("not a 32-byte " || role || bytes)` with the role `leaf`, `root` or `proof`: equal
//! placeholders in the same role stay equal (two "don't care" roots of a size-1 tree are
//! consistent, as in Go), different ones stay different, none collides with a real hash, and a
//! non-hash leaf never equals a non-hash root (Go refuses such a leaf outright: "leafHash has
//! unexpected size"). So every case reaches the verifier and the verifier decides.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use custody_merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion, Hash,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transparency-dev-merkle/testdata")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

/// Decodes a base64 hash; a value that is not 32 bytes becomes its stand-in for `role` (module
/// docs). The flag says whether a stand-in was used.
fn hash(b64: &str, role: &str) -> (Hash, bool) {
    let bytes = B64.decode(b64).expect("vector base64");
    match Hash::try_from(bytes.as_slice()) {
        Ok(h) => (h, false),
        Err(_) => {
            let mut h = Sha256::new();
            h.update(b"not a 32-byte ");
            h.update(role.as_bytes());
            h.update(&bytes);
            (h.finalize().into(), true)
        }
    }
}

fn hashes(list: &Option<Vec<String>>) -> (Vec<Hash>, bool) {
    let mut any = false;
    let out = list
        .iter()
        .flatten()
        .map(|s| {
            let (h, stand_in) = hash(s, "proof");
            any |= stand_in;
            h
        })
        .collect();
    (out, any)
}

/// Every `*.json` under `dir`, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(data_dir()).unwrap().display().to_string()
}

fn parent_dir(path: &Path) -> String {
    rel(path.parent().unwrap())
}

/// The RFC 6962 reference leaves the numbered vector directories are built over.
fn reference_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| leaf_hash(&hex::decode(h).unwrap()))
    .collect()
}

/// Asserts that every expected directory was seen with at least one file, and the totals.
fn check_counts(
    kind: &str,
    counts: &BTreeMap<String, usize>,
    expected_dirs: &[&str],
    total: usize,
) {
    eprintln!("{kind}: checked files per directory: {counts:?}");
    for dir in expected_dirs {
        let n = counts.get(*dir).copied().unwrap_or(0);
        assert!(n > 0, "{kind}: no vector files checked in {dir}");
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        total,
        "{kind}: number of vector files checked"
    );
}

#[test]
fn inclusion_vectors() {
    let files = json_files(&data_dir().join("inclusion"));
    let mut counts = BTreeMap::<String, usize>::new();
    let (mut accepted, mut rejected, mut stand_ins) = (0, 0, 0);
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let case: InclusionCase =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", rel(path)));
        if path.file_name().unwrap() == "happy-path.json" {
            assert!(!case.want_err, "{}: a happy path wants an error", rel(path));
        }
        *counts.entry(parent_dir(path)).or_default() += 1;
        let (leaf, s1) = hash(&case.leaf_hash, "leaf");
        let (root, s2) = hash(&case.root, "root");
        let (proof, s3) = hashes(&case.proof);
        if s1 || s2 || s3 {
            stand_ins += 1;
        }
        let got = verify_inclusion(&leaf, case.leaf_idx, case.tree_size, &proof, &root);
        if case.want_err {
            assert!(
                got.is_err(),
                "{} ({}): accepted, but must be rejected",
                rel(path),
                case.desc
            );
            rejected += 1;
        } else {
            assert!(
                !(s1 || s2 || s3),
                "{}: a valid case with a non-hash value",
                rel(path)
            );
            assert_eq!(got, Ok(()), "{} ({}): must verify", rel(path), case.desc);
            accepted += 1;
        }
    }
    eprintln!("inclusion: {accepted} verified, {rejected} rejected, {stand_ins} with stand-ins");
    check_counts(
        "inclusion",
        &counts,
        &[
            "inclusion/0",
            "inclusion/1",
            "inclusion/2",
            "inclusion/3",
            "inclusion/4",
            "inclusion/additional/0",
            "inclusion/additional/1",
            "inclusion/additional/2",
            "inclusion/additional/3",
            "inclusion/single-entry",
        ],
        98,
    );
    assert_eq!(accepted, 6, "inclusion cases that must verify");
}

#[test]
fn consistency_vectors() {
    let files = json_files(&data_dir().join("consistency"));
    let mut counts = BTreeMap::<String, usize>::new();
    let (mut accepted, mut rejected, mut stand_ins) = (0, 0, 0);
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let case: ConsistencyCase =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", rel(path)));
        if path.file_name().unwrap() == "happy-path.json" {
            assert!(!case.want_err, "{}: a happy path wants an error", rel(path));
        }
        *counts.entry(parent_dir(path)).or_default() += 1;
        let (root1, s1) = hash(&case.root1, "root");
        let (root2, s2) = hash(&case.root2, "root");
        let (proof, s3) = hashes(&case.proof);
        if s1 || s2 || s3 {
            stand_ins += 1;
        }
        let got = verify_consistency(case.size1, case.size2, &root1, &root2, &proof);
        if case.want_err {
            assert!(
                got.is_err(),
                "{} ({}): accepted, but must be rejected",
                rel(path),
                case.desc
            );
            rejected += 1;
        } else {
            assert_eq!(got, Ok(()), "{} ({}): must verify", rel(path), case.desc);
            accepted += 1;
        }
    }
    eprintln!("consistency: {accepted} verified, {rejected} rejected, {stand_ins} with stand-ins");
    check_counts(
        "consistency",
        &counts,
        &[
            "consistency/0",
            "consistency/1",
            "consistency/2",
            "consistency/3",
            "consistency/4",
            "consistency/additional",
        ],
        98,
    );
    assert_eq!(accepted, 6, "consistency cases that must verify");
}

/// The happy paths of the numbered directories are over the reference tree: this crate's
/// builder must produce exactly their roots and proofs.
#[test]
fn builder_reproduces_the_happy_paths() {
    let leaves = reference_leaves();
    let mut checked = 0;
    for n in 0..=4 {
        let path = data_dir().join(format!("inclusion/{n}/happy-path.json"));
        let case: InclusionCase =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let tree = &leaves[..case.tree_size as usize];
        assert_eq!(
            root(tree),
            hash(&case.root, "root").0,
            "{}: root",
            rel(&path)
        );
        assert_eq!(
            leaves[case.leaf_idx as usize],
            hash(&case.leaf_hash, "leaf").0,
            "{}: leaf hash",
            rel(&path)
        );
        assert_eq!(
            inclusion_proof(tree, case.leaf_idx).unwrap(),
            hashes(&case.proof).0,
            "{}: proof",
            rel(&path)
        );
        checked += 1;

        let path = data_dir().join(format!("consistency/{n}/happy-path.json"));
        let case: ConsistencyCase =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let tree = &leaves[..case.size2 as usize];
        assert_eq!(
            root(&leaves[..case.size1 as usize]),
            hash(&case.root1, "root").0,
            "{}: root1",
            rel(&path)
        );
        assert_eq!(
            root(tree),
            hash(&case.root2, "root").0,
            "{}: root2",
            rel(&path)
        );
        assert_eq!(
            consistency_proof(tree, case.size1).unwrap(),
            hashes(&case.proof).0,
            "{}: proof",
            rel(&path)
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
}
