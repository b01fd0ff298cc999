//! Data-parallel training across processes: the collective operations [`fit`](crate::fit)
//! and [`tune`](crate::tune) need, behind one trait ([`Collective`]).
//!
//! A group of `size` workers ("ranks", numbered `0..size`) trains one model: every
//! rank holds the same weights, takes its own share of each global batch, and the
//! gradients are summed across ranks before every (identical) optimizer step. Three
//! implementations:
//!
//! - [`Single`]: one process, every operation the identity (what `fit` does without
//!   a collective);
//! - [`ThreadGroup`]: `size` ranks as threads of one process, for tests and for
//!   checking that a data-parallel run equals a single-process one without MPI;
//! - `Mpi` (cargo feature `mpi`): ranks are the processes of an MPI job (`mpirun`,
//!   Slurm's `srun`), on the `mpi` crate (rsmpi) and the system's MPI library.
//!
//! # Determinism
//! Every reduction has a fixed order that depends on the number of ranks only, and
//! every rank ends with the same bits: [`Collective::all_reduce_sum_f32`] of MPI is a
//! ring all-reduce (reduce-scatter, then all-gather; Patarasuk & Yuan 2009, "Bandwidth
//! optimal all-reduce algorithms for clusters of workstations") whose chunk `c` is
//! summed in ring order starting at rank `c`, and whose results are then copied, not
//! recomputed, to the other ranks. MPI's own `MPI_Allreduce` makes neither promise
//! (the order may change with the message size, and recursive doubling gives ranks
//! differently rounded sums). So the same seed, rank count and thread count give the
//! same weights on every rank and in every run.
//!
//! # Cost
//! The ring sends `2 (size - 1) / size` times the buffer per rank and step, the least
//! any all-reduce can; [`Collective::stats`] counts the bytes and the seconds spent.

use std::fmt;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use crate::error::{Result, TrainError};

/// [`History::stopped`](crate::History::stopped) of a rank that stopped because
/// another rank of its group asked to (a signal, a callback): every rank stops at the
/// same step.
pub const STOPPED_BY_ANOTHER_RANK: &str = "stopped: another rank of the job asked to stop";

/// What a rank has spent in collective operations so far (see [`Collective::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommStats {
    /// All-reduce calls.
    pub all_reduces: u64,
    /// Bytes this rank sent in all-reduces.
    pub bytes_sent: u64,
    /// Wall-clock seconds this rank spent inside all-reduces (waiting for slower
    /// ranks included).
    pub seconds: f64,
}

/// The collective operations of a group of `size` ranks training one model. Every
/// rank must make the same calls in the same order with buffers of the same length
/// (a mismatch is an error where the implementation can see it, and may hang an MPI
/// job otherwise: nn's callers only make calls that depend on values every rank
/// shares).
pub trait Collective: fmt::Debug + Send + Sync {
    /// This rank's number, `0..size()`. Rank 0 alone prints and writes files.
    fn rank(&self) -> usize;

    /// The number of ranks (1 for a single process).
    fn size(&self) -> usize;

    /// Replaces `buf` on every rank by the element-wise sum of every rank's `buf`,
    /// summed in an order fixed by `size()` alone; every rank gets the same bits.
    ///
    /// # Errors
    /// [`TrainError::Parallel`] when the ranks' lengths differ (where detectable) or
    /// the transport fails.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()>;

    /// [`Collective::all_reduce_sum_f32`] for `f64` (losses and metric sums).
    ///
    /// # Errors
    /// As [`Collective::all_reduce_sum_f32`].
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;

