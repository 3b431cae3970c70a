//! Incident response: `custody blast-radius` (what a leaked credential, a principal or a
//! secret reached), `custody export` (an evidence bundle) and `custody verify-bundle`
//! (checked offline, with nothing but the bundle and the verifier key).

use anyhow::{bail, Result};
use custody_chain::{BlastConfig, BlastError, BlastRadius, BlastStart};

use crate::{print_json, Format, Session, EXIT_USAGE};

/// `custody blast-radius --credential ID | --principal ID | --secret PATH`.
pub fn cmd_blast_radius(ctx: &Session, start: BlastStart, max_events: usize) -> Result<u8> {
    let store = ctx.open_store(false)?;
    let config = BlastConfig { max_events };
    let radius = match BlastRadius::compute(&store, start, &config) {
        Ok(r) => r,
        Err(
            e @ (BlastError::UnknownCredential(_)
            | BlastError::UnknownPrincipal(_)
            | BlastError::UnknownSecret(_)),
        ) => {
            eprintln!("error: {e}");
            return Ok(EXIT_USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    match ctx.format {
        Format::Json => print_json(&radius.to_json())?,
        Format::Text => print!("{}", radius.render_text()),
        Format::Sarif => bail!("--format sarif is only for `custody findings`"),
    }
    Ok(0)
}

/// The start named by exactly one of the three options.
pub fn start_of(
    credential: Option<String>,
    principal: Option<String>,
    secret: Option<String>,
) -> Result<BlastStart> {
    match (credential, principal, secret) {
        (Some(c), None, None) => Ok(BlastStart::Credential(c)),
        (None, Some(p), None) => Ok(BlastStart::Principal(p)),
        (None, None, Some(s)) => Ok(BlastStart::Secret(s)),
        _ => bail!("give exactly one of --credential ID, --principal ID, --secret PATH"),
    }
}
