//! The rules of the users service, whatever surface calls it.

use std::net::IpAddr;

use crate::domain::user::Role;
use crate::service::ServiceError;
use crate::service::testing::{OWNER_PASSWORD, fixture};
use crate::service::users::{Acting, LoginOutcome, ONE_TIME_SECONDS};

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));

fn by(user: &crate::store::User) -> Acting<'_> {
    Acting { user, ip: IP }
}

#[tokio::test]
async fn only_the_owner_adds_users() {
    let f = fixture().await;
    let users = &f.core.users;
    let admin = users
        .add(by(&f.owner), "admin@fixit.example", "admin")
        .await
        .unwrap()
        .user;
    assert_eq!(admin.role, Role::Admin);

    let refused = users
        .add(by(&admin), "staff@fixit.example", "staff")
        .await
        .unwrap_err();
    assert!(matches!(refused, ServiceError::Refused(_)), "{refused:?}");
    let refused = users
        .reset_password(by(&admin), &admin.id)
        .await
        .unwrap_err();
    assert!(matches!(refused, ServiceError::Refused(_)), "{refused:?}");
    assert_eq!(users.list(&f.owner.shop_id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_new_user_reports_every_bad_field_and_a_taken_email() {
    let f = fixture().await;
    let users = &f.core.users;
    let Err(ServiceError::Validation(errors)) = users.add(by(&f.owner), "nope", "owner").await
    else {
        panic!("accepted a bad email and the owner role");
    };
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["email", "role"]);

    let Err(ServiceError::Validation(errors)) = users
        .add(by(&f.owner), "owner@fixit.example", "staff")
        .await
    else {
        panic!("accepted a taken email");
    };
    assert_eq!(errors[0].field, "email");
}

#[tokio::test]
async fn the_owner_cannot_be_changed_or_removed() {
    let f = fixture().await;
    let users = &f.core.users;
    for refused in [
        users
            .change_role(by(&f.owner), &f.owner.id, "staff")
            .await
            .map(|_| ()),
        users
            .remove(by(&f.owner), &f.owner.id, false)
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(refused, Err(ServiceError::Refused(_))),
            "{refused:?}"
        );
    }
    let missing = users
        .change_role(by(&f.owner), "usr_missing", "staff")
        .await;
    assert!(
        matches!(missing, Err(ServiceError::NotFound)),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_one_time_password_logs_in_until_it_expires() {
    let f = fixture().await;
    let users = &f.core.users;
    let issued = users
        .add(by(&f.owner), "staff@fixit.example", "staff")
        .await
        .unwrap();

    let LoginOutcome::LoggedIn { token, user } = users
        .login("staff@fixit.example", issued.password.clone(), IP)
        .await
        .unwrap()
    else {
        panic!("the one-time password did not log in");
    };
    assert!(users.must_change_password(&user).await.unwrap());
    let session = users.session(&token).await.unwrap().unwrap();
    assert!(session.must_change_password);

    f.clock.advance_seconds(ONE_TIME_SECONDS + 1);
    let late = users
        .login("staff@fixit.example", issued.password, IP)
        .await
        .unwrap();
    assert!(matches!(late, LoginOutcome::OneTimeExpired), "{late:?}");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let f = fixture().await;
    let users = &f.core.users;
    for (email, password) in [
        ("owner@fixit.example", "not the password at all"),
        ("nobody@fixit.example", OWNER_PASSWORD),
        ("not an email", OWNER_PASSWORD),
    ] {
        let outcome = users.login(email, password.into(), IP).await.unwrap();
        assert!(
            matches!(outcome, LoginOutcome::WrongCredentials),
            "{email}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn changing_ones_password_asks_for_the_current_one_and_ends_other_sessions() {
    let f = fixture().await;
    let users = &f.core.users;
    let login = |password: &'static str| users.login("owner@fixit.example", password.into(), IP);
    let LoginOutcome::LoggedIn { token: kept, .. } = login(OWNER_PASSWORD).await.unwrap() else {
        panic!("no login");
    };
    let LoginOutcome::LoggedIn { token: other, .. } = login(OWNER_PASSWORD).await.unwrap() else {
        panic!("no login");
    };
    let keep = users
        .session(&kept)
        .await
        .unwrap()
        .unwrap()
        .session
        .token_hash;
    let new = "a brand new passphrase";

    let Err(ServiceError::Validation(errors)) = users
        .change_own_password(by(&f.owner), &keep, "wrong", new, new)
        .await
    else {
        panic!("changed without the current password");
    };
    assert_eq!(errors[0].field, "current_password");

    users
        .change_own_password(by(&f.owner), &keep, OWNER_PASSWORD, new, new)
        .await
        .unwrap();
    assert!(users.session(&kept).await.unwrap().is_some());
    assert!(users.session(&other).await.unwrap().is_none());
    assert!(matches!(
        login(new).await.unwrap(),
        LoginOutcome::LoggedIn { .. }
    ));
}

#[tokio::test]
async fn the_command_line_resets_even_the_owners_password() {
    let f = fixture().await;
    let users = &f.core.users;
    let issued = users
        .reset_password_by_email("OWNER@fixit.example")
        .await
        .unwrap();
    assert_eq!(issued.user.id, f.owner.id);
    assert!(users.must_change_password(&issued.user).await.unwrap());
    let missing = users.reset_password_by_email("nobody@fixit.example").await;
    assert!(
        matches!(missing, Err(ServiceError::NotFound)),
        "{missing:?}"
    );
}

#[tokio::test]
async fn removing_a_user_can_revoke_the_keys_they_made() {
    let f = fixture().await;
    let users = &f.core.users;
    let staff = users
        .add(by(&f.owner), "staff@fixit.example", "staff")
        .await
        .unwrap()
        .user;
    let principal = crate::service::keys::Principal::user(&staff, IP);
    let input = crate::service::keys::NewKeyInput {
        name: Some("Front desk tablet".into()),
        permissions: Some(vec!["orders:read".into()]),
        ..Default::default()
    };
    let new = f
        .core
        .keys
        .validate_new(input, crate::domain::token::Environment::Live)
        .unwrap();
    let key = f.core.keys.create_key(&principal, new).await.unwrap().key;

    let (_, active) = users.removal(by(&f.owner), &staff.id).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(
        users.remove(by(&f.owner), &staff.id, true).await.unwrap(),
        1
    );
    let owner = crate::service::keys::Principal::user(&f.owner, IP);
    let key = f.core.keys.get(&owner, &key.id).await.unwrap();
    assert!(key.revoked_at.is_some());
    assert_eq!(users.list(&f.owner.shop_id).await.unwrap().len(), 1);
}
