//! `custody.toml` (DESIGN §5 "Policy", §7): parsed once into typed settings, with errors that
//! name the file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;

/// The whole configuration file. Unknown keys are errors, so a typo never silently
/// weakens a policy.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[chain]`
    #[serde(default)]
    pub chain: ChainConfig,
    /// `[inventory]`
    #[serde(default)]
    pub inventory: InventoryConfig,
    /// `[[approvals]]`
    #[serde(default)]
    pub approvals: Vec<ApprovalRule>,
    /// `[keys]`
    #[serde(default)]
    pub keys: KeysConfig,
    /// `[log]`
    #[serde(default)]
    pub log: LogConfig,
    /// `[server]`
    #[serde(default)]
    pub server: ServerConfig,
    /// `[gate]`
    #[serde(default)]
    pub gate: GateConfig,
    /// `[groups]`: group name → member principal ids (Cedar `Custody::Group`).
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// `[gate]`: where the Cedar policies are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// A folder of `*.cedar` files, relative to the config file's folder (default: the
    /// config file's folder itself).
    #[serde(default)]
    pub policies: Option<PathBuf>,
}

/// `[chain]`: linking and depth.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Delegation hops allowed from the human to the actor.
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// Window for inferred effect → action links, in seconds.
    #[serde(default = "default_window")]
    pub inference_window_secs: u32,
}

fn default_max_depth() -> u32 {
    4
}

fn default_window() -> u32 {
    60
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            max_depth: default_max_depth(),
            inference_window_secs: default_window(),
        }
    }
}

/// `[inventory]`: the secrets managers the organisation runs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// Managed secrets-manager instances (`vault://prod`, `aws-sm:...`).
    #[serde(default)]
    pub secret_managers: Vec<String>,
}

/// `[[approvals]]`: an action that needs a human approval.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// Action pattern.
    pub action: String,
    /// Resource pattern.
    #[serde(default = "any_pattern")]
    pub resource: String,
    /// The parameter compared with `above`.
    #[serde(default)]
    pub param: Option<String>,
    /// The threshold.
    #[serde(default)]
    pub above: Option<f64>,
}

fn any_pattern() -> String {
    "*".into()
}

/// `[keys]`: where the key files are (default: beside the database).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The Ed25519 checkpoint signing key.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// The HMAC fingerprint key for redaction.
    #[serde(default)]
    pub fingerprint_key: Option<PathBuf>,
}

/// `[log]`: the log's identity.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The checkpoint origin line and key name (C2SP tlog-checkpoint).
    #[serde(default)]
    pub origin: Option<String>,
}

/// `[server]`: HTTP settings (used by `custody serve`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `[[server.tokens]]`
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// The address to listen on.
    #[serde(default)]
    pub listen: Option<String>,
    /// The largest request body accepted, in bytes (default 16 MiB).
    #[serde(default)]
    pub body_limit: Option<usize>,
}

/// A bearer token, by its SHA-256 only.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs.
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// Its roles.
    pub roles: Vec<String>,
}

impl Config {
    /// Loads `path`, or `./custody.toml` when present, or the defaults. `explicit` says the
    /// user named the file, so its absence is an error.
    pub fn load(path: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("custody.toml"), false),
        };
        if !explicit && !path.exists() {
            return Ok((Config::default(), None));
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config `{}`", path.display()))?;
        let config = Config::parse(&text, &path.display().to_string())?;
        Ok((config, Some(path)))
    }

    /// Parses config text; `name` is used in errors.
    pub fn parse(text: &str, name: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                text.get(..s.start)
                    .unwrap_or_default()
                    .matches('\n')
                    .count()
                    + 1
            });
            let message = e.message().to_owned();
            match line {
                Some(line) => anyhow!("{name}:{line}: {message}"),
                None => anyhow!("{name}: {message}"),
            }
        })?;
        config.check(name)?;
        Ok(config)
    }

    fn check(&self, name: &str) -> Result<()> {
        if self.chain.max_depth == 0 {
            return Err(anyhow!("{name}: [chain] max_depth must be at least 1"));
        }
        for (i, rule) in self.approvals.iter().enumerate() {
            if rule.param.is_some() != rule.above.is_some() {
                return Err(anyhow!(
                    "{name}: [[approvals]] #{}: give both `param` and `above`, or neither",
                    i + 1
                ));
            }
        }
        for (group, members) in &self.groups {
            if group.is_empty() || members.iter().any(String::is_empty) {
                return Err(anyhow!(
                    "{name}: [groups] `{group}`: names and member ids must not be empty"
                ));
            }
        }
        let mut names = BTreeMap::new();
        for token in &self.server.tokens {
            if token.sha256.len() != 64 || hex::decode(&token.sha256).is_err() {
                return Err(anyhow!(
                    "{name}: [[server.tokens]] `{}`: sha256 must be 64 hex digits",
                    token.name
                ));
            }
            if names.insert(token.name.clone(), ()).is_some() {
                return Err(anyhow!(
                    "{name}: [[server.tokens]] `{}` is defined twice",
                    token.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_parses() {
        let text = r#"
[chain]
max_depth = 4                 # delegation hops allowed from the human to the actor
inference_window_secs = 60    # for inferred effect -> action links

[inventory]
secret_managers = ["vault://prod", "aws-sm:123456789012:eu-west-1"]

[[approvals]]
action = "erp:refund.*"
resource = "*"
param = "amount"
above = 100
"#;
        let c = Config::parse(text, "custody.toml").unwrap();
        assert_eq!(c.chain.max_depth, 4);
        assert_eq!(c.inventory.secret_managers.len(), 2);
        assert_eq!(c.approvals[0].above, Some(100.0));
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let err = Config::parse("[chain]\nmax_depth = 4\nmax_dept = 5\n", "p.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("p.toml:3:"), "{msg}");
        assert!(msg.contains("max_dept"), "{msg}");
        let err = Config::parse("[chain]\nmax_depth = \"four\"\n", "p.toml").unwrap_err();
        assert!(err.to_string().starts_with("p.toml:2:"), "{err}");
    }
}
