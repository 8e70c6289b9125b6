//! `latchkey legacy import`.

use super::*;

pub(super) async fn legacy_import(
    settings: Settings,
    shop: &str,
    file: &std::path::Path,
    skip_invalid: bool,
    json: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("--file: cannot read {}: {e}", file.display()))?;
    let (core, _) = open_core(&settings).await?;
    let summary = match core.keys.import_legacy(shop, &text, skip_invalid).await {
        Ok(s) => s,
        Err(crate::domain::legacy::ImportError::Invalid(rows)) if json => {
            out!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "imported": 0,
                    "invalid": rows,
                }))?
            );
            bail!("{} invalid row(s), nothing imported", rows.len());
        }
        Err(e) => bail!("{e}"),
    };
    // On stderr whatever the output format, so a script piping the JSON
    // still shows it to the person running it.
    for w in &summary.warnings {
        eprintln!("latchkey: warning: {}", w.message);
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    out!(
        "imported {} legacy key(s) into {shop}; skipped {} invalid row(s)",
        summary.imported,
        summary.skipped
    );
    for k in &summary.keys {
        out!("  line {}: {} {} ({})", k.line, k.id, k.display, k.name);
    }
    for r in &summary.invalid {
        out!("  skipped line {}: {}", r.line, r.reason);
    }
    for k in &summary.weak {
        out!(
            "  weak: line {} ({}, {}) is shorter than 22 characters; upgrade it first",
            k.line,
            k.id,
            k.name
        );
    }
    Ok(())
}
