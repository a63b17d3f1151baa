//! Load test over loopback: for 1, 4, 16 and 64 concurrent streaming clients,
//! each sending a fixed number of completions, prints aggregate tokens per
//! second, time to first token and time per output token (each request's
//! mean time between its tokens), p50 and p99 over requests. Then the same
//! streams submitted to the engine directly, without HTTP: what batching
//! gives before the HTTP work (here on the same cores) takes its share.
//!
//! `cargo run --release -p recurrent-serve --example load -- CHECKPOINT [TOKENS] [REQUESTS_PER_CLIENT] [THREADS]`
//!
//! The server runs in this process on 127.0.0.1 (a free port); every loop is
//! bounded in count, and each request by the server's timeout.

use std::time::{Duration, Instant};

use recurrent_serve::{ModelSource, ServeOptions, Server};
use serde_json::{json, Value};

/// What one streamed request measured.
struct Sample {
    first_token: Duration,
    /// Mean time between this request's tokens.
    per_token: Duration,
    tokens: u64,
}

async fn one_request(
    client: &reqwest::Client,
    url: &str,
    tokens: usize,
    seed: u64,
) -> Result<Sample, String> {
    let body = json!({
        "model": "m", "prompt": "The ", "max_tokens": tokens, "seed": seed,
        "stream": true, "stream_options": {"include_usage": true},
    });
    let start = Instant::now();
    let mut r = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("status {}", r.status()));
    }
    let (mut first, mut last, mut used) = (None, None, 0);
    let mut pending = String::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        let now = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" || data.contains("\"finish_reason\":\"") {
                continue;
            }
            if data.contains("\"usage\"") {
                let v: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
                used = v["usage"]["completion_tokens"].as_u64().unwrap_or(0);
                continue;
            }
            if data.contains("\"error\"") {
                return Err(data.to_owned());
            }
            if first.is_none() {
                first = Some(now - start);
            }
            last = Some(now - start);
        }
    }
    let first = first.ok_or("no token")?;
    let span = last.unwrap_or(first) - first;
    Ok(Sample {
        first_token: first,
        // Pieces may carry several tokens (a client that falls behind gets them merged).
        per_token: span / (used.saturating_sub(1).max(1) as u32),
        tokens: used,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let checkpoint = args
        .get(1)
        .ok_or("usage: load CHECKPOINT [TOKENS] [REQUESTS_PER_CLIENT] [THREADS]")?;
    let tokens: usize = args.get(2).map_or(Ok(200), |s| s.parse())?;
    let per_client: usize = args.get(3).map_or(Ok(4), |s| s.parse())?;
    let threads: usize = args.get(4).map_or(Ok(2), |s| s.parse())?;
    let options = ServeOptions {
        addr: "127.0.0.1:0".parse()?,
        threads: Some(threads),
        max_concurrent: 64,
        max_batch: 64,
        request_timeout: Duration::from_secs(120),
        ..ServeOptions::default()
    };
    let server = Server::bind(options).await?;
    let url = format!("http://{}/v1/completions", server.local_addr());
    server
        .load(vec![format!("m={checkpoint}").parse::<ModelSource>()?])
        .await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;

    println!(
        "{tokens} tokens per request, {per_client} requests per client, {threads} kernel threads"
    );
    println!("| streams | requests | errors | tokens/s | TTFT p50 ms | TTFT p99 ms | time/token p50 ms | time/token p99 ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for clients in [1usize, 4, 16, 64] {
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    for r in 0..per_client {
                        out.push(one_request(&client, &url, tokens, (c * 1000 + r) as u64).await);
                    }
                    out
                })
            })
            .collect();
        let mut samples = Vec::new();
        let mut errors = 0;
        for t in tasks {
            for s in t.await? {
                match s {
                    Ok(s) => samples.push(s),
                    Err(e) => {
                        errors += 1;
                        eprintln!("error: {e}");
                    }
                }
            }
        }
        let wall = start.elapsed().as_secs_f64();
        let total: u64 = samples.iter().map(|s| s.tokens).sum();
        let mut ttft: Vec<Duration> = samples.iter().map(|s| s.first_token).collect();
        let mut gaps: Vec<Duration> = samples.iter().map(|s| s.per_token).collect();
        ttft.sort();
        gaps.sort();
        println!(
            "| {clients} | {} | {errors} | {:.0} | {:.2} | {:.2} | {:.3} | {:.3} |",
            samples.len() + errors,
            total as f64 / wall,
            percentile(&ttft, 0.5),
            percentile(&ttft, 0.99),
            percentile(&gaps, 0.5),
            percentile(&gaps, 0.99),
        );
    }
    let _ = stop.send(());
    serving.await??;
    engine_alone(checkpoint, tokens, per_client, threads)
}

/// The same load on the engine itself: `clients` requests at a time.
fn engine_alone(
    checkpoint: &str,
    tokens: usize,
    per_client: usize,
    threads: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    use recurrent::{start_streams, LanguageCheckpoint, StreamEvent, StreamOptions, StreamRequest};
    let checkpoint = LanguageCheckpoint::load(checkpoint)?;
    let options = StreamOptions {
        threads: Some(threads),
        max_batch: 64,
        ..StreamOptions::default()
    };
    let engine = start_streams(&checkpoint, options)?;
    let prompt = checkpoint.tokenizer.encode("The ")?;
    println!("\nthe engine alone, no HTTP:\n| streams | tokens/s |\n|---:|---:|");
    for clients in [1usize, 4, 16, 64] {
        let start = Instant::now();
        let mut generated = 0;
        for round in 0..per_client {
            let (tx, rx) = std::sync::mpsc::channel();
            for c in 0..clients {
                let request = StreamRequest {
                    prompt: prompt.clone(),
                    max_tokens: tokens,
                    rng: recurrent::kernels::Rng::new((c * 1000 + round) as u64),
                    ..StreamRequest::default()
                };
                let tx = tx.clone();
                engine.submit(request, Box::new(move |e| tx.send(e).is_ok()))?;
            }
            drop(tx);
            for event in rx {
                if let StreamEvent::Finished {
                    completion_tokens, ..
                } = event
                {
                    generated += completion_tokens;
                }
            }
        }
        println!(
            "| {clients} | {:.0} |",
            generated as f64 / start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
