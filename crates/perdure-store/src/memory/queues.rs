//! The memory store's orchestration and activity queues: taking work
//! under leases, committing turns (leased or not), and the activity tasks.

use super::*;

impl MemoryStore {
    /// Locks the instance with the oldest visible message it may run now.
    fn take_one(
        &self,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        // The clock is read under the lock, so a turn's time is never
        // before a create or commit that the fetch sees.
        let mut g = self.lock()?;
        let now = self.now_ms();
        let inner = &mut *g;
        let mut chosen: Option<String> = None;
        for m in inner.inbox.values() {
            if m.visible_at > now {
                continue;
            }
            match inner.instances.get(&m.instance_id) {
                Some(inst)
                    if !live(&inst.lock, now)
                        && filter.matches(&inst.rec.name, inst.rec.version.as_deref())
                        && (inst.rec.status != RuntimeStatus::Suspended
                            || is_control(&m.event)) =>
                {
                    chosen = Some(m.instance_id.clone());
                    break;
                }
                _ => {}
            }
        }
        let Some(id) = chosen else { return Ok(None) };
        lease_item(inner, &id, lease, max_messages, now).map(Some)
    }
}

/// Locks instance `id` for `lease` and returns it with its visible
/// messages (only control messages while it is suspended).
fn lease_item(
    inner: &mut Inner,
    id: &str,
    lease: Duration,
    max_messages: usize,
    now: i64,
) -> Result<OrchestrationItem, StoreError> {
    let rec = inner
        .instances
        .get(id)
        .map(|i| i.rec.clone())
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let suspended = rec.status == RuntimeStatus::Suspended;
    let mut visible: Vec<(&i64, &Msg)> = inner
        .inbox
        .iter()
        .filter(|(_, m)| m.instance_id == id && m.visible_at <= now)
        .filter(|(_, m)| !suspended || is_control(&m.event))
        .collect();
    // Stable: by sequence within each group.
    visible.sort_by_key(|(_, m)| !start_first(&rec, m.execution_id.as_deref()));
    let messages: Vec<InboxMessage> = visible
        .into_iter()
        .take(max_messages.max(1))
        .map(|(seq, m)| InboxMessage {
            seq: *seq,
            execution_id: m.execution_id.clone(),
            event: m.event.clone(),
        })
        .collect();
    let token = new_lock_token();
    let inst = inner
        .instances
        .get_mut(id)
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    inst.lock = Some((token.clone(), now + lease_ms(lease)));
    Ok(OrchestrationItem::new(
        inst.rec.clone(),
        messages,
        token,
        now,
    ))
}

impl MemoryStore {
    /// Applies a turn's commit under `guard`: its lease; or, unleased (the
    /// instance's last update as the turn saw it), when the instance is
    /// free and unchanged (see [`OrchestrationQueue::commit_unleased`]); or,
    /// for a new instance's first turn, when no instance has the id. The
    /// commit back, nothing changed, when that check fails.
    fn apply_commit(
        &self,
        c: OrchestrationCommit,
        guard: Guard,
    ) -> Result<Result<(), OrchestrationCommit>, StoreError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        let inner = &mut *g;
        let unleased = match guard {
            Guard::Unleased(last) => Some(last),
            Guard::Lease => None,
            Guard::New => {
                if inner.instances.contains_key(&c.instance_id) {
                    return Ok(Err(c));
                }
                // Created leased to the commit, which then applies as any
                // leased turn does, under the same lock.
                let new = ImplicitInstance {
                    name: c.update.name.clone(),
                    version: None,
                    execution_id: String::new(),
                    input: None,
                    parent_instance_id: None,
                    tags: Default::default(),
                };
                inner.instances.insert(
                    c.instance_id.clone(),
                    Inst {
                        rec: InstanceRecord::pending(&c.instance_id, new, c.now),
                        history: Vec::new(),
                        lock: Some((c.lock_token.clone(), i64::MAX)),
                    },
                );
                None
            }
        };
        if let Some(last) = unleased {
            let visible = inner
                .inbox
                .values()
                .any(|m| m.instance_id == c.instance_id && m.visible_at <= now);
            let unchanged = inner.instances.get(&c.instance_id).is_some_and(|i| {
                !live(&i.lock, now)
                    && i.rec.status == RuntimeStatus::Running
                    && i.history.len() as u64 == c.expected_history_len
                    && i.rec.updated_at.timestamp_millis() == last.timestamp_millis()
            });
            if visible || !unchanged {
                return Ok(Err(c));
            }
        }
        let inst = inner
            .instances
            .get_mut(&c.instance_id)
            .ok_or_else(|| StoreError::NotFound(c.instance_id.clone()))?;
        match &inst.lock {
            _ if unleased.is_some() => {}
            Some((t, exp)) if *t == c.lock_token && *exp > now => {}
            _ => {
                return Err(StoreError::LockLost(format!(
                    "instance `{}`",
                    c.instance_id
                )))
            }
        }

