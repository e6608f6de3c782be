//! The `jobs` binary: see the `jobs_cli` crate docs.

fn main() -> std::process::ExitCode {
    jobs_cli::main()
}
