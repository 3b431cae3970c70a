//! The `custody` command line (DESIGN §10).
//!
//! `main` only calls [`run`]. Arguments are parsed once by clap into [`Cli`]; each command
//! is a function taking typed settings. Errors carry context (`anyhow`) and map to the
//! documented exit codes: 0 success, 1 a negative verdict, 2 bad usage or unreadable input,
//! 3 ingest finished with quarantined lines.

mod config;
mod demo;
mod findings;
mod gate;
mod incident;
mod ingest;
mod keys;
mod report;
mod serve;
pub mod synth;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use custody_chain::{render_text, LinkConfig, Trace};
use custody_merkle::{NoteVerifier, UnverifiedCheckpoint};
use custody_store::{Ledger, Store};
use custody_store_sqlite::SqliteStore;
use serde_json::json;

/// Ingest allocates and frees many small strings on two threads; glibc's allocator spent a
/// quarter of ingest time there (perf), mimalloc a fraction of it. Built without transparent
/// huge pages (the `no_thp` feature; docs/dependencies.md says why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use config::Config;
pub use custody_ingest::IngestSummary;
pub use ingest::Ingester;
pub use keys::KeyPaths;

/// Exit status for a negative verdict.
pub const EXIT_NEGATIVE: u8 = 1;
/// Exit status for bad usage or unreadable input.
pub const EXIT_USAGE: u8 = 2;
/// Exit status for an ingest that quarantined lines.
pub const EXIT_QUARANTINED: u8 = 3;

/// The default log origin (checkpoint origin line and key name).
pub const DEFAULT_ORIGIN: &str = "custody.local/log";

