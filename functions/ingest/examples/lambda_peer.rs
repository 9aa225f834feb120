//! The peer of `scripts/bench-lambda`: the smallest `lambda_http` function, built as the
//! functions are. It parses the request's JSON body and answers 200 (400 when it is not
//! JSON), so its start and first answer are the floor a Lambda on this runtime pays.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|request: Request| async move {
        let parsed = serde_json::from_slice::<serde_json::Value>(request.body()).is_ok();
        let response = Response::builder()
            .status(if parsed { 200 } else { 400 })
            .body(Body::Empty)?;
        Ok::<_, Error>(response)
    }))
    .await
}
