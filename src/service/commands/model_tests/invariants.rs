//! The checks after each step.

use super::*;

impl Run {
    /// Checks a step's result against what it should have done.
    pub(super) fn outcome(
        &self,
        result: Result<(), Error>,
        expect: Expect,
        before: &Fixture,
    ) -> Result<(), TestCaseError> {
        match (result, expect) {
            (Err(got), Expect::Fail(want)) => {
                prop_assert_eq!(discriminant(&got), discriminant(&want), "{:?}", got);
                prop_assert!(self.f == *before, "a failed command changed the state");
            }
            (Ok(()), Expect::Events(account, kinds)) => {
                let added = &self.f.events[before.events.len()..];
                prop_assert!(added.iter().all(|e| e.account_id == IDS[account]));
                let added: Vec<_> = added
                    .iter()
                    .map(|e| EventKind::from_str_name(&e.kind))
                    .collect();
                let kinds: Vec<_> = kinds.into_iter().map(Some).collect();
                prop_assert_eq!(added, kinds);
            }
            (Err(got), Expect::Events(..)) => prop_assert!(false, "unexpected {got:?}"),
            (Ok(()), Expect::Fail(want)) => prop_assert!(false, "expected {want:?}"),
        }
        Ok(())
    }

    /// The invariants, at the current instant.
    pub(super) fn check(&self) -> Result<(), TestCaseError> {
        let now = self.now;
        for (n, account) in IDS.iter().enumerate() {
            // The stored rows are the model's.
            let stored = self.f.accounts.get(*account);
            let modeled = self.model.get(&n);
            prop_assert_eq!(stored.is_some(), modeled.is_some());
            if let (Some((a, g)), Some(m)) = (stored, modeled) {
                prop_assert_eq!(a.plan, m.plan);
                prop_assert_eq!(a.is_deleted(), m.deleted);
                prop_assert_eq!(
                    (g.record.enabled, g.record.expire_time),
                    (m.enabled, m.expire)
                );
                prop_assert_eq!(g.expiry_recorded_us, m.recorded.map(to_us));
            }
            self.check_chain(account)?;
        }
        // Every ALLOW event names exactly one assumption row, and every row has one such event.
        let mut named: HashMap<String, usize> = HashMap::new();
        for e in &self.f.events {
            let kind = EventKind::from_str_name(&e.kind);
            if matches!(
                kind,
                Some(EventKind::AssumptionAllowed | EventKind::EmergencyAssumption)
            ) {
                let detail: serde_json::Value = serde_json::from_str(&e.detail_json).unwrap();
                let id = detail["assumption_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let row = self.f.assumptions.iter().find(|a| a.assumption_id == id);
                prop_assert!(row.is_some_and(|a| a.account_id == e.account_id));
                *named.entry(id).or_default() += 1;
            }
        }
        prop_assert_eq!(named.len(), self.f.assumptions.len());
        prop_assert!(
            named.values().all(|n| *n == 1),
            "an assumption allowed twice"
        );
        for (assumption_id, event_id) in &self.allowed {
            let e = self.f.events.iter().find(|e| &e.event_id == event_id);
            let names = e.and_then(|e| {
                serde_json::from_str::<serde_json::Value>(&e.detail_json).ok()?["assumption_id"]
                    .as_str()
                    .map(str::to_owned)
            });
            prop_assert_eq!(names.as_deref(), Some(assumption_id.as_str()));
        }
        // Nothing active without a basis in force now.
        for a in &self.f.assumptions {
            if a.state_at(now) != AssumptionState::Active {
                continue;
            }
            let n = IDS.iter().position(|i| *i == a.account_id).unwrap();
            let Some(m) = self.model.get(&n).filter(|m| !m.deleted) else {
                return Err(TestCaseError::fail(format!(
                    "active on a missing or deleted account: {a:?}"
                )));
            };
            let grounded = match a.basis {
                Basis::Emergency => a.expire_time <= a.start_time + self.limits.emergency,
                Basis::TrialAccount => m.plan == Plan::Trial,
                Basis::CustomerGrant => {
                    m.plan == Plan::Paid
                        && m.in_force(now)
                        && m.expire.is_none_or(|end| a.expire_time <= end)
                }
                // The model takes no requests: none can be granted on one.
                Basis::AccessRequest => false,
            };
            prop_assert!(grounded, "active without a basis: {:?} on {:?}", a, m);
        }
        Ok(())
    }

    /// The account's events: sequences 1..n, each linked to the previous hash, hashes valid,
    /// times never going back nor ahead of the clock, and the head at the last one.
    pub(super) fn check_chain(&self, account: &str) -> Result<(), TestCaseError> {
        let events: Vec<_> = self
            .f
            .events
            .iter()
            .filter(|e| e.account_id == account)
            .collect();
        let head = self.f.heads.get(account);
        prop_assert_eq!(head.is_some(), !events.is_empty());
        let mut verifier = ChainVerifier::new(head.map(|h| (h.last_sequence, h.last_hash.clone())));
        let mut last_time = 0;
        for (i, e) in events.iter().enumerate() {
            prop_assert_eq!(e.sequence, i as i64 + 1);
            prop_assert!(e.occur_time_us >= last_time && e.occur_time_us <= to_us(self.now));
            last_time = e.occur_time_us;
            let decoded = AuditEvent {
                global_position: i as i64,
                leaf_index: e.leaf_index,
                event_id: e.event_id.clone(),
                account_id: e.account_id.clone(),
                sequence: e.sequence,
                occur_time: from_us(e.occur_time_us).unwrap(),
                kind: EventKind::from_str_name(&e.kind).unwrap(),
                actor: EventActor::from_parts(&e.actor_type, &e.actor_value).unwrap(),
                detail_json: e.detail_json.clone(),
                request_id: e.request_id.clone(),
                prev_hash: e.prev_hash.clone(),
                hash: e.hash.clone(),
            };
            prop_assert!(
                verifier.push(&decoded),
                "chain of {} broken at {}",
                account,
                i + 1
            );
        }
        let verified = verifier.finish();
        prop_assert!(verified.intact(), "{:?}", verified);
        if let Some(h) = head {
            prop_assert_eq!(h.last_occur_time_us, last_time);
        }
        Ok(())
    }
}
