//! The other direction of the interop check: reads what another implementation produced (a
//! signed checkpoint note, its verifier key, and inclusion and consistency proofs over the
//! leaves `leaf-0\n` ... `leaf-<n-1>\n`) and checks it with custody-merkle: the checkpoint must
//! verify, every proof must verify and be exactly the proof custody-merkle builds itself, and a
//! copy with one bit flipped must be rejected. `scripts/aics-interop.sh` runs it on aics-tlog's
//! output.
//!
//! ```text
//! cargo run -q -p custody-merkle --example interop_verify -- DIR
//! ```
//!
//! DIR holds `checkpoint.note`, `log.vkey` and `proofs.json`:
//! `{"origin", "size", "inclusion": [{"index", "size", "root", "leaf_hash", "proof"}],
//!   "consistency": [{"old_size", "new_size", "old_root", "new_root", "proof"}]}`, hashes in
//! base64 (leaf hashes in hex). Exits 1 at the first failure.

use std::error::Error;
use std::fs;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
    Hash, NoteVerifier, UnverifiedCheckpoint,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Proofs {
    origin: String,
    size: u64,
    inclusion: Vec<Inclusion>,
    consistency: Vec<Consistency>,
}

#[derive(Deserialize)]
struct Inclusion {
    index: u64,
    size: u64,
    root: String,
    leaf_hash: String,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct Consistency {
    old_size: u64,
    new_size: u64,
    old_root: String,
    new_root: String,
    proof: Vec<String>,
}

fn b64_hash(s: &str) -> Result<Hash, Box<dyn Error>> {
    let bytes = B64.decode(s)?;
    Ok(Hash::try_from(bytes.as_slice()).map_err(|_| format!("not a 32-byte hash: {s}"))?)
}

fn b64_hashes(list: &[String]) -> Result<Vec<Hash>, Box<dyn Error>> {
    list.iter().map(|s| b64_hash(s)).collect()
}

/// `proof` with bit 0 of its first hash flipped, or `None` for an empty proof.
fn flipped(proof: &[Hash]) -> Option<Vec<Hash>> {
    let mut bad = proof.to_vec();
    let first = bad.first_mut()?;
    let byte = first.first_mut()?;
    *byte ^= 1;
    Some(bad)
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: interop_verify DIR")?;
    let proofs: Proofs = serde_json::from_str(&fs::read_to_string(dir.join("proofs.json"))?)?;
    let verifier = NoteVerifier::parse(&fs::read_to_string(dir.join("log.vkey"))?)?;
    let note = fs::read(dir.join("checkpoint.note"))?;

    // The checkpoint: signature, origin, and the root of the leaves.
    let leaves: Vec<Hash> = (0..proofs.size)
        .map(|i| leaf_hash(format!("leaf-{i}\n").as_bytes()))
        .collect();
    let cp = UnverifiedCheckpoint::parse(&note)?.verify_for_origin(&verifier, &proofs.origin)?;
    if cp.size != proofs.size || cp.root != root(&leaves) {
        return Err(format!(
            "checkpoint says size {} root {}",
            cp.size,
            B64.encode(cp.root)
        )
        .into());
    }
    println!("interop_verify: checkpoint of size {} verified", cp.size);
    let mut tampered = String::from_utf8(note.clone())?;
    tampered = tampered.replacen(
        &format!("\n{}\n", cp.size),
        &format!("\n{}\n", cp.size + 1),
        1,
    );
    if UnverifiedCheckpoint::parse(tampered.as_bytes())?
        .verify(&verifier)
        .is_ok()
    {
        return Err("a checkpoint with a changed size verified".into());
    }

    let tree = |size: u64| {
        leaves
            .get(..size as usize)
            .ok_or_else(|| format!("size {size} beyond the leaves"))
    };
    let mut n = 0;
    for item in &proofs.inclusion {
        let proof = b64_hashes(&item.proof)?;
        let root = b64_hash(&item.root)?;
        let mut leaf = [0u8; 32];
        hex::decode_to_slice(&item.leaf_hash, &mut leaf)?;
        let what = format!("inclusion {}/{}", item.index, item.size);
        verify_inclusion(&leaf, item.index, item.size, &proof, &root)
            .map_err(|e| format!("{what}: {e}"))?;
        if inclusion_proof(tree(item.size)?, item.index)? != proof {
            return Err(format!("{what}: not the proof custody-merkle builds").into());
        }
        if let Some(bad) = flipped(&proof) {
            if verify_inclusion(&leaf, item.index, item.size, &bad, &root).is_ok() {
                return Err(format!("{what}: a flipped proof verified").into());
            }
        }
        n += 1;
    }
    println!("interop_verify: {n} inclusion proofs verified and identical");

    let mut n = 0;
    for item in &proofs.consistency {
        let proof = b64_hashes(&item.proof)?;
        let (old_root, new_root) = (b64_hash(&item.old_root)?, b64_hash(&item.new_root)?);
        let what = format!("consistency {}->{}", item.old_size, item.new_size);
        verify_consistency(item.old_size, item.new_size, &old_root, &new_root, &proof)
            .map_err(|e| format!("{what}: {e}"))?;
        if consistency_proof(tree(item.new_size)?, item.old_size)? != proof {
            return Err(format!("{what}: not the proof custody-merkle builds").into());
        }
        if let Some(bad) = flipped(&proof) {
            if verify_consistency(item.old_size, item.new_size, &old_root, &new_root, &bad).is_ok()
            {
                return Err(format!("{what}: a flipped proof verified").into());
            }
        }
        n += 1;
    }
    println!("interop_verify: {n} consistency proofs verified and identical");
    if proofs.inclusion.is_empty() || proofs.consistency.is_empty() {
        return Err("no proofs to check".into());
    }
    Ok(())
}
