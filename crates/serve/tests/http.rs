//! The server over loopback HTTP: every endpoint, streaming, cancellation,
//! limits and bad requests, against a tiny model trained here.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use recurrent::lm::{Init, TextSource, TrainOptions, Training};
use recurrent::{
    CellKind, GenerateOptions, Generator, GeneratorOptions, LanguageCheckpoint, ModelConfig, Quiet,
    RunFolder, StopRule,
};
use recurrent_serve::{ModelSource, ServeOptions, Server};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// A small character LSTM trained once for all tests.
fn model_dir() -> PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("tiny");
        let options = TrainOptions {
            input: TextSource::text("tiny", "the cat sat on the mat. a dog ran.\n".repeat(60)),
            init: Init::Fresh {
                config: ModelConfig::new(CellKind::Lstm, 0, 8, 24, 1),
                forget_bias: None,
            },
            stop: StopRule {
                steps: Some(20),
                ..StopRule::default()
            },
            seq_len: 16,
            batch: 4,
            lr: 1e-2,
            threads: Some(1),
            ..TrainOptions::default()
        };
        let mut training = Training::start(&options, RunFolder::create(&run).unwrap()).unwrap();
        training.run(&mut Quiet).unwrap();
        (dir, run)
    })
    .1
    .clone()
}

/// A running server and how to stop it.
struct Running {
    base: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), recurrent_serve::ServeError>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a streaming request and returns the `data:` payloads.
    async fn stream(&self, path: &str, body: Value) -> Vec<String> {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let text = r.text().await.unwrap();
        data_lines(&text)
    }

    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(30), self.done).await;
        result.expect("stops in time").unwrap().unwrap();
    }
}

fn data_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

async fn start(options: ServeOptions) -> Running {
    let server = start_unloaded(options).await;
    let (status, _) = server.0.get("/health").await;
    assert_eq!(status, 503, "loading");
    server
        .1
        .load(vec![ModelSource::from_path(model_dir())])
        .await
        .unwrap();
    server.0
}

/// Starts serving before loading; the caller loads with the returned server.
async fn start_unloaded(options: ServeOptions) -> (Running, LoadHandle) {
    let options = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        threads: Some(1),
        ..options
    };
    let server = Server::bind(options).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = server.loader();
    let done = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    (
        Running {
            base,
            client,
            stop: Some(stop),
            done,
        },
        handle,
    )
}

type LoadHandle = recurrent_serve::Loader;

fn completion(body: &Value) -> String {
    body["choices"][0]["text"].as_str().unwrap().to_owned()
}

fn assert_error(status: u16, body: &Value, want_status: u16, param: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{body}");
    }
}

#[tokio::test]
async fn health_models_metrics_and_a_seeded_completion() {
    let s = start(ServeOptions::default()).await;
    assert_eq!(s.get("/health").await.0, 200);
    let (status, models) = s.get("/v1/models").await;
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "tiny");

    let body = json!({"model": "tiny", "prompt": "the ", "max_tokens": 30, "seed": 5});
    let (status, a) = s.post("/v1/completions", body.clone()).await;
    assert_eq!(status, 200, "{a}");
    let (_, b) = s.post("/v1/completions", body).await;
    assert_eq!(completion(&a), completion(&b));
    assert_eq!(completion(&a).chars().count(), 30);
    assert_eq!(a["object"], "text_completion");
    assert_eq!(a["choices"][0]["finish_reason"], "length");
    assert_eq!(a["usage"]["prompt_tokens"], 4);
    assert_eq!(a["usage"]["completion_tokens"], 30);
    assert_eq!(a["usage"]["total_tokens"], 34);

    // The same text as the library's generator with that seed.
    let checkpoint = LanguageCheckpoint::load(model_dir()).unwrap();
    let generator = Generator::new(
        &checkpoint,
        GeneratorOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let options = GenerateOptions {
        prime: "the ".into(),
        length: 30,
        seed: 5,
        ..GenerateOptions::default()
    };
    assert_eq!(
        generator.generate(&options, |_, _| {}).unwrap()[0],
        completion(&a)
    );

    let (status, metrics) = s.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "recurrent_requests_total{path=\"/v1/completions\",status=\"200\"} 2",
        "recurrent_tokens_generated_total 60",
        "recurrent_time_to_first_token_seconds_count 2",
        "recurrent_time_per_token_seconds_count 58",
        "recurrent_queue_depth 0",
        "recurrent_active_streams 0",
    ] {
        assert!(metrics.contains(name), "{name} in\n{metrics}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn streaming_gives_the_same_text_as_chunks_then_done() {
    let s = start(ServeOptions::default()).await;
    let body = json!({"model": "tiny", "prompt": "a ", "max_tokens": 25, "seed": 9});
    let (_, whole) = s.post("/v1/completions", body.clone()).await;
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let data = s.stream("/v1/completions", streamed).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).and_then(|c| c["text"].as_str()))
        .collect();
    assert_eq!(text, completion(&whole));
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("length")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 25);
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    s.shutdown().await;
}

