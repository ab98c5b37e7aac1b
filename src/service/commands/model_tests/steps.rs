//! The steps that run a command: each predicts from the model what the command must do,
//! runs it through the fixture and checks its answer.

use super::*;

impl Run {
    /// Creates, keeps or converts an account.
    pub(super) fn upsert(&mut self, account: usize, paid: bool) -> Result<Stepped, TestCaseError> {
        let now = self.now;
        let plan = if paid { Plan::Paid } else { Plan::Trial };
        let m = self.model.get(&account).cloned();
        let (expect, after) = match m {
            None => {
                let created = Modeled {
                    plan,
                    deleted: false,
                    enabled: false,
                    expire: None,
                    recorded: None,
                };
                let kinds = vec![EventKind::AccountCreated];
                (Expect::Events(account, kinds), Some(created))
            }
            Some(m) if m.deleted => (Expect::Fail(Error::AccountDeleted), None),
            Some(m) if m.plan == plan => (Expect::Events(account, vec![]), None),
            Some(m) if m.plan == Plan::Paid => {
                (Expect::Fail(Error::PaidAccountCannotBecomeTrial), None)
            }
            Some(m) => {
                let converted = Modeled {
                    plan: Plan::Paid,
                    enabled: false,
                    expire: None,
                    ..m
                };
                let kinds = vec![EventKind::AccountConvertedToPaid];
                (Expect::Events(account, kinds), Some(converted))
            }
        };
        let cmd = Upsert {
            cmd: UpsertAccount {
                account_id: id(account),
                plan,
            },
            principal: "provisioning".into(),
            request_id: None,
        };
        let result = self.f.run(&cmd, now).map(|_| ());
        Ok((result, expect, after.map(|a| (account, a))))
    }

    /// Enables or re-periods a grant.
    pub(super) fn enable(
        &mut self,
        account: usize,
        duration: AccessDuration,
        fault: Fault,
    ) -> Result<Stepped, TestCaseError> {
        let now = self.now;
        let m = self.model.get(&account).cloned();
        let (expect, after) = match (change_refused(m.as_ref(), fault), m) {
            (None, Some(mut m)) => {
                let mut kinds = Vec::new();
                if m.pending_lapse(now) {
                    kinds.push(EventKind::GrantExpired);
                    m.recorded = m.expire;
                }
                kinds.push(if m.in_force(now) {
                    EventKind::GrantDurationChanged
                } else {
                    EventKind::GrantEnabled
                });
                m.enabled = true;
                m.expire = duration.expire_time(now);
                (Expect::Events(account, kinds), Some(m))
            }
            // `change_refused` refuses every account the model lacks.
            (refused, _) => (
                Expect::Fail(refused.unwrap_or(Error::AccountNotFound)),
                None,
            ),
        };
        let cmd = Enable {
            cmd: EnableGrant {
                account_id: id(account),
                duration,
                actor: actor(fault),
                etag: etag(fault),
            },
            principal: "admin-center".into(),
            request_id: None,
        };
        let result = self.f.run(&cmd, now).map(|_| ());
        Ok((result, expect, after.map(|a| (account, a))))
    }

    /// Disables a grant, revoking what is open.
    pub(super) fn disable(
        &mut self,
        account: usize,
        fault: Fault,
    ) -> Result<Stepped, TestCaseError> {
        let now = self.now;
        let m = self.model.get(&account).cloned();
        let open = !self.active(account).is_empty();
        let (expect, after) = match (change_refused(m.as_ref(), fault), m) {
            (None, Some(mut m)) => {
                let mut kinds = Vec::new();
                if m.pending_lapse(now) {
                    kinds.push(EventKind::GrantExpired);
                    m.recorded = m.expire;
                }
                let was_enabled = m.in_force(now);
                if was_enabled {
                    m.enabled = false;
                    m.expire = None;
                }
                if was_enabled || open {
                    kinds.push(EventKind::GrantDisabled);
                }
                (Expect::Events(account, kinds), Some(m))
            }
            // `change_refused` refuses every account the model lacks.
            (refused, _) => (
                Expect::Fail(refused.unwrap_or(Error::AccountNotFound)),
                None,
            ),
        };
        let cmd = Disable {
            cmd: DisableGrant {
                account_id: id(account),
                actor: actor(fault),
                etag: etag(fault),
            },
            principal: "admin-center".into(),
            request_id: None,
        };
        let result = self.f.run(&cmd, now).map(|_| ());
        if result.is_ok() {
            prop_assert!(self.active(account).is_empty(), "open after Disable");
        }
        Ok((result, expect, after.map(|a| (account, a))))
    }

    /// Closes an account.
    pub(super) fn delete(&mut self, account: usize) -> Result<Stepped, TestCaseError> {
        let now = self.now;
        let m = self.model.get(&account).cloned();
        let (expect, after) = match m {
            Some(m) if !m.deleted => (
                Expect::Events(account, vec![EventKind::AccountDeleted]),
                Some(Modeled { deleted: true, ..m }),
            ),
            _ => (Expect::Fail(Error::AccountNotFound), None),
        };
        let cmd = Delete {
            account_id: id(account),
            principal: "provisioning".into(),
            request_id: None,
        };
        let result = self.f.run(&cmd, now);
        if result.is_ok() {
            prop_assert!(self.active(account).is_empty(), "open after Delete");
        }
        Ok((result, expect, after.map(|a| (account, a))))
    }

