//! A shop's client (customer).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::clock::Timestamp;
use super::fields;
use crate::domain::FieldError;

/// A client's data fields (everything but id and times).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClientFields {
    #[schema(example = "Sam")]
    pub first_name: Option<String>,
    #[schema(example = "Patel")]
    pub last_name: Option<String>,
    pub business_name: Option<String>,
    #[schema(example = "sam@example.com")]
    pub email: Option<String>,
    #[schema(example = "+44 20 7946 0958")]
    pub phone: Option<String>,
    /// A second phone number (same rules as `phone`).
    pub mobile: Option<String>,
    pub address: Option<String>,
    pub address_2: Option<String>,
    pub city: Option<String>,
    /// State, county or region.
    pub state: Option<String>,
    pub postcode: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[schema(example = "GB")]
    pub country: Option<String>,
    pub notes: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Client {
    #[schema(example = "cli_3kTMd2B7xQ9rYp0aLz1Vw8Ne")]
    pub id: String,
    /// The client's integer id (unique among clients, never reused): its id
    /// on the RepairShopr-compatible API (`/api/v1/customers/{id}`).
    #[schema(example = 1042, minimum = 1)]
    pub numeric_id: i64,
    #[serde(flatten)]
    pub fields: ClientFields,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A client as sent: on create every field is optional (at least one of a
/// name, business name, email or phone); on PATCH, `null` clears a field.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "Sam")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "Patel")]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub business_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "sam@example.com")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "+44 20 7946 0958")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub mobile: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub address_2: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub state: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub city: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub postcode: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "GB")]
    pub country: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
}

impl ClientInput {
    /// Applies this input to `base` (default for a create) and validates the
    /// result. `prefix` names nested fields (`client.email`).
    pub fn apply(self, base: ClientFields, prefix: &str) -> Result<ClientFields, Vec<FieldError>> {
        let mut e = Vec::new();
        let f = |n: &str| format!("{prefix}{n}");
        let out = ClientFields {
            first_name: fields::checked(
                &mut e,
                &f("first_name"),
                base.first_name,
                self.first_name,
                100,
                fields::name,
            ),
            last_name: fields::checked(
                &mut e,
                &f("last_name"),
                base.last_name,
                self.last_name,
                100,
                fields::name,
            ),
            business_name: fields::checked(
                &mut e,
                &f("business_name"),
                base.business_name,
                self.business_name,
                200,
                fields::name,
            ),
            email: fields::checked(
                &mut e,
                &f("email"),
                base.email,
                self.email,
                254,
                fields::email,
            ),
            phone: fields::checked(
                &mut e,
                &f("phone"),
                base.phone,
                self.phone,
                32,
                fields::phone,
            ),
            mobile: fields::checked(
                &mut e,
                &f("mobile"),
                base.mobile,
                self.mobile,
                32,
                fields::phone,
            ),
            address: fields::text(&mut e, &f("address"), base.address, self.address, 500),
            address_2: fields::text(&mut e, &f("address_2"), base.address_2, self.address_2, 500),
            city: fields::text(&mut e, &f("city"), base.city, self.city, 100),
            state: fields::text(&mut e, &f("state"), base.state, self.state, 100),
            postcode: fields::text(&mut e, &f("postcode"), base.postcode, self.postcode, 20),
            country: fields::checked(
                &mut e,
                &f("country"),
                base.country,
                self.country,
                2,
                fields::country,
            ),
            notes: fields::text(&mut e, &f("notes"), base.notes, self.notes, 10_000),
        };
        if e.is_empty()
            && out.first_name.is_none()
            && out.last_name.is_none()
            && out.business_name.is_none()
            && out.email.is_none()
            && out.phone.is_none()
        {
            let field = if prefix.is_empty() {
                "body".to_owned()
            } else {
                prefix.trim_end_matches('.').to_owned()
            };
            e.push(FieldError::new(
                field,
                "a client needs at least one of first_name, last_name, business_name, email or phone",
            ));
        }
        if e.is_empty() { Ok(out) } else { Err(e) }
    }
}
