//! Invoke: `POST /2015-03-31/functions/{name}/invocations`, with Lambda's
//! invocation types, `Tail` logs and response headers; the call runs through
//! the invoke path both APIs share (`crate::invoke`).

use super::{ApiResult, Query, Target};
use crate::invoke::{InvokeCall, Surface};
use axum::body::Bytes;
use axum::extract::{Path, Query as Q, State};
use axum::http::HeaderMap;
use updraft_platform::Platform;

pub async fn invoke(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let t = Target::parse(&name, q.get("Qualifier").map(String::as_str))?;
    let call = InvokeCall::from_headers(t.name, t.qualifier, None, &headers)?;
    crate::invoke::run(&p, call, Surface::Lambda, &bytes).await
}
