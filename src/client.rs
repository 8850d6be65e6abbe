//! The CLI's client of the native API: finds credentials, signs every request
//! with SigV4, and turns error responses into readable errors.

use anyhow::Context as _;
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::path::Path;
use updraft_auth::Credentials;

pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    credentials: Credentials,
}

/// A failed call, kept apart so commands can choose exit codes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the Updraft server at {endpoint} ({source}); is `updraft server` running? (set --endpoint or UPDRAFT_ENDPOINT)")]
    Unreachable {
        endpoint: String,
        source: reqwest::Error,
    },
    #[error("{message} ({error_type}, HTTP {status})")]
    Api {
        status: u16,
        error_type: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl Client {
    pub fn new(endpoint: &str, data_dir: &Path, ca_cert: Option<&Path>) -> anyhow::Result<Client> {
        let credentials = Credentials::for_client(data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut builder = reqwest::Client::builder();
        if let Some(path) = ca_cert {
            builder = builder.tls_certs_only(trusted(path)?);
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Client {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            credentials,
        })
    }

    /// Sends a signed request; `body_stream` replaces the body on the wire
    /// (for upload progress) while the signature covers `body`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        body_stream: Option<reqwest::Body>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{}", self.endpoint, path);
        let mut headers = http::HeaderMap::new();
        // The server accepts a signature once; two identical calls within a
        // second must not sign alike (AWS SDKs send the same header).
        headers.insert("amz-sdk-invocation-id", invocation_id()?);
        updraft_auth::sign(
            &self.credentials,
            "us-east-1",
            method.as_str(),
            &url,
            &mut headers,
            &body,
            std::time::SystemTime::now(),
        )
        .map_err(|e| ClientError::Other(format!("signing the request: {e}")))?;
        let req = self.http.request(method, &url).headers(headers);
        let req = match body_stream {
            Some(s) => req.header("content-length", body.len()).body(s),
            None => req.body(body),
        };
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(api_error(resp).await)
    }

    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
            .unwrap_or_default();
        let resp = self.send(method, path, body, None).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Other(format!("reading the response: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Other(format!("unexpected response from the server: {e}")))
    }
}

/// A fresh random id for `amz-sdk-invocation-id`.
fn invocation_id() -> Result<http::HeaderValue, ClientError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ClientError::Other(format!("reading the OS random source: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    http::HeaderValue::from_str(&hex).map_err(|e| ClientError::Other(e.to_string()))
}

/// The certificates in a PEM file (`--ca-cert` / `UPDRAFT_CA_CERT`).
fn trusted(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("--ca-cert {}: cannot read it", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("--ca-cert {}: expected PEM certificates", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "--ca-cert {}: no \"BEGIN CERTIFICATE\" block: expected PEM certificates",
        path.display()
    );
    Ok(certs)
}

async fn api_error(resp: reqwest::Response) -> ClientError {
    let status = resp.status();
    let error_type = resp
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("Error")
                .replace(' ', "")
        });
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or(text);
    ClientError::Api {
        status: status.as_u16(),
        error_type,
        message,
    }
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status, .. } if *status == StatusCode::NOT_FOUND.as_u16())
    }
}

/// Percent-encodes one path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
