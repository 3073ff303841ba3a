//! The `streetsync` binary: see the library crate for everything it does.

fn main() -> std::process::ExitCode {
    streetsync_cli::main_entry()
}
