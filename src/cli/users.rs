//! `latchkey users`.

use super::*;

pub(super) async fn users(settings: Settings, cmd: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::ResetPassword { email, json } = cmd;
    let (core, _) = open_core(&settings).await?;
    let issued = match core.users.reset_password_by_email(&email).await {
        Ok(issued) => issued,
        Err(ServiceError::NotFound) => bail!("--email: no user with email `{email}`"),
        Err(e) => return Err(service_err(e)),
    };
    let until = issued.until.to_rfc3339();
    if json {
        let out = serde_json::json!({
            "user_id": issued.user.id, "shop_id": issued.user.shop_id,
            "email": issued.user.email, "password": issued.password, "valid_until": until,
        });
        out!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        out!("user_id:     {}", issued.user.id);
        out!("email:       {}", issued.user.email.as_str());
        out!(
            "password:    {}   (one-time, shown once; works until {until})",
            issued.password
        );
    }
    Ok(())
}
