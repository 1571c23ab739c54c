//! `files_due.lua`: which completed tasks' hosted result files are due for deletion.
//!
//! Completing a task with hosted files (`Scheduler::complete_owning`) records it in its
//! shard's `files` set with the time its retention ends (`complete.lua`). A sweeper (every
//! worker's reap loop) takes due entries here, deletes the task's objects from the store,
//! and says so with [`Scheduler::files_swept`].

use std::time::Duration;

use switchyard_core::Provider;

use crate::{Scheduler, SchedulerError, invoke, keys};

/// A task whose hosted files are due for deletion, taken by one sweeper for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueFiles {
    /// The task id (its objects are stored under it).
    pub task_id: String,
    base: String,
}

impl Scheduler {
    /// Take up to `limit` tasks per shard of `provider` whose hosted files are due for
    /// deletion. Each is held for `hold`: another sweeper takes it only after that, so a
    /// sweeper that dies leaves it to the next.
    pub async fn due_files(
        &self,
        provider: Provider,
        limit: usize,
        hold: Duration,
    ) -> Result<Vec<DueFiles>, SchedulerError> {
        let mut conn = self.conn().await?;
        let mut out = Vec::new();
        for base in self.bases(provider) {
            let mut inv = self.inner.scripts.files_due.prepare_invoke();
            inv.key(&base).arg(limit).arg(hold.as_millis() as u64);
            let ids: Vec<String> = invoke(&inv, &mut conn).await?;
            out.extend(ids.into_iter().map(|task_id| DueFiles {
                task_id,
                base: base.clone(),
            }));
        }
        Ok(out)
    }

    /// The files of these tasks are deleted: forget them.
    pub async fn files_swept(&self, swept: &[DueFiles]) -> Result<(), SchedulerError> {
        if swept.is_empty() {
            return Ok(());
        }
        let cmds = swept
            .iter()
            .map(|d| {
                let mut c = redis::cmd("ZREM");
                c.arg(keys::files(&d.base)).arg(&d.task_id);
                (d.base.clone(), c)
            })
            .collect();
        self.query_grouped(cmds).await?;
        Ok(())
    }
}
