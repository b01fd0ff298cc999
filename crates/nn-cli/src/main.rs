//! `nn-cli`: a thin command line over the nn crates. It parses flags into one run
//! configuration, calls nn-data, nn-layers, nn-optim and nn-train, and prints. No
//! maths lives here.

mod args;
mod commands;
mod data;
mod error;
mod plot;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};

/// The binary's allocator. A training step allocates and frees tens of megabytes of
/// temporaries; glibc's malloc hands such blocks back to the OS and faults them in
/// again every step (thousands of page faults per step at 2 threads, measured), while
/// mimalloc keeps freed pages for reuse. Only the binary chooses this: the library
/// crates leave the allocator to their users.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn version() -> String {
    format!("{} (GEMM back end: {})", env!("CARGO_PKG_VERSION"), nn_tensor::backend_summary())
}

fn main() -> ExitCode {
    let version: &'static str = Box::leak(version().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::FAILURE;
        }
        nn_tensor::set_num_threads(n);
    }
    let fit_matches = matches.subcommand_matches("fit");
    let result = match cli.command {
        Command::Fit(args) => commands::fit::run(*args, fit_matches),
        Command::Evaluate(args) => commands::evaluate(args),
        Command::Predict(args) => commands::predict(args),
        Command::Summary(args) => commands::summary(args),
        Command::Tune(args) => commands::tune::run(*args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
