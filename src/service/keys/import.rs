//! Importing legacy keys from the earlier scheme's export.

use super::{KeyService, Principal};
use crate::domain::key::{Actor, KeyKind, KeyRecord};
use crate::domain::legacy::{
    ImportError, ImportSummary, ImportWarning, ImportedKey, RowError, parse_file,
};
use crate::domain::new_id;
use crate::domain::token::{self, Environment};
use crate::service::ServiceError;

impl KeyService {
    /// Imports legacy keys into `shop_id` in one transaction. Rows whose key
    /// is already stored are bad rows too. With `skip_invalid` the good rows
    /// are imported and the bad ones reported; otherwise any bad row stops
    /// the import (`Err` with every bad row) and nothing is written.
    pub async fn import_legacy(
        &self,
        shop_id: &str,
        text: &str,
        skip_invalid: bool,
    ) -> Result<ImportSummary, ImportError> {
        self.shop_exists(shop_id)
            .await
            .map_err(|e| ImportError::Other(e.to_string()))?;
        let (rows, mut invalid) = parse_file(text).map_err(ImportError::Other)?;
        let mut good = Vec::new();
        for row in rows {
            let hash = self.hasher.hash(&row.secret);
            let exists = self
                .keys
                .find_key_by_hash(&hash)
                .await
                .map_err(|e| ImportError::Other(e.to_string()))?;
            if exists.is_some() {
                invalid.push(RowError {
                    line: row.line,
                    reason: format!(
                        "the key ({}) is already stored",
                        token::display_form(&row.secret)
                    ),
                });
            } else {
                good.push((row, hash));
            }
        }
        invalid.sort_by_key(|e| e.line);
        if !invalid.is_empty() && !skip_invalid {
            return Err(ImportError::Invalid(invalid));
        }
        let now = self.clock.now();
        let principal = Principal::cli(shop_id);
        let mut keys = Vec::with_capacity(good.len());
        let mut audits = Vec::with_capacity(good.len());
        let mut summary = ImportSummary {
            shop_id: shop_id.to_owned(),
            imported: 0,
            skipped: invalid.len(),
            keys: Vec::new(),
            invalid,
            weak: Vec::new(),
            warnings: self
                .policy
                .legacy_cutoff_notice(now)
                .map(|n| ImportWarning {
                    code: n.code(),
                    message: n.message(),
                })
                .into_iter()
                .collect(),
        };
        for (row, hash) in good {
            let key = KeyRecord {
                id: new_id("key"),
                shop_id: shop_id.to_owned(),
                name: row.name,
                environment: Environment::Live,
                kind: KeyKind::Legacy,
                display: token::display_form(&row.secret),
                hash,
                permissions: row.permissions,
                allowed_ips: row.allowed_ips,
                rate_limit_per_minute: self.policy.default_rate_limit,
                expires_at: None,
                revoked_at: None,
                retired_at: None,
                template: None,
                created_at: now,
                updated_at: now,
                created_by: Actor::Cli,
                sent_in_url_at: None,
                paused: None,
                leaked: None,
            };
            let weak = row.secret.len() < token::LEGACY_WEAK_BELOW;
            audits.push(principal.audit(
                now,
                "key.imported",
                &key,
                serde_json::json!({
                    "name": key.name,
                    "permissions": key.permissions,
                    "line": row.line,
                    "weak": weak,
                }),
            ));
            let imported = ImportedKey {
                line: row.line,
                id: key.id.clone(),
                name: key.name.as_str().to_owned(),
                display: key.display.clone(),
            };
            if weak {
                summary.weak.push(imported.clone());
            }
            summary.keys.push(imported);
            keys.push(key);
        }
        self.keys
            .insert_keys(&keys, self.policy.max_keys_per_shop, &audits)
            .await
            .map_err(|e| ImportError::Other(ServiceError::from(e).to_string()))?;
        for k in &keys {
            self.cache.evict(&k.hash);
        }
        summary.imported = keys.len();
        Ok(summary)
    }
}
