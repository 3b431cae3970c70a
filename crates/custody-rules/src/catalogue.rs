//! The rule and framework catalogues, kept as data (`data/rules.toml`, `data/frameworks.toml`)
//! and parsed once.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const RULES_TOML: &str = include_str!("../data/rules.toml");
const FRAMEWORKS_TOML: &str = include_str!("../data/frameworks.toml");

/// How serious a finding is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    #[default]
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule of DESIGN §5 as described in `data/rules.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInfo {
    /// Stable id.
    pub slug: String,
    /// Severity of its findings.
    pub severity: Severity,
    /// Short name.
    pub title: String,
    /// Message template with `{placeholders}`.
    pub message: String,
    /// Remediation advice.
    pub help: String,
    /// Control ids, best fit first.
    pub frameworks: Vec<String>,
}

/// One framework control (`data/frameworks.toml`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// As printed in findings (`CSF:PR.AA-05`, `NHI5`, `ASI03`).
    pub id: String,
    /// `nist-csf-2.0`, `owasp-nhi-2025` or `owasp-asi-2026`.
    pub framework: String,
    /// The official title.
    pub title: String,
    /// The CSF category, or the list's name.
    pub category: String,
    /// The published text.
    pub url: String,
    /// Other accepted spellings.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Both catalogues.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    /// The rules, in file order.
    pub rules: Vec<RuleInfo>,
    /// The controls, in file order.
    pub controls: Vec<Control>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rule: Vec<RuleInfo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameworksFile {
    control: Vec<Control>,
}

impl Catalogue {
    /// Parses the bundled data files.
    pub fn load() -> Result<Catalogue, String> {
        let rules: RulesFile =
            toml::from_str(RULES_TOML).map_err(|e| format!("data/rules.toml: {e}"))?;
        let frameworks: FrameworksFile =
            toml::from_str(FRAMEWORKS_TOML).map_err(|e| format!("data/frameworks.toml: {e}"))?;
        Ok(Catalogue {
            rules: rules.rule,
            controls: frameworks.control,
        })
    }

    /// A rule by slug.
    pub fn rule(&self, slug: &str) -> Option<&RuleInfo> {
        self.rules.iter().find(|r| r.slug == slug)
    }

    /// A control by id or alias (case-insensitive; `PR.AC-4` → `CSF:PR.AA-05`).
    pub fn control(&self, name: &str) -> Option<&Control> {
        let name = name.trim();
        self.controls.iter().find(|c| {
            c.id.eq_ignore_ascii_case(name)
                || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }

    /// The rules that give evidence for a control (by canonical id).
    pub fn rules_for(&self, control_id: &str) -> Vec<&RuleInfo> {
        self.rules
            .iter()
            .filter(|r| r.frameworks.iter().any(|f| f == control_id))
            .collect()
    }
}

/// The bundled catalogue, parsed once. (A malformed data file yields an empty catalogue; the
/// crate's tests check that the bundled files parse.)
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| Catalogue::load().unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::RULES;

    #[test]
    fn the_data_files_parse_and_agree() {
        let c = Catalogue::load().unwrap();
        assert_eq!(c.controls.len(), 33);
        for rule in &c.rules {
            assert!(!rule.frameworks.is_empty(), "{}", rule.slug);
            for f in &rule.frameworks {
                let control = c.control(f).unwrap_or_else(|| {
                    unreachable!("rule {} cites unknown control {f}", rule.slug)
                });
                assert_eq!(&control.id, f, "rules cite canonical ids");
            }
        }
        for slug in RULES {
            assert!(c.rule(slug).is_some(), "no catalogue entry for {slug}");
        }
        assert!(c.rule("policy-violation").is_some());
        let mut seen = std::collections::BTreeSet::new();
        for control in &c.controls {
            for name in std::iter::once(&control.id).chain(&control.aliases) {
                assert!(seen.insert(name.to_ascii_lowercase()), "{name} twice");
            }
        }
    }

    #[test]
    fn aliases_resolve() {
        let c = catalogue();
        assert_eq!(c.control("PR.AC-4").unwrap().id, "CSF:PR.AA-05");
        assert_eq!(c.control("NHI-02").unwrap().id, "NHI2");
        assert_eq!(c.control("nhi5").unwrap().id, "NHI5");
        assert_eq!(c.control("CSF:PR.AA-05").unwrap().id, "CSF:PR.AA-05");
        assert!(c.control("NHI11").is_none());
        assert_eq!(Severity::parse("HIGH"), Some(Severity::High));
        assert!(Severity::Critical > Severity::Medium);
    }
}
