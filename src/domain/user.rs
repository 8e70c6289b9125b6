//! Users of the web UI, their roles, and password hashing (argon2id).

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;

use super::permission::{Permission, PermissionSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Staff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Staff => "staff",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "staff" => Some(Role::Staff),
            _ => None,
        }
    }

    /// What a user of this role holds, and so the most a key they make may hold.
    pub fn permissions(self) -> PermissionSet {
        use Permission::*;
        match self {
            Role::Owner | Role::Admin => PermissionSet::all(),
            Role::Staff => [
                OrdersRead,
                OrdersWrite,
                ClientsRead,
                ClientsWrite,
                DevicesRead,
                DevicesWrite,
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// An email address, trimmed and lower-cased; a deliberately simple shape check
/// (something@domain.tld) because only delivery proves an address.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim().to_lowercase();
        let valid = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && domain.contains('.')
                    && !domain.contains('@')
            })
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Email(s))
        } else {
            Err(format!("`{}` is not an email address", input.trim()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A password as typed. `Debug` never shows it.
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 12;

    /// A length rule rather than composition rules (NIST SP 800-63B): at least
    /// 12 characters, at most 256, not one character repeated.
    pub fn parse(input: String) -> Result<Self, String> {
        let len = input.chars().count();
        if len < Self::MIN_LEN {
            return Err(format!(
                "use at least {} characters (a few words make a good password)",
                Self::MIN_LEN
            ));
        }
        if len > 256 {
            return Err("at most 256 characters".into());
        }
        let mut chars = input.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return Err("a single repeated character is too easy to guess".into());
        }
        Ok(Password(input))
    }

    /// An argon2id PHC string with a fresh salt.
    pub fn hash(&self) -> String {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .expect("argon2 with default parameters cannot fail")
            .to_string()
    }

    /// Checks `candidate` against a stored PHC string in constant time.
    pub fn verify(candidate: &str, stored: &str) -> bool {
        PasswordHash::new(stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(candidate.as_bytes(), &parsed)
                .is_ok()
        })
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_argon2id_and_verifies() {
        let p = Password::parse("correct horse battery".into()).unwrap();
        let h = p.hash();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(Password::verify("correct horse battery", &h));
        assert!(!Password::verify("correct horse battery!", &h));
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("aaaaaaaaaaaaaaaa".into()).is_err());
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse(" Owner@Shop.Example ").unwrap().as_str(),
            "owner@shop.example"
        );
        for bad in ["", "no-at", "a@b", "a@.b.c", "a b@c.d", "@c.d"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
