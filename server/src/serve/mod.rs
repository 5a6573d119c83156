//! `burrow serve`: the local tunneling service (placeholder until its issue lands).

/// Flags of `burrow serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs the service until interrupted.
pub async fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("burrow serve is not built yet")
}
