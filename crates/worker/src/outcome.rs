//! How a run's end is told to the scheduler and counted: the one mapping from an
//! adapter's result (`UpstreamError` included) to a scheduler call and a metric label.

use serde_json::Value;
use switchyard_scheduler::FailKind;

use crate::UpstreamError;

/// What the scheduler is told about one finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Complete the task with this output (JSON text).
    Complete {
        /// The output, serialised.
        output: String,
    },
    /// Fail the run: the scheduler retries, cools down, disables or fails by `kind`.
    Fail {
        /// What the scheduler does with the task and the account.
        kind: FailKind,
        /// For the tenant.
        message: String,
        /// The upstream's own text, when it gave one.
        raw: String,
    },
    /// Nothing: the lease was lost, another worker owns the task now.
    Nothing,
}

/// A run's outcome as the scheduler and the outcome metric see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The `outcome` label of `switchyard_task_outcomes_total`.
    pub(crate) label: &'static str,
    /// The scheduler call that records it.
    pub(crate) settlement: Settlement,
}

impl Outcome {
    /// The one place a run's result becomes a label and a scheduler call.
    pub(crate) fn of(result: &Result<Value, UpstreamError>) -> Outcome {
        let fail = |label, kind, message: &str, raw: &str| Outcome {
            label,
            settlement: Settlement::Fail {
                kind,
                message: message.to_owned(),
                raw: raw.to_owned(),
            },
        };
        match result {
            Ok(output) => Outcome {
                label: "completed",
                settlement: Settlement::Complete {
                    output: output.to_string(),
                },
            },
            Err(UpstreamError::Transient(m)) => fail("transient", FailKind::Transient, m, ""),
            Err(UpstreamError::RateLimited {
                retry_after_ms,
                message,
            }) => fail(
                "rate_limited",
                FailKind::RateLimited {
                    retry_after_ms: *retry_after_ms,
                },
                message,
                "",
            ),
            Err(UpstreamError::NoFastHours {
                retry_after_ms,
                message,
            }) => fail(
                "no_fast_hours",
                FailKind::NoFastHours {
                    retry_after_ms: *retry_after_ms,
                },
                message,
                "",
            ),
            Err(UpstreamError::AccountDead { reason }) => fail(
                "account_dead",
                FailKind::AccountDead {
                    reason: reason.clone(),
                },
                reason,
                "",
            ),
            Err(UpstreamError::BadRequest { message, raw }) => {
                fail("bad_request", FailKind::BadRequest, message, raw)
            }
            Err(UpstreamError::LeaseLost) => Outcome {
                label: "lease_lost",
                settlement: Settlement::Nothing,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn failed(kind: FailKind, message: &str, raw: &str) -> Settlement {
        Settlement::Fail {
            kind,
            message: message.into(),
            raw: raw.into(),
        }
    }

    #[test]
    fn every_result_has_one_label_and_one_settlement() {
        let cases: Vec<(Result<Value, UpstreamError>, &str, Settlement)> = vec![
            (
                Ok(json!({"url": "u"})),
                "completed",
                Settlement::Complete {
                    output: r#"{"url":"u"}"#.into(),
                },
            ),
            (
                Err(UpstreamError::Transient("5xx".into())),
                "transient",
                failed(FailKind::Transient, "5xx", ""),
            ),
            (
                Err(UpstreamError::RateLimited {
                    retry_after_ms: 1500,
                    message: "slow down".into(),
                }),
                "rate_limited",
                failed(
                    FailKind::RateLimited {
                        retry_after_ms: 1500,
                    },
                    "slow down",
                    "",
                ),
            ),
            (
                Err(UpstreamError::NoFastHours {
                    retry_after_ms: 0,
                    message: "Credits exhausted".into(),
                }),
                "no_fast_hours",
                failed(
                    FailKind::NoFastHours { retry_after_ms: 0 },
                    "Credits exhausted",
                    "",
                ),
            ),
            (
                Err(UpstreamError::AccountDead {
                    reason: "banned".into(),
                }),
                "account_dead",
                failed(
                    FailKind::AccountDead {
                        reason: "banned".into(),
                    },
                    "banned",
                    "",
                ),
            ),
            (
                Err(UpstreamError::BadRequest {
                    message: "refused".into(),
                    raw: "nsfw".into(),
                }),
                "bad_request",
                failed(FailKind::BadRequest, "refused", "nsfw"),
            ),
            (
                Err(UpstreamError::LeaseLost),
                "lease_lost",
                Settlement::Nothing,
            ),
        ];
        for (result, label, settlement) in cases {
            let got = Outcome::of(&result);
            assert_eq!(got.label, label, "{result:?}");
            assert_eq!(got.settlement, settlement, "{result:?}");
        }
    }
}