    /// Replaces `buf` on every rank by rank `root`'s `buf` (any length).
    ///
    /// # Errors
    /// [`TrainError::Parallel`] when the transport fails or `root >= size()`.
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) -> Result<()>;

    /// Collects every rank's `send` (any lengths) at rank `root`: `Some(parts)` there,
    /// `parts[i]` from rank `i`; `None` on the other ranks.
    ///
    /// # Errors
    /// [`TrainError::Parallel`] when the transport fails or `root >= size()`.
    fn gather_bytes(&self, root: usize, send: &[u8]) -> Result<Option<Vec<Vec<u8>>>>;

    /// Bytes and seconds this rank has spent in all-reduces so far.
    fn stats(&self) -> CommStats {
        CommStats::default()
    }

    /// Waits until every rank has called it.
    ///
    /// # Errors
    /// As [`Collective::all_reduce_sum_f64`].
    fn barrier(&self) -> Result<()> {
        self.all_reduce_sum_f64(&mut [0.0])
    }

    /// Checks that every rank holds the same `value` of `what` (a configuration, a
    /// dataset's fingerprint, the initial weights); the error names the first rank
    /// that differs from rank 0, on every rank.
    ///
    /// # Errors
    /// [`TrainError::Parallel`] `"rank R does not have rank 0's {what}"`.
    fn check_same(&self, what: &str, value: &[u8]) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let parts = self.gather_bytes(0, value)?;
        let mut verdict = match parts {
            Some(parts) => match parts.iter().position(|p| p.as_slice() != parts[0].as_slice()) {
                Some(r) => format!("rank {r} does not have rank 0's {what}").into_bytes(),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        self.broadcast_bytes(0, &mut verdict)?;
        if verdict.is_empty() {
            Ok(())
        } else {
            Err(TrainError::Parallel(String::from_utf8_lossy(&verdict).into_owned()))
        }
    }
}

/// The share of `n` items (samples of a batch, of a validation set) that rank
/// `rank` of `size` takes: the contiguous range `[rank·n/size, (rank+1)·n/size)`.
/// The shares cover `0..n` exactly, in rank order, and differ in length by at most 1.
pub fn shard(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let size = size.max(1);
    let at = |r: usize| ((r as u128 * n as u128) / size as u128) as usize;
    at(rank)..at(rank + 1)
}

/// One process: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f32(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn broadcast_bytes(&self, root: usize, _buf: &mut Vec<u8>) -> Result<()> {
        check_root(root, 1)
    }
    fn gather_bytes(&self, root: usize, send: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        check_root(root, 1)?;
        Ok(Some(vec![send.to_vec()]))
    }
}

fn check_root(root: usize, size: usize) -> Result<()> {
    if root >= size {
        return Err(TrainError::Parallel(format!("root rank {root} does not exist in a group of {size}")));
    }
    Ok(())
}

/// The state the ranks of a [`ThreadGroup`] share.
#[derive(Debug)]
struct Shared {
    barrier: Barrier,
    /// One slot per rank: what it contributed to the current operation.
    slots: Mutex<Vec<Vec<u8>>>,
}

/// `size` ranks as threads of one process (for tests, and to check a data-parallel
/// run against a single-process one without MPI): [`ThreadGroup::new`] gives one
/// [`ThreadRank`] per rank; move each into its own thread. A sum is taken in rank
/// order `0, 1, …` by every rank, so all get the same bits.
#[derive(Debug)]
pub struct ThreadGroup;

impl ThreadGroup {
    /// The `size` ranks of a new group (`size` ≥ 1).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(size: usize) -> Vec<ThreadRank> {
        let size = size.max(1);
        let shared = Arc::new(Shared { barrier: Barrier::new(size), slots: Mutex::new(vec![Vec::new(); size]) });
        (0..size)
            .map(|rank| ThreadRank { rank, size, shared: Arc::clone(&shared), stats: Mutex::new(CommStats::default()) })
            .collect()
    }
}

/// One rank of a [`ThreadGroup`].
#[derive(Debug)]
pub struct ThreadRank {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
    stats: Mutex<CommStats>,
}

impl ThreadRank {
    /// Every rank's `mine`, in rank order (one exchange: write, wait, read, wait).
    fn exchange(&self, mine: Vec<u8>) -> Vec<Vec<u8>> {
        self.shared.slots.lock().unwrap_or_else(|e| e.into_inner())[self.rank] = mine;
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.shared.barrier.wait();
        all
    }

