//! `custody demo`: the five acceptance stories of DESIGN §1, end to end, on a fresh
//! embedded store. The example data is compiled into the binary (`examples/*.ndjson`), so
//! the demo runs anywhere the binary does.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use custody_chain::{render_text, LinkConfig, Trace};
use custody_store::Ledger;
use serde_json::Value;

use crate::ingest::Ingester;
use crate::{keys, Config, Format, KeyPaths, Session, DEFAULT_ORIGIN};
use custody_ingest::IngestSummary;

/// One bundled story.
pub struct Story {
    /// Its number and title.
    pub title: &'static str,
    /// The file name under `examples/`.
    pub file: &'static str,
    /// The NDJSON.
    pub data: &'static str,
}

/// The five stories, in order.
pub const STORIES: [Story; 5] = [
    Story {
        title: "1. Credential rotation by an agent",
        file: "examples/01-credential-rotation.ndjson",
        data: include_str!("../../../examples/01-credential-rotation.ndjson"),
    },
    Story {
        title: "2. CI config push",
        file: "examples/02-ci-config-push.ndjson",
        data: include_str!("../../../examples/02-ci-config-push.ndjson"),
    },
    Story {
        title: "3. Refund by a support copilot",
        file: "examples/03-refund-copilot.ndjson",
        data: include_str!("../../../examples/03-refund-copilot.ndjson"),
    },
    Story {
        title: "4. Leaked secret, attacker pivots through automation",
        file: "examples/04-leaked-secret.ndjson",
        data: include_str!("../../../examples/04-leaked-secret.ndjson"),
    },
    Story {
        title: "5. Review against frameworks",
        file: "examples/05-framework-review.ndjson",
        data: include_str!("../../../examples/05-framework-review.ndjson"),
    },
];

/// The demo's policy (`examples/custody.toml`).
pub const DEMO_CONFIG: &str = include_str!("../../../examples/custody.toml");

/// The demo's Cedar policies (`examples/policies/`), by file name.
pub const DEMO_POLICIES: [(&str, &str); 4] = [
    (
        "00-baseline.cedar",
        include_str!("../../../examples/policies/00-baseline.cedar"),
    ),
    (
        "10-chains-start-at-a-human.cedar",
        include_str!("../../../examples/policies/10-chains-start-at-a-human.cedar"),
    ),
    (
        "20-agents-no-delete-after-hours.cedar",
        include_str!("../../../examples/policies/20-agents-no-delete-after-hours.cedar"),
    ),
    (
        "30-large-refunds-need-finance.cedar",
        include_str!("../../../examples/policies/30-large-refunds-need-finance.cedar"),
    ),
];

/// Actions proposed to the gate after the stories (`examples/proposals/`).
pub const DEMO_PROPOSALS: [(&str, &str); 6] = [
    (
        "examples/proposals/01-allow-read-inventory-secret.json",
        include_str!("../../../examples/proposals/01-allow-read-inventory-secret.json"),
    ),
    (
        "examples/proposals/02-deny-reused-vault-token.json",
        include_str!("../../../examples/proposals/02-deny-reused-vault-token.json"),
    ),
    (
        "examples/proposals/03-deny-outside-scope.json",
        include_str!("../../../examples/proposals/03-deny-outside-scope.json"),
    ),
    (
        "examples/proposals/04-allow-approved-refund.json",
        include_str!("../../../examples/proposals/04-allow-approved-refund.json"),
    ),
    (
        "examples/proposals/05-deny-unapproved-large-refund.json",
        include_str!("../../../examples/proposals/05-deny-unapproved-large-refund.json"),
    ),
    (
        "examples/proposals/06-deny-leaked-key-no-human.json",
        include_str!("../../../examples/proposals/06-deny-leaked-key-no-human.json"),
    ),
];

/// The `source#id` of every action in a story, in file order.
fn keys_in(data: &str) -> BTreeSet<String> {
    data.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| {
            let source = v.get("source")?.as_str()?;
            let id = v.get("id")?.as_str()?;
            Some(format!("{source}#{id}"))
        })
        .collect()
}

fn actions_in(data: &str) -> Vec<String> {
    data.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v.get("type").and_then(Value::as_str) == Some("action"))
        .filter_map(|v| {
            let source = v.get("source")?.as_str()?;
            let id = v.get("id")?.as_str()?;
            Some(format!("{source}#{id}"))
        })
        .collect()
}