        let base = if c.replace_history {
            0
        } else {
            inst.history.len() as u64
        };
        if base != c.expected_history_len {
            return Err(StoreError::HistoryConflict {
                id: c.instance_id.clone(),
                expected: c.expected_history_len,
                actual: base,
            });
        }
        // All checks passed: apply everything.
        if c.replace_history {
            inst.history.clear();
        }
        inst.history.extend(c.history.iter().cloned());
        let u = c.update;
        let status = u.status;
        inst.rec.name = u.name;
        inst.rec.version = u.version;
        inst.rec.status = u.status;
        inst.rec.execution_id = u.execution_id;
        inst.rec.input = u.input;
        inst.rec.output = u.output;
        inst.rec.failure = u.failure;
        inst.rec.custom_status = u.custom_status;
        inst.rec.parent_instance_id = u.parent_instance_id;
        inst.rec.tags = u.tags;
        inst.rec.updated_at = c.now;
        inst.rec.history_len = inst.history.len() as u64;
        inst.lock = None;
        for seq in &c.consumed {
            inner.inbox.remove(seq);
        }
        if !c.completed_tasks.is_empty() {
            inner.tasks.retain(
                |_, t| !matches!(&t.lock, Some((tok, _)) if c.completed_tasks.contains(tok)),
            );
        }
        let has_activities = c.activities.len() > c.claims.tokens.len();
        for (i, a) in c.activities.into_iter().enumerate() {
            inner.next_seq += 1;
            let seq = inner.next_seq;
            let (token, expiry) = c.claims.lock(i, now);
            inner.tasks.insert(
                seq,
                Task {
                    activity: a,
                    visible_at: now,
                    lock: token.map(|t| (t.to_string(), expiry)),
                    dequeue_count: token.is_some() as u32,
                },
            );
        }
        let mut wake_now = false;
        let mut wake_later = Vec::new();
        for m in c.messages {
            let exists = inner.instances.contains_key(&m.instance_id);
            if !exists {
                let Some(new) = implicit_instance(&m) else {
                    continue; // undeliverable: dropped
                };
                let rec = InstanceRecord::pending(&m.instance_id, new, c.now);
                inner.instances.insert(
                    m.instance_id.clone(),
                    Inst {
                        rec,
                        history: Vec::new(),
                        lock: None,
                    },
                );
            }
            if ms(m.visible_at) <= now {
                wake_now = true;
            } else {
                wake_later.push(m.visible_at);
            }
            inner.push_msg(m);
        }
        drop(g);
        self.wake.instance_changed(&c.instance_id, status);
        if wake_now {
            self.wake.notify(WorkKind::Orchestration);
        }
        for t in wake_later {
            self.wake.schedule(WorkKind::Orchestration, t);
        }
        if has_activities {
            self.wake.notify(WorkKind::Activity);
        }
        Ok(Ok(()))
    }
}

/// What a commit is applied under (see [`MemoryStore::apply_commit`]).
enum Guard {
    /// The commit's lease.
    Lease,
    /// No lease: the instance free and last updated at this time.
    Unleased(perdure_core::Timestamp),
    /// A new instance's first turn: no instance has the id.
    New,
}

#[async_trait]
impl OrchestrationQueue for MemoryStore {
    async fn fetch_orchestrations(
        &self,
        lease: Duration,
        max_messages: usize,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<OrchestrationItem>, StoreError> {
        let mut out = Vec::new();
        while out.len() < max_items.max(1) {
            match self.take_one(lease, max_messages, filter)? {
                Some(item) => out.push(item),
                None => break,
            }
        }
        Ok(out)
    }

    async fn commit_orchestration(&self, c: OrchestrationCommit) -> Result<(), StoreError> {
        self.apply_commit(c, Guard::Lease)?
            .map_err(|c| StoreError::LockLost(format!("instance `{}`", c.instance_id)))
    }

    async fn create_with_first_turn(
        &self,
        c: OrchestrationCommit,
    ) -> Result<FirstTurn, StoreError> {
        Ok(match self.apply_commit(c.into_first_turn(), Guard::New)? {
            Ok(()) => FirstTurn::Created,
            Err(c) => FirstTurn::Declined(Box::new(c)),
        })
    }

    async fn commit_unleased(
        &self,
        c: OrchestrationCommit,
        last_update: perdure_core::Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.apply_commit(c, Guard::Unleased(last_update))?.is_ok())
    }

    fn unleased_now(&self) -> Option<perdure_core::Timestamp> {
        Some(self.clock.now())
    }

    async fn renew_orchestration_lock(
        &self,
        instance_id: &str,
        lock_token: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        match g.instances.get_mut(instance_id) {
            Some(inst) => match &mut inst.lock {
                Some((t, exp)) if t == lock_token && *exp > now => {
                    *exp = now + lease_ms(lease);
                    Ok(())
                }
                _ => Err(StoreError::LockLost(format!("instance `{instance_id}`"))),
            },
            None => Err(StoreError::NotFound(instance_id.to_string())),
        }
    }