    fn all_reduce<T: Element>(&self, buf: &mut [T]) -> Result<()> {
        let started = Instant::now();
        let all = self.exchange(T::to_bytes(buf));
        if let Some(r) = all.iter().position(|p| p.len() != all[self.rank].len()) {
            return Err(TrainError::Parallel(format!(
                "all-reduce of {} values on rank {}, but rank {r} sent {}",
                buf.len(),
                self.rank,
                all[r].len() / T::SIZE
            )));
        }
        let parts: Vec<Vec<T>> = all.iter().map(|p| T::from_bytes(p)).collect();
        for (i, x) in buf.iter_mut().enumerate() {
            let mut s = parts[0][i];
            for p in &parts[1..] {
                s = s.add(p[i]);
            }
            *x = s;
        }
        record(&self.stats, ring_bytes(buf.len() * T::SIZE, self.size), started);
        Ok(())
    }
}

/// Adds one all-reduce that sent `bytes` and began at `started` to `stats`.
fn record(stats: &Mutex<CommStats>, bytes: u64, started: Instant) {
    let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
    st.all_reduces += 1;
    st.bytes_sent += bytes;
    st.seconds += started.elapsed().as_secs_f64();
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.all_reduce(buf)
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.all_reduce(buf)
    }
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        check_root(root, self.size)?;
        let all = self.exchange(if self.rank == root { buf.clone() } else { Vec::new() });
        *buf = all[root].clone();
        Ok(())
    }
    fn gather_bytes(&self, root: usize, send: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        check_root(root, self.size)?;
        let all = self.exchange(send.to_vec());
        Ok((self.rank == root).then_some(all))
    }
    fn stats(&self) -> CommStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The bytes one rank sends in a ring all-reduce of `bytes` over `size` ranks.
pub fn ring_bytes(bytes: usize, size: usize) -> u64 {
    if size <= 1 {
        return 0;
    }
    (2 * (size as u64 - 1) * bytes as u64) / size as u64
}

/// The element types the collectives sum.
trait Element: Copy + Default {
    const SIZE: usize;
    fn add(self, other: Self) -> Self;
    fn to_bytes(v: &[Self]) -> Vec<u8>;
    fn from_bytes(b: &[u8]) -> Vec<Self>;
}

macro_rules! element {
    ($t:ty) => {
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn add(self, other: Self) -> Self {
                self + other
            }
            fn to_bytes(v: &[Self]) -> Vec<u8> {
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
            fn from_bytes(b: &[u8]) -> Vec<Self> {
                b.chunks_exact(Self::SIZE).map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of SIZE"))).collect()
            }
        }
    };
}
element!(f32);
element!(f64);

#[cfg(feature = "mpi")]
mod mpi_impl {
    //! The MPI implementation (cargo feature `mpi`).

    use std::sync::Mutex;
    use std::time::Instant;

    use mpi::datatype::Equivalence;
    use mpi::point_to_point::send_receive_into;
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::traits::{Destination, Root, Source};

    use super::{check_root, record, ring_bytes, CommStats, Element};
    use crate::error::{Result, TrainError};
    use crate::parallel::Collective;

    /// The ranks of an MPI job: the processes `mpirun -np N` (or `srun`) started,
    /// as `MPI_COMM_WORLD`. Make one with [`Mpi::init`] at the start of `main`, on
    /// the main thread, and keep it until the end: dropping it finalises MPI, which
    /// must happen on that thread.
    ///
    /// MPI is initialised at the "serialized" threading level (any thread may call
    /// MPI, one at a time), and every call goes through one mutex, so an `Mpi` may be
    /// shared between threads (a BatchNormalization backward pass calls it).
    pub struct Mpi {
        world: Mutex<World>,
        rank: usize,
        size: usize,
        stats: Mutex<CommStats>,
        // Dropped last: MPI_Finalize after the communicator is no longer used.
        _universe: Universe,
    }

