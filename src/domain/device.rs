//! A device brought in with an order.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::clock::Timestamp;
use super::fields;
use crate::domain::FieldError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    Phone,
    Tablet,
    Laptop,
    Desktop,
    Console,
    Watch,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Received,
    Diagnosing,
    AwaitingParts,
    Repairing,
    Repaired,
    Unrepairable,
    Returned,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Phone => "phone",
            DeviceType::Tablet => "tablet",
            DeviceType::Laptop => "laptop",
            DeviceType::Desktop => "desktop",
            DeviceType::Console => "console",
            DeviceType::Watch => "watch",
            DeviceType::Other => "other",
        }
    }
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Received => "received",
            DeviceStatus::Diagnosing => "diagnosing",
            DeviceStatus::AwaitingParts => "awaiting_parts",
            DeviceStatus::Repairing => "repairing",
            DeviceStatus::Repaired => "repaired",
            DeviceStatus::Unrepairable => "unrepairable",
            DeviceStatus::Returned => "returned",
        }
    }
}

pub fn parse_enum<T: for<'de> Deserialize<'de>>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeviceFields {
    /// What the shop calls it, free text.
    #[schema(example = "Sam's iPhone")]
    pub name: Option<String>,
    pub device_type: DeviceType,
    #[schema(example = "Apple")]
    pub brand: Option<String>,
    #[schema(example = "iPhone 13")]
    pub model: Option<String>,
    pub serial: Option<String>,
    /// 15 digits, Luhn-checked.
    #[schema(example = "490154203237518")]
    pub imei: Option<String>,
    pub color: Option<String>,
    pub condition: Option<String>,
    #[schema(example = "Screen cracked")]
    pub fault: Option<String>,
    pub status: DeviceStatus,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Device {
    #[schema(example = "dev_8Hn2Kq5Wv1Xr7Bt3Ym9Lp4Cz")]
    pub id: String,
    /// The device's integer id (unique among devices, never reused): its id
    /// on the RepairShopr-compatible API (`/api/v1/customer_assets/{id}`).
    #[schema(example = 877, minimum = 1)]
    pub numeric_id: i64,
    /// The order it came in with; `null` for a device that belongs to a
    /// client without an order.
    pub order_id: Option<String>,
    /// Its client: the order's client, or the client it was added to.
    #[schema(example = "cli_3kTMd2B7xQ9rYp0aLz1Vw8Ne")]
    pub client_id: String,
    #[serde(flatten)]
    pub fields: DeviceFields,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "Sam's iPhone")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<DeviceType>)]
    pub device_type: Option<Option<DeviceType>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub brand: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub serial: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>, example = "490154203237518")]
    pub imei: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub color: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub condition: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<String>)]
    pub fault: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::present")]
    #[schema(value_type = Option<DeviceStatus>)]
    pub status: Option<Option<DeviceStatus>>,
}

impl DeviceInput {
    pub fn apply(self, base: Option<DeviceFields>) -> Result<DeviceFields, Vec<FieldError>> {
        let mut e = Vec::new();
        let b = base.as_ref();
        let device_type = fields::required(
            &mut e,
            "device_type",
            b.map(|b| b.device_type),
            self.device_type,
        );
        let status = match self.status {
            None => Some(b.map_or(DeviceStatus::Received, |b| b.status)),
            other => fields::required(&mut e, "status", b.map(|b| b.status), other),
        };
        let t = |e: &mut Vec<FieldError>,
                 n: &str,
                 cur: Option<String>,
                 p: Option<Option<String>>,
                 max: usize| fields::text(e, n, cur, p, max);
        let name = t(
            &mut e,
            "name",
            b.and_then(|b| b.name.clone()),
            self.name,
            100,
        );
        let out = (
            t(
                &mut e,
                "brand",
                b.and_then(|b| b.brand.clone()),
                self.brand,
                100,
            ),
            t(
                &mut e,
                "model",
                b.and_then(|b| b.model.clone()),
                self.model,
                100,
            ),
            t(
                &mut e,
                "serial",
                b.and_then(|b| b.serial.clone()),
                self.serial,
                100,
            ),
            fields::checked(
                &mut e,
                "imei",
                b.and_then(|b| b.imei.clone()),
                self.imei,
                20,
                fields::imei,
            ),
            t(
                &mut e,
                "color",
                b.and_then(|b| b.color.clone()),
                self.color,
                50,
            ),
            t(
                &mut e,
                "condition",
                b.and_then(|b| b.condition.clone()),
                self.condition,
                1000,
            ),
            t(
                &mut e,
                "fault",
                b.and_then(|b| b.fault.clone()),
                self.fault,
                10_000,
            ),
        );
        match (device_type, status) {
            (Some(device_type), Some(status)) if e.is_empty() => Ok(DeviceFields {
                name,
                device_type,
                brand: out.0,
                model: out.1,
                serial: out.2,
                imei: out.3,
                color: out.4,
                condition: out.5,
                fault: out.6,
                status,
            }),
            _ => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for t in [
            DeviceType::Phone,
            DeviceType::Tablet,
            DeviceType::Laptop,
            DeviceType::Desktop,
            DeviceType::Console,
            DeviceType::Watch,
            DeviceType::Other,
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert_eq!(parse_enum::<DeviceType>(t.as_str()), Some(t));
        }
        for s in [
            DeviceStatus::Received,
            DeviceStatus::Diagnosing,
            DeviceStatus::AwaitingParts,
            DeviceStatus::Repairing,
            DeviceStatus::Repaired,
            DeviceStatus::Unrepairable,
            DeviceStatus::Returned,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
