//! What owners change: the household's members, its rules, and which devices belong to it
//! (pairing, logins, removal), each checked against the actor's role and written to the
//! audit trail. Every handler validates before it changes anything.

use replenish_commerce::Currency;
use replenish_protocol::DeviceId;

use super::household::{Actor, InvalidRules, Member, Permission, Role, Rules, money};
use super::inventory::SlotKey;
use super::{Effect, Engine, EngineError, NoticeKind, notice};
use crate::clock::UnixMs;

impl Engine {
    pub(super) fn add_member(
        &mut self,
        name: String,
        role: Role,
        token_hash: String,
        by: &Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::ChangeSettings)?;
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > 40 || name.chars().any(char::is_control) {
            return Err(EngineError::Invalid(
                "a member's name must be 1 to 40 printable characters".into(),
            ));
        }
        if self
            .household
            .members
            .values()
            .any(|m| m.name.eq_ignore_ascii_case(&name))
        {
            return Err(EngineError::Conflict(format!(
                "there is already a member called {name}"
            )));
        }
        if token_hash.len() != 64 || !token_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::Invalid(
                "token hash must be 64 hex digits (SHA-256)".into(),
            ));
        }
        if self.household.member_by_token_hash(&token_hash).is_some() {
            return Err(EngineError::Invalid("that token is already in use".into()));
        }
        self.household.next_member_no += 1;
        let id = format!("m-{:06}", self.household.next_member_no);
        let member = Member {
            id: id.clone(),
            name: name.clone(),
            role,
            token_hash,
            created_at: now,
        };
        self.household.members.insert(id.clone(), member);
        let detail = format!("added {name} as {}", role.as_str());
        fx.push(notice(
            now,
            NoticeKind::SettingsChanged,
            &id,
            detail.clone(),
        ));
        self.record(by, "add_member", &id, detail, now, fx);
        Ok(())
    }

    pub(super) fn remove_member(
        &mut self,
        member_id: &str,
        by: &Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::ChangeSettings)?;
        let member = self
            .household
            .members
            .get(member_id)
            .ok_or_else(|| EngineError::UnknownMember(member_id.to_string()))?;
        let owners = self
            .household
            .members
            .values()
            .filter(|m| m.role == Role::Owner)
            .count();
        if member.role == Role::Owner && owners == 1 {
            return Err(EngineError::Invalid(
                "cannot remove the last owner: add another owner first".into(),
            ));
        }
        let detail = format!("removed {} ({})", member.name, member.role.as_str());
        // Named before the removal, so the entry says who it was.
        let who = self.household.who(by);
        self.household.members.remove(member_id);
        fx.push(notice(
            now,
            NoticeKind::SettingsChanged,
            member_id,
            detail.clone(),
        ));
        self.record_as(who, "remove_member", member_id, detail, now, fx);
        Ok(())
    }

    pub(super) fn set_rules(
        &mut self,
        rules: Rules,
        currency: Option<Currency>,
        by: &Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::ChangeSettings)?;
        rules.validate()?;
        let home = self.home_currency();
        if let Some(currency) = currency
            && currency != home
        {
            return Err(InvalidRules {
                field: "currency",
                problem: format!(
                    "the budget and the auto-approve limit are in {home}, the household's \
                     currency (its shop's), not {currency}: write them in {home}"
                ),
            }
            .into());
        }
        let changes = rule_changes(&self.household.rules, &rules);
        if changes.is_empty() {
            return Ok(());
        }
        self.household.rules = rules;
        let detail = changes.join("; ");
        fx.push(notice(
            now,
            NoticeKind::SettingsChanged,
            "rules",
            detail.clone(),
        ));
        self.record(by, "rules", "rules", detail, now, fx);
        // A consumable switched on again may need ordering now.
        let keys: Vec<SlotKey> = self.slots.sorted_ids();
        for key in keys {
            self.consider_reorder(&key, now, fx);
        }
        Ok(())
    }

    pub(super) fn accept_device(
        &mut self,
        device_id: &DeviceId,
        by: &Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::ChangeSettings)?;
        let device = self.known_device(device_id)?;
        if device.accepted {
            return Err(EngineError::Conflict(format!(
                "device {device_id} is already part of the household"
            )));
        }
        let birth = device.birth.clone();
        self.create_slots(device_id, &birth, fx);
        if let Some(device) = self.devices.get_mut(device_id) {
            device.accepted = true;
            fx.push(Effect::SaveDevice(device.id.clone()));
        }
        let detail = format!(
            "accepted {device_id} ({} firmware {}, {} slots)",
            birth.model,
            birth.firmware,
            birth.slots.len()
        );
        fx.push(notice(
            now,
            NoticeKind::DeviceOnline,
            device_id,
            detail.clone(),
        ));
        self.record(by, "accept_device", device_id, detail, now, fx);
        Ok(())
    }

    pub(super) fn issue_device_login(
        &mut self,
        device_id: &DeviceId,
        password_hash: String,
        by: &Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::ChangeSettings)?;
        let replaced = self
            .household
            .device_logins
            .insert(
                device_id.to_string(),
                super::household::DeviceLogin {
                    password_hash,
                    issued_at: now,
                },
            )
            .is_some();
        fx.push(Effect::SaveHousehold(Box::new(self.household.clone())));
        let waiting = self.devices.get(device_id).is_some_and(|d| !d.accepted);
        if waiting {
            self.accept_device(device_id, by, now, fx)?;
        }
        let detail = if replaced {
            format!("gave {device_id} a new MQTT login; the old one no longer works")
        } else {
            format!("gave {device_id} an MQTT login")
        };
        self.record(by, "issue_device_login", device_id, detail, now, fx);
        Ok(())
    }

    pub(super) fn remove_device(
        &mut self,
        device_id: &DeviceId,
        by: &Actor,
        now: UnixMs,
        fx: &mut Vec<Effect>,
    ) -> Result<(), EngineError> {
        self.household.authorize(by, Permission::ChangeSettings)?;
        let had_login = self
            .household
            .device_logins
            .remove(device_id.as_str())
            .is_some();
        if had_login {
            fx.push(Effect::SaveHousehold(Box::new(self.household.clone())));
        }
        if !self.devices.contains_key(device_id) {
            if had_login {
                let detail = format!("removed the MQTT login of {device_id}");
                self.record(by, "remove_device", device_id, detail, now, fx);
                return Ok(());
            }
            return Err(EngineError::UnknownDevice(device_id.clone()));
        }
        self.devices.remove(device_id);
        let prefix = format!("{device_id}/");
        let slots: Vec<SlotKey> = self
            .slots
            .sorted_ids()
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .collect();
        for key in &slots {
            self.slots.remove(key);
        }
        let detail = format!("removed {device_id} and {} slots", slots.len());
        fx.push(Effect::DeleteDevice {
            device: device_id.clone(),
            slots,
        });
        fx.push(notice(
            now,
            NoticeKind::DeviceRemoved,
            device_id,
            detail.clone(),
        ));
        self.record(by, "remove_device", device_id, detail, now, fx);
        Ok(())
    }
}

