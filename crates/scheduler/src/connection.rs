//! One connection type over a single Redis node or a Redis Cluster.

use deadpool_redis::{Runtime, cluster};
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use switchyard_core::config::RedisConfig;

use crate::SchedulerError;

/// A pool of connections to a single node or to a cluster.
#[derive(Clone)]
pub enum RedisPool {
    /// A single node (or a Sentinel-managed primary behind one address).
    Single(deadpool_redis::Pool),
    /// A Redis Cluster.
    Cluster(cluster::Pool),
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisPool::Single(_) => f.write_str("RedisPool::Single"),
            RedisPool::Cluster(_) => f.write_str("RedisPool::Cluster"),
        }
    }
}

/// A pooled connection of either kind; it speaks `ConnectionLike`, so commands, pipelines
/// and scripts run on it the same way.
pub enum Conn {
    /// Single node.
    Single(deadpool_redis::Connection),
    /// Cluster.
    Cluster(cluster::Connection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisPool {
    /// Build the pool (connections are made lazily).
    pub fn new(cfg: &RedisConfig) -> Result<Self, SchedulerError> {
        if cfg.cluster {
            let mut c = cluster::Config::from_urls(vec![cfg.url.clone()]);
            c.pool = Some(deadpool_redis::PoolConfig::new(cfg.pool_size));
            let pool = c
                .create_pool(Some(Runtime::Tokio1))
                .map_err(|e| SchedulerError::Config(e.to_string()))?;
            Ok(RedisPool::Cluster(pool))
        } else {
            // Scripts on deep backlogs and wake-up blocks may outlast the client's default
            // 500 ms response timeout.
            let conn_cfg = redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(std::time::Duration::from_secs(10)));
            let manager = deadpool_redis::Manager::new_with_config(cfg.url.as_str(), conn_cfg)
                .map_err(|e| SchedulerError::Config(e.to_string()))?;
            let pool = deadpool_redis::Pool::builder(manager)
                .max_size(cfg.pool_size)
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| SchedulerError::Config(e.to_string()))?;
            Ok(RedisPool::Single(pool))
        }
    }

    /// A connection from the pool.
    pub async fn get(&self) -> Result<Conn, SchedulerError> {
        match self {
            RedisPool::Single(p) => Ok(Conn::Single(
                p.get()
                    .await
                    .map_err(|e| SchedulerError::Pool(e.to_string()))?,
            )),
            RedisPool::Cluster(p) => Ok(Conn::Cluster(
                p.get()
                    .await
                    .map_err(|e| SchedulerError::Pool(e.to_string()))?,
            )),
        }
    }
}
