//! Legacy keys: the import from the earlier scheme, the deprecation headers,
//! brownouts, and which permissions a legacy key actually used (for
//! narrowing its upgrade).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::app::{Core, Policy};
use crate::domain::clock::Timestamp;
use crate::domain::key::{Actor, KeyKind, KeyName, KeyRecord};
use crate::domain::net::AllowedIps;
use crate::domain::new_id;
use crate::domain::permission::{Permission, PermissionSet};
use crate::domain::token::{self, Environment};
use crate::error::ServiceError;
use crate::keys::Principal;
use crate::store::usage::EndpointUsage;

/// Where the deprecation `Link` points.
pub const DOCS_PATH: &str = "/settings/api-keys/docs#legacy-keys";

/// An instant as an IMF-fixdate (RFC 9110), e.g. `Tue, 01 Dec 2026 00:00:00 GMT`.
pub fn http_date(t: Timestamp) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let dt = time::OffsetDateTime::from_unix_timestamp(t.unix_seconds())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(dt.weekday().number_days_from_monday())],
        dt.day(),
        MONTHS[usize::from(u8::from(dt.month()) - 1)],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// The three headers every answer to a working legacy key carries:
/// `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and `Link`.
pub fn deprecation_headers(key: &KeyRecord, policy: &Policy) -> [(&'static str, String); 3] {
    [
        ("deprecation", format!("@{}", key.created_at.unix_seconds())),
        ("sunset", http_date(policy.legacy_sunset)),
        ("link", format!("<{DOCS_PATH}>; rel=\"deprecation\"")),
    ]
}

/// Whether `now` falls in a brownout window (before the cut-off).
pub fn in_brownout(policy: &Policy, now: Timestamp) -> bool {
    now < policy.legacy_sunset
        && policy
            .legacy_brownouts
            .iter()
            .any(|(start, end)| *start <= now && now < *end)
}

/// The permission each API operation needs, from the OpenAPI document's
/// `security` scopes, by (method, full route template).
fn operation_permissions() -> BTreeMap<(String, String), Option<Permission>> {
    let doc = crate::http::openapi::document();
    let mut out = BTreeMap::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            let Some(op) = op else { continue };
            let scope = serde_json::to_value(&op.security)
                .ok()
                .and_then(|v| {
                    v.as_array()?.iter().find_map(|req| {
                        req.as_object()?.values().find_map(|scopes| {
                            scopes.as_array()?.first()?.as_str().map(str::to_owned)
                        })
                    })
                })
                .and_then(|s| s.parse::<Permission>().ok());
            out.insert((method.to_owned(), path.clone()), scope);
        }
    }
    out
}

/// The permissions the endpoints in `used` need (routes the document does
/// not know, and routes any key may call, add nothing).
pub fn permissions_used(used: &[EndpointUsage]) -> PermissionSet {
    let map = operation_permissions();
    used.iter()
        .filter(|e| e.requests > 0)
        .filter_map(|e| {
            map.get(&(e.method.to_ascii_uppercase(), e.route.clone()))
                .copied()
                .flatten()
        })
        .collect()
}

/// One bad row of an import file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1).
    pub line: usize,
    pub reason: String,
}

/// A row that passed validation.
#[derive(Clone, Debug)]
pub struct ImportRow {
    pub line: usize,
    pub secret: String,
    pub name: KeyName,
    pub permissions: PermissionSet,
    pub allowed_ips: AllowedIps,
}

/// What an import did.
#[derive(Clone, Debug, Serialize)]
pub struct ImportSummary {
    pub shop_id: String,
    pub imported: usize,
    pub skipped: usize,
    /// The imported keys: id, name and display form (never the key).
    pub keys: Vec<ImportedKey>,
    /// Rows left out (with `--skip-invalid`) or that stopped the import.
    pub invalid: Vec<RowError>,
    /// Imported keys shorter than 22 characters: guessable, upgrade them first.
    pub weak: Vec<ImportedKey>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImportedKey {
    pub line: usize,
    pub id: String,
    pub name: String,
    pub display: String,
}

/// Splits one CSV line: commas separate fields; a field may be quoted with
/// `"`, and `""` inside quotes is a literal quote.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
        } else {
            match c {
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '"' if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                '"' => return Err("a quote in the middle of a field".into()),
                _ => field.push(c),
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields)
}

