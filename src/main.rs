//! Entry point: parse arguments, run, map the outcome to an exit code (docs/exit-codes.md).

use clap::Parser;

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
                eprintln!("error: {e:#}");
                perses_oci::ops::exit::ERROR
            }
        }
    };
    std::process::exit(code);
}
