//! The bank-transfer critical section: `Account` entities (`deposit`,
//! `withdraw`, `balance`) and `BankTransfer` orchestrations that lock both
//! accounts, check the balance and move the money, so that concurrent
//! transfers never lose or create money.

use perdure::{EntityContext, EntityId, Failure, OrchestrationContext, Registry};
use serde::{Deserialize, Serialize};

/// One transfer between two accounts (entity keys).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transfer {
    pub from: String,
    pub to: String,
    pub amount: i64,
}

async fn account(ctx: EntityContext) -> Result<i64, Failure> {
    let balance: i64 = ctx.get_state_or_default()?;
    match ctx.operation().to_ascii_lowercase().as_str() {
        "deposit" => {
            let amount: i64 = ctx.get_input()?;
            ctx.set_state(balance + amount)?;
            Ok(balance + amount)
        }
        "withdraw" => {
            let amount: i64 = ctx.get_input()?;
            if amount > balance {
                return Err(Failure::new(
                    "InsufficientFunds",
                    format!("balance {balance} is less than {amount}"),
                ));
            }
            ctx.set_state(balance - amount)?;
            Ok(balance - amount)
        }
        "balance" => Ok(balance),
        other => Err(Failure::new(
            "UnknownOperation",
            format!("Account has no operation `{other}`"),
        )),
    }
}

fn account_id(key: &str) -> Result<EntityId, Failure> {
    EntityId::new("Account", key).map_err(|e| Failure::new("BadAccount", e.to_string()))
}

pub fn register(r: &mut Registry) {
    r.add_entity("Account", account);
    r.add_orchestrator("BankTransfer", |ctx: OrchestrationContext| async move {
        let t: Transfer = ctx.get_input()?;
        let (from, to) = (account_id(&t.from)?, account_id(&t.to)?);
        // Both accounts stay locked until `_section` goes out of scope.
        let _section = ctx.lock(&[from.clone(), to.clone()]).await?;
        let balance: i64 = ctx.call_entity(&from, "balance", ()).await?;
        if balance < t.amount {
            return Ok(false);
        }
        ctx.call_entity::<i64>(&from, "withdraw", t.amount).await?;
        ctx.call_entity::<i64>(&to, "deposit", t.amount).await?;
        Ok(true)
    });
}
