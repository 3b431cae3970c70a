//! The installation's two keys, created on first use beside the database (mode 0600) or
//! read from the paths in `[keys]`:
//! - `<db>.signing-key`: the Ed25519 checkpoint signing key, one line in the
//!   `PRIVATE+KEY+<name>+<hex>+<base64>` note format;
//! - `<db>.fp-key`: 32 random bytes (hex) keying the HMAC fingerprints that replace secrets.
//!
//! Losing the signing key means new checkpoints cannot continue the old key's statements;
//! losing the fingerprint key means the same secret seen later gets a different fingerprint.
//! Back both up with the database.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use custody_merkle::NoteSigner;
use custody_model::Redactor;

/// Where the key files are.
#[derive(Clone, Debug)]
pub struct KeyPaths {
    /// The signing key file.
    pub signing: PathBuf,
    /// The fingerprint key file.
    pub fingerprint: PathBuf,
}

impl KeyPaths {
    /// The default paths beside a database file.
    pub fn beside(db: &Path) -> KeyPaths {
        let with = |suffix: &str| {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        KeyPaths {
            signing: with(".signing-key"),
            fingerprint: with(".fp-key"),
        }
    }
}

fn random_seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
    Ok(seed)
}

/// Writes a new key file that no one else can read; refuses to overwrite one.
fn create_secret_file(path: &Path, contents: &str) -> Result<bool> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(contents.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write key file `{}`", path.display()))?;
            Ok(true)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot create key file `{}`", path.display())),
    }
}

fn read_key_file(path: &Path) -> Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: key file `{}` is readable by other users; run `chmod 600` on it",
                    path.display()
                );
            }
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file `{}`", path.display()))?;
    Ok(text.trim().to_owned())
}

/// The checkpoint signer, created on first use.
pub fn load_or_create_signer(path: &Path, origin: &str, create: bool) -> Result<NoteSigner> {
    if !path.exists() {
        if !create {
            bail!(
                "no signing key at `{}`: the log has not been written yet (run `custody ingest` first)",
                path.display()
            );
        }
        let signer = NoteSigner::generate(origin, random_seed()?)
            .map_err(|e| anyhow!("cannot make a signing key for origin `{origin}`: {e}"))?;
        create_secret_file(path, &format!("{}\n", signer.to_private_key_string()))?;
    }
    let text = read_key_file(path)?;
    NoteSigner::parse(&text).map_err(|e| anyhow!("`{}` is not a signing key: {e}", path.display()))
}

/// The redactor under the installation's fingerprint key, created on first use.
pub fn load_or_create_redactor(path: &Path, create: bool) -> Result<Redactor> {
    if !path.exists() {
        if !create {
            bail!("no fingerprint key at `{}`", path.display());
        }
        create_secret_file(path, &format!("{}\n", hex::encode(random_seed()?)))?;
    }
    let text = read_key_file(path)?;
    let key = hex::decode(&text)
        .ok()
        .filter(|k| k.len() >= 16)
        .ok_or_else(|| {
            anyhow!(
                "`{}` is not a fingerprint key (hex, at least 16 bytes)",
                path.display()
            )
        })?;
    Ok(Redactor::new(&key))
}
