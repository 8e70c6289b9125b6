//! Legacy keys: the import file of the earlier scheme, parsed and validated.

use std::collections::HashSet;

use serde::Serialize;

use super::key::KeyName;
use super::net::AllowedIps;
use super::permission::PermissionSet;
use super::token;

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
    /// The legacy cut-off is past (the keys were imported but are refused)
    /// or near. Absent when there is nothing to say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ImportWarning>,
}

/// A warning about an import that succeeded.
#[derive(Clone, Debug, Serialize)]
pub struct ImportWarning {
    /// `legacy_cutoff_passed` or `legacy_cutoff_near`.
    pub code: &'static str,
    pub message: String,
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
    fn csv_fields_may_be_quoted() {
        assert_eq!(
            split_csv(r#"abc,"Zapier, ""new"" orders",x"#).unwrap(),
            vec!["abc", "Zapier, \"new\" orders", "x"]
        );
        assert!(split_csv(r#"a,"b"#).is_err());
    }
}
