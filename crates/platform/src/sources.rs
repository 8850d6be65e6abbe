//! A function's event sources follow its `$LATEST` configuration: the
//! registry calls [`Platform::sync_triggers`] whenever that changes (deploy,
//! rollback, delete), and the sources' runners in `updraft-triggers` take
//! it from the store.

use crate::{Platform, PlatformError};
use updraft_core::FunctionConfig;

impl Platform {
    /// Makes the function's schedules and bus subscriptions (and, with
    /// them, its other event sources) those of `config`; None: the function
    /// is gone.
    pub(crate) async fn sync_triggers(
        &self,
        name: &str,
        config: Option<&FunctionConfig>,
    ) -> Result<(), PlatformError> {
        self.inner.schedules.sync(name, config).await?;
        self.inner.queues.sync(name, config).await?;
        self.sync_subscriptions(name, config).await?;
        Ok(())
    }
}
