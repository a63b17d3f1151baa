use std::sync::mpsc;
use std::time::Duration;

use recurrent_model::{CellKind, LanguageModel, ModelConfig};
use recurrent_text::{Corpus, TokenizerKind};

use super::*;
use crate::generate::{generate_packed, GenerateOptions};

fn setup(cell: CellKind) -> (StepModel, Tokenizer) {
    let tok = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("t", "abc de\n")).unwrap();
    let config = ModelConfig {
        layers: 2,
        ..ModelConfig::new(cell, tok.vocab().len(), 4, 6, 2)
    };
    let model = LanguageModel::new(config, &mut Rng::new(2), None).unwrap();
    (StepModel::new(&model), tok)
}

fn engine(cell: CellKind, max_batch: usize) -> (StreamEngine, Tokenizer) {
    let (model, tok) = setup(cell);
    let options = EngineOptions {
        max_batch,
        threads: 1,
    };
    (
        StreamEngine::spawn(model, tok.clone(), options).unwrap(),
        tok,
    )
}

/// Sample `index` of a `generate` call seeded with `seed`.
fn forked(seed: u64, index: usize) -> Rng {
    let mut root = Rng::new(seed);
    for _ in 0..index {
        root.fork();
    }
    root.fork()
}

fn request(tok: &Tokenizer, prompt: &str, seed: u64, max_tokens: usize) -> StreamRequest {
    StreamRequest {
        prompt: tok.encode(prompt).unwrap(),
        max_tokens,
        rng: forked(seed, 0),
        ..StreamRequest::default()
    }
}

/// Submits and returns the receiving end of the request's events.
fn submit(engine: &StreamEngine, r: StreamRequest) -> mpsc::Receiver<StreamEvent> {
    let (tx, rx) = mpsc::channel();
    engine
        .submit(r, Box::new(move |e| tx.send(e).is_ok()))
        .unwrap();
    rx
}

/// All events up to `Finished`: the text, the reason, and the events.
fn collect(rx: mpsc::Receiver<StreamEvent>) -> (String, FinishReason, Vec<StreamEvent>) {
    let mut text = String::new();
    let mut events = Vec::new();
    loop {
        let e = rx.recv_timeout(Duration::from_secs(30)).expect("an event");
        events.push(e.clone());
        match e {
            StreamEvent::Token { text: t, .. } => text.push_str(&t),
            StreamEvent::Finished { tail, reason, .. } => {
                text.push_str(&tail);
                return (text, reason, events);
            }
            StreamEvent::Prompt(_) => {}
        }
    }
}

fn generate_text(
    prompt: &str,
    seed: u64,
    samples: usize,
    length: usize,
    stops: &[&str],
) -> Vec<String> {
    let (model, tok) = setup(CellKind::Lstm);
    let options = GenerateOptions {
        prime: prompt.into(),
        length,
        seed,
        samples,
        stops: stops.iter().map(|s| s.to_string()).collect(),
        ..GenerateOptions::default()
    };
    generate_packed(&model, &tok, &options, |_, _| {}).unwrap()
}

#[test]
fn a_seeded_request_gives_the_same_text_alone_batched_and_as_generate_does() {
    let (engine, tok) = engine(CellKind::Lstm, 64);
    let (alone, reason, _) = collect(submit(&engine, request(&tok, "ab", 7, 60)));
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(alone.chars().count(), 60);
    assert_eq!(alone, generate_text("ab", 7, 1, 60, &[])[0]);

    // Now among others with other prompts, lengths and seeds, some started before.
    let early: Vec<_> = (0..3)
        .map(|i| submit(&engine, request(&tok, "c de", 100 + i, 80)))
        .collect();
    std::thread::sleep(Duration::from_millis(5));
    let mine = submit(&engine, request(&tok, "ab", 7, 60));
    let late: Vec<_> = (0..3)
        .map(|i| submit(&engine, request(&tok, "", 200 + i, 10 + 10 * i as usize)))
        .collect();
    assert_eq!(collect(mine).0, alone);
    for rx in early.into_iter().chain(late) {
        collect(rx);
    }

    // The samples of one `generate` call are the forks of its seed, in order.
    let batch = generate_text("b", 3, 3, 40, &[]);
    let rxs: Vec<_> = (0..3)
        .map(|i| {
            let r = StreamRequest {
                rng: forked(3, i),
                ..request(&tok, "b", 3, 40)
            };
            submit(&engine, r)
        })
        .collect();
    let texts: Vec<String> = rxs.into_iter().map(|rx| collect(rx).0).collect();
    assert_eq!(texts, batch);
}

