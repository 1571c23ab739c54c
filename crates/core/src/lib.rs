//! Switchyard's domain model: plans, providers, tasks and their typed inputs, account
//! states, the plan and price tables taken from the public pricing page, and typed
//! configuration.
//!
//! This crate owns *what the product is*: who may run what, and what it costs. It knows
//! nothing of Redis, HTTP or any upstream protocol; everything here is pure and
//! synchronous, so the scheduler, the dispatcher, the workers and the CLI all share one
//! answer to "is this allowed" and "what does it cost".

pub mod account;
pub mod body;
pub mod config;
pub mod entitlement;
pub mod error;
pub mod net;
pub mod plan;
pub mod pricing;
pub mod prompt_check;
pub mod provider;
pub mod secrets;
pub mod task;

pub use account::{AccountState, ActiveWindow, DailyCap};
pub use body::{Origin, TaskBody};
pub use config::{Config, ConfigError};
pub use entitlement::entitlement;
pub use error::{NotEntitled, ParseEnumError, SpecError};
pub use plan::{Access, Grant, MjFeatures, MjOutputFields, Plan, PlanLimits, PlanTable};
pub use pricing::{Cost, PriceTable, QuotaKind, price};
pub use provider::{ProcessMode, Provider, ServiceMode};
pub use task::{MjVersion, ParseOptions, TaskSpec, TaskStatus};