/// Custody: the chain of custody of delegated machine actions.
#[derive(Debug, Parser)]
#[command(name = "custody", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// The database: a SQLite file path, or a PostgreSQL URL (`postgres://user@host/db`)
    /// shared by several nodes (docs/scale-out.md).
    #[arg(long, global = true, env = "CUSTODY_DB", default_value = "custody.db")]
    db: PathBuf,
    /// The configuration file (default: ./custody.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For machines; stable shapes (DESIGN §10).
    Json,
    /// SARIF 2.1.0, for code-scanning viewers (`findings` only).
    Sarif,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the five acceptance stories end to end on a fresh embedded store.
    Demo {
        /// Where to put the demo database (default: a new temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Ingest events from files or `-`: native NDJSON, or CloudTrail, GCP audit, Kubernetes
    /// audit, Vault audit, OpenTelemetry and GitHub logs (detected per record; gzip too).
    Ingest {
        /// Input files; `-` reads standard input. Gzip is unpacked.
        #[arg(required = true)]
        files: Vec<String>,
        /// Never show a progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Read every input as this format instead of detecting it per record: custody,
        /// cloudtrail, gcp-audit, k8s-audit, vault-audit, otel, github, or auto.
        #[arg(long, default_value = "auto", value_parser = parse_input_format)]
        input_format: InputFormat,
        /// An IAM policy snapshot (`aws iam get-account-authorization-details` output):
        /// CloudTrail delegations get the scope of the role or user they hand out, so
        /// CloudTrail chains are checked for overreach.
        #[arg(long, value_name = "FILE")]
        iam_snapshot: Option<PathBuf>,
    },
    /// Show the chain of an event (`source#id` or a unique id) or of a credential.
    Trace {
        /// The event.
        #[arg(required_unless_present = "credential", conflicts_with = "credential")]
        event: Option<String>,
        /// A credential id instead of an event.
        #[arg(long)]
        credential: Option<String>,
    },
    /// Recompute the whole log and check every signed checkpoint.
    Verify {
        /// Check against this verifier key file instead of the installation's own key.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print the latest signed checkpoint (signing one if the log grew).
    Checkpoint {
        /// Print the verifier key instead.
        #[arg(long)]
        key: bool,
    },
    /// Print an inclusion proof (`--index`) or a consistency proof (`--from`/`--to`).
    Proof {
        /// The leaf index.
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        index: Option<u64>,
        /// The tree size (default: the latest checkpoint).
        #[arg(long)]
        size: Option<u64>,
        /// The older tree size.
        #[arg(long)]
        from: Option<u64>,
        /// The newer tree size (default: the latest checkpoint).
        #[arg(long)]
        to: Option<u64>,
    },
    /// The HTTP API and web UI (DESIGN §11): ingest, OTLP traces, the gate, chains,
    /// findings, blast radius, checkpoints, proofs, evidence, metrics. Loopback by default;
    /// refuses another address unless `[[server.tokens]]` are configured.
    Serve {
        /// The address to listen on (default `[server] listen`, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// The gate: may this action run? Checks the recorded chain behind its credential,
    /// the scope at every hop, approvals and the Cedar policy; records the decision.
    /// Exit 0 allow, 1 deny, 2 bad input.
    Check {
        /// The proposed action: a file, `-` for standard input, or the JSON itself.
        #[arg(long)]
        action: String,
    },
    /// Findings: the rules of DESIGN §5 over the whole log (text, json, sarif).
    Findings {
        /// Only this rule (a slug such as `token-reuse`).
        #[arg(long)]
        rule: Option<String>,
        /// Only findings mapped to this control (`CSF:PR.AA-05`, `NHI5`, `ASI03`, or an alias).
        #[arg(long)]
        framework: Option<String>,
        /// Only findings on events at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Exit 1 when a finding is at or above this severity (info, low, medium, high, critical).
        #[arg(long)]
        fail_on: Option<String>,
    },
    /// Framework coverage: per control, the rules that give evidence for it, the chains
    /// checked, how many are clean, how many findings.
    Frameworks {
        /// Only this control (id or alias).
        #[arg(long)]
        framework: Option<String>,
    },
    /// Everything that followed from a credential, a principal or a secret: derived
    /// credentials, who held them, the actions taken with them, their effects and the
    /// systems changed, the initiators, first and last use. Exit 2 when nothing names it.
    BlastRadius {
        /// Start from this credential id.
        #[arg(long, conflicts_with_all = ["principal", "secret"], required_unless_present_any = ["principal", "secret"])]
        credential: Option<String>,
        /// Start from this principal id: what it was issued, used and delegated.
        #[arg(long, conflicts_with = "secret")]
        principal: Option<String>,
        /// Start from this secret path or name: the credentials obtained by reading it.
        #[arg(long)]
        secret: Option<String>,
        /// Stop (and say `truncated`) after this many events.
        #[arg(long, default_value_t = custody_chain::BlastConfig::default().max_events)]
        max_events: usize,
    },
    /// Write an evidence bundle: the event's whole chain, each event's bytes with an
    /// inclusion proof against the latest signed checkpoint (docs/bundle.schema.json).
    Export {
        /// The event (`source#id` or a unique id).
        event: String,
        /// The bundle file to write.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Write a self-contained HTML page for an incident ticket: the chain drawn as a graph,
    /// the verdict, the findings with framework ids, each event's inclusion proof checked
    /// against the latest signed checkpoint. Exit 1 when a proof fails (the page says which).
    Report {
        /// The event (`source#id` or a unique id).
        #[arg(required_unless_present = "credential", conflicts_with = "credential")]
        event: Option<String>,
        /// A credential id instead: its issuance, every action that used it, their effects.
        #[arg(long)]
        credential: Option<String>,
        /// The HTML file to write.
        #[arg(short = 'o', long)]
        output: PathBuf,
    },
    /// Check an evidence bundle offline, with nothing but the verifier key (from
    /// `custody checkpoint --key`): exit 0 ok, 1 altered (saying what), 2 unreadable.
    VerifyBundle {
        /// The bundle file.
        file: PathBuf,
        /// The file holding the verifier key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Write N synthetic events (complete 5-event chains) as NDJSON to standard output,
    /// for benchmarks and load tests.
    #[command(hide = true)]
    GenEvents {
        /// How many events.
        count: u64,
        /// Makes ids unique across runs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// Runs the command line and returns the process exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => EXIT_USAGE,
            });
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Everything a command needs to reach the log.
pub struct Session {
    /// Parsed configuration.
    pub config: Config,
    /// The configuration file, when one was read.
    pub config_path: Option<PathBuf>,
    /// The database path.
    pub db: PathBuf,
    /// Key file locations.
    pub keys: KeyPaths,
    /// Output format.
    pub format: Format,
}

impl Session {
    fn new(global: &Global) -> Result<Session> {
        let (config, config_path) = Config::load(global.config.as_deref())?;
        // A PostgreSQL URL is no place for files: its keys default to ./custody.*-key, and
        // every node appending to that database must use the same two key files.
        let defaults = match global.db.to_str() {
            Some(url) if custody_store_postgres::is_postgres_url(url) => {
                KeyPaths::beside(Path::new("custody"))
            }
            _ => KeyPaths::beside(&global.db),
        };
        let keys = KeyPaths {
            signing: config.keys.signing_key.clone().unwrap_or(defaults.signing),
            fingerprint: config
                .keys
                .fingerprint_key
                .clone()
                .unwrap_or(defaults.fingerprint),
        };
        Ok(Session {
            config,
            config_path,
            db: global.db.clone(),
            keys,
            format: global.format,
        })
    }

    fn origin(&self) -> String {
        self.config
            .log
            .origin
            .clone()
            .unwrap_or_else(|| DEFAULT_ORIGIN.to_owned())
    }

    fn link_config(&self) -> LinkConfig {
        LinkConfig {
            inference_window_secs: i64::from(self.config.chain.inference_window_secs),
            ..LinkConfig::default()
        }
    }

    /// Opens the store named by `--db`; `create` allows a new database (and new keys).
    pub fn open_store(&self, create: bool) -> Result<Box<dyn Store>> {
        // Other backends are chosen by URL scheme here. The URL is not repeated in errors
        // (it may hold a password); the store names the server without it.
        if let Some(url) = self.postgres_url() {
            let store = custody_store_postgres::PgStore::open(url)
                .context("cannot open the PostgreSQL database")?;
            return Ok(Box::new(store));
        }
        if !create && !self.db.exists() {
            bail!(
                "no database at `{}` (give --db, set CUSTODY_DB, or run `custody ingest` first)",
                self.db.display()
            );
        }
        let store = SqliteStore::open(&self.db)
            .with_context(|| format!("cannot open database `{}`", self.db.display()))?;
        Ok(Box::new(store))
    }

    /// Whether `--db` names a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.postgres_url().is_some()
    }

    /// `--db` when it is a PostgreSQL URL.
    fn postgres_url(&self) -> Option<&str> {
        self.db
            .to_str()
            .filter(|db| custody_store_postgres::is_postgres_url(db))
    }

    /// Opens more handles on the session's store (the server's read pool).
    fn store_opener(&self) -> custody_server::Opener {
        if let Some(url) = self.postgres_url() {
            let url = url.to_owned();
            return Box::new(move || {
                let store = custody_store_postgres::PgStore::open(&url)?;
                Ok(Box::new(store) as Box<dyn Store>)
            });
        }
        let db = self.db.clone();
        Box::new(move || {
            let store = SqliteStore::open(&db)?;
            Ok(Box::new(store) as Box<dyn Store>)
        })
    }

    /// The ledger with the installation's signing key.
    fn open_ledger(&self, create: bool) -> Result<Ledger> {
        let store = self.open_store(create)?;
        let signer = keys::load_or_create_signer(&self.keys.signing, &self.origin(), create)?;
        Ok(Ledger::new(store, signer, self.origin()))
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    if cli.global.format == Format::Sarif && !matches!(cli.command, Command::Findings { .. }) {
        bail!("--format sarif is only for `custody findings`; use text or json");
    }
    let ctx = Session::new(&cli.global)?;
    match cli.command {
        Command::Findings {
            rule,
            framework,
            since,
            fail_on,
        } => findings::cmd_findings(
            &ctx,
            &findings::Filter {
                rule,
                framework,
                since,
                fail_on,
            },
        ),
        Command::Check { action } => gate::cmd_check(&ctx, &action),
        Command::Serve { listen } => serve::cmd_serve(&ctx, listen.as_deref()),
        Command::Frameworks { framework } => findings::cmd_frameworks(&ctx, framework.as_deref()),
        Command::Demo { dir } => demo::run(&ctx, dir.as_deref()),
        Command::Ingest {
            files,
            no_progress,
            input_format,
            iam_snapshot,
        } => cmd_ingest(
            &ctx,
            &files,
            !no_progress,
            input_format.0,
            iam_snapshot.as_deref(),
        ),
        Command::Trace { event, credential } => {
            cmd_trace(&ctx, event.as_deref(), credential.as_deref())
        }
        Command::Verify { key } => cmd_verify(&ctx, key.as_deref()),
        Command::Checkpoint { key } => cmd_checkpoint(&ctx, key),
        Command::Proof {
            index,
            size,
            from,
            to,
        } => cmd_proof(&ctx, index, size, from, to),
        Command::BlastRadius {
            credential,
            principal,
            secret,
            max_events,
        } => incident::cmd_blast_radius(
            &ctx,
            incident::start_of(credential, principal, secret)?,
            max_events,
        ),
        Command::Export { event, output } => incident::cmd_export(&ctx, &event, &output),
        Command::VerifyBundle { file, key } => incident::cmd_verify_bundle(&ctx, &file, &key),
        Command::Report {
            event,
            credential,
            output,
        } => report::cmd_report(&ctx, event.as_deref(), credential.as_deref(), &output),
        Command::GenEvents { count, seed } => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let mut line = String::with_capacity(1024);
            for i in 0..count {
                line.clear();
                synth::event_line(seed, i, &mut line);
                line.push('\n');
                out.write_all(line.as_bytes())?;
            }
            out.flush()?;
            Ok(0)
        }
    }
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `--input-format`: a forced format, or `None` to detect per record.
#[derive(Clone, Copy, Debug)]
struct InputFormat(Option<custody_ingest::adapters::Format>);

fn parse_input_format(name: &str) -> Result<InputFormat, String> {
    if name == "auto" {
        return Ok(InputFormat(None));
    }
    custody_ingest::adapters::Format::parse(name)
        .map(|f| InputFormat(Some(f)))
        .ok_or_else(|| {
            let names: Vec<&str> = custody_ingest::adapters::Format::ALL
                .iter()
                .map(|f| f.name())
                .collect();
            format!(
                "unknown input format `{name}`: expected auto, {}",
                names.join(", ")
            )
        })
}

fn cmd_ingest(
    ctx: &Session,
    files: &[String],
    progress: bool,
    format: Option<custody_ingest::adapters::Format>,
    iam_snapshot: Option<&Path>,
) -> Result<u8> {
    // The snapshot first: a bad one stops here, before any store or key is created.
    let mut options = custody_ingest::adapters::Options::default();
    if let Some(path) = iam_snapshot {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read IAM snapshot `{}`", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            anyhow!(
                "{}:{}:{}: the IAM snapshot is not JSON: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        let scopes = custody_ingest::adapters::iam::IamScopes::parse(&value)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if progress {
            eprintln!(
                "IAM snapshot {}: scopes of {} roles and users",
                path.display(),
                scopes.len()
            );
        }
        options.iam = Some(std::sync::Arc::new(scopes));
    }
    let mut ledger = ctx.open_ledger(true)?;
    let redactor = keys::load_or_create_redactor(&ctx.keys.fingerprint, true)?;
    let ingester = Ingester::new(redactor)
        .with_format(format)
        .with_options(options)
        .with_maintenance(ctx.open_store(false)?);
    let summary = ingester.ingest_files(&mut ledger, files, progress)?;
    match ctx.format {
        Format::Json | Format::Sarif => print_json(&summary.to_json())?,
        Format::Text => print!("{}", summary.to_text()),
    }
    Ok(ingest::exit_code(&summary))
}

fn cmd_trace(ctx: &Session, event: Option<&str>, credential: Option<&str>) -> Result<u8> {
    let store = ctx.open_store(false)?;
    let link = ctx.link_config();
    let trace = match (event, credential) {
        (_, Some(cred)) => Trace::of_credential(store.as_ref(), cred, &link)?,
        (Some(event), None) => Trace::of_event(store.as_ref(), event, &link)?,
        (None, None) => bail!("give an event or --credential"),
    };
    match ctx.format {
        Format::Json | Format::Sarif => print_json(&trace.to_json())?,
        Format::Text => print!("{}", render_text(&trace)),
    }
    Ok(0)
}

fn read_verifier(path: &Path) -> Result<NoteVerifier> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read verifier key `{}`", path.display()))?;
    NoteVerifier::parse(text.trim())
        .map_err(|e| anyhow!("`{}` is not a verifier key: {e}", path.display()))
}

fn cmd_verify(ctx: &Session, key: Option<&Path>) -> Result<u8> {
    let store = ctx.open_store(false)?;
    let verifier = match key {
        Some(path) => read_verifier(path)?,
        None => keys::load_or_create_signer(&ctx.keys.signing, &ctx.origin(), false)?.verifier(),
    };
    let report = custody_store::ledger::verify_store(store.as_ref(), &verifier)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    match ctx.format {
        Format::Json | Format::Sarif => print_json(&json!({
            "ok": report.ok,
            "size": report.size,
            "root": b64.encode(report.root),
            "first_mismatch": report.first_mismatch,
            "checkpoints_checked": report.checkpoints_checked,
            "problems": report.problems,
        }))?,
        Format::Text => {
            if report.ok {
                println!(
                    "ok: {} events, root {}, {} signed checkpoints match",
                    report.size,
                    b64.encode(report.root),
                    report.checkpoints_checked
                );
            } else {
                println!("FAILED: the log does not verify");
                if let Some(i) = report.first_mismatch {
                    println!("first bad index: {i}");
                }
                for p in &report.problems {
                    println!("  {p}");
                }
            }
        }
    }
    Ok(if report.ok { 0 } else { EXIT_NEGATIVE })
}

fn cmd_checkpoint(ctx: &Session, key: bool) -> Result<u8> {
    let mut ledger = ctx.open_ledger(false)?;
    if key {
        match ctx.format {
            Format::Json | Format::Sarif => {
                print_json(&json!({"origin": ledger.origin(), "key": ledger.verifier_key()}))?
            }
            Format::Text => println!("{}", ledger.verifier_key()),
        }
        return Ok(0);
    }
    let checkpoint = ledger.checkpoint()?;
    match ctx.format {
        Format::Json | Format::Sarif => {
            let parsed = UnverifiedCheckpoint::parse(checkpoint.note.as_bytes())
                .map_err(|e| anyhow!("stored checkpoint is malformed: {e}"))?;
            print_json(&json!({
                "origin": parsed.origin(),
                "size": checkpoint.size,
                "root": base64::engine::general_purpose::STANDARD.encode(checkpoint.root),
                "note": checkpoint.note,
            }))?
        }
        Format::Text => print!("{}", checkpoint.note),
    }
    Ok(0)
}

fn cmd_proof(
    ctx: &Session,
    index: Option<u64>,
    size: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<u8> {
    let ledger = ctx.open_ledger(false)?;
    if let Some(index) = index {
        let p = ledger.inclusion_proof(index, size)?;
        match ctx.format {
            Format::Json | Format::Sarif => {
                let leaf = ledger.store().event_at(index)?.map(|e| e.canonical);
                print_json(&p.to_json(leaf.as_deref()))?
            }
            Format::Text => p.lines().iter().for_each(|l| println!("{l}")),
        }
        return Ok(0);
    }
    let Some(from) = from else {
        bail!("give --index I [--size N], or --from M [--to N]");
    };
    if size.is_some() {
        bail!("--size goes with --index; for a consistency proof use --to");
    }
    let p = ledger.consistency_proof(from, to)?;
    match ctx.format {
        Format::Json | Format::Sarif => print_json(&p.to_json())?,
        Format::Text => p.lines().iter().for_each(|l| println!("{l}")),
    }
    Ok(0)
}