#[test]
fn gru_and_empty_prompts_match_generate_too() {
    let (model, tok) = setup(CellKind::Gru);
    let options = GenerateOptions {
        length: 30,
        seed: 5,
        ..GenerateOptions::default()
    };
    let want = generate_packed(&model, &tok, &options, |_, _| {}).unwrap();
    let engine = StreamEngine::spawn(model, tok.clone(), EngineOptions::default()).unwrap();
    let others: Vec<_> = (0..4)
        .map(|i| submit(&engine, request(&tok, "de", i, 25)))
        .collect();
    let got = collect(submit(&engine, request(&tok, "", 5, 30))).0;
    assert_eq!(got, want[0]);
    others.into_iter().for_each(|rx| drop(collect(rx)));
}

#[test]
fn stop_strings_end_a_stream_as_in_generate() {
    let (engine, tok) = engine(CellKind::Lstm, 8);
    let full = generate_text("ab", 9, 1, 60, &[]).remove(0);
    let stop: String = full.chars().skip(6).take(2).collect();
    let want = generate_text("ab", 9, 1, 60, &[&stop]).remove(0);
    let r = StreamRequest {
        stops: vec![stop.clone()],
        ..request(&tok, "ab", 9, 60)
    };
    let (text, reason, _) = collect(submit(&engine, r));
    assert_eq!(text, want);
    assert_eq!(reason, FinishReason::Stop);
    assert!(!text.contains(&stop));
}

#[test]
fn more_requests_than_rows_queue_and_all_finish() {
    let (engine, tok) = engine(CellKind::RnnTanh, 2);
    let rxs: Vec<_> = (0..5)
        .map(|i| submit(&engine, request(&tok, "a", i, 20)))
        .collect();
    for (i, rx) in rxs.into_iter().enumerate() {
        let (text, _, _) = collect(rx);
        assert_eq!(text, generate_text_rnn("a", i as u64, 20));
    }
    assert_eq!(engine.stats().active.load(Ordering::Relaxed), 0);
    assert_eq!(engine.stats().waiting.load(Ordering::Relaxed), 0);
    assert_eq!(engine.stats().tokens.load(Ordering::Relaxed), 100);
}

fn generate_text_rnn(prompt: &str, seed: u64, length: usize) -> String {
    let (model, tok) = setup(CellKind::RnnTanh);
    let options = GenerateOptions {
        prime: prompt.into(),
        length,
        seed,
        ..GenerateOptions::default()
    };
    generate_packed(&model, &tok, &options, |_, _| {})
        .unwrap()
        .remove(0)
}

#[test]
fn cancelled_and_abandoned_requests_leave_the_batch() {
    let (engine, tok) = engine(CellKind::Lstm, 8);
    let long = 1_000_000;
    let cancelled = {
        let (tx, rx) = mpsc::channel();
        let c = engine
            .submit(
                request(&tok, "ab", 1, long),
                Box::new(move |e| tx.send(e).is_ok()),
            )
            .unwrap();
        (c, rx)
    };
    let abandoned = submit(&engine, request(&tok, "ab", 2, long));
    // Both are running.
    cancelled.1.recv_timeout(Duration::from_secs(30)).unwrap();
    abandoned.recv_timeout(Duration::from_secs(30)).unwrap();
    cancelled.0.cancel();
    drop(abandoned);
    let (_, reason, _) = collect(cancelled.1);
    assert_eq!(reason, FinishReason::Cancelled);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while engine.stats().active.load(Ordering::Relaxed) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned stream is still stepped"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The engine still serves.
    assert_eq!(
        collect(submit(&engine, request(&tok, "ab", 7, 5)))
            .0
            .chars()
            .count(),
        5
    );
}

