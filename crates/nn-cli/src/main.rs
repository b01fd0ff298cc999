//! `nn-cli`: a thin command line over the nn crates. It parses flags into one run
//! configuration, calls nn-data, nn-layers, nn-optim and nn-train, and prints. No
//! maths lives here.

mod args;
mod cluster;
mod commands;
mod data;
mod error;
mod lock;
mod plot;
mod signals;
mod text;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};
use crate::cluster::Cluster;

/// The binary's allocator. A training step allocates and frees tens of megabytes of
/// temporaries; glibc's malloc hands such blocks back to the OS and faults them in
/// again every step (thousands of page faults per step at 2 threads, measured), while
/// mimalloc keeps freed pages for reuse. Only the binary chooses this: the library
/// crates leave the allocator to their users.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's purge delay (milliseconds before freed memory goes back to the
/// OS; −1 never), unless the user chose one with `MIMALLOC_PURGE_DELAY`.
fn set_purge_delay(ms: std::os::raw::c_long) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's integer options; any value is valid and
        // mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
    }
}

/// Tells mimalloc never to hand freed memory back to the OS (purge delay −1). With
/// the default 10 ms, the 16 MB logits of a language model's step were returned
/// between steps and faulted in again, zeroed by the kernel, every step (about 6 %
/// of a GPT step, measured).
///
/// `fit` (the recommender's too) and `tune` call this only when training starts: until then (reading,
/// decompressing and splitting the data) freed memory goes back at once
/// ([`return_freed_memory`]), which took the peak resident size of a whole MNIST
/// `fit` run from 174 to about 107 MiB for the MLP (measured by sampling
/// `/proc/PID/status`). Every other command calls it first thing.
pub(crate) fn keep_freed_memory() {
    set_purge_delay(-1);
}

/// Tells mimalloc to hand freed memory back to the OS at once (purge delay 0): for
/// the data-reading phase of `fit` and `tune`, whose buffers are freed and never
/// needed again.
fn return_freed_memory() {
    set_purge_delay(0);
}

/// Hands the freed memory mimalloc kept back to the OS now (purge delay 0, then a
/// forced collection on this thread and on each of nn's pool threads), then keeps
/// freed memory again.
pub(crate) fn return_kept_memory() {
    return_freed_memory();
    // SAFETY: `mi_collect` only frees memory mimalloc holds and no caller uses.
    let collect = || unsafe { libmimalloc_sys::mi_collect(true) };
    nn_tensor::thread_pool().broadcast(|_| collect());
    collect();
    keep_freed_memory();
}

/// A training callback that hands the memory kept by the training steps back to
/// the OS before each validation pass, and the validation's after it. The
/// evaluation's buffers (no graph, other sizes) did not reuse what the training
/// steps had freed and kept, and added to it: the resnet preset's peak resident
/// size on MNIST was reached during validation, about 30 MiB above training's
/// (sampled from `/proc/PID/status`). Each phase refills its buffers once per
/// epoch, a few milliseconds.
pub(crate) struct ReturnMemoryAroundValidation;

impl nn_train::Callback for ReturnMemoryAroundValidation {
    fn on_test_begin(&mut self) {
        return_kept_memory();
    }

    fn on_test_end(&mut self) {
        return_kept_memory();
    }
}

fn version() -> String {
    format!(
        "{} (GEMM back end: {}; {})",
        env!("CARGO_PKG_VERSION"),
        nn_tensor::backend_summary(),
        Cluster::version_note()
    )
}

fn main() -> ExitCode {
    // Printing into a closed pipe (`nn-cli summary | head -1`) ends the process
    // quietly, as with `cat`, instead of a panic; `serve` ignores SIGPIPE again below.
    signals::sigpipe_default();
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
    // The memory limit every command checks a model against before building it.
    let env_limit = std::env::var_os("NN_MAX_MEMORY").map(|v| v.to_string_lossy().into_owned());
    match commands::MemoryLimit::choose(cli.max_memory, env_limit.as_deref()) {
        Ok(limit) => commands::set_memory_limit(limit),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if matches!(cli.command, Command::Serve(_)) {
        // A client that disconnects must not end the server.
        signals::sigpipe_ignore();
    }
    // The processes of this run: one, or the ranks of an MPI job (feature `mpi`).
    let cluster = match Cluster::join() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    cluster.quiet_other_ranks();
    cluster.warn_oversubscribed();
    if matches!(cli.command, Command::Fit(_) | Command::Tune(_)) {
        return_freed_memory();
    } else {
        keep_freed_memory();
    }
    let fit_matches = matches.subcommand_matches("fit");
    let result = match cli.command {
        Command::Fit(args) => commands::fit::run(*args, fit_matches, &cluster),
        Command::Tune(args) => commands::check_tune(&args).and_then(|()| commands::tune::run(*args, &cluster)),
        _ if cluster.size() > 1 => Err(error::CliError::Usage(format!(
            "only `fit` and `tune` run on several MPI ranks; run this command as one process (this job has {})",
            cluster.size()
        ))),
        Command::Evaluate(args) => commands::evaluate(args),
        Command::Predict(args) => commands::predict(args),
        Command::Summary(args) => commands::summary(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Import(args) => commands::import::run(args),
        Command::Recommend(args) => commands::recommend::recommend(args),
        Command::Similar(args) => commands::recommend::similar(args),
        Command::Generate(args) => commands::generate::run(args),
    };
    if let Err(e) = &result {
        if cluster.size() > 1 && matches!(e, error::CliError::Train(nn_train::TrainError::Parallel(_))) {
            // The ranks disagree (settings, data, weights): every rank got this same
            // error at the same point, so rank 0 alone says it and all end normally.
            if cluster.is_root() {
                eprintln!("error: {e}");
            }
        } else {
            eprintln!("error: {}{e}", cluster.prefix());
            // In an MPI job, every rank ends now, so none waits for this one.
            cluster.fail();
        }
    }
    // A command that stopped early on SIGINT or SIGTERM (after `signals::install`)
    // exits as a shell reports a process killed by that signal: 130 or 143.
    match (signals::received(), result) {
        (Some(signal), _) => ExitCode::from(signals::exit_code(signal)),
        (None, Ok(())) => ExitCode::SUCCESS,
        (None, Err(_)) => ExitCode::FAILURE,
    }
}
