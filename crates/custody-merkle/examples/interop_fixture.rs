//! Writes a fixture for checking custody-merkle against another implementation
//! (`scripts/aics-interop.sh` feeds it to aics-tlog): a tree over 37 leaves `leaf-0\n` ...
//! `leaf-36\n`, checkpoints signed with a fixed test key at several sizes, and inclusion and
//! consistency proofs, with a JSON manifest listing every item.
//!
//! ```text
//! cargo run -q -p custody-merkle --example interop_fixture -- OUT_DIR
//! ```
//!
//! Layout of OUT_DIR: `origin.txt`, `log.vkey` (note verifier key), `other.vkey` (another key
//! under the same name, which must not verify), `checkpoint.note` and
//! `root.b64` (the full tree), `checkpoints/<size>.note`, `roots/<size>.b64`,
//! `leaves/<index>.bin` (raw leaf data), `inclusion/<size>-<index>.proof` and
//! `consistency/<old>-<new>.proof` (one base64 hash per line), and `manifest.json`.
//! The key is a fixed test key, not a secret: its seed is printed in the manifest.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, Checkpoint, Hash, NoteSigner,
    UnverifiedCheckpoint,
};
use serde_json::{json, Value};

const ORIGIN: &str = "custody.example/interop";
const LEAVES: u64 = 37;
/// Tree sizes that get a checkpoint and proofs: edges around powers of two, and the full tree.
const SIZES: &[u64] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33, 36, 37,
];
/// The fixed test key's seed.
const SEED: [u8; 32] = [0x2a; 32];
/// The seed of a second key under the same name, for negative checks.
const OTHER_SEED: [u8; 32] = [0x2b; 32];

fn leaf_data(i: u64) -> Vec<u8> {
    format!("leaf-{i}\n").into_bytes()
}

fn write_proof(path: &Path, proof: &[Hash]) -> Result<(), Box<dyn Error>> {
    let text: String = proof
        .iter()
        .map(|h| format!("{}\n", B64.encode(h)))
        .collect();
    fs::write(path, text)?;
    Ok(())
}

/// The indices whose inclusion is checked in a tree of `size`: all of them in small trees and
/// the full tree, a spread of them otherwise.
fn indices(size: u64) -> Vec<u64> {
    if size <= 9 || size == LEAVES {
        return (0..size).collect();
    }
    let mut v = vec![0, 1, size / 2, size - 2, size - 1];
    v.dedup();
    v
}

fn main() -> Result<(), Box<dyn Error>> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: interop_fixture OUT_DIR")?;
    for sub in ["checkpoints", "roots", "leaves", "inclusion", "consistency"] {
        fs::create_dir_all(out.join(sub))?;
    }

    let signer = NoteSigner::generate(ORIGIN, SEED)?;
    let verifier = signer.verifier();
    let hashes: Vec<Hash> = (0..LEAVES).map(|i| leaf_hash(&leaf_data(i))).collect();
    fs::write(out.join("origin.txt"), format!("{ORIGIN}\n"))?;
    fs::write(out.join("log.vkey"), format!("{verifier}\n"))?;
    // Another key under the same name, which must not verify the log's checkpoints.
    let other = NoteSigner::generate(ORIGIN, OTHER_SEED)?.verifier();
    fs::write(out.join("other.vkey"), format!("{other}\n"))?;
    for i in 0..LEAVES {
        fs::write(out.join(format!("leaves/{i}.bin")), leaf_data(i))?;
    }

    let tree = |size: u64| hashes.get(..size as usize).ok_or("size beyond the leaves");
    let root_of = |size: u64| -> Result<Hash, Box<dyn Error>> { Ok(root(tree(size)?)) };

    let mut checkpoints = Vec::new();
    for &size in SIZES {
        let cp = Checkpoint {
            origin: ORIGIN.to_owned(),
            size,
            root: root_of(size)?,
        };
        let note = cp.sign(&signer)?;
        // Our own verifier must accept what we hand out.
        if UnverifiedCheckpoint::parse(&note)?.verify(&verifier)? != cp {
            return Err("own checkpoint did not round-trip".into());
        }
        fs::write(out.join(format!("checkpoints/{size}.note")), &note)?;
        fs::write(
            out.join(format!("roots/{size}.b64")),
            format!("{}\n", B64.encode(cp.root)),
        )?;
        if size == LEAVES {
            fs::write(out.join("checkpoint.note"), &note)?;
            fs::write(out.join("root.b64"), format!("{}\n", B64.encode(cp.root)))?;
        }
        checkpoints.push(json!({
            "size": size,
            "root": B64.encode(cp.root),
            "note": format!("checkpoints/{size}.note"),
        }));
    }

    let mut inclusion = Vec::new();
    for &size in SIZES {
        let leaves = tree(size)?;
        for index in indices(size) {
            let proof = inclusion_proof(leaves, index)?;
            let file = format!("inclusion/{size}-{index}.proof");
            write_proof(&out.join(&file), &proof)?;
            let leaf = hashes
                .get(index as usize)
                .ok_or("index beyond the leaves")?;
            inclusion.push(json!({
                "index": index,
                "size": size,
                "root": B64.encode(root_of(size)?),
                "leaf": format!("leaves/{index}.bin"),
                "leaf_hash": hex::encode(leaf),
                "proof": file,
                "proof_length": proof.len(),
            }));
        }
    }

    let mut consistency = Vec::new();
    for (k, &new_size) in SIZES.iter().enumerate() {
        for &old_size in SIZES.iter().take(k + 1) {
            let proof = consistency_proof(tree(new_size)?, old_size)?;
            let file = format!("consistency/{old_size}-{new_size}.proof");
            write_proof(&out.join(&file), &proof)?;
            consistency.push(json!({
                "old_size": old_size,
                "new_size": new_size,
                "old_root": B64.encode(root_of(old_size)?),
                "new_root": B64.encode(root_of(new_size)?),
                "proof": file,
                "proof_length": proof.len(),
            }));
        }
    }

    let (n_inclusion, n_consistency) = (inclusion.len(), consistency.len());
    let manifest: Value = json!({
        "generator": "custody-merkle examples/interop_fixture.rs",
        "origin": ORIGIN,
        "vkey": verifier.to_string(),
        "test_key_seed_hex": hex::encode(SEED),
        "leaves": LEAVES,
        "leaf_format": "leaf-<i>\\n",
        "size": LEAVES,
        "root": B64.encode(root_of(LEAVES)?),
        "checkpoint": "checkpoint.note",
        "checkpoints": checkpoints,
        "inclusion": inclusion,
        "consistency": consistency,
    });
    fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    println!(
        "wrote {} checkpoints, {} inclusion proofs, {} consistency proofs to {}",
        SIZES.len(),
        n_inclusion,
        n_consistency,
        out.display()
    );
    Ok(())
}