/// Parses and validates a whole file. Every row is checked; the good rows and
/// every bad row (with its line and reason) come back. Keys already stored
/// are found later, against the database.
pub fn parse_file(text: &str) -> Result<(Vec<ImportRow>, Vec<RowError>), String> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or("the file is empty: expected a header row `key,name[,permissions][,allowed_ips]`")?;
    let columns: Vec<String> = split_csv(header.trim_start_matches('\u{feff}'))
        .map_err(|m| format!("line 1: {m}"))?
        .into_iter()
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let index = |name: &str| columns.iter().position(|c| c == name);
    let (Some(key_col), Some(name_col)) = (index("key"), index("name")) else {
        return Err(format!(
            "line 1: the header must name the columns `key` and `name` (and optionally `permissions`, `allowed_ips`); it has {}",
            columns.join(", ")
        ));
    };
    if let Some(other) = columns
        .iter()
        .find(|c| !matches!(c.as_str(), "key" | "name" | "permissions" | "allowed_ips"))
    {
        return Err(format!(
            "line 1: unknown column `{other}`: expected key, name, permissions, allowed_ips"
        ));
    }
    let perm_col = index("permissions");
    let ips_col = index("allowed_ips");
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, raw) in lines {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let mut bad = |reason: String| errors.push(RowError { line, reason });
        let fields = match split_csv(raw) {
            Ok(f) => f,
            Err(m) => {
                bad(m);
                continue;
            }
        };
        if fields.len() > columns.len() {
            bad(format!(
                "{} fields, but the header names {} columns",
                fields.len(),
                columns.len()
            ));
            continue;
        }
        let get = |col: Option<usize>| -> &str {
            col.and_then(|c| fields.get(c))
                .map_or("", |s| s.as_str())
                .trim()
        };
        let secret = get(Some(key_col));
        let mut reasons = Vec::new();
        if secret.is_empty() {
            reasons.push("the key is empty".to_owned());
        } else if !token::is_legacy_shape(secret) {
            reasons.push(format!(
                "the key ({}) is not a legacy key: expected {}–{} characters of A-Z a-z 0-9 _ . - not starting with lk_ (it has {})",
                token::display_form(secret),
                token::LEGACY_MIN_LEN,
                token::LEGACY_MAX_LEN,
                secret.chars().count()
            ));
        } else if !seen.insert(secret.to_owned()) {
            reasons.push(format!(
                "the key ({}) appears earlier in the file",
                token::display_form(secret)
            ));
        }
        let name = KeyName::parse(get(Some(name_col)))
            .map_err(|m| reasons.push(format!("name: {m}")))
            .ok();
        let perm_raw = get(perm_col);
        let permissions = if perm_raw.is_empty() {
            Some(PermissionSet::legacy_default())
        } else {
            let names: Vec<&str> = perm_raw.split_whitespace().collect();
            PermissionSet::parse_list(&names)
                .map_err(|m| reasons.push(format!("permissions: {m}")))
                .ok()
        };
        let ip_list: Vec<&str> = get(ips_col).split_whitespace().collect();
        let allowed_ips = AllowedIps::parse(&ip_list)
            .map_err(|errs| {
                for (_, m) in errs {
                    reasons.push(format!("allowed_ips: {m}"));
                }
            })
            .ok();
        match (name, permissions, allowed_ips) {
            (Some(name), Some(permissions), Some(allowed_ips)) if reasons.is_empty() => {
                rows.push(ImportRow {
                    line,
                    secret: secret.to_owned(),
                    name,
                    permissions,
                    allowed_ips,
                });
            }
            _ => bad(reasons.join("; ")),
        }
    }
    Ok((rows, errors))
}

impl Core {
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
        if self
            .store
            .get_shop(shop_id)
            .await
            .map_err(|e| ImportError::Other(e.to_string()))?
            .is_none()
        {
            return Err(ImportError::Other(format!("no shop with id {shop_id}")));
        }
        let (rows, mut invalid) = parse_file(text).map_err(ImportError::Other)?;
        let mut good = Vec::new();
        for row in rows {
            let hash = self.hasher.hash(&row.secret);
            let exists = self
                .store
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
        self.store
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

/// Why an import wrote nothing.
#[derive(Debug)]
pub enum ImportError {
    /// Bad rows, each with its line and reason.
    Invalid(Vec<RowError>),
    Other(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Invalid(rows) => {
                write!(
                    f,
                    "{} invalid row(s), nothing imported (use --skip-invalid to import the others):",
                    rows.len()
                )?;
                for r in rows {
                    write!(f, "\n  line {}: {}", r.line, r.reason)?;
                }
                Ok(())
            }
            ImportError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ImportError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        let t = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(http_date(t), "Tue, 01 Dec 2026 00:00:00 GMT");
    }

    #[test]
    fn csv_fields_may_be_quoted() {
        assert_eq!(
            split_csv(r#"abc,"Zapier, ""new"" orders",x"#).unwrap(),
            vec!["abc", "Zapier, \"new\" orders", "x"]
        );
        assert!(split_csv(r#"a,"b"#).is_err());
    }
}
