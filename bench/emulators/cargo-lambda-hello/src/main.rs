//! bench/run's `emulators` scenario: the `lambda_http` hello function, as
//! `cargo lambda new` would make it, answering every request with 200 "ok".

use lambda_http::{run, service_fn, Body, Error, Request, Response};

async fn hello(_req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder().status(200).header("content-type", "text/plain").body(Body::from("ok"))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
