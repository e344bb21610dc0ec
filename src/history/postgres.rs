//! The PostgreSQL history store (being built).

use super::{
    raw::{IdCache, RawHistory, Recorded},
    record::RunRecord,
};
use crate::outcome::Fail;

/// An open PostgreSQL store.
pub struct Postgres {}

#[allow(clippy::unused_async)]
impl Postgres {
    /// Connect.
    pub async fn open(_url: &str, _create: bool) -> anyhow::Result<Postgres> {
        Err(Fail::unknown("PostgreSQL history stores are not built yet").into())
    }

    /// Write `runs` in one transaction.
    pub async fn record_runs(
        &mut self,
        _runs: &[RunRecord],
        _ids: &mut IdCache,
    ) -> anyhow::Result<Vec<Recorded>> {
        anyhow::bail!("not built")
    }

    /// Read the window.
    pub async fn load(&self, _since: i64, _device: Option<&str>) -> anyhow::Result<RawHistory> {
        anyhow::bail!("not built")
    }
}
