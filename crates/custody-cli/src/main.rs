//! The `custody` binary: everything lives in the library (`custody_cli::run`).

fn main() -> std::process::ExitCode {
    custody_cli::run(std::env::args_os())
}
