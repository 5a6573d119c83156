//! `burrow agent`: the local proxy (placeholder until its issue lands).

/// Flags of `burrow agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {}

/// Runs the agent until interrupted or refused.
pub async fn run(_args: AgentArgs) -> anyhow::Result<()> {
    anyhow::bail!("burrow agent is not built yet")
}
