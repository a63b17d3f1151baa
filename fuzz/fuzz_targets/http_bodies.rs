//! Request bodies of every POST endpoint of `recurrent serve`, through the
//! real router in process, over a tiny model. The first byte picks the
//! endpoint. A bad body must get a 4xx: any 500 is a finding.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use recurrent_fuzz::tiny_run;
use recurrent_serve::{ModelSource, ServeOptions, Server};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const ENDPOINTS: [&str; 5] = [
    "/v1/completions",
    "/v1/chat/completions",
    "/v1/score",
    "/v1/inspect",
    "/v1/translate",
];

fn app() -> &'static (Runtime, axum::Router) {
    static APP: OnceLock<(Runtime, axum::Router)> = OnceLock::new();
    APP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let router = runtime.block_on(async {
            // Small limits keep each input's work small.
            let options = ServeOptions {
                addr: "127.0.0.1:0".parse().unwrap(),
                threads: Some(1),
                max_tokens: 32,
                max_choices: 4,
                max_body_bytes: 1 << 16,
                ..ServeOptions::default()
            };
            let server = Server::bind(options).await.unwrap();
            let source = ModelSource {
                name: "tiny".into(),
                path: tiny_run(false),
            };
            server.load(vec![source]).await.unwrap();
            server.router()
        });
        (runtime, router)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (runtime, router) = app();
    let request = Request::post(ENDPOINTS[pick as usize % ENDPOINTS.len()])
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let response = runtime.block_on(async {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        // Read the whole answer: streams run to their end.
        let _ = axum::body::to_bytes(response.into_body(), 1 << 24).await;
        status
    });
    assert!(
        !response.is_server_error(),
        "a request body got {response}: {}",
        String::from_utf8_lossy(body)
    );
});
