//! The server secret and the keyed hash of API keys (HMAC-SHA256).

use std::fmt;
use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The server secret. Only its length ever appears in `Debug`.
#[derive(Clone)]
pub struct ServerSecret(Vec<u8>);

/// Fewer bytes than this is refused: the secret is all that stands between a
/// stolen database and usable keys.
pub const MIN_SECRET_LEN: usize = 32;

impl ServerSecret {
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the server secret must be at least {MIN_SECRET_LEN} bytes (got {}); generate one with `openssl rand -hex 32`",
                bytes.len()
            ));
        }
        Ok(ServerSecret(bytes))
    }

    /// Reads a secret file (its content, trimmed of surrounding whitespace).
    pub fn read_file(path: &Path) -> Result<Self, String> {
        let content = std::fs::read(path)
            .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
        let trimmed = content.trim_ascii().to_vec();
        Self::new(trimmed).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads `path`, or creates it with 64 random hex characters and owner-only
    /// permissions. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), String> {
        if path.exists() {
            return Self::read_file(path).map(|s| (s, false));
        }
        let hex: String = {
            let mut bytes = [0u8; 32];
            rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)
                .map_err(|e| format!("the operating system's random source failed: {e}"))?;
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(|e| format!("cannot create the secret file {}: {e}", path.display()))?;
        file.write_all(hex.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write the secret file {}: {e}", path.display()))?;
        Ok((ServerSecret(hex.into_bytes()), true))
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerSecret({} bytes)", self.0.len())
    }
}

/// Hashes presented keys. Keyed once; each hash clones the keyed state, which
/// saves re-deriving the HMAC pads on the request path.
#[derive(Clone)]
pub struct KeyHasher(Hmac<Sha256>);

impl KeyHasher {
    pub fn new(secret: &ServerSecret) -> Self {
        KeyHasher(Hmac::new_from_slice(&secret.0).expect("HMAC takes keys of any length"))
    }

    pub fn hash(&self, key: &str) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_hmac_sha256_with_the_secret() {
        let a = KeyHasher::new(&ServerSecret::new(vec![1; 32]).unwrap());
        let b = KeyHasher::new(&ServerSecret::new(vec![2; 32]).unwrap());
        assert_eq!(a.hash("k"), a.hash("k"));
        assert_ne!(
            a.hash("k"),
            b.hash("k"),
            "a different secret gives a different hash"
        );
        assert_ne!(a.hash("k"), a.hash("l"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(ServerSecret::new(vec![0; 31]).is_err());
    }

    #[test]
    fn created_secret_file_is_owner_only_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let (s1, created) = ServerSecret::load_or_create(&path).unwrap();
        assert!(created);
        let (s2, created) = ServerSecret::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(KeyHasher::new(&s1).hash("x"), KeyHasher::new(&s2).hash("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{s1:?}").contains(&std::fs::read_to_string(&path).unwrap()));
    }
}
