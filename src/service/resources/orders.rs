//! Orders: list, get, create (with an inline new client), merge-patch, delete.

use super::{ResourceService, Scope, found};
use crate::domain::FieldError;
use crate::domain::client::ClientFields;
use crate::domain::new_id;
use crate::domain::order::{Order, OrderInput};
use crate::domain::permission::{Permission, PermissionSet};
use crate::service::ServiceError;
use crate::store::resources::{ListQuery, OrderFilter};
use crate::store::{Paged, StoreError};

/// An inline client is a client created: creating an order with one needs
/// `clients:write` as well as the order's own permission. A surface may call
/// this before any other work (e.g. before claiming an `Idempotency-Key`), so
/// the refusal comes first; [`ResourceService::create_order`] checks it too.
pub fn may_create_order(
    permissions: PermissionSet,
    input: &OrderInput,
) -> Result<(), ServiceError> {
    if input.client.is_some() && !permissions.contains(Permission::ClientsWrite) {
        return Err(ServiceError::Forbidden {
            permission: Permission::ClientsWrite,
            detail: "Creating the order's client inline needs `clients:write` as well; give client_id instead, or use a key that has it.".into(),
        });
    }
    Ok(())
}

/// A client id that names nothing in scope is the caller's mistake in a field,
/// not a missing order.
fn unknown_client(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::Validation(vec![FieldError::new(
            "client_id",
            "no such client (for this key's shop and environment)",
        )]),
        other => other.into(),
    }
}

impl ResourceService {
    pub async fn list_orders(
        &self,
        scope: &Scope,
        filter: &OrderFilter,
        query: &ListQuery,
    ) -> Result<Paged<Order>, ServiceError> {
        Ok(self.store.list_orders(scope, filter, query).await?)
    }

    pub async fn get_order(&self, scope: &Scope, id: &str) -> Result<Order, ServiceError> {
        found(self.store.get_order(scope, id).await)
    }

    /// Creates an order for `input.client_id`, or together with the new client
    /// `input.client` (one transaction; needs `clients:write` in
    /// `permissions`). Every invalid field of the order and of the inline
    /// client is reported at once; an unknown `client_id` is a field error.
    pub async fn create_order(
        &self,
        scope: &Scope,
        permissions: PermissionSet,
        input: OrderInput,
    ) -> Result<Order, ServiceError> {
        may_create_order(permissions, &input)?;
        let inline = input.client.clone();
        let draft = input.apply(None);
        let client = inline.map(|c| c.apply(ClientFields::default(), "client."));
        let (draft, client) = match (draft, client) {
            (Ok(d), None) => (d, None),
            (Ok(d), Some(Ok(c))) => (d, Some(c)),
            (d, c) => {
                let mut errors: Vec<FieldError> = d.err().unwrap_or_default();
                if let Some(Err(client_errors)) = c {
                    errors.extend(client_errors);
                }
                return Err(ServiceError::Validation(errors));
            }
        };
        let client_id = match (&client, draft.client_id.clone()) {
            (Some(_), _) => new_id("cli"),
            (None, Some(id)) => id,
            // `apply` reports this already; kept as an answer, not a panic.
            (None, None) => {
                return Err(ServiceError::Validation(vec![FieldError::new(
                    "client_id",
                    "give the order's client_id, or a new client as `client`",
                )]));
            }
        };
        let fields = draft.with_client(client_id.clone());
        let new_client = client.as_ref().map(|c| (client_id.as_str(), c));
        self.store
            .create_order(scope, &new_id("ord"), &fields, new_client, self.clock.now())
            .await
            .map_err(unknown_client)
    }

    /// Applies `patch` to the stored order. A `client_id` changed to one not
    /// in scope is a field error; a missing order is `NotFound`.
    pub async fn update_order(
        &self,
        scope: &Scope,
        id: &str,
        patch: OrderInput,
    ) -> Result<Order, ServiceError> {
        let current = self.get_order(scope, id).await?;
        let draft = patch
            .apply(Some(current.fields))
            .map_err(ServiceError::Validation)?;
        let client_id = draft.client_id.clone().unwrap_or_default();
        let fields = draft.with_client(client_id);
        match self
            .store
            .update_order(scope, id, &fields, self.clock.now())
            .await
        {
            // The store says NotFound for the order and for its client alike:
            // if the order is still there, it was the client.
            Err(StoreError::NotFound) if self.store.get_order(scope, id).await?.is_some() => {
                Err(unknown_client(StoreError::NotFound))
            }
            other => Ok(other?),
        }
    }

    /// Deletes the order and its devices.
    pub async fn delete_order(&self, scope: &Scope, id: &str) -> Result<(), ServiceError> {
        Ok(self.store.delete_order(scope, id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, permissions};
    use super::*;
    use crate::domain::client::ClientInput;
    use crate::domain::token::Environment;

    fn with_inline_client() -> OrderInput {
        OrderInput {
            client: Some(ClientInput {
                first_name: Some(Some("Sam".into())),
                ..ClientInput::default()
            }),
            ..OrderInput::default()
        }
    }

    fn for_client(id: &str) -> OrderInput {
        OrderInput {
            client_id: Some(Some(id.into())),
            ..OrderInput::default()
        }
    }

    #[tokio::test]
    async fn an_inline_client_needs_clients_write() {
        let f = fixture().await;
        let scope = f.scope(Environment::Live);
        let refused = f
            .service
            .create_order(
                &scope,
                permissions(&[Permission::OrdersWrite]),
                with_inline_client(),
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(ServiceError::Forbidden {
                    permission: Permission::ClientsWrite,
                    ..
                })
            ),
            "{refused:?}"
        );
        let both = permissions(&[Permission::OrdersWrite, Permission::ClientsWrite]);
        let order = f
            .service
            .create_order(&scope, both, with_inline_client())
            .await
            .unwrap();
        let client = f
            .service
            .get_client(&scope, &order.fields.client_id)
            .await
            .unwrap();
        assert_eq!(client.fields.first_name.as_deref(), Some("Sam"));
    }

    #[tokio::test]
    async fn an_order_for_an_existing_client_needs_only_orders_write() {
        assert!(
            may_create_order(
                permissions(&[Permission::OrdersWrite]),
                &for_client("cli_x")
            )
            .is_ok()
        );
    }

    #[tokio::test]
    async fn an_unknown_client_id_is_a_field_error_on_create_and_update() {
        let f = fixture().await;
        let scope = f.scope(Environment::Test);
        let perms = permissions(&[Permission::OrdersWrite, Permission::ClientsWrite]);
        let on_create = f
            .service
            .create_order(&scope, perms, for_client("cli_nope"))
            .await;
        assert!(
            matches!(&on_create, Err(ServiceError::Validation(e)) if e[0].field == "client_id"),
            "{on_create:?}"
        );
        let order = f
            .service
            .create_order(&scope, perms, with_inline_client())
            .await
            .unwrap();
        let on_update = f
            .service
            .update_order(&scope, &order.id, for_client("cli_nope"))
            .await;
        assert!(
            matches!(&on_update, Err(ServiceError::Validation(e)) if e[0].field == "client_id"),
            "{on_update:?}"
        );
        assert!(matches!(
            f.service
                .update_order(&scope, "ord_missing", OrderInput::default())
                .await,
            Err(ServiceError::NotFound)
        ));
    }
}
