//! Joining a data-parallel job: `mpirun -n N recurrent train ...` starts N
//! processes, each of which trains its share of every batch (see
//! `recurrent::lm::Training::distribute`). Rank 0 writes and prints; the
//! others train quietly.

use anyhow::{bail, Result};
use recurrent::Collective;

/// Variables MPI launchers (mpirun, mpiexec, srun) set in every process
/// they start.
const LAUNCHER_VARIABLES: [&str; 6] = [
    "PMI_RANK",
    "PMI_SIZE",
    "PMIX_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "MPI_LOCALNRANKS",
    "HYDRA_CONTROL_FD",
];

/// Whether an MPI launcher started this process.
fn launched() -> bool {
    LAUNCHER_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The job this process is a rank of, when an MPI launcher started it with
/// more than one process; `None` for a plain run.
#[cfg(feature = "mpi")]
pub fn join() -> Result<Option<Box<dyn Collective + Send>>> {
    use recurrent::train::collective::mpi::MpiWorld;
    if !launched() {
        return Ok(None);
    }
    let Some(world) = MpiWorld::init() else {
        bail!("MPI could not be started in this process");
    };
    Ok((world.ranks() > 1).then(|| Box::new(world) as Box<dyn Collective + Send>))
}

/// Without MPI support, a process an MPI launcher started would train alone
/// into a folder its siblings share: refuse that.
#[cfg(not(feature = "mpi"))]
pub fn join() -> Result<Option<Box<dyn Collective + Send>>> {
    let ranks = ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    if launched() && ranks != Some(1) {
        bail!(
            "this recurrent was built without MPI support, so the processes mpirun started \
             cannot train together; build it with `cargo build --release --features mpi` \
             (needs libclang-dev and libmpich-dev)"
        );
    }
    Ok(None)
}
