//! A repair order (job).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client::ClientInput;
use super::clock::Timestamp;
use super::fields;
use crate::domain::FieldError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    AwaitingDevice,
    InProgress,
    WaitingForParts,
    AwaitingApproval,
    Ready,
    Collected,
    Despatched,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::AwaitingDevice,
        OrderStatus::InProgress,
        OrderStatus::WaitingForParts,
        OrderStatus::AwaitingApproval,
        OrderStatus::Ready,
        OrderStatus::Collected,
        OrderStatus::Despatched,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::AwaitingDevice => "awaiting_device",
            OrderStatus::InProgress => "in_progress",
            OrderStatus::WaitingForParts => "waiting_for_parts",
            OrderStatus::AwaitingApproval => "awaiting_approval",
            OrderStatus::Ready => "ready",
            OrderStatus::Collected => "collected",
            OrderStatus::Despatched => "despatched",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        OrderStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown order status `{s}`: expected one of {}",
                    OrderStatus::ALL.map(OrderStatus::as_str).join(", ")
                )
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderFields {
    #[schema(example = "cli_3kTMd2B7xQ9rYp0aLz1Vw8Ne")]
    pub client_id: String,
    pub status: OrderStatus,
    #[schema(example = "Cracked screen after a drop; touch works.")]
    pub problem_description: Option<String>,
    /// A category of problem, free text.
    #[schema(example = "Screen")]
    pub problem_type: Option<String>,
    #[schema(example = "Alex")]
    pub technician: Option<String>,
    /// `YYYY-MM-DD`
    #[schema(example = "2026-12-04")]
    pub due_date: Option<String>,
    #[schema(example = 8999, minimum = 0)]
    pub estimate_cents: Option<i64>,
    #[schema(example = 8999, minimum = 0)]
    pub price_cents: Option<i64>,
    /// ISO 4217
    #[schema(example = "GBP")]
    pub currency: String,
    pub notes: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Order {
    #[schema(example = "ord_Q1w2E3r4T5y6U7i8O9p0AsDf")]
    pub id: String,
    /// Per shop and environment, never repeated.
    #[schema(example = "RM-10042")]
    pub reference: String,
    /// The order's integer id (unique among orders, never reused): its id
    /// on the RepairShopr-compatible API (`/api/v1/tickets/{id}`).
    #[schema(example = 5120, minimum = 1)]
    pub numeric_id: i64,
    #[serde(flatten)]
    pub fields: OrderFields,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An order as sent. On create, give `client_id` or an inline new `client`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub client_id: Option<Option<String>>,
    /// A new client to create with the order (create only; never `null`).
    #[serde(default, deserialize_with = "not_null")]
    pub client: Option<ClientInput>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<OrderStatus>)]
    pub status: Option<Option<OrderStatus>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub problem_description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "Screen")]
    pub problem_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub technician: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "2026-12-04")]
    pub due_date: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub estimate_cents: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub price_cents: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "GBP")]
    pub currency: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
}

/// A field that may be absent but not `null`.
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    match crate::domain::present::<D, T>(d)? {
        Some(Some(v)) => Ok(Some(v)),
        _ => Err(serde::de::Error::custom("cannot be null")),
    }
}

/// The fields of an order before its client id is known (an inline client
/// is created in the same transaction).
pub struct OrderDraft {
    pub client_id: Option<String>,
    pub status: OrderStatus,
    pub problem_description: Option<String>,
    pub problem_type: Option<String>,
    pub technician: Option<String>,
    pub due_date: Option<String>,
    pub estimate_cents: Option<i64>,
    pub price_cents: Option<i64>,
    pub currency: String,
    pub notes: Option<String>,
}

impl OrderDraft {
    pub fn with_client(self, client_id: String) -> OrderFields {
        OrderFields {
            client_id,
            status: self.status,
            problem_description: self.problem_description,
            problem_type: self.problem_type,
            technician: self.technician,
            due_date: self.due_date,
            estimate_cents: self.estimate_cents,
            price_cents: self.price_cents,
            currency: self.currency,
            notes: self.notes,
        }
    }
}

impl OrderInput {
    /// Applies to `base` (`None` for a create) and validates. The inline
    /// `client` is left for the caller; its presence is checked here.
    pub fn apply(self, base: Option<OrderFields>) -> Result<OrderDraft, Vec<FieldError>> {
        let mut e = Vec::new();
        let creating = base.is_none();
        if !creating && self.client.is_some() {
            e.push(FieldError::new(
                "client",
                "an inline client can only be given when creating an order; use client_id",
            ));
        }
        let client_id = match (&self.client_id, &self.client) {
            (Some(None), _) => {
                e.push(FieldError::new("client_id", "cannot be null"));
                None
            }
            (Some(Some(_)), Some(_)) => {
                e.push(FieldError::new(
                    "client",
                    "give client_id or client, not both",
                ));
                None
            }
            (_, Some(_)) => None,
            _ => {
                let current = base.as_ref().map(|b| b.client_id.clone());
                let patch = self
                    .client_id
                    .map(|v| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
                if creating && patch.is_none() {
                    e.push(FieldError::new(
                        "client_id",
                        "give the order's client_id, or a new client as `client`",
                    ));
                    None
                } else {
                    fields::required(&mut e, "client_id", current, patch.map(|p| p.or(None)))
                }
            }
        };
        let b = base;
        let status = match self.status {
            None => Some(b.as_ref().map_or(OrderStatus::AwaitingDevice, |b| b.status)),
            Some(None) => {
                e.push(FieldError::new("status", "cannot be null"));
                None
            }
            Some(Some(s)) => Some(s),
        };
        let cur = |f: fn(&OrderFields) -> Option<String>| b.as_ref().and_then(f);
        let problem_description = fields::text(
            &mut e,
            "problem_description",
            cur(|b| b.problem_description.clone()),
            self.problem_description,
            10_000,
        );
        let problem_type = fields::text(
            &mut e,
            "problem_type",
            cur(|b| b.problem_type.clone()),
            self.problem_type,
            100,
        );
        let technician = fields::text(
            &mut e,
            "technician",
            cur(|b| b.technician.clone()),
            self.technician,
            100,
        );
        let due_date = fields::checked(
            &mut e,
            "due_date",
            cur(|b| b.due_date.clone()),
            self.due_date,
            10,
            fields::date,
        );
        let estimate_cents = fields::money(
            &mut e,
            "estimate_cents",
            b.as_ref().and_then(|b| b.estimate_cents),
            self.estimate_cents,
        );
        let price_cents = fields::money(
            &mut e,
            "price_cents",
            b.as_ref().and_then(|b| b.price_cents),
            self.price_cents,
        );
        let currency = match self.currency {
            Some(None) => {
                e.push(FieldError::new("currency", "cannot be null"));
                None
            }
            patch => fields::checked(
                &mut e,
                "currency",
                Some(
                    b.as_ref()
                        .map_or_else(|| "GBP".to_owned(), |b| b.currency.clone()),
                ),
                patch,
                3,
                fields::currency,
            ),
        };
        let notes = fields::text(
            &mut e,
            "notes",
            cur(|b| b.notes.clone()),
            self.notes,
            10_000,
        );
        match (status, currency) {
            (Some(status), Some(currency)) if e.is_empty() => Ok(OrderDraft {
                client_id,
                status,
                problem_description,
                problem_type,
                technician,
                due_date,
                estimate_cents,
                price_cents,
                currency,
                notes,
            }),
            (_, None) if e.is_empty() => Err(vec![FieldError::new("currency", "cannot be empty")]),
            _ => Err(e),
        }
    }
}