#[test]
fn echo_reports_the_prompt_log_probabilities_and_logprobs_the_tokens() {
    let (model, tok) = setup(CellKind::Lstm);
    let prompt = tok.encode("abc d").unwrap();
    // The reference: step the prompt alone, one token at a time.
    let mut ws = StepWorkspace::default();
    let mut state = State::zeros(model.config(), 1);
    let mut want = Vec::new();
    for w in prompt.windows(2) {
        let logits = model.step(&mut ws, &w[..1], &mut state).unwrap();
        want.push(log_softmax(logits)[w[1] as usize]);
    }
    let engine = StreamEngine::spawn(model, tok.clone(), EngineOptions::default()).unwrap();
    let r = StreamRequest {
        prompt: prompt.clone(),
        max_tokens: 4,
        echo: true,
        logprobs: Some(3),
        ..StreamRequest::default()
    };
    let (_, _, events) = collect(submit(&engine, r));
    let echoed: Vec<&TokenLogprob> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Prompt(lp) => Some(lp),
            _ => None,
        })
        .collect();
    assert_eq!(echoed.len(), prompt.len() - 1);
    for ((lp, &w), &id) in echoed.iter().zip(&want).zip(&prompt[1..]) {
        assert_eq!(lp.id, id);
        assert!((lp.logprob - w).abs() < 1e-6, "{} vs {w}", lp.logprob);
        assert_eq!(lp.top.len(), 3);
        assert!(lp.top.windows(2).all(|p| p[0].1 >= p[1].1));
    }
    let tokens: Vec<&TokenLogprob> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Token { logprob, .. } => logprob.as_ref(),
            _ => None,
        })
        .collect();
    assert_eq!(tokens.len(), 4);
    assert!(tokens
        .iter()
        .all(|t| t.logprob <= 0.0 && t.top[0].1 >= t.logprob));
    match events.last() {
        Some(StreamEvent::Finished {
            prompt_tokens,
            completion_tokens,
            ..
        }) => {
            assert_eq!((*prompt_tokens, *completion_tokens), (5, 4));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn bad_requests_fail_on_submit_and_shutdown_cancels() {
    let (engine, tok) = engine(CellKind::Gru, 8);
    let mut r = request(&tok, "ab", 1, 5);
    r.sampling.temperature = -1.0;
    assert!(matches!(
        engine.submit(r, Box::new(|_| true)),
        Err(StreamError::Sample(_))
    ));
    let mut r = request(&tok, "ab", 1, 5);
    r.prompt.push(99);
    assert!(matches!(
        engine.submit(r, Box::new(|_| true)),
        Err(StreamError::TokenOutOfRange { id: 99, .. })
    ));
    let running = submit(&engine, request(&tok, "ab", 1, 1_000_000));
    running.recv_timeout(Duration::from_secs(30)).unwrap();
    engine.shutdown();
    assert_eq!(collect(running).1, FinishReason::Cancelled);
    assert!(matches!(
        engine.submit(request(&tok, "ab", 1, 5), Box::new(|_| true)),
        Err(StreamError::Closed)
    ));
}

#[test]
fn a_wider_model_on_two_threads_gives_the_same_text_in_any_batch() {
    // The threads split a step by weight panels or by batch rows depending
    // on the batch size; a row's numbers must not depend on which.
    let tok = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("t", "abc de\n")).unwrap();
    let config = ModelConfig::new(CellKind::Lstm, tok.vocab().len(), 32, 256, 2);
    let model = LanguageModel::new(config, &mut Rng::new(3), None).unwrap();
    let options = EngineOptions {
        max_batch: 64,
        threads: 2,
    };
    let engine = StreamEngine::spawn(StepModel::new(&model), tok.clone(), options).unwrap();
    let alone = collect(submit(&engine, request(&tok, "ab", 7, 100))).0;
    let others: Vec<_> = (0..40)
        .map(|i| submit(&engine, request(&tok, "c de", 100 + i, 150)))
        .collect();
    let mine = submit(&engine, request(&tok, "ab", 7, 100));
    assert_eq!(collect(mine).0, alone);
    others.into_iter().for_each(|rx| drop(collect(rx)));
}
