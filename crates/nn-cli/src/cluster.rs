//! The group of processes a command runs in: one process, or the ranks of an MPI job
//! (`mpirun -np N nn-cli fit …`, cargo feature `mpi`). See `nn_train::parallel`.

use std::sync::Arc;

use nn_train::parallel::{Collective, Single};

/// The processes of this run. Rank 0 alone prints and writes files; a rank that
/// fails ends the whole job ([`Cluster::fail`]).
#[derive(Debug)]
pub struct Cluster {
    /// The collective operations of the group ([`Single`] outside MPI).
    pub group: Arc<dyn Collective>,
    #[cfg(feature = "mpi")]
    mpi: Option<Arc<nn_train::parallel::Mpi>>,
}

/// Whether this process was started by an MPI launcher (Open MPI's `mpirun`, a PMI or
/// PMIx launcher such as Slurm's `srun`): only then is MPI initialised, so a plain
/// `nn-cli` of an MPI build starts as fast as any other.
#[cfg(feature = "mpi")]
fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].iter().any(|v| std::env::var_os(v).is_some())
}

impl Cluster {
    /// Joins the MPI job this process was launched in (feature `mpi` and an MPI
    /// launcher), or stands alone.
    ///
    /// # Errors
    /// A message when MPI cannot be initialised.
    pub fn join() -> Result<Cluster, String> {
        #[cfg(feature = "mpi")]
        if launched_by_mpi() {
            let mpi = Arc::new(nn_train::parallel::Mpi::init().map_err(|e| e.to_string())?);
            let group: Arc<dyn Collective> = mpi.clone();
            return Ok(Cluster { group, mpi: Some(mpi) });
        }
        Ok(Cluster::single())
    }

    /// One process.
    pub fn single() -> Cluster {
        Cluster {
            group: Arc::new(Single),
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    /// This process's rank (0 alone).
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.group.size()
    }

    /// Whether this process prints and writes (rank 0).
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// `"rank R of N: "` in a job of several ranks, else empty: the prefix of this
    /// rank's error line.
    pub fn prefix(&self) -> String {
        if self.size() > 1 {
            format!("rank {} of {}: ", self.rank(), self.size())
        } else {
            String::new()
        }
    }

    /// Ends the run after `message` was printed: in an MPI job of several ranks, ends
    /// every rank at once (`MPI_Abort`) so none waits for this one; otherwise returns
    /// and the caller exits with its own code.
    pub fn fail(&self) {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = &self.mpi {
            if mpi.size() > 1 {
                mpi.abort(1);
            }
        }
    }

    /// Sends this rank's standard output to `/dev/null` unless it is rank 0, so a job
    /// of N ranks prints one report, not N. Standard error stays: a failing rank's
    /// `error:` line is still seen.
    pub fn quiet_other_ranks(&self) {
        #[cfg(unix)]
        if !self.is_root() {
            use std::os::fd::AsRawFd;
            if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                // SAFETY: dup2 onto the standard output descriptor, which stays open
                // for the life of the process; `null` is a valid open descriptor.
                unsafe {
                    libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO);
                }
            }
        }
    }

    /// On rank 0 of a job, warns when the ranks on this machine together ask for more
    /// threads than it has cores (`--threads` is per rank): they would slow each other.
    /// The ranks per machine come from Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE` (or
    /// Slurm's `SLURM_NTASKS_PER_NODE`); without either nothing is said.
    pub fn warn_oversubscribed(&self) {
        if self.size() < 2 || !self.is_root() {
            return;
        }
        let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.split('(').next()?.trim().parse::<usize>().ok());
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let threads = nn_tensor::num_threads();
        if let Some(local) = local {
            if local * threads > cores {
                eprintln!(
                    "warning: {local} ranks × {threads} threads on this machine, which has {cores} cores: give each rank --threads {}",
                    (cores / local).max(1)
                );
            }
        }
    }

    /// What `--version` says about MPI.
    pub fn version_note() -> String {
        #[cfg(feature = "mpi")]
        {
            "MPI: compiled in (feature mpi; run under mpirun or srun)".to_string()
        }
        #[cfg(not(feature = "mpi"))]
        {
            "MPI: not compiled in (build with --features mpi)".to_string()
        }
    }
}
