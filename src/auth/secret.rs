//! The server secret and the keyed hash of API keys (HMAC-SHA256).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// permissions. Returns whether it was created (by this call).
    ///
    /// Safe when several processes (instances started together on a fresh
    /// data directory) or threads race to create it: the secret is written
    /// whole to a temporary file beside `path`, synced, then hard-linked to
    /// `path`, which fails if another creator got there first; the loser
    /// reads the winner's. So everyone ends with the same secret, and no one
    /// ever reads a half-written file.
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
        let tmp = temp_path_beside(path);
        let linked = write_new_file(&tmp, hex.as_bytes())
            .map_err(|e| format!("cannot write the secret file {}: {e}", tmp.display()))
            .map(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked? {
            Ok(()) => {
                sync_parent(path);
                Ok((ServerSecret(hex.into_bytes()), true))
            }
            // Another process (or thread) created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::read_file(path).map(|s| (s, false))
            }
            // A file system without hard links: create it in place (atomic
            // against other creators, though a racing reader could see it
            // before it is written).
            Err(_) => match write_new_file(path, hex.as_bytes()) {
                Ok(()) => Ok((ServerSecret(hex.into_bytes()), true)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Self::read_file(path).map(|s| (s, false))
                }
                Err(e) => Err(format!(
                    "cannot create the secret file {}: {e}",
                    path.display()
                )),
            },
        }
    }

    /// HMAC-SHA256, keyed with the secret, of a fixed label: what the
    /// database records to tell whether an instance uses the same secret as
    /// the others. It reveals nothing of the secret, and cannot equal a key's
    /// hash (the label is no well-formed key).
    pub fn fingerprint(&self) -> [u8; 32] {
        KeyHasher::new(self).hash(FINGERPRINT_LABEL)
    }

    /// Whether `recorded` is this secret's fingerprint (in constant time).
    pub fn matches_fingerprint(&self, recorded: &[u8; 32]) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.fingerprint()[..], &recorded[..]).into()
    }
}

/// The label the fingerprint is an HMAC of. Changing it makes every recorded
/// fingerprint a mismatch: a new label needs a new table (or a migration).
const FINGERPRINT_LABEL: &str = "latchkey secret fingerprint v1";

/// A unique temporary name in `path`'s directory (same file system, so a
/// hard link works).
fn temp_path_beside(path: &Path) -> PathBuf {
    let mut suffix = [0u8; 8];
    let _ = rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut suffix);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secret".into());
    let unique: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    path.with_file_name(format!(".{name}.{}.{unique}.tmp", std::process::id()))
}

/// Creates `path` (which must not exist) owner-only, writes `content` and
/// syncs it to disk.
fn write_new_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// Makes a new directory entry durable (best effort: not every platform
/// can open a directory).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
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

    #[test]
    fn creators_racing_on_one_path_all_end_with_the_same_whole_secret() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("secret.key");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        ServerSecret::load_or_create(&path).unwrap()
                    })
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk.len(), 64, "a whole secret on disk");
            for (secret, _) in &results {
                assert_eq!(secret.0, on_disk);
            }
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["secret.key"], "no temporary file left behind");
        }
    }

    #[test]
    fn the_fingerprint_tells_secrets_apart_and_is_not_a_key_hash() {
        let a = ServerSecret::new(vec![1; 32]).unwrap();
        let b = ServerSecret::new(vec![2; 32]).unwrap();
        assert!(a.matches_fingerprint(&a.fingerprint()));
        assert!(!a.matches_fingerprint(&b.fingerprint()));
        assert_ne!(a.fingerprint()[..], a.0[..]);
        assert_ne!(a.fingerprint(), KeyHasher::new(&a).hash(""));
    }
}