    /// `MPI_COMM_WORLD`, used under [`Mpi`]'s mutex only.
    struct World(SimpleCommunicator);

    // SAFETY: MPI was initialised at the serialized threading level, which allows
    // MPI calls from any thread as long as no two run at once; `World` is only
    // reached through `Mpi::world`'s mutex, which serialises them.
    unsafe impl Send for World {}

    /// The MPI environment; dropping it calls `MPI_Finalize`.
    struct Universe(#[allow(dead_code)] mpi::environment::Universe);

    // SAFETY: `Universe` is never used after construction except by its drop, which
    // happens when the last `Arc<Mpi>` goes: nn-cli keeps one in `main` until the end
    // of the main thread, the thread that initialised MPI.
    unsafe impl Send for Universe {}
    unsafe impl Sync for Universe {}

    impl std::fmt::Debug for Mpi {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Mpi {{ rank: {}, size: {} }}", self.rank, self.size)
        }
    }

    impl Mpi {
        /// Initialises MPI (`MPI_Init_thread`, funneled) and takes `MPI_COMM_WORLD`.
        ///
        /// # Errors
        /// [`TrainError::Parallel`] when MPI was already initialised or gives less
        /// than the funneled threading level.
        pub fn init() -> Result<Mpi> {
            let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
                .ok_or_else(|| TrainError::Parallel("MPI was already initialised".into()))?;
            if threading < mpi::Threading::Serialized {
                return Err(TrainError::Parallel(format!(
                    "the MPI library gives threading level {threading:?}; nn needs at least Serialized"
                )));
            }
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            Ok(Mpi {
                world: Mutex::new(World(world)),
                rank,
                size,
                stats: Mutex::new(CommStats::default()),
                _universe: Universe(universe),
            })
        }

