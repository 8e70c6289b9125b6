//! Permissions, permission sets (a bitset) and the prebuilt key templates.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! permissions {
    ($($variant:ident = $name:literal),+ $(,)?) => {
        /// One thing a key may do. The string forms are fixed (docs/KEYS.md).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Permission { $($variant),+ }

        impl Permission {
            /// Every permission, in the canonical order used for output.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name),+ }
            }
        }

        impl std::str::FromStr for Permission {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(Permission::$variant),)+
                    other => Err(format!(
                        "unknown permission `{other}`: expected one of {}",
                        [$($name),+].join(", ")
                    )),
                }
            }
        }
    };
}

permissions! {
    OrdersRead = "orders:read",
    OrdersWrite = "orders:write",
    OrdersDelete = "orders:delete",
    ClientsRead = "clients:read",
    ClientsWrite = "clients:write",
    ClientsDelete = "clients:delete",
    DevicesRead = "devices:read",
    DevicesWrite = "devices:write",
    DevicesDelete = "devices:delete",
    KeysRead = "keys:read",
    KeysWrite = "keys:write",
}

impl Permission {
    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of permissions, one bit each: checks on the request path are a mask.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u16);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    pub fn all() -> Self {
        Permission::ALL.iter().copied().collect()
    }

    /// What a legacy key gets when its import names no permissions.
    pub fn legacy_default() -> Self {
        use Permission::*;
        [
            OrdersRead,
            OrdersWrite,
            ClientsRead,
            ClientsWrite,
            DevicesRead,
            DevicesWrite,
        ]
        .into_iter()
        .collect()
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_subset_of(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The first permission (in canonical order) that `self` holds and `other`
    /// lacks: what an escalation refusal names.
    pub fn first_missing_from(self, other: PermissionSet) -> Option<Permission> {
        self.iter().find(|p| !other.contains(*p))
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    /// Rebuilds a set from stored bits, ignoring bits no permission uses.
    pub fn from_bits_truncate(bits: u16) -> Self {
        PermissionSet(bits & Self::all().0)
    }

    /// Space-separated canonical names, as stored and as printed by the CLI.
    pub fn to_names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }

    /// Parses permission names, refusing unknown ones and duplicates.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut set = PermissionSet::EMPTY;
        for name in names {
            let p: Permission = name.as_ref().trim().parse()?;
            if set.contains(p) {
                return Err(format!("permission `{p}` is listed twice"));
            }
            set.insert(p);
        }
        Ok(set)
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = PermissionSet::EMPTY;
        for p in iter {
            set.insert(p);
        }
        set
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Permission::as_str))
            .finish()
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A prebuilt key: least privilege for one popular integration.
#[derive(Debug, Serialize)]
pub struct Template {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub permissions: PermissionSet,
}

macro_rules! perms {
    ($($p:ident),*) => { PermissionSet(0 $(| (1 << (Permission::$p as u8)))*) };
}

/// The templates (docs/KEYS.md), in the order the UI offers them.
pub const TEMPLATES: &[Template] = &[
    Template {
        id: "website-contact-form",
        name: "Website Contact Form",
        description: "For your website's server-side form handler: creates a client and a repair order from each enquiry. Never put the key in the page's JavaScript.",
        permissions: perms!(ClientsWrite, OrdersWrite),
    },
    Template {
        id: "zapier",
        name: "Zapier",
        description: "Triggers on new clients and orders, and creates or updates them from other apps.",
        permissions: perms!(
            ClientsRead,
            ClientsWrite,
            OrdersRead,
            OrdersWrite,
            DevicesRead
        ),
    },
    Template {
        id: "it-glue",
        name: "IT Glue",
        description: "Syncs clients and their devices with IT Glue documentation.",
        permissions: perms!(ClientsRead, DevicesRead, DevicesWrite),
    },
    Template {
        id: "ninja-rmm",
        name: "Ninja RMM",
        description: "Links monitored devices to clients and opens repair orders from alerts.",
        permissions: perms!(
            ClientsRead,
            DevicesRead,
            DevicesWrite,
            OrdersRead,
            OrdersWrite
        ),
    },
    Template {
        id: "pax8",
        name: "Pax8",
        description: "Keeps client records in step with Pax8 subscriptions.",
        permissions: perms!(ClientsRead, ClientsWrite),
    },
    Template {
        id: "read-only",
        name: "Read-only reporting",
        description: "Reads orders, clients and devices for dashboards and reports; changes nothing.",
        permissions: perms!(OrdersRead, ClientsRead, DevicesRead),
    },
];

pub fn template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(names: &[&str]) -> PermissionSet {
        PermissionSet::parse_list(names).unwrap()
    }

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), *p);
        }
        assert_eq!(PermissionSet::all().iter().count(), 11);
    }

    #[test]
    fn unknown_and_duplicate_names_are_refused_with_the_reason() {
        let err = PermissionSet::parse_list(&["orders:reed"]).unwrap_err();
        assert!(
            err.contains("orders:reed") && err.contains("orders:read"),
            "{err}"
        );
        let err = PermissionSet::parse_list(&["keys:read", "keys:read"]).unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn subset_and_first_missing() {
        let small = set(&["orders:read"]);
        let big = set(&["orders:read", "keys:write"]);
        assert!(small.is_subset_of(big));
        assert!(!big.is_subset_of(small));
        assert_eq!(big.first_missing_from(small), Some(Permission::KeysWrite));
        assert_eq!(small.first_missing_from(big), None);
        assert!(PermissionSet::EMPTY.is_subset_of(small));
    }

    #[test]
    fn templates_match_spec_and_grant_no_delete_or_key_management() {
        let expected: &[(&str, &[&str])] = &[
            ("website-contact-form", &["clients:write", "orders:write"]),
            (
                "zapier",
                &[
                    "clients:read",
                    "clients:write",
                    "orders:read",
                    "orders:write",
                    "devices:read",
                ],
            ),
            (
                "it-glue",
                &["clients:read", "devices:read", "devices:write"],
            ),
            (
                "ninja-rmm",
                &[
                    "clients:read",
                    "devices:read",
                    "devices:write",
                    "orders:read",
                    "orders:write",
                ],
            ),
            ("pax8", &["clients:read", "clients:write"]),
            (
                "read-only",
                &["orders:read", "clients:read", "devices:read"],
            ),
        ];
        assert_eq!(TEMPLATES.len(), expected.len());
        for (id, perms) in expected {
            let t = template(id).unwrap();
            assert_eq!(t.permissions, set(perms), "{id}");
            for p in t.permissions.iter() {
                assert!(!p.as_str().ends_with(":delete") && !p.as_str().starts_with("keys:"));
            }
        }
    }

    #[test]
    fn serialises_as_names_in_canonical_order() {
        let s = serde_json::to_string(&set(&["keys:read", "orders:read"])).unwrap();
        assert_eq!(s, r#"["orders:read","keys:read"]"#);
    }

    proptest! {
        #[test]
        fn subset_agrees_with_bits(a in 0u16..2048, b in 0u16..2048) {
            let (a, b) = (PermissionSet::from_bits_truncate(a), PermissionSet::from_bits_truncate(b));
            let by_members = a.iter().all(|p| b.contains(p));
            prop_assert_eq!(a.is_subset_of(b), by_members);
            prop_assert_eq!(a.first_missing_from(b).is_none(), by_members);
        }
    }
}
