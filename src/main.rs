//! Entry point: parse arguments, run, map the outcome to an exit code (docs/exit-codes.md).

use clap::Parser;

// Lint builds a JSON value per resource file on every core: glibc's malloc took a third of its
// time (free lists shared across threads); mimalloc's per-thread heaps make that a few percent.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = perses_oci::cli::Cli::parse();
    let code = match perses_oci::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`perses-oci plan | head`) is not an error worth a message.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                0
            } else {
                eprintln!("error: {}", message(&e));
                perses_oci::ops::exit::ERROR
            }
        }
    };
    std::process::exit(code);
}

/// The error and its causes, each cause only when the text so far does not already say it
/// (most errors here put their source in their own message).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if !out.contains(&m) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&m);
        }
    }
    out
}