/// Runs the demo into `dir` (default: a new temporary folder) and prints every chain.
pub fn run(ctx: &Session, dir: Option<&Path>) -> Result<u8> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            std::env::temp_dir().join(format!("custody-demo-{}-{stamp}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let db = dir.join("custody.db");
    if db.exists() {
        return Err(anyhow!(
            "`{}` already holds a database; the demo needs a fresh folder",
            db.display()
        ));
    }
    let config = Config::parse(DEMO_CONFIG, "examples/custody.toml")?;
    std::fs::write(dir.join("custody.toml"), DEMO_CONFIG)?;
    let policy_dir = dir.join("policies");
    std::fs::create_dir_all(&policy_dir)?;
    let mut sources = Vec::new();
    for (name, text) in DEMO_POLICIES {
        std::fs::write(policy_dir.join(name), text)?;
        sources.push((format!("examples/policies/{name}"), text.to_owned()));
    }
    let cedar = crate::gate::cedar_from_sources(&sources, &config)?;
    let key_paths = KeyPaths::beside(&db);
    let store = custody_store_sqlite::SqliteStore::open(&db)?;
    let signer = keys::load_or_create_signer(&key_paths.signing, DEFAULT_ORIGIN, true)?;
    let redactor = keys::load_or_create_redactor(&key_paths.fingerprint, true)?;
    let mut ledger = Ledger::new(Box::new(store), signer, DEFAULT_ORIGIN);
    let ingester = Ingester::new(redactor.clone());
    let link = LinkConfig {
        inference_window_secs: i64::from(config.chain.inference_window_secs),
        ..LinkConfig::default()
    };
    let json = ctx.format == Format::Json;
    let mut report = Vec::new();

    if !json {
        println!(
            "Custody demo: the five stories of DESIGN §1 on a fresh store at {}\n",
            db.display()
        );
    }
    for story in &STORIES {
        let mut summary = IngestSummary::default();
        ingester.ingest_reader(
            &mut ledger,
            story.file,
            Box::new(Cursor::new(story.data.as_bytes())),
            &mut summary,
            None,
        )?;
        if !json {
            println!("━━ Story {} ━━", story.title);
            println!(
                "ingested {}: {} events accepted, {} quarantined\n",
                story.file, summary.accepted, summary.quarantined
            );
        }
        let mut covered: BTreeSet<String> = BTreeSet::new();
        let mut traces = Vec::new();
        for action in actions_in(story.data) {
            if covered.contains(&action) {
                continue;
            }
            let trace = Trace::of_event(ledger.store(), &action, &link)?;
            covered.extend(trace.events.values().map(|e| e.key().to_string()));
            if json {
                traces.push(trace.to_json());
            } else {
                println!("chain of {action}:");
                print!("{}", render_text(&trace));
                println!();
            }
        }
        // The story's findings: those flagged on one of its events.
        let own = keys_in(story.data);
        let findings: Vec<custody_rules::Finding> =
            crate::findings::evaluate(ledger.store(), &config, cedar.clone())?
                .findings
                .into_iter()
                .filter(|f| f.flagged().is_some_and(|k| own.contains(&k.to_string())))
                .collect();
        let mut story_json = serde_json::json!({
            "story": story.title,
            "file": story.file,
            "ingest": summary.to_json(),
            "traces": traces,
            "findings": findings.iter().map(custody_rules::Finding::to_json).collect::<Vec<_>>(),
        });
        if !json {
            println!("findings ({}):", findings.len());
            for f in &findings {
                let flagged = f.flagged().map(ToString::to_string).unwrap_or_default();
                let evidence: Vec<String> =
                    f.events.iter().skip(1).map(ToString::to_string).collect();
                println!(
                    "  [{}] {}  {}",
                    f.severity.as_str().to_uppercase(),
                    f.rule,
                    flagged
                );
                println!("      {}", f.message);
                if !evidence.is_empty() {
                    println!("      evidence: {}", evidence.join(", "));
                }
                println!("      frameworks: {}", f.frameworks.join(", "));
            }
            println!();
        }
        // The leaked-secret story ends with its blast radius and a verified evidence bundle.
        if story.file == "examples/04-leaked-secret.ndjson" {
            let incident = crate::incident::demo_story4(&mut ledger, &link, &dir, json)?;
            if let (Some(obj), Value::Object(extra)) = (story_json.as_object_mut(), incident) {
                obj.extend(extra);
            }
            // ... and the incident report of the pivot (the new key made with the stolen
            // one, then used), written beside the bundle.
            let report = crate::report::demo_report(
                &mut ledger,
                &config,
                cedar.clone(),
                &link,
                "aws:cloudtrail:123456789012#s4-act-6",
                &dir,
                json,
            )?;
            if let Some(obj) = story_json.as_object_mut() {
                obj.insert("report".to_owned(), report);
            }
        }
        if json {
            report.push(story_json);
        }
    }

    // The gate: actions proposed against what the stories recorded.
    let gate = custody_gate::Gate::new(crate::findings::policy(&config), cedar);
    if !json {
        println!("━━ The gate: may these actions run? (Cedar policies: examples/policies/) ━━\n");
    }
    let mut decisions = Vec::new();
    for (file, text) in DEMO_PROPOSALS {
        let (decision, event, index) = decide(&gate, &mut ledger, &redactor, text)
            .with_context(|| format!("demo proposal {file}"))?;
        if json {
            decisions.push(serde_json::json!({
                "proposal": file,
                "check": crate::gate::decision_json(&decision, &event, Some(index)),
            }));
        } else {
            let p: Value = serde_json::from_str(text)?;
            let s = |k: &str| {
                p.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            println!("$ custody check --action {file}");
            println!(
                "  {} asks to run {} on {} with {} at {}",
                p.pointer("/actor/id")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                s("operation"),
                s("resource"),
                s("credential"),
                s("time")
            );
            let key = event
                .get("id")
                .and_then(Value::as_str)
                .map(|id| format!("{}#{id}", custody_gate::DECISION_SOURCE))
                .unwrap_or_default();
            crate::gate::print_text(&decision, &key, Some(index));
            println!();
        }
    }

    let checkpoint = ledger.checkpoint()?;
    let verify = custody_store::ledger::verify_store(ledger.store(), &ledger_verifier(&ledger)?)?;
    if json {
        crate::print_json(&serde_json::json!({
            "db": db.display().to_string(),
            "stories": report,
            "decisions": decisions,
            "checkpoint": checkpoint.note,
            "verifier_key": ledger.verifier_key(),
            "verify": {"ok": verify.ok, "size": verify.size, "first_mismatch": verify.first_mismatch},
        }))?;
    } else {
        println!("━━ Signed checkpoint (C2SP tlog-checkpoint, Ed25519 signed note) ━━");
        print!("{}", checkpoint.note);
        println!("verifier key: {}\n", ledger.verifier_key());
        println!("━━ Verify ━━");
        if verify.ok {
            println!(
                "ok: {} events re-hashed, root matches {} signed checkpoints",
                verify.size, verify.checkpoints_checked
            );
        } else {
            println!("FAILED: {:?}", verify.problems);
        }
        let db_arg = db.display();
        println!("\nExplore further:");
        println!("  custody --db {db_arg} trace agent-runtime#s1-act-1");
        println!("  custody --db {db_arg} trace --credential AKIAZ7CIPUBL2EXAMPLE");
        println!("  custody --db {db_arg} blast-radius --credential AKIAZ7CIPUBL2EXAMPLE");
        println!("  custody --db {db_arg} checkpoint --key > key.txt");
        println!(
            "  custody verify-bundle {} --key key.txt",
            dir.join("story4-bundle.json").display()
        );
        println!("  custody --db {db_arg} trace servicedesk#s5-req-3 --format json");
        println!(
            "  custody --db {db_arg} --config {} findings",
            dir.join("custody.toml").display()
        );
        println!(
            "  custody --db {db_arg} --config {} frameworks",
            dir.join("custody.toml").display()
        );
        println!(
            "  custody --db {db_arg} --config {} check --action examples/proposals/05-deny-unapproved-large-refund.json",
            dir.join("custody.toml").display()
        );
        println!("  custody --db {db_arg} proof --index 0");
        println!("  custody --db {db_arg} verify");
        println!(
            "  custody --db {db_arg} --config {} serve    # then open http://127.0.0.1:8080/#/chain/agent-runtime%23s1-act-2",
            dir.join("custody.toml").display()
        );
    }
    Ok(if verify.ok { 0 } else { crate::EXIT_NEGATIVE })
}

/// One gate decision in the demo, recorded in the log as `custody check` does.
fn decide(
    gate: &custody_gate::Gate,
    ledger: &mut Ledger,
    redactor: &custody_model::Redactor,
    text: &str,
) -> Result<(custody_gate::GateDecision, Value, u64)> {
    let proposed = custody_gate::ProposedAction::parse(serde_json::from_str(text)?, redactor)?;
    crate::gate::decide_and_record(gate, ledger, redactor, &proposed)
}

fn ledger_verifier(ledger: &Ledger) -> Result<custody_merkle::NoteVerifier> {
    custody_merkle::NoteVerifier::parse(&ledger.verifier_key())
        .map_err(|e| anyhow!("cannot read back the verifier key: {e}"))
}