        /// Ends every process of the job at once (`MPI_Abort` with `code`): what a
        /// rank that fails does, so the others never wait for it.
        pub fn abort(&self, code: i32) -> ! {
            self.lock().0.abort(code)
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, World> {
            self.world.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// The MPI library's version string (first line), e.g. `Open MPI v4.1.4`.
        pub fn library_version() -> String {
            mpi::environment::library_version()
                .ok()
                .and_then(|v| v.lines().next().map(|l| l.split(',').next().unwrap_or(l).trim().to_string()))
                .unwrap_or_else(|| "MPI".into())
        }

        /// The ring all-reduce described in the [module docs](super).
        fn ring<T: Element + Equivalence>(&self, buf: &mut [T]) -> Result<()> {
            let (n, r) = (self.size, self.rank);
            if n == 1 {
                return Ok(());
            }
            let started = Instant::now();
            let world = self.lock();
            let len = buf.len();
            let bounds = |c: usize| (c * len / n)..((c + 1) * len / n);
            let next = world.0.process_at_rank(((r + 1) % n) as i32);
            let prev = world.0.process_at_rank(((r + n - 1) % n) as i32);
            let mut tmp = vec![T::default(); len.div_ceil(n) + 1];
            let mut sent = 0u64;
            // Reduce-scatter: after step s, rank r holds the sum of chunk (r - s - 1)
            // over ranks r - s - 1, …, r (in that order).
            for s in 0..n - 1 {
                let send_c = bounds((r + n - s) % n);
                let recv_c = bounds((r + 2 * n - s - 1) % n);
                let incoming = &mut tmp[..recv_c.len()];
                send_receive_into(&buf[send_c.clone()], &next, incoming, &prev);
                sent += (send_c.len() * T::SIZE) as u64;
                for (x, y) in buf[recv_c].iter_mut().zip(incoming.iter()) {
                    *x = y.add(*x);
                }
            }
            // All-gather: the finished chunks travel round the ring, copied as they are.
            for s in 0..n - 1 {
                let send_c = bounds((r + 1 + n - s) % n);
                let recv_c = bounds((r + n - s) % n);
                let incoming = &mut tmp[..recv_c.len()];
                send_receive_into(&buf[send_c.clone()], &next, incoming, &prev);
                sent += (send_c.len() * T::SIZE) as u64;
                buf[recv_c].copy_from_slice(incoming);
            }
            record(&self.stats, sent, started);
            debug_assert!(sent <= ring_bytes(len * T::SIZE, n) + (2 * n * T::SIZE) as u64);
            Ok(())
        }
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
            self.ring(buf)
        }
        fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.ring(buf)
        }
        fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
            check_root(root, self.size())?;
            let world = self.lock();
            let root = world.0.process_at_rank(root as i32);
            let mut len = buf.len() as u64;
            root.broadcast_into(&mut len);
            buf.resize(len as usize, 0);
            // Open MPI refuses an empty buffer (MPI_ERR_ARG); every rank knows the length.
            if len > 0 {
                root.broadcast_into(&mut buf[..]);
            }
            Ok(())
        }
        fn gather_bytes(&self, root: usize, send: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
            check_root(root, self.size())?;
            let world = self.lock();
            if self.rank() != root {
                world.0.process_at_rank(root as i32).send(send);
                return Ok(None);
            }
            let mut parts = Vec::with_capacity(self.size());
            for i in 0..self.size() {
                if i == root {
                    parts.push(send.to_vec());
                } else {
                    let (part, _status) = world.0.process_at_rank(i as i32).receive_vec::<u8>();
                    parts.push(part);
                }
            }
            Ok(Some(parts))
        }
        fn stats(&self) -> CommStats {
            *self.stats.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

#[cfg(feature = "mpi")]
pub use mpi_impl::Mpi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_range_in_order() {
        for n in 0..20 {
            for size in 1..6 {
                let mut next = 0;
                for r in 0..size {
                    let s = shard(n, r, size);
                    assert_eq!(s.start, next);
                    assert!(s.len() == n / size || s.len() == n / size + 1);
                    next = s.end;
                }
                assert_eq!(next, n);
            }
        }
        assert_eq!(shard(10, 1, 3), 3..6);
    }

    #[test]
    fn thread_group_sums_in_rank_order_and_agrees() {
        let ranks = ThreadGroup::new(3);
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|r| {
                std::thread::spawn(move || {
                    let k = r.rank() as f32;
                    let mut v = vec![k, 1e8 * (k - 1.0), 0.5 + k];
                    r.all_reduce_sum_f32(&mut v).unwrap();
                    let mut b = if r.rank() == 2 { b"two".to_vec() } else { Vec::new() };
                    r.broadcast_bytes(2, &mut b).unwrap();
                    let g = r.gather_bytes(0, &[r.rank() as u8; 2]).unwrap();
                    let same = r.check_same("answer", &[42]);
                    let differs = r.check_same("seed", &[(r.rank() == 2) as u8]);
                    (v, b, g, same.is_ok(), differs.unwrap_err().to_string(), r.stats())
                })
            })
            .collect();
        let out: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (i, (v, b, g, same, differs, stats)) in out.iter().enumerate() {
            // (-1e8 + 0) + 1e8 = 0 exactly in rank order.
            assert_eq!(v, &vec![3.0, 0.0, 4.5]);
            assert_eq!(b, b"two");
            assert_eq!(g.is_some(), i == 0);
            assert!(same);
            assert_eq!(differs, "rank 2 does not have rank 0's seed");
            // One all-reduce of 12 bytes; check_same gathers and broadcasts instead.
            assert_eq!(stats.all_reduces, 1);
            assert_eq!(stats.bytes_sent, 16);
        }
        assert_eq!(out[0].2.as_ref().unwrap(), &vec![vec![0, 0], vec![1, 1], vec![2, 2]]);
    }

    #[test]
    fn ring_bytes_is_the_bandwidth_optimal_figure() {
        assert_eq!(ring_bytes(1000, 1), 0);
        assert_eq!(ring_bytes(1000, 2), 1000);
        assert_eq!(ring_bytes(1000, 4), 1500);
    }
}
