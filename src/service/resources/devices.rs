//! Devices: added to an order or to a client (without an order), listed per
//! order, per client or across the shop, get, merge-patch, delete.

use super::{ResourceService, Scope, found};
use crate::domain::device::{Device, DeviceInput};
use crate::domain::new_id;
use crate::service::ServiceError;
use crate::store::Paged;
use crate::store::resources::{DeviceFilter, DeviceOwner, ListQuery};

impl ResourceService {
    /// The shop's devices. An `order_id` filter naming no order is an empty
    /// list (it is a filter), unlike [`Self::list_order_devices`].
    pub async fn list_devices(
        &self,
        scope: &Scope,
        filter: &DeviceFilter,
        query: &ListQuery,
    ) -> Result<Paged<Device>, ServiceError> {
        Ok(self.store.list_devices(scope, filter, query).await?)
    }

    /// One order's devices; `NotFound` if the order is not in scope.
    pub async fn list_order_devices(
        &self,
        scope: &Scope,
        order_id: &str,
        query: &ListQuery,
    ) -> Result<Paged<Device>, ServiceError> {
        self.get_order(scope, order_id).await?;
        let filter = DeviceFilter {
            order_id: Some(order_id.to_owned()),
            client_id: None,
        };
        self.list_devices(scope, &filter, query).await
    }

    /// Adds a device to an order: `NotFound` for a missing order comes before
    /// any complaint about the device's fields.
    pub async fn add_device(
        &self,
        scope: &Scope,
        order_id: &str,
        input: DeviceInput,
    ) -> Result<Device, ServiceError> {
        self.get_order(scope, order_id).await?;
        self.create_device(scope, DeviceOwner::Order(order_id.to_owned()), input)
            .await
    }

    /// Adds a device to a client, without an order: `NotFound` for a missing
    /// client comes before any complaint about the device's fields.
    pub async fn add_client_device(
        &self,
        scope: &Scope,
        client_id: &str,
        input: DeviceInput,
    ) -> Result<Device, ServiceError> {
        self.get_client(scope, client_id).await?;
        self.create_device(scope, DeviceOwner::Client(client_id.to_owned()), input)
            .await
    }

    async fn create_device(
        &self,
        scope: &Scope,
        owner: DeviceOwner,
        input: DeviceInput,
    ) -> Result<Device, ServiceError> {
        let fields = input.apply(None).map_err(ServiceError::Validation)?;
        Ok(self
            .store
            .create_device(scope, &owner, &new_id("dev"), &fields, self.clock.now())
            .await?)
    }

    pub async fn get_device(&self, scope: &Scope, id: &str) -> Result<Device, ServiceError> {
        found(self.store.get_device(scope, id).await)
    }

    /// Applies `patch` to the stored device.
    pub async fn update_device(
        &self,
        scope: &Scope,
        id: &str,
        patch: DeviceInput,
    ) -> Result<Device, ServiceError> {
        let current = self.get_device(scope, id).await?;
        let fields = patch
            .apply(Some(current.fields))
            .map_err(ServiceError::Validation)?;
        Ok(self
            .store
            .update_device(scope, id, &fields, self.clock.now())
            .await?)
    }

    pub async fn delete_device(&self, scope: &Scope, id: &str) -> Result<(), ServiceError> {
        Ok(self.store.delete_device(scope, id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fixture;
    use super::*;
    use crate::domain::token::Environment;

    #[tokio::test]
    async fn a_device_for_a_missing_order_is_not_found_even_when_invalid() {
        let f = fixture().await;
        let scope = f.scope(Environment::Live);
        let added = f
            .service
            .add_device(&scope, "ord_missing", DeviceInput::default())
            .await;
        assert!(matches!(added, Err(ServiceError::NotFound)), "{added:?}");
    }
}
