//! Clients: list, get, create, merge-patch, delete.

use super::{ResourceService, Scope, found};
use crate::domain::client::{Client, ClientFields, ClientInput};
use crate::domain::new_id;
use crate::service::ServiceError;
use crate::store::Paged;
use crate::store::resources::{ClientFilter, ListQuery, NumericKind};

impl ResourceService {
    /// A page of clients; `search` (trimmed, empty ignored) matches names,
    /// business name, email and phone.
    pub async fn list_clients(
        &self,
        scope: &Scope,
        search: Option<&str>,
        query: &ListQuery,
    ) -> Result<Paged<Client>, ServiceError> {
        let search = search.map(str::trim).filter(|q| !q.is_empty());
        Ok(self.store.list_clients(scope, search, query).await?)
    }

    /// A page of clients matching `filter` (a search trimmed, empty ignored;
    /// an email matched whole, case-insensitively).
    pub async fn list_clients_where(
        &self,
        scope: &Scope,
        filter: &ClientFilter,
        query: &ListQuery,
    ) -> Result<Paged<Client>, ServiceError> {
        let filter = ClientFilter {
            search: filter
                .search
                .as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned),
            email: filter
                .email
                .as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned),
        };
        Ok(self.store.list_clients_where(scope, &filter, query).await?)
    }

    /// The string id of the client, order or device with integer id `n` in
    /// `scope`; `NotFound` if there is none (another shop's, the other
    /// environment's, or no such number).
    pub async fn id_for_number(
        &self,
        scope: &Scope,
        kind: NumericKind,
        n: i64,
    ) -> Result<String, ServiceError> {
        found(self.store.id_for_number(scope, kind, n).await)
    }

    pub async fn get_client(&self, scope: &Scope, id: &str) -> Result<Client, ServiceError> {
        found(self.store.get_client(scope, id).await)
    }

    /// Validates `input` as a whole new client and stores it.
    pub async fn create_client(
        &self,
        scope: &Scope,
        input: ClientInput,
    ) -> Result<Client, ServiceError> {
        let fields = input
            .apply(ClientFields::default(), "")
            .map_err(ServiceError::Validation)?;
        Ok(self
            .store
            .create_client(scope, &new_id("cli"), &fields, self.clock.now())
            .await?)
    }

    /// Applies `patch` to the stored client (absent fields stay, `null`
    /// clears) and stores the result if it is valid.
    pub async fn update_client(
        &self,
        scope: &Scope,
        id: &str,
        patch: ClientInput,
    ) -> Result<Client, ServiceError> {
        let current = self.get_client(scope, id).await?;
        let fields = patch
            .apply(current.fields, "")
            .map_err(ServiceError::Validation)?;
        Ok(self
            .store
            .update_client(scope, id, &fields, self.clock.now())
            .await?)
    }

    /// Refused (`Conflict`, saying why) while the client has orders or
    /// devices of its own.
    pub async fn delete_client(&self, scope: &Scope, id: &str) -> Result<(), ServiceError> {
        Ok(self.store.delete_client(scope, id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fixture;
    use super::*;
    use crate::domain::token::Environment;

    fn named(first: &str) -> ClientInput {
        ClientInput {
            first_name: Some(Some(first.into())),
            ..ClientInput::default()
        }
    }

    #[tokio::test]
    async fn a_patch_keeps_absent_fields_and_clears_null_ones() {
        let f = fixture().await;
        let scope = f.scope(Environment::Live);
        let mut input = named("Sam");
        input.email = Some(Some("sam@example.com".into()));
        input.notes = Some(Some("VIP".into()));
        let made = f.service.create_client(&scope, input).await.unwrap();
        let patch = ClientInput {
            notes: Some(None),
            ..ClientInput::default()
        };
        let changed = f
            .service
            .update_client(&scope, &made.id, patch)
            .await
            .unwrap();
        assert_eq!(changed.fields.first_name.as_deref(), Some("Sam"));
        assert_eq!(changed.fields.email.as_deref(), Some("sam@example.com"));
        assert_eq!(changed.fields.notes, None);
    }

    #[tokio::test]
    async fn a_client_of_the_other_environment_is_not_found() {
        let f = fixture().await;
        let made = f
            .service
            .create_client(&f.scope(Environment::Live), named("Sam"))
            .await
            .unwrap();
        let test = f.scope(Environment::Test);
        assert!(matches!(
            f.service.get_client(&test, &made.id).await,
            Err(ServiceError::NotFound)
        ));
        assert!(matches!(
            f.service.update_client(&test, &made.id, named("X")).await,
            Err(ServiceError::NotFound)
        ));
    }

    #[tokio::test]
    async fn an_empty_client_is_a_validation_error_and_stores_nothing() {
        let f = fixture().await;
        let scope = f.scope(Environment::Live);
        let refused = f
            .service
            .create_client(&scope, ClientInput::default())
            .await;
        assert!(matches!(refused, Err(ServiceError::Validation(_))));
        let query = crate::store::resources::ListQuery {
            page: crate::store::PageRequest {
                page: 1,
                per_page: 10,
            },
            sort: crate::store::resources::Sort::CreatedDesc,
            updated_since: None,
            after: None,
        };
        let listed = f
            .service
            .list_clients(&scope, Some("  "), &query)
            .await
            .unwrap();
        assert_eq!(listed.total, 0);
    }
}
