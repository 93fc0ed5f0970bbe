//! `docker login`: the credentials are checked against the registry (the client) before the
//! credential store (auth) keeps them.

use super::auth::{Credentials, store};
use super::client::Client;
use super::config::normalise_server;
use crate::ImageError;

/// `docker login`: checks the credentials against the registry, then stores them (with the
/// configured helper, else base64 in config.json's `auths`). `server` is what the user typed
/// (`localhost:5000`, `https://index.docker.io/v1/`, empty for Docker Hub). Returns the
/// registry domain.
pub async fn login(server: &str, creds: Credentials) -> Result<String, ImageError> {
    let domain = normalise_server(server);
    let client = Client::new(&domain, Some(creds.clone()), Vec::new()).await?;
    client.check_login().await?;
    let d = domain.clone();
    tokio::task::spawn_blocking(move || store(&d, &creds)).await??;
    Ok(domain)
}
