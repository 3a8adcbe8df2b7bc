//! Error handling: retries with a policy, then compensation. TransferFunds
//! debits one account and credits another; the credit is flaky (it fails a
//! given number of times first) and is retried on durable timers; if it still
//! fails, the debit is compensated by a refund.

use perdure::{Failure, OrchestrationContext, Registry, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transfer {
    pub transfer_id: String,
    pub from: String,
    pub to: String,
    pub amount: u64,
    /// The credit call fails this many times before it succeeds.
    pub credit_failures: u32,
    /// Attempts the retry policy allows for the credit.
    pub max_attempts: u32,
}

pub fn register(r: &mut Registry) {
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    r.add_activity(
        "DebitAccount",
        |_ctx, (account, amount): (String, u64)| async move {
            Ok(format!("debited {amount} from {account}"))
        },
    );
    r.add_activity("CreditAccount", move |_ctx, t: Transfer| {
        let attempts = attempts.clone();
        async move {
            let n = {
                let mut g = attempts
                    .lock()
                    .map_err(|_| Failure::new("Poisoned", "attempt table"))?;
                let n = g.entry(t.transfer_id.clone()).or_insert(0);
                *n += 1;
                *n
            };
            if n <= t.credit_failures {
                return Err(Failure::new(
                    "BankUnavailable",
                    format!("bank of {} did not answer (attempt {n})", t.to),
                ));
            }
            Ok(format!("credited {} to {} on attempt {n}", t.amount, t.to))
        }
    });
    r.add_activity(
        "RefundAccount",
        |_ctx, (account, amount): (String, u64)| async move {
            Ok(format!("refunded {amount} to {account}"))
        },
    );
    r.add_orchestrator("TransferFunds", |ctx: OrchestrationContext| async move {
        let t: Transfer = ctx.get_input()?;
        ctx.call_activity::<String>("DebitAccount", (&t.from, t.amount)).await?;
        let policy = RetryPolicy::new(Duration::from_millis(200), t.max_attempts)
            .map_err(|e| Failure::new("BadRetryPolicy", e.to_string()))?
            .with_backoff_coefficient(2.0)
            .map_err(|e| Failure::new("BadRetryPolicy", e.to_string()))?
            .with_handle(|f| f.error_type == "BankUnavailable");
        match ctx.call_activity_with_retry::<String>("CreditAccount", &policy, &t).await {
            Ok(receipt) => Ok(serde_json::json!({ "status": "transferred", "receipt": receipt })),
            Err(e) if e.is_type("BankUnavailable") => {
                ctx.log_warn(&format!("credit failed for good, compensating: {e}"));
                let refund: String = ctx.call_activity("RefundAccount", (&t.from, t.amount)).await?;
                Ok(serde_json::json!({ "status": "compensated", "refund": refund, "error": e.to_string() }))
            }
            Err(e) => Err(e.into()),
        }
    });
}