    async fn abandon_orchestration(
        &self,
        instance_id: &str,
        lock_token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        let inst = g
            .instances
            .get_mut(instance_id)
            .ok_or_else(|| StoreError::NotFound(instance_id.to_string()))?;
        match &inst.lock {
            Some((t, exp)) if t == lock_token && *exp > now => {}
            _ => return Err(StoreError::LockLost(format!("instance `{instance_id}`"))),
        }
        let until = now + lease_ms(retry_after);
        inst.lock = if retry_after.is_zero() {
            None
        } else {
            Some((String::new(), until))
        };
        drop(g);
        match chrono::DateTime::from_timestamp_millis(until) {
            Some(t) if !retry_after.is_zero() => self.wake.schedule(WorkKind::Orchestration, t),
            _ => self.wake.notify(WorkKind::Orchestration),
        }
        Ok(())
    }
}

#[async_trait]
impl ActivityQueue for MemoryStore {
    async fn fetch_activities(
        &self,
        lease: Duration,
        max_items: usize,
        filter: &WorkFilter,
    ) -> Result<Vec<ActivityItem>, StoreError> {
        fn one(
            this: &MemoryStore,
            lease: Duration,
            filter: &WorkFilter,
        ) -> Result<Option<ActivityItem>, StoreError> {
            let now = this.now_ms();
            let mut g = this.lock()?;
            let Some(task) = g.tasks.values_mut().find(|t| {
                t.visible_at <= now
                    && !live(&t.lock, now)
                    && filter.matches(&t.activity.name, t.activity.version.as_deref())
            }) else {
                return Ok(None);
            };
            let token = new_lock_token();
            task.lock = Some((token.clone(), now + lease_ms(lease)));
            task.dequeue_count += 1;
            Ok(Some(ActivityItem {
                activity: task.activity.clone(),
                lock_token: token,
                dequeue_count: task.dequeue_count,
            }))
        }
        let mut out = Vec::new();
        while out.len() < max_items.max(1) {
            match one(self, lease, filter)? {
                Some(item) => out.push(item),
                None => break,
            }
        }
        Ok(out)
    }

    async fn complete_activity(
        &self,
        lock_token: &str,
        result: InstanceMessage,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        let seq = g
            .tasks
            .iter()
            .find(|(_, t)| matches!(&t.lock, Some((tok, exp)) if tok == lock_token && *exp > now))
            .map(|(s, _)| *s)
            .ok_or_else(|| StoreError::LockLost("activity task".into()))?;
        g.tasks.remove(&seq);
        if g.instances.contains_key(&result.instance_id) {
            g.push_msg(result);
            drop(g);
            self.wake.notify(WorkKind::Orchestration);
        }
        Ok(())
    }

    async fn take_for_result(
        &self,
        lock_token: &str,
        instance_id: &str,
        lease: Duration,
        max_messages: usize,
        filter: &WorkFilter,
    ) -> Result<Option<OrchestrationItem>, StoreError> {
        let mut g = self.lock()?;
        let now = self.now_ms();
        let inner = &mut *g;
        let held = inner
            .tasks
            .values()
            .any(|t| matches!(&t.lock, Some((tok, exp)) if tok == lock_token && *exp > now));
        if !held {
            return Err(StoreError::LockLost("activity task".into()));
        }
        let free = inner.instances.get(instance_id).is_some_and(|i| {
            !live(&i.lock, now)
                && i.rec.status == RuntimeStatus::Running
                && i.rec.history_len > 0
                && filter.matches(&i.rec.name, i.rec.version.as_deref())
        });
        if !free {
            return Ok(None);
        }
        lease_item(inner, instance_id, lease, max_messages, now).map(Some)
    }

    async fn renew_activity_lock(
        &self,
        lock_token: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        match g
            .tasks
            .values_mut()
            .find(|t| matches!(&t.lock, Some((tok, exp)) if tok == lock_token && *exp > now))
        {
            Some(t) => {
                t.lock = Some((lock_token.to_string(), now + lease_ms(lease)));
                Ok(())
            }
            None => Err(StoreError::LockLost("activity task".into())),
        }
    }

    async fn abandon_activity(
        &self,
        lock_token: &str,
        retry_after: Duration,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        match g
            .tasks
            .values_mut()
            .find(|t| matches!(&t.lock, Some((tok, exp)) if tok == lock_token && *exp > now))
        {
            Some(t) => {
                t.lock = None;
                t.visible_at = now + lease_ms(retry_after);
                let at = t.visible_at;
                drop(g);
                match chrono::DateTime::from_timestamp_millis(at) {
                    Some(ts) if !retry_after.is_zero() => {
                        self.wake.schedule(WorkKind::Activity, ts)
                    }
                    _ => self.wake.notify(WorkKind::Activity),
                }
                Ok(())
            }
            None => Err(StoreError::LockLost("activity task".into())),
        }
    }

    async fn pending_tasks(
        &self,
        instance_id: &str,
        execution_id: &str,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .lock()?
            .tasks
            .values()
            .filter(|t| {
                t.activity.instance_id == instance_id && t.activity.execution_id == execution_id
            })
            .map(|t| t.activity.task_id)
            .collect())
    }
}
