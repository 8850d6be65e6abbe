//! Function credentials: what each instance is given to call Updraft's AWS
//! APIs as its function (a Lambda execution role's credentials and the
//! SDK's endpoint variables), and the roles CreateFunction's `Role` names.

use crate::Platform;
use std::time::SystemTime;
use updraft_runtime_process::FunctionAccess;

impl Platform {
    /// Serves `control` (the authenticated control API) to instances on
    /// their Runtime API address and gives each instance credentials minted
    /// for its function. Called once, when the server's router exists.
    pub fn serve_functions(&self, control: axum::Router) {
        let minter = self.inner.verifier.minter().clone();
        let ttl = self.inner.config.function_credentials_ttl;
        let access = FunctionAccess {
            credentials: Box::new(move |spec| {
                match minter.mint(
                    &spec.function,
                    &spec.config.permissions,
                    ttl,
                    SystemTime::now(),
                ) {
                    Ok(c) => vec![
                        ("AWS_ACCESS_KEY_ID".into(), c.access_key_id),
                        ("AWS_SECRET_ACCESS_KEY".into(), c.secret_access_key),
                        ("AWS_SESSION_TOKEN".into(), c.session_token),
                    ],
                    Err(e) => {
                        tracing::error!(function = %spec.function, error = %e, "minting function credentials failed");
                        Vec::new()
                    }
                }
            }),
            credentials_ttl: ttl,
            control,
        };
        if self.inner.access.set(access).is_err() {
            tracing::warn!("function access was set twice; the first stays");
        }
    }

    /// The permissions of the role a CreateFunction `Role` names (its ARN
    /// `arn:aws:iam::ACCOUNT:role/NAME` or the bare name): those given with
    /// `--role NAME=…`; none for a role the server does not define.
    pub fn role_permissions(&self, role: Option<&str>) -> Vec<String> {
        let Some(role) = role else { return Vec::new() };
        let name = role.rsplit('/').next().unwrap_or(role);
        match self.inner.config.roles.get(name) {
            Some(p) => p.clone(),
            None => {
                tracing::info!(%role, "a function names a role this server does not define (--role): its credentials may do nothing");
                Vec::new()
            }
        }
    }
}