#[tokio::test]
async fn chat_joins_the_messages_and_streams_deltas() {
    let s = start(ServeOptions::default()).await;
    let body = json!({
        "model": "tiny",
        "messages": [{"role": "system", "content": "the cat"}, {"role": "user", "content": [{"type": "text", "text": "a dog "}]}],
        "max_tokens": 12, "seed": 1,
    });
    let (status, whole) = s.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["object"], "chat.completion");
    let message = &whole["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    let content = message["content"].as_str().unwrap();
    assert_eq!(content.chars().count(), 12);
    // The same as a completion of the joined prompt.
    let (_, plain) = s
        .post(
            "/v1/completions",
            json!({"model": "tiny", "prompt": "the cat\na dog ", "max_tokens": 12, "seed": 1}),
        )
        .await;
    assert_eq!(completion(&plain), content);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let data = s.stream("/v1/chat/completions", streamed).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, content);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn n_choices_stops_logprobs_echo_and_score() {
    let s = start(ServeOptions::default()).await;
    let one = json!({"model": "tiny", "prompt": "the", "max_tokens": 40, "seed": 3});
    let (_, alone) = s.post("/v1/completions", one.clone()).await;
    let mut three = one.clone();
    three["n"] = json!(3);
    let (status, many) = s.post("/v1/completions", three).await;
    assert_eq!(status, 200, "{many}");
    let choices = many["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    assert_eq!(choices[0]["text"], alone["choices"][0]["text"]);
    assert_eq!(many["usage"]["prompt_tokens"], 3);
    assert_eq!(many["usage"]["completion_tokens"], 120);

    // A stop string cuts the text before it.
    let full = completion(&alone);
    let stop: String = full.chars().skip(5).take(2).collect();
    let mut stopped = one.clone();
    stopped["stop"] = json!([stop]);
    let (_, cut) = s.post("/v1/completions", stopped).await;
    assert_eq!(completion(&cut), full[..full.find(&stop).unwrap()]);
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");

    // Logprobs with echo: the prompt's tokens first, the first without a logprob.
    let (status, lp) = s
        .post("/v1/completions", json!({"model": "tiny", "prompt": "the", "max_tokens": 4, "seed": 3, "logprobs": 2, "echo": true}))
        .await;
    assert_eq!(status, 200, "{lp}");
    let text = completion(&lp);
    assert!(text.starts_with("the"));
    let logprobs = &lp["choices"][0]["logprobs"];
    assert_eq!(logprobs["tokens"].as_array().unwrap().len(), 7);
    assert!(logprobs["token_logprobs"][0].is_null());
    let values: Vec<f64> = logprobs["token_logprobs"].as_array().unwrap()[1..]
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(values.iter().all(|&v| v <= 0.0));
    assert_eq!(logprobs["top_logprobs"][1].as_object().unwrap().len(), 2);
    let offsets: Vec<u64> = logprobs["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5, 6]);

    // Score: the echo's log-probabilities, summed.
    let (status, score) = s
        .post("/v1/score", json!({"model": "tiny", "text": "the cat"}))
        .await;
    assert_eq!(status, 200, "{score}");
    let (_, echo) = s
        .post("/v1/completions", json!({"model": "tiny", "prompt": "the cat", "max_tokens": 0, "logprobs": 0, "echo": true}))
        .await;
    let sum: f64 = echo["choices"][0]["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap()[1..]
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    let scored = score["tokens"].as_u64().unwrap();
    assert!(scored == 6 || scored == 7, "{score}");
    if scored == 6 {
        assert!(
            (score["logprob"].as_f64().unwrap() - sum).abs() < 1e-9,
            "{score} vs {sum}"
        );
    }
    assert!(score["perplexity"].as_f64().unwrap() > 1.0);
    s.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_openai_style_errors() {
    let s = start(ServeOptions {
        max_tokens: 100,
        max_body_bytes: 1000,
        ..ServeOptions::default()
    })
    .await;
    let r = s
        .client
        .post(s.url("/v1/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(status, &r.json().await.unwrap(), 400, None);
    let cases = [
        (json!({"model": "nope", "prompt": "a"}), 404, "model"),
        (
            json!({"model": "tiny", "prompt": "a", "max_tokens": -1}),
            400,
            "max_tokens",
        ),
        (
            json!({"model": "tiny", "prompt": "a", "max_tokens": 101}),
            400,
            "max_tokens",
        ),
        (
            json!({"model": "tiny", "prompt": "a", "temperature": 2.5}),
            400,
            "temperature",
        ),
        (
            json!({"model": "tiny", "prompt": "a", "top_p": 0}),
            400,
            "top_p",
        ),
        (json!({"model": "tiny", "prompt": "a", "n": 0}), 400, "n"),
        (
            json!({"model": "tiny", "prompt": "a", "stop": [""]}),
            400,
            "stop",
        ),
        (
            json!({"model": "tiny", "prompt": "a", "logprobs": 99}),
            400,
            "logprobs",
        ),
        (json!({"model": "tiny", "prompt": "a€Z"}), 400, "prompt"),
        (json!({"model": "tiny", "text": "zzz€"}), 400, "prompt"),
    ];
    for (body, status, param) in &cases[..9] {
        let (got, answer) = s.post("/v1/completions", body.clone()).await;
        assert_error(got, &answer, *status, Some(param));
    }
    let (got, answer) = s
        .post("/v1/score", json!({"model": "tiny", "text": "zzz€"}))
        .await;
    assert_error(got, &answer, 400, Some("text"));
    let (got, answer) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": "hi"}),
        )
        .await;
    assert_error(got, &answer, 400, None);
    let (got, answer) = s
        .post("/v1/translate", json!({"model": "tiny", "input": "hi"}))
        .await;
    assert_error(got, &answer, 400, Some("model"));
    let (got, answer) = s
        .post(
            "/v1/completions",
            json!({"model": "tiny", "prompt": "a".repeat(2000)}),
        )
        .await;
    assert_error(got, &answer, 413, None);
    let r = s.client.get(s.url("/v2/nothing")).send().await.unwrap();
    let status = r.status().as_u16();
    assert_error(status, &r.json().await.unwrap(), 404, None);
    // Still serving.
    assert_eq!(
        s.post(
            "/v1/completions",
            json!({"model": "tiny", "prompt": "a", "max_tokens": 3})
        )
        .await
        .0,
        200
    );
    s.shutdown().await;
}

#[tokio::test]
async fn the_api_key_is_required_but_for_health() {
    let s = start(ServeOptions {
        api_key: Some("sekret".into()),
        ..ServeOptions::default()
    })
    .await;
    let body = json!({"model": "tiny", "prompt": "a", "max_tokens": 3});
    let (status, answer) = s.post("/v1/completions", body.clone()).await;
    assert_error(status, &answer, 401, None);
    let r = s
        .client
        .post(s.url("/v1/completions"))
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = s
        .client
        .post(s.url("/v1/completions"))
        .bearer_auth("sekret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(s.get("/health").await.0, 200);
    assert_eq!(s.get("/metrics").await.0, 401);
    // The page holds no data and asks for the key itself; what it calls needs it.
    assert_eq!(s.get("/").await.0, 200);
    let (status, answer) = s
        .post("/v1/inspect", json!({"model": "tiny", "text": "the cat"}))
        .await;
    assert_error(status, &answer, 401, None);
    s.shutdown().await;
}

/// Reads `recurrent_active_streams` until it is `want` (bounded in time).
async fn wait_for_active(s: &Running, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = s.get("/metrics").await;
        let active = metrics
            .lines()
            .find_map(|l| l.strip_prefix("recurrent_active_streams "))
            .and_then(|v| v.parse::<u64>().ok());
        if active == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "active streams stay at {active:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_dropped_stream_leaves_the_batch() {
    let s = start(ServeOptions {
        max_tokens: 10_000_000,
        ..ServeOptions::default()
    })
    .await;
    let long = json!({"model": "tiny", "prompt": "the", "max_tokens": 10_000_000, "stream": true});
    let mut r = s
        .client
        .post(s.url("/v1/completions"))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    wait_for_active(&s, 1).await;
    // The client goes away: the engine drops the stream.
    drop(r);
    wait_for_active(&s, 0).await;
    let (status, _) = s
        .post(
            "/v1/completions",
            json!({"model": "tiny", "prompt": "a", "max_tokens": 3}),
        )
        .await;
    assert_eq!(status, 200);
    s.shutdown().await;
}

#[tokio::test]
async fn beyond_the_queue_is_429_and_past_the_timeout_504() {
    let s = start(ServeOptions {
        max_concurrent: 1,
        max_queue: 1,
        max_tokens: 10_000_000,
        request_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    })
    .await;
    // One request runs (and reads nothing), one waits for its slot.
    let long = json!({"model": "tiny", "prompt": "the", "max_tokens": 10_000_000, "stream": true});
    let r = s
        .client
        .post(s.url("/v1/completions"))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let queued = {
        let (client, url) = (s.client.clone(), s.url("/v1/completions"));
        tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"model": "tiny", "prompt": "a", "max_tokens": 3}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s
        .get("/metrics")
        .await
        .1
        .contains("recurrent_queue_depth 1")
    {
        assert!(Instant::now() < deadline, "nothing queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A third finds the queue full.
    let (status, answer) = s
        .post(
            "/v1/completions",
            json!({"model": "tiny", "prompt": "a", "max_tokens": 3}),
        )
        .await;
    assert_error(status, &answer, 429, None);
    // The queued one gets the slot when the running one is cut at its
    // deadline (the client reads nothing), or times out itself.
    let (status, answer) = queued.await.unwrap();
    if status != 200 {
        assert_error(status, &answer, 504, None);
    }
    let text = r.text().await.unwrap();
    assert!(text.starts_with("data: "));
    // A completion longer than the timeout is a 504.
    let body = json!({"model": "tiny", "prompt": "a", "max_tokens": 10_000_000});
    let (status, answer) = s.post("/v1/completions", body).await;
    assert_error(status, &answer, 504, None);
    wait_for_active(&s, 0).await;
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_returns() {
    let (s, loader) = start_unloaded(ServeOptions::default()).await;
    let (status, answer) = s
        .post("/v1/completions", json!({"model": "tiny", "prompt": "a"}))
        .await;
    assert_error(status, &answer, 503, None);
    loader
        .load(vec![format!("named={}", model_dir().display())
            .parse()
            .unwrap()])
        .await
        .unwrap();
    assert_eq!(s.get("/health").await.0, 200);
    let long = json!({"model": "named", "prompt": "the", "max_tokens": 4000, "stream": true});
    let mut r = s
        .client
        .post(s.url("/v1/completions"))
        .json(&long)
        .send()
        .await
        .unwrap();
    r.chunk().await.unwrap().unwrap();
    s.shutdown().await;
    // The stream ends (with an error event and [DONE]) instead of hanging.
    let mut rest = String::new();
    while let Ok(Some(chunk)) = r.chunk().await {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("shutting"), "{rest}");
}

/// A small seq2seq model trained for a few steps on char pairs.
fn seq2seq_dir() -> PathBuf {
    use recurrent::seq2seq::{TrainOptions, Training};
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pairs = dir.path().join("pairs.tsv");
        let lines: String = (0..80)
            .map(|i| format!("a cat {i}\tun chat {i}\n"))
            .collect();
        std::fs::write(&pairs, lines).unwrap();
        let mut options = TrainOptions::new(&pairs);
        options.tokenizer = recurrent::TokenizerKind::Char;
        options.model = recurrent::Seq2SeqConfig::new(0, 0, 8, 16);
        options.batch = 8;
        options.stop = StopRule {
            steps: Some(5),
            ..StopRule::default()
        };
        options.val_bleu = 4;
        options.threads = Some(1);
        let run = dir.path().join("fr");
        let mut training = Training::start(&options, RunFolder::create(&run).unwrap()).unwrap();
        training.run(&mut Quiet).unwrap();
        (dir, run)
    })
    .1
    .clone()
}

#[tokio::test]
async fn seq2seq_models_translate_and_refuse_completions() {
    let (s, loader) = start_unloaded(ServeOptions::default()).await;
    let sources = vec![
        ModelSource::from_path(model_dir()),
        ModelSource::from_path(seq2seq_dir()),
    ];
    loader.load(sources).await.unwrap();
    let (_, models) = s.get("/v1/models").await;
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][1]["id"], "fr");
    assert_eq!(models["data"][1]["kind"], "seq2seq");
    let (status, out) = s
        .post(
            "/v1/translate",
            json!({"model": "fr", "input": ["a cat 1", "a cat 22"], "beam": 2}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["translations"].as_array().unwrap().len(), 2);
    let (status, answer) = s
        .post("/v1/translate", json!({"model": "fr", "input": "€"}))
        .await;
    assert_error(status, &answer, 400, Some("input"));
    // Far longer than anything the model saw in training: a 400, not a 500.
    let (status, answer) = s
        .post(
            "/v1/translate",
            json!({"model": "fr", "input": "a cat 1 ".repeat(500)}),
        )
        .await;
    assert_error(status, &answer, 400, Some("input"));
    let (status, answer) = s
        .post("/v1/completions", json!({"model": "fr", "prompt": "a"}))
        .await;
    assert_error(status, &answer, 400, Some("model"));
    s.shutdown().await;
}

#[tokio::test]
async fn the_playground_page_is_whole_and_offline() {
    let s = start(ServeOptions::default()).await;
    let r = s.client.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = r.text().await.unwrap();
    // Every part is in place, and nothing is fetched from elsewhere.
    for placeholder in [
        "/*INSPECT_CSS*/",
        "/*PLAYGROUND_CSS*/",
        "/*INSPECT_JS*/",
        "/*PLAYGROUND_JS*/",
    ] {
        assert!(!page.contains(placeholder), "{placeholder} is left");
    }
    for part in [
        "var RecurrentInspect",
        "/v1/completions",
        "/v1/inspect",
        ".ranks",
    ] {
        assert!(page.contains(part), "{part} is missing");
    }
    assert!(
        !page.contains("src=") && !page.contains("href="),
        "no outside resources"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn inspect_agrees_with_the_completions_log_probabilities() {
    let s = start(ServeOptions::default()).await;
    let text = "the cat sat on\nthe mat. a dog";
    let (status, view) = s
        .post("/v1/inspect", json!({"model": "tiny", "text": text}))
        .await;
    assert_eq!(status, 200, "{view}");
    let tokens = view["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), text.chars().count());
    assert_eq!(view["layers"].as_array().unwrap().len(), 1);
    assert_eq!(view["layers"][0]["hidden"], 24);
    assert_eq!(
        view["layers"][0]["h"].as_array().unwrap().len(),
        24 * tokens.len()
    );
    let names: Vec<&str> = view["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["quotes", "line_position", "bracket_depth", "word_start"]
    );
    // The traced forward and the serving engine's packed step agree on
    // every token's surprisal.
    let (status, echo) = s
        .post(
            "/v1/completions",
            json!({"model": "tiny", "prompt": text, "max_tokens": 0, "echo": true, "logprobs": 5}),
        )
        .await;
    assert_eq!(status, 200, "{echo}");
    let logprobs = echo["choices"][0]["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap();
    assert_eq!(logprobs.len(), tokens.len());
    assert!(tokens[0]["surprisal"].is_null() && logprobs[0].is_null());
    for (t, lp) in tokens.iter().zip(logprobs).skip(1) {
        let bits = -lp.as_f64().unwrap() / std::f64::consts::LN_2;
        let surprisal = t["surprisal"].as_f64().unwrap();
        assert!((surprisal - bits).abs() < 2e-3, "{surprisal} vs {bits}");
        assert_eq!(t["next"].as_array().unwrap().len(), 5);
    }
    s.shutdown().await;
}

#[tokio::test]
async fn bad_inspect_requests_get_openai_style_errors() {
    let s = start(ServeOptions::default()).await;
    let long = "a".repeat(2001);
    for (body, want, param) in [
        (json!({"model": "tiny", "text": ""}), 400, Some("text")),
        (json!({"model": "tiny", "text": long}), 400, Some("text")),
        (
            json!({"model": "tiny", "text": "snow \u{2603}"}),
            400,
            Some("text"),
        ),
        (
            json!({"model": "tiny", "text": "a", "top_next": 0}),
            400,
            Some("top_next"),
        ),
        (
            json!({"model": "tiny", "text": "a", "top_units": 101}),
            400,
            Some("top_units"),
        ),
        (json!({"model": "nope", "text": "a"}), 404, Some("model")),
        (json!({"model": "tiny"}), 400, None),
    ] {
        let (status, answer) = s.post("/v1/inspect", body).await;
        assert_error(status, &answer, want, param);
    }
    // Still serving.
    let (status, _) = s
        .post("/v1/inspect", json!({"model": "tiny", "text": "a cat"}))
        .await;
    assert_eq!(status, 200);
    s.shutdown().await;
}
