//! Paging of every list in the API, in one place: `?page` / `?per_page` (and,
//! for the shop's data, `sort`, `updated_since` and `after`) parsed with the
//! same messages everywhere, and the one `meta` every list answers with.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::clock::Timestamp;
use crate::http::error::{ApiError, FieldError};
use crate::store::PageRequest;
use crate::store::resources::{Cursor, ListQuery, Sort};

/// Items per page when `per_page` is absent.
pub const DEFAULT_PER_PAGE: u32 = 25;
/// The largest `per_page` accepted.
pub const MAX_PER_PAGE: u32 = 100;
/// The largest `page` accepted: the largest 32-bit signed integer, as the
/// document declares (`format: int32`), so clients in any language can hold it.
pub const MAX_PAGE: u32 = 2_147_483_647;

/// `page` and `per_page` as given (absent means the default): 1-based, page
/// at most 2147483647, per_page 1–100, default 25. Not a number is 400 (the request is malformed);
/// a number out of range is 422, naming each bad field.
pub fn page_request(page: Option<&str>, per_page: Option<&str>) -> Result<PageRequest, ApiError> {
    let number = |name: &str, value: Option<&str>, default: u32| -> Result<u32, ApiError> {
        match value {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<u32>().map_err(|_| {
                ApiError::bad_request(format!(
                    "`{name}` must be a positive whole number (got `{v}`)."
                ))
            }),
        }
    };
    let page = number("page", page, 1)?;
    let per_page = number("per_page", per_page, DEFAULT_PER_PAGE)?;
    let mut errors = Vec::new();
    if page < 1 {
        errors.push(FieldError::new("page", "pages start at 1"));
    }
    if page > MAX_PAGE {
        errors.push(FieldError::new(
            "page",
            format!("must be at most {MAX_PAGE} (got {page})"),
        ));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        errors.push(FieldError::new(
            "per_page",
            format!("must be between 1 and {MAX_PER_PAGE} (got {per_page})"),
        ));
    }
    if errors.is_empty() {
        Ok(PageRequest { page, per_page })
    } else {
        Err(ApiError::validation(errors))
    }
}

/// `meta` of every list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    pub page: u32,
    pub per_page: u32,
    pub total_pages: u64,
    pub total_entries: u64,
    /// With `sort=updated_at`: pass as `after` to continue from the last item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Meta {
    /// The `meta` of `page` out of `total` items.
    pub fn of(page: PageRequest, total: u64) -> Meta {
        Meta {
            page: page.page,
            per_page: page.per_page,
            total_pages: total.div_ceil(u64::from(page.per_page)),
            total_entries: total,
            next_cursor: None,
        }
    }

    /// The `meta` of a page of `items` listed by `query`, with a cursor to
    /// continue from when the listing is `sort=updated_at`.
    pub fn of_listing<T>(
        query: &ListQuery,
        total: u64,
        items: &[T],
        position: impl Fn(&T) -> Cursor,
    ) -> Meta {
        let next_cursor = (query.sort == Sort::UpdatedAsc)
            .then(|| items.last().map(|i| encode_cursor(&position(i))))
            .flatten();
        Meta {
            next_cursor,
            ..Meta::of(query.page, total)
        }
    }
}

/// Paging, sorting and sync parameters of every list of the shop's data.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page number, from 1.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 2147483647, example = 1)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 25).
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100, example = 25)]
    pub per_page: Option<String>,
    /// `-created_at` (default, newest first), `created_at`, `updated_at`
    /// (oldest change first; use with `after` for sync) or `-updated_at`.
    #[param(value_type = Option<SortParam>)]
    pub sort: Option<String>,
    /// Only items changed at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-23T09:00:00Z")]
    pub updated_since: Option<String>,
    /// Continue a `sort=updated_at` listing after `meta.next_cursor`
    /// (`<microseconds>.<id>`; needs `sort=updated_at`).
    #[param(value_type = Option<String>, pattern = r"^-?[0-9]{1,16}\.[A-Za-z0-9_]{1,64}$")]
    pub after: Option<String>,
}

/// The `sort` values.
#[derive(ToSchema)]
#[schema(as = SortParam)]
#[allow(dead_code, reason = "only describes the parameter's values")]
pub enum SortParam {
    #[schema(rename = "-created_at")]
    CreatedDesc,
    #[schema(rename = "created_at")]
    CreatedAsc,
    #[schema(rename = "updated_at")]
    UpdatedAsc,
    #[schema(rename = "-updated_at")]
    UpdatedDesc,
}

impl ListParams {
    /// Not a number or not a known value is 400; a number out of range 422.
    pub fn parse(&self) -> Result<ListQuery, ApiError> {
        let page = page_request(self.page.as_deref(), self.per_page.as_deref())?;
        let sort = match self.sort.as_deref() {
            None | Some("") => Sort::CreatedDesc,
            Some(s) => Sort::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`sort` must be -created_at, created_at, updated_at or -updated_at (got `{s}`)."
                ))
            })?,
        };
        let updated_since = match self.updated_since.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                Timestamp::parse_rfc3339(s)
                    .map_err(|m| ApiError::bad_request(format!("`updated_since`: {m}")))?,
            ),
        };
        let after = match self.after.as_deref() {
            None | Some("") => None,
            Some(s) => {
                if sort != Sort::UpdatedAsc {
                    return Err(ApiError::bad_request(
                        "`after` continues a `sort=updated_at` listing; add `sort=updated_at`.",
                    ));
                }
                Some(decode_cursor(s).ok_or_else(|| {
                    ApiError::bad_request("`after` is not a cursor from `meta.next_cursor`.")
                })?)
            }
        };
        Ok(ListQuery {
            page,
            sort,
            updated_since,
            after,
        })
    }
}

fn encode_cursor(c: &Cursor) -> String {
    format!("{}.{}", c.updated_at.as_micros(), c.id)
}

fn decode_cursor(s: &str) -> Option<Cursor> {
    let (micros, id) = s.split_once('.')?;
    let digits = micros.strip_prefix('-').unwrap_or(micros);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = micros.parse().ok()?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    Some(Cursor {
        updated_at: Timestamp::from_micros(micros),
        id: id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor {
            updated_at: Timestamp::from_micros(1_700_000_000_123_456),
            id: "ord_abc".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        for junk in ["", "x", "1.", ".ord", "a.ord", "1.ord abc", "1.ord'"] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
    }

    #[test]
    fn absent_or_empty_paging_means_the_first_page_of_25() {
        for (page, per_page) in [(None, None), (Some(""), Some(""))] {
            let p = page_request(page, per_page).expect("defaults");
            assert_eq!((p.page, p.per_page), (1, DEFAULT_PER_PAGE));
        }
    }

    #[test]
    fn paging_that_is_not_a_number_is_400_and_out_of_range_is_422() {
        let e = page_request(Some("two"), None).expect_err("not a number");
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.detail.contains("`page`"), "{}", e.detail);
        let e = page_request(Some("0"), Some("101")).expect_err("out of range");
        assert_eq!(e.status.as_u16(), 422);
        assert!(e.detail.contains("2 fields"), "{}", e.detail);
    }

    #[test]
    fn meta_counts_whole_pages_and_has_no_cursor_by_default() {
        let m = Meta::of(
            PageRequest {
                page: 2,
                per_page: 10,
            },
            21,
        );
        assert_eq!((m.total_pages, m.total_entries), (3, 21));
        let json = serde_json::to_value(&m).expect("serialises");
        assert!(json.get("next_cursor").is_none(), "{json}");
    }
}
