//! The sample data a shop's test environment is reset to: a few clients,
//! orders in several statuses, and their devices.

use super::client::ClientFields;
use super::device::{DeviceFields, DeviceStatus, DeviceType};
use super::new_id;
use super::order::{OrderFields, OrderStatus};

fn client(
    first: &str,
    last: &str,
    business: Option<&str>,
    email: &str,
    phone: &str,
    city: &str,
    postcode: &str,
) -> ClientFields {
    ClientFields {
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        business_name: business.map(Into::into),
        email: Some(email.into()),
        phone: Some(phone.into()),
        mobile: None,
        address: None,
        address_2: None,
        city: Some(city.into()),
        state: None,
        postcode: Some(postcode.into()),
        country: Some("GB".into()),
        notes: None,
    }
}

struct O(
    usize,
    OrderStatus,
    &'static str,
    Option<&'static str>,
    Option<i64>,
    Option<i64>,
);
struct D(
    usize,
    DeviceType,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    DeviceStatus,
);

/// A fresh sample set, with new ids.
pub fn sample_data() -> SampleData {
    let clients = vec![
        client(
            "Sam",
            "Patel",
            None,
            "sam.patel@example.com",
            "+44 20 7946 0958",
            "London",
            "E1 6AN",
        ),
        client(
            "Jo",
            "Williams",
            Some("Williams Plumbing Ltd"),
            "jo@williams-plumbing.example",
            "+44 161 496 0321",
            "Manchester",
            "M1 1AE",
        ),
        client(
            "Aoife",
            "Murphy",
            None,
            "aoife.murphy@example.ie",
            "+353 1 555 0142",
            "Dublin",
            "D02 X285",
        ),
        client(
            "Chris",
            "Okafor",
            Some("Okafor Accountancy"),
            "chris@okafor.example",
            "+44 113 496 0777",
            "Leeds",
            "LS1 4AP",
        ),
    ];
    let client_ids: Vec<String> = clients.iter().map(|_| new_id("cli")).collect();
    let orders = [
        O(
            0,
            OrderStatus::AwaitingDevice,
            "Battery drains within hours",
            None,
            Some(4999),
            None,
        ),
        O(
            0,
            OrderStatus::InProgress,
            "Cracked screen after a drop",
            Some("Alex"),
            Some(8999),
            None,
        ),
        O(
            1,
            OrderStatus::WaitingForParts,
            "Laptop will not power on; suspected DC jack",
            Some("Priya"),
            Some(12000),
            None,
        ),
        O(
            1,
            OrderStatus::AwaitingApproval,
            "Water damage: quote for logic board repair",
            Some("Priya"),
            Some(18500),
            None,
        ),
        O(
            2,
            OrderStatus::Ready,
            "Charging port replacement",
            Some("Alex"),
            Some(3999),
            Some(3999),
        ),
        O(
            3,
            OrderStatus::Collected,
            "Data recovery from failed SSD",
            Some("Priya"),
            Some(25000),
            Some(22500),
        ),
        O(
            3,
            OrderStatus::Cancelled,
            "Console HDMI port; customer declined quote",
            None,
            Some(7500),
            None,
        ),
    ];
    let order_rows: Vec<(String, OrderFields)> = orders
        .iter()
        .map(|o| {
            (
                new_id("ord"),
                OrderFields {
                    client_id: client_ids[o.0].clone(),
                    status: o.1,
                    problem_description: Some(o.2.into()),
                    problem_type: None,
                    technician: o.3.map(Into::into),
                    due_date: Some("2026-12-04".into()),
                    estimate_cents: o.4,
                    price_cents: o.5,
                    currency: "GBP".into(),
                    notes: None,
                },
            )
        })
        .collect();
    let devices = [
        D(
            0,
            DeviceType::Phone,
            "Samsung",
            "Galaxy S22",
            Some("356938035643809"),
            "Battery drains fast",
            DeviceStatus::Received,
        ),
        D(
            1,
            DeviceType::Phone,
            "Apple",
            "iPhone 13",
            Some("490154203237518"),
            "Screen cracked",
            DeviceStatus::Repairing,
        ),
        D(
            2,
            DeviceType::Laptop,
            "Dell",
            "XPS 13 9310",
            None,
            "No power",
            DeviceStatus::AwaitingParts,
        ),
        D(
            3,
            DeviceType::Laptop,
            "Apple",
            "MacBook Air M1",
            None,
            "Liquid damage",
            DeviceStatus::Diagnosing,
        ),
        D(
            4,
            DeviceType::Tablet,
            "Apple",
            "iPad 9th gen",
            None,
            "Loose charging port",
            DeviceStatus::Repaired,
        ),
        D(
            5,
            DeviceType::Desktop,
            "Custom",
            "Tower PC",
            None,
            "SSD failed",
            DeviceStatus::Returned,
        ),
        D(
            6,
            DeviceType::Console,
            "Sony",
            "PlayStation 5",
            None,
            "No HDMI output",
            DeviceStatus::Unrepairable,
        ),
    ];
    let device_rows = devices
        .iter()
        .map(|d| {
            (
                new_id("dev"),
                order_rows[d.0].0.clone(),
                DeviceFields {
                    name: None,
                    device_type: d.1,
                    brand: Some(d.2.into()),
                    model: Some(d.3.into()),
                    serial: None,
                    imei: d.4.map(Into::into),
                    color: None,
                    condition: Some("Used, light scratches".into()),
                    fault: Some(d.5.into()),
                    status: d.6,
                },
            )
        })
        .collect();
    SampleData {
        clients: client_ids.into_iter().zip(clients).collect(),
        orders: order_rows,
        devices: device_rows,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sample_imeis_are_valid_and_orders_span_statuses() {
        let s = super::sample_data();
        for (_, _, d) in &s.devices {
            if let Some(imei) = &d.imei {
                assert!(crate::domain::fields::imei(imei).is_ok(), "{imei}");
            }
        }
        let statuses: std::collections::HashSet<_> =
            s.orders.iter().map(|(_, o)| o.status).collect();
        assert!(statuses.len() >= 5);
    }
}

/// A sample data set, ready to store.
#[derive(Clone, Debug)]
pub struct SampleData {
    pub clients: Vec<(String, ClientFields)>,
    pub orders: Vec<(String, OrderFields)>,
    pub devices: Vec<(String, String, DeviceFields)>,
}