    /// Records the lapse of the account's current period.
    pub(super) fn record_lapse(&mut self, account: usize) -> Result<Stepped, TestCaseError> {
        let now = self.now;
        let m = self.model.get(&account).cloned();
        let end = m.as_ref().and_then(|m| m.expire).unwrap_or(now);
        let claimable = m.as_ref().is_some_and(|m| {
            m.enabled && m.expire == Some(end) && end <= now && m.recorded != Some(end)
        });
        let audited = claimable && m.as_ref().is_some_and(|m| !m.deleted);
        let kinds = if audited {
            vec![EventKind::GrantExpired]
        } else {
            vec![]
        };
        let after = m.filter(|_| claimable).map(|m| Modeled {
            recorded: Some(end),
            ..m
        });
        let cmd = RecordLapse {
            account_id: IDS[account].into(),
            expire_time_us: to_us(end),
        };
        let result = self.f.run(&cmd, now);
        if let Ok(recorded) = result {
            prop_assert_eq!(recorded, audited);
        }
        Ok((
            result.map(|_| ()),
            Expect::Events(account, kinds),
            after.map(|a| (account, a)),
        ))
    }

    /// Ends an assumption allowed earlier (or one never allowed, when there is none).
    pub(super) fn end(&mut self, pick: usize) -> Result<Stepped, TestCaseError> {
        let now = self.now;
        if self.allowed.is_empty() {
            let cmd = End {
                assumption_id: "never-allowed".into(),
                principal: "support-console".into(),
                request_id: None,
            };
            let result = self.f.run(&cmd, now).map(|_| ());
            return Ok((result, Expect::Fail(Error::AssumptionNotFound), None));
        }
        let (assumption_id, _) = self.allowed[pick % self.allowed.len()].clone();
        let stored = self
            .f
            .assumptions
            .iter()
            .find(|a| a.assumption_id == assumption_id)
            .cloned()
            .ok_or_else(|| TestCaseError::fail("an allowed assumption lost its row"))?;
        let account = IDS.iter().position(|i| *i == stored.account_id).unwrap();
        let active = stored.state_at(now) == AssumptionState::Active;
        let kinds = if active {
            vec![EventKind::AssumptionEnded]
        } else {
            vec![]
        };
        let cmd = End {
            assumption_id: assumption_id.clone(),
            principal: "support-console".into(),
            request_id: None,
        };
        let result = self.f.run(&cmd, now);
        if let Ok(view) = &result {
            let state = if active {
                AssumptionState::Ended
            } else {
                stored.state_at(now)
            };
            prop_assert_eq!(view.state, state);
            prop_assert!(!self.active(account).contains(&assumption_id));
        }
        Ok((result.map(|_| ()), Expect::Events(account, kinds), None))
    }

    /// Asks for an assumption; the answer must be exactly what the contract allows.
    pub(super) fn authorize(
        &mut self,
        account: usize,
        emergency: bool,
        before: Fixture,
    ) -> Result<(), TestCaseError> {
        let now = self.now;
        let m = self.model.get(&account).filter(|m| !m.deleted);
        // The contract: a basis in force at this instant, or an emergency.
        let basis = match m {
            Some(_) if emergency => Some(Basis::Emergency),
            Some(m) if m.in_force(now) && m.plan == Plan::Trial => Some(Basis::TrialAccount),
            Some(m) if m.in_force(now) => Some(Basis::CustomerGrant),
            _ => None,
        };
        let expire = match (basis, m) {
            (Some(Basis::Emergency), _) => Some(now + self.limits.emergency),
            (Some(Basis::CustomerGrant), Some(m)) => Some(
                m.expire
                    .map_or(now + self.limits.max, |e| e.min(now + self.limits.max)),
            ),
            (Some(_), _) => Some(now + self.limits.max),
            (None, _) => None,
        };
        let cmd = Authorize {
            req: AssumptionRequest {
                account_id: id(account),
                staff_id: "sam".into(),
                ticket_id: "T-1".into(),
                reason: AccessReason::Other,
                reason_detail: String::new(),
                emergency: emergency.then(|| Emergency {
                    reason: EmergencyReason::PreventSeriousHarm,
                    justification: "the customer's console is down for everyone".into(),
                }),
                access_request_id: None,
            },
            principal: "support-console".into(),
            request_id: None,
            limits: self.limits,
        };
        let answer = self
            .f
            .run(&cmd, now)
            .map_err(|e| TestCaseError::fail(format!("Authorize failed: {e:?}")))?;
        let kind = match basis {
            Some(Basis::Emergency) => EventKind::EmergencyAssumption,
            Some(_) => EventKind::AssumptionAllowed,
            None => EventKind::AssumptionDenied,
        };
        self.outcome(Ok(()), Expect::Events(account, vec![kind]), &before)?;
        let last = self.f.events.last().expect("the decision's event");
        prop_assert_eq!(&answer.audit_event_id, &last.event_id);
        match (&answer.allowed, basis) {
            (Some(view), Some(basis)) => {
                let a = &view.assumption;
                prop_assert_eq!(a.basis, basis);
                prop_assert_eq!(Some(a.expire_time), expire);
                prop_assert_eq!((a.start_time, view.state), (now, AssumptionState::Active));
                prop_assert!(self.f.assumptions.contains(a), "the ALLOW's row");
                self.allowed
                    .push((a.assumption_id.clone(), answer.audit_event_id.clone()));
            }
            (None, None) => prop_assert!(answer.denied.is_some()),
            (allowed, basis) => prop_assert!(false, "answered {allowed:?}, basis {basis:?}"),
        }
        self.check()
    }
}
