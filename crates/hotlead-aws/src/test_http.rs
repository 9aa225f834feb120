//! Test support: an SDK HTTP client answered by a function, which records every request
//! (its `X-Amz-Target` operation and JSON body). For unit tests of what the adapters send,
//! without an emulator.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The operation, e.g. `DynamoDB_20120810.GetItem`.
    pub target: String,
    pub body: Value,
}

/// An answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    pub fn body_mut(&mut self) -> &mut Value {
        &mut self.body
    }
}

pub fn json_ok(body: Value) -> Answer {
    Answer { status: 200, body }
}

pub fn json_error(status: u16, code: &str, message: &str) -> Answer {
    Answer {
        status,
        body: serde_json::json!({"__type": code, "message": message}),
    }
}

type Respond = dyn Fn(&Seen) -> Answer + Send + Sync;

#[derive(Clone)]
pub struct FakeHttp {
    respond: Arc<Respond>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl std::fmt::Debug for FakeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHttp").finish_non_exhaustive()
    }
}

impl FakeHttp {
    pub fn new(respond: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> FakeHttp {
        FakeHttp {
            respond: Arc::new(respond),
            seen: Arc::default(),
        }
    }

    pub fn client(&self) -> SharedHttpClient {
        self.clone().into_shared()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

impl HttpConnector for FakeHttp {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let seen = Seen {
            target: request
                .headers()
                .get("x-amz-target")
                .unwrap_or_default()
                .to_string(),
            body: request
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null),
        };
        let answer = (self.respond)(&seen);
        self.seen.lock().expect("not poisoned").push(seen);
        let mut response = HttpResponse::new(
            StatusCode::try_from(answer.status).expect("a valid status"),
            SdkBody::from(answer.body.to_string()),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for FakeHttp {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}