/// What differs between two rule sets, one phrase per field.
fn rule_changes(old: &Rules, new: &Rules) -> Vec<String> {
    let mut changes = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            changes.push(format!("{name}: {a} -> {b}"));
        }
    };
    let opt_money = |c: Option<u64>| c.map_or("none".to_string(), money);
    let opt = |q: Option<String>| q.unwrap_or_else(|| "none".into());
    field(
        "default_mode",
        old.default_mode.as_str().into(),
        new.default_mode.as_str().into(),
    );
    field(
        "auto_approve_below",
        money(old.auto_approve_below_cents),
        money(new.auto_approve_below_cents),
    );
    field(
        "monthly_budget",
        opt_money(old.monthly_budget_cents),
        opt_money(new.monthly_budget_cents),
    );
    field(
        "quiet_hours",
        opt(old.quiet_hours.map(|q| q.to_string())),
        opt(new.quiet_hours.map(|q| q.to_string())),
    );
    field("timezone", old.timezone.clone(), new.timezone.clone());
    field(
        "approval_timeout_hours",
        old.approval_timeout_hours.to_string(),
        new.approval_timeout_hours.to_string(),
    );
    field(
        "on_expiry",
        format!("{:?}", old.on_expiry).to_lowercase(),
        format!("{:?}", new.on_expiry).to_lowercase(),
    );
    field(
        "cancel_window_hours",
        old.cancel_window_hours.to_string(),
        new.cancel_window_hours.to_string(),
    );
    field(
        "still_have_some_delay_hours",
        old.still_have_some_delay_hours.to_string(),
        new.still_have_some_delay_hours.to_string(),
    );
    let ids: std::collections::BTreeSet<&String> = old
        .consumables
        .keys()
        .chain(new.consumables.keys())
        .collect();
    for id in ids {
        let a = old.consumables.get(id).cloned().unwrap_or_default();
        let b = new.consumables.get(id).cloned().unwrap_or_default();
        field(
            &format!("{id}.mode"),
            opt(a.mode.map(|m| m.as_str().to_string())),
            opt(b.mode.map(|m| m.as_str().to_string())),
        );
        field(
            &format!("{id}.risk"),
            opt(a.risk.map(|r| r.to_string())),
            opt(b.risk.map(|r| r.to_string())),
        );
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::super::household::{Mode, Role, Rules};
    use super::super::tests::{
        MEMBER, OWNER, T0, born, household, id, level, member, notices, owner, set_rules,
    };
    use super::super::{Effect, EngineConfig, EngineError, Event, NoticeKind, Pairing, Snapshot};
    use super::*;

    #[test]
    fn only_owners_change_rules_and_members() {
        let mut e = household(|_| {});
        let rules = Rules {
            default_mode: Mode::Off,
            ..e.household().rules.clone()
        };
        let refused = set_rules(&mut e, rules.clone(), member());
        assert!(
            matches!(refused, Err(EngineError::Denied(_))),
            "{refused:?}"
        );
        let refused = e.handle(
            Event::AddMember {
                name: "eve".into(),
                role: Role::Owner,
                token_hash: "e".repeat(64),
                by: member(),
            },
            T0,
        );
        assert!(matches!(refused, Err(EngineError::Denied(_))));
        assert_eq!(e.household().rules.default_mode, Mode::Auto);
        let before = e.audit().len();
        set_rules(&mut e, rules, owner()).unwrap();
        assert_eq!(e.household().rules.default_mode, Mode::Off);
        let entry = e.audit().last().unwrap();
        assert_eq!(e.audit().len(), before + 1);
        assert_eq!(entry.who, "ann (owner)");
        assert_eq!(entry.detail, "default_mode: auto -> off");
        let invalid = Rules {
            timezone: "Nowhere/Else".into(),
            ..Rules::default()
        };
        assert!(matches!(
            set_rules(&mut e, invalid, owner()),
            Err(EngineError::InvalidRules(_))
        ));
        // A budget written in francs for a household that shops in euros is refused as it
        // stands (not kept as euros); written in euros it is kept.
        let budget = Rules {
            monthly_budget_cents: Some(20_000),
            ..e.household().rules.clone()
        };
        let set_in = |currency: &str| Event::SetRules {
            rules: budget.clone(),
            currency: Currency::new(currency),
            by: owner(),
        };
        let refused = e.handle(set_in("CHF"), T0).unwrap_err().to_string();
        assert!(
            refused.contains("in EUR, the household's currency") && refused.contains("not CHF"),
            "{refused}"
        );
        assert_eq!(e.household().rules.monthly_budget_cents, None);
        e.handle(set_in("EUR"), T0).unwrap();
        assert_eq!(e.household().rules.monthly_budget_cents, Some(20_000));
        assert!(matches!(
            e.handle(
                Event::RemoveMember {
                    member_id: OWNER.into(),
                    by: owner()
                },
                T0
            ),
            Err(EngineError::Invalid(_))
        ));
        assert!(matches!(
            e.handle(
                Event::AddMember {
                    name: "Bob".into(),
                    role: Role::Member,
                    token_hash: "c".repeat(64),
                    by: owner()
                },
                T0
            ),
            Err(EngineError::Conflict(_))
        ));
        e.handle(
            Event::RemoveMember {
                member_id: MEMBER.into(),
                by: owner(),
            },
            T0,
        )
        .unwrap();
        assert!(
            e.household()
                .member_by_token_hash(&"b".repeat(64))
                .is_none()
        );
    }

    #[test]
    fn new_devices_wait_for_an_owner() {
        let mut config = EngineConfig::new(id("home"), "inst".into());
        config.pairing = Pairing::Owner;
        let mut e = Engine::new(config, Snapshot::default());
        e.handle(
            Event::AddMember {
                name: "ann".into(),
                role: Role::Owner,
                token_hash: "a".repeat(64),
                by: Actor::Console,
            },
            T0,
        )
        .unwrap();
        let fx = born(&mut e);
        assert_eq!(notices(&fx, NoticeKind::DeviceWaiting).len(), 1);
        assert_eq!(e.slots().count(), 0);
        assert!(matches!(
            e.handle(level(1, T0, 500.0), T0),
            Err(EngineError::NotAccepted(_))
        ));
        e.handle(
            Event::AcceptDevice {
                device: id("coffee"),
                by: owner(),
            },
            T0,
        )
        .unwrap();
        assert_eq!(e.slots().count(), 1);
        e.handle(level(2, T0, 500.0), T0).unwrap();
        let fx = e
            .handle(
                Event::RemoveDevice {
                    device: id("coffee"),
                    by: owner(),
                },
                T0,
            )
            .unwrap();
        assert!(fx.iter().any(|x| matches!(
            x,
            Effect::DeleteDevice { slots, .. } if slots.len() == 1 && slots[0] == *"coffee/beans"
        )));
        assert_eq!((e.devices().count(), e.slots().count()), (0, 0));
    }
}
