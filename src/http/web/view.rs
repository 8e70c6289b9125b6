//! Small formatting helpers shared by the pages: times, permission summaries,
//! who did something.

use std::collections::HashMap;

use crate::domain::clock::Timestamp;
use crate::domain::key::Actor;
use crate::domain::permission::{Permission, PermissionSet};
use crate::store::User;

/// `2026-11-23 12:00 UTC`
pub fn time(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    format!("{} {} UTC", &s[..10], &s[11..16])
}

/// `2026-11-23`
pub fn date(t: Timestamp) -> String {
    t.to_rfc3339()[..10].to_owned()
}

/// "3 minutes ago", "in 5 days", "just now".
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = (t.as_micros() - now.as_micros()) / 1_000_000;
    let (n, future) = (secs.unsigned_abs(), secs > 0);
    if n < 60 {
        return "just now".into();
    }
    let (value, unit) = match n {
        n if n < 3600 => (n / 60, "minute"),
        n if n < 86_400 => (n / 3600, "hour"),
        n if n < 86_400 * 60 => (n / 86_400, "day"),
        n if n < 86_400 * 730 => (n / (86_400 * 30), "month"),
        n => (n / (86_400 * 365), "year"),
    };
    let plural = if value == 1 { "" } else { "s" };
    if future {
        format!("in {value} {unit}{plural}")
    } else {
        format!("{value} {unit}{plural} ago")
    }
}

/// The resources of the permission grid, with their permissions for read,
/// write and delete (API keys have no delete).
pub const GRID: &[(&str, &str, [Option<Permission>; 3])] = &[
    (
        "orders",
        "Orders",
        [
            Some(Permission::OrdersRead),
            Some(Permission::OrdersWrite),
            Some(Permission::OrdersDelete),
        ],
    ),
    (
        "clients",
        "Clients",
        [
            Some(Permission::ClientsRead),
            Some(Permission::ClientsWrite),
            Some(Permission::ClientsDelete),
        ],
    ),
    (
        "devices",
        "Devices",
        [
            Some(Permission::DevicesRead),
            Some(Permission::DevicesWrite),
            Some(Permission::DevicesDelete),
        ],
    ),
    (
        "keys",
        "API keys",
        [
            Some(Permission::KeysRead),
            Some(Permission::KeysWrite),
            None,
        ],
    ),
];

/// A short summary: "Orders read/write · Clients read" or "Full access".
pub fn permissions_summary(set: PermissionSet) -> String {
    if set == PermissionSet::all() {
        return "Full access".into();
    }
    let mut parts = Vec::new();
    for (_, label, perms) in GRID {
        let held: Vec<&str> = perms
            .iter()
            .zip(["read", "write", "delete"])
            .filter(|(p, _)| p.is_some_and(|p| set.contains(p)))
            .map(|(_, verb)| verb)
            .collect();
        if !held.is_empty() {
            parts.push(format!("{label} {}", held.join("/")));
        }
    }
    parts.join(" · ")
}

/// Names the people, keys and the CLI that appear in lists.
pub struct Names {
    users: HashMap<String, String>,
    keys: HashMap<String, String>,
}

impl Names {
    pub fn new(users: &[User]) -> Self {
        Names {
            users: users
                .iter()
                .map(|u| (u.id.clone(), u.email.as_str().to_owned()))
                .collect(),
            keys: HashMap::new(),
        }
    }

    pub fn add_key(&mut self, id: &str, name: &str) {
        self.keys.insert(id.to_owned(), name.to_owned());
    }

    pub fn actor(&self, actor: &Actor) -> String {
        match actor {
            Actor::Cli => "Command line".into(),
            Actor::SecretScanner => "Secret scanning report".into(),
            Actor::User(id) => self
                .users
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("Removed user ({id})")),
            Actor::Key(id) => match self.keys.get(id) {
                Some(name) => format!("Key “{name}”"),
                None => format!("Key {id}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_a_person_writes_them() {
        let t = Timestamp::parse_rfc3339("2026-11-23T12:05:09Z").unwrap();
        assert_eq!(time(t), "2026-11-23 12:05 UTC");
        assert_eq!(date(t), "2026-11-23");
        assert_eq!(relative(t, t.plus_seconds(30)), "just now");
        assert_eq!(relative(t, t.plus_seconds(180)), "3 minutes ago");
        assert_eq!(relative(t.plus_seconds(86_400 * 5 + 10), t), "in 5 days");
        assert_eq!(relative(t, t.plus_seconds(3600)), "1 hour ago");
    }

    #[test]
    fn summaries_group_by_resource() {
        use Permission::*;
        let set: PermissionSet = [OrdersRead, OrdersWrite, ClientsRead].into_iter().collect();
        assert_eq!(permissions_summary(set), "Orders read/write · Clients read");
        assert_eq!(permissions_summary(PermissionSet::all()), "Full access");
    }
}
