//! Leaked-key reports from secret scanners (docs/KEY_OPERATIONS.md), in
//! GitHub's secret scanning partner program format: the body is signed with
//! ECDSA P-256 / SHA-256 (a DER signature, base64) by one of the public keys
//! in `--leak-report-keys FILE`, a JSON document of GitHub's shape, re-read
//! whenever the file changes (GitHub rotates its keys). Verification is the
//! `p256` crate's; nothing here is hand-written crypto.
//!
//! Each reported token is looked up by its keyed hash in every shop; a key
//! found is flagged, and revoked unless `--leak-action flag`, through the key
//! service. Tokens are never logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};

use crate::domain::policy::LeakAction;
use crate::service::ServiceError;
use crate::service::keys::{KeyService, LeakOutcome};

/// One token of a report.
#[derive(Debug, Deserialize)]
pub struct ReportedToken {
    pub token: String,
    #[serde(rename = "type", default)]
    pub token_type: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub source: String,
}

/// The answer for one token.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TokenLabel {
    pub token_raw: String,
    pub token_type: String,
    /// `true_positive` for a latchkey key, `false_positive` otherwise.
    pub label: &'static str,
}

/// Why a report was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No `--leak-report-keys`: the endpoint does not exist.
    #[error("leaked-key reports are not enabled")]
    Disabled,
    /// Missing headers, an unknown key identifier, or a signature that does
    /// not verify.
    #[error("{0}")]
    BadSignature(&'static str),
}

/// The public keys of one reading of the file, and what the file looked like.
struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    keys: HashMap<String, VerifyingKey>,
}

#[derive(Deserialize)]
struct KeysFile {
    public_keys: Vec<PublicKeyEntry>,
}

#[derive(Deserialize)]
struct PublicKeyEntry {
    key_identifier: String,
    key: String,
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "every listed key is accepted while GitHub rotates"
    )]
    is_current: Option<bool>,
}

/// Reads a keys file: every entry must be a P-256 public key in PEM.
fn read_keys_file(path: &std::path::Path) -> Result<HashMap<String, VerifyingKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: KeysFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a public keys document ({{\"public_keys\": [{{\"key_identifier\", \"key\", \"is_current\"}}]}}): {e}",
            path.display()
        )
    })?;
    let mut keys = HashMap::new();
    for (i, entry) in file.public_keys.into_iter().enumerate() {
        let key = VerifyingKey::from_public_key_pem(entry.key.trim()).map_err(|e| {
            format!(
                "{}: public_keys[{i}] (`{}`) is not a P-256 public key in PEM: {e}",
                path.display(),
                entry.key_identifier
            )
        })?;
        keys.insert(entry.key_identifier, key);
    }
    Ok(keys)
}

fn stamp_of(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

pub struct LeakService {
    keys: Arc<KeyService>,
    file: Option<PathBuf>,
    action: LeakAction,
    loaded: Mutex<Option<Loaded>>,
}

impl LeakService {
    pub fn new(keys: Arc<KeyService>, file: Option<PathBuf>, action: LeakAction) -> Self {
        LeakService {
            keys,
            file,
            action,
            loaded: Mutex::new(None),
        }
    }

    pub fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Reads the keys file now (at start-up, so a bad file stops `serve`);
    /// the number of keys it holds.
    pub fn load_keys(&self) -> Result<usize, String> {
        let Some(path) = &self.file else {
            return Ok(0);
        };
        let stamp = stamp_of(path);
        let keys = read_keys_file(path)?;
        let n = keys.len();
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(Loaded { stamp, keys });
        Ok(n)
    }

    /// The key named `identifier`, re-reading the file first when it changed
    /// (a file that has become unreadable keeps the keys read last).
    fn public_key(&self, identifier: &str) -> Option<VerifyingKey> {
        let path = self.file.as_ref()?;
        let stamp = stamp_of(path);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let stale = loaded.as_ref().is_none_or(|l| l.stamp != stamp);
        if stale {
            match read_keys_file(path) {
                Ok(keys) => *loaded = Some(Loaded { stamp, keys }),
                Err(e) => {
                    tracing::error!(error = %e, "leak report keys: keeping the keys read last");
                    if let Some(l) = loaded.as_mut() {
                        // Do not re-read a broken file on every request.
                        l.stamp = stamp;
                    }
                }
            }
        }
        loaded.as_ref()?.keys.get(identifier).copied()
    }

    /// Checks the signature of a report body.
    pub fn verify(
        &self,
        identifier: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), ReportError> {
        if !self.enabled() {
            return Err(ReportError::Disabled);
        }
        let (Some(identifier), Some(signature)) = (identifier, signature) else {
            return Err(ReportError::BadSignature(
                "Send the Github-Public-Key-Identifier and Github-Public-Key-Signature headers.",
            ));
        };
        let key = self
            .public_key(identifier.trim())
            .ok_or(ReportError::BadSignature(
                "The Github-Public-Key-Identifier names no key this server accepts.",
            ))?;
        let bad = ReportError::BadSignature(
            "The Github-Public-Key-Signature does not verify for this body and key.",
        );
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| {
                ReportError::BadSignature("The Github-Public-Key-Signature is not base64.")
            })?;
        let signature = Signature::from_der(&der).map_err(|_| bad)?;
        key.verify(body, &signature).map_err(|_| {
            ReportError::BadSignature(
                "The Github-Public-Key-Signature does not verify for this body and key.",
            )
        })
    }

    /// Acts on a verified report; one label per token, in order.
    pub async fn report(
        &self,
        tokens: Vec<ReportedToken>,
        ip: Option<String>,
    ) -> Result<Vec<TokenLabel>, ServiceError> {
        let revoke = self.action == LeakAction::Revoke;
        let mut labels = Vec::with_capacity(tokens.len());
        let (mut recorded, mut repeated) = (0u32, 0u32);
        for t in tokens {
            let outcome = self
                .keys
                .report_leaked(&t.token, &t.url, &t.source, revoke, ip.clone())
                .await?;
            let label = match outcome {
                LeakOutcome::NotOurs => "false_positive",
                LeakOutcome::Recorded(key) => {
                    recorded += 1;
                    tracing::warn!(
                        key_id = %key.id,
                        shop_id = %key.shop_id,
                        revoked = revoke,
                        "a secret scanner reported this key found in public"
                    );
                    "true_positive"
                }
                LeakOutcome::AlreadyRecorded => {
                    repeated += 1;
                    "true_positive"
                }
            };
            labels.push(TokenLabel {
                token_raw: t.token,
                token_type: t.token_type,
                label,
            });
        }
        tracing::info!(
            tokens = labels.len(),
            recorded,
            repeated,
            "leaked-key report handled"
        );
        Ok(labels)
    }
}
