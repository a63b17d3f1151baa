//! The inspect view's data: surprisal as evaluation computes it, activations
//! as generation reaches them, gate saturation, unit rankings, and errors.

use recurrent::inspect::{rank_units, text_properties, LayerActivity, StateKind};
use recurrent::kernels::Rng;
use recurrent::lm::{Init, TextSource, TrainOptions, Training};
use recurrent::model::infer::{StepModel, StepWorkspace};
use recurrent::model::State;
use recurrent::text::Corpus;
use recurrent::{
    evaluate_text, inspect, CellKind, Error, EvalOptions, InspectOptions, LanguageCheckpoint,
    LanguageModel, ModelConfig, Quiet, RunFolder, StopRule, Tokenizer, TokenizerKind,
};

const CORPUS: &str = "He said \"stop (now)\" and left.\n(a [b] c) \"yes\" no.\n";

fn options() -> InspectOptions {
    InspectOptions {
        threads: Some(1),
        ..InspectOptions::default()
    }
}

/// A character LSTM trained for a few steps, loaded back from its run folder.
fn trained(dir: &std::path::Path) -> LanguageCheckpoint {
    let options = TrainOptions {
        input: TextSource::text("corpus", CORPUS.repeat(30)),
        stop: StopRule {
            steps: Some(12),
            ..StopRule::default()
        },
        seq_len: 16,
        batch: 4,
        lr: 1e-2,
        init: Init::Fresh {
            config: ModelConfig {
                cell: CellKind::Lstm,
                vocab_size: 0,
                embed: 16,
                hidden: 24,
                layers: 2,
                dense: 0,
                dropout: 0.0,
                tie: false,
                layer_norm: false,
                last_hidden: 0,
            },
            forget_bias: None,
        },
        threads: Some(1),
        ..TrainOptions::default()
    };
    let folder = RunFolder::create(dir.join("run")).unwrap();
    Training::start(&options, folder.clone())
        .unwrap()
        .run(&mut Quiet)
        .unwrap();
    LanguageCheckpoint::load(folder.best_dir()).unwrap()
}

/// An untrained model of `cell` over the corpus's characters.
fn untrained(cell: CellKind, layer_norm: bool) -> LanguageCheckpoint {
    let tokenizer = Tokenizer::build(TokenizerKind::Char, &Corpus::from_text("c", CORPUS)).unwrap();
    let config = ModelConfig {
        cell,
        vocab_size: tokenizer.vocab().len(),
        embed: 8,
        hidden: 12,
        layers: 2,
        dense: 0,
        dropout: 0.0,
        tie: false,
        layer_norm,
        last_hidden: 0,
    };
    LanguageCheckpoint {
        path: "untrained".into(),
        model: LanguageModel::new(config, &mut Rng::new(3), None).unwrap(),
        tokenizer,
        resume: None,
    }
}

#[test]
fn surprisal_is_what_evaluation_measures_and_shapes_fit() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = trained(dir.path());
    let text = CORPUS.repeat(6); // longer than one traced block of 256 steps
    let view = inspect(&checkpoint, &text, &options()).unwrap();
    let t = text.chars().count();
    assert_eq!(view.tokens.len(), t);
    let joined: String = view.tokens.iter().map(|tok| tok.text.as_str()).collect();
    assert_eq!(joined, text);

    let eval = evaluate_text(
        &checkpoint,
        &text,
        &EvalOptions {
            threads: Some(1),
            ..EvalOptions::default()
        },
    )
    .unwrap();
    assert_eq!(eval.report.tokens, t - 1);
    let bits = view.model.bits_per_token.unwrap();
    let nats = bits * std::f64::consts::LN_2;
    assert!(
        (nats - eval.report.loss).abs() < 1e-5 * eval.report.loss,
        "{nats} vs {}",
        eval.report.loss
    );
    assert!(view.tokens[0].surprisal.is_none());
    assert!(view.tokens[1..]
        .iter()
        .all(|tok| tok.surprisal.unwrap() >= 0.0));

    for tok in &view.tokens {
        assert_eq!(tok.next.len(), 5);
        assert!(tok.next.windows(2).all(|w| w[0].p >= w[1].p));
        let total: f32 = tok.next.iter().map(|n| n.p).sum();
        assert!(total > 0.0 && total <= 1.0 + 1e-5);
    }
    // The surprisal of a token is -log2 of the probability the previous
    // token gave it, when it was among that token's candidates.
    for pair in view.tokens.windows(2) {
        if let Some(n) = pair[0].next.iter().find(|n| n.id == pair[1].id) {
            let s = -n.p.log2();
            assert!((s - pair[1].surprisal.unwrap()).abs() < 1e-3);
        }
    }

    assert_eq!(view.layers.len(), 2);
    for layer in &view.layers {
        assert_eq!(layer.hidden, 24);
        assert_eq!(layer.h.len(), t * 24);
        assert_eq!(layer.c.as_ref().unwrap().len(), t * 24);
        let names: Vec<_> = layer.gates.iter().map(|g| g.name).collect();
        assert_eq!(names, ["input", "forget", "output"]);
        for g in &layer.gates {
            assert_eq!((g.left.len(), g.right.len()), (24, 24));
            assert!(g
                .left
                .iter()
                .zip(&g.right)
                .all(|(l, r)| *l >= 0.0 && *r >= 0.0 && l + r <= 1.0));
        }
    }
    let names: Vec<_> = view.properties.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        ["quotes", "line_position", "bracket_depth", "word_start"]
    );
    for p in &view.properties {
        assert_eq!(p.values.len(), t);
        assert_eq!(p.units.len(), 10);
        assert!(p
            .units
            .windows(2)
            .all(|w| w[0].correlation.abs() >= w[1].correlation.abs()));
    }

    let json: serde_json::Value = serde_json::from_str(&view.to_json()).unwrap();
    assert_eq!(json["tokens"].as_array().unwrap().len(), t);
    assert_eq!(json["layers"][0]["h"].as_array().unwrap().len(), t * 24);
    let html = view.to_html("test view");
    assert!(html.contains("id=\"inspect-data\"") && html.contains("RecurrentInspect.render"));
}

#[test]
fn the_last_state_is_the_one_generation_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = trained(dir.path());
    let text = "He said \"(no)\".\n";
    let view = inspect(&checkpoint, text, &options()).unwrap();
    let ids = checkpoint.tokenizer.encode(text).unwrap();

    let config = &checkpoint.model.config;
    let stepper = StepModel::new(&checkpoint.model);
    let (mut ws, mut state) = (StepWorkspace::default(), State::zeros(config, 1));
    let mut last_logits = Vec::new();
    for &id in &ids {
        last_logits = stepper.step(&mut ws, &[id], &mut state).unwrap().to_vec();
    }
    let t = ids.len();
    for (k, layer) in view.layers.iter().enumerate() {
        let h = layer.hidden;
        let range = config.state_range(k, 1);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        assert!(close(&layer.h[(t - 1) * h..], &state.h[range.clone()]));
        assert!(close(
            &layer.c.as_ref().unwrap()[(t - 1) * h..],
            &state.c[range]
        ));
    }
    // The last token's most likely next token is generation's greedy choice.
    let greedy = (0..last_logits.len())
        .max_by(|&a, &b| last_logits[a].total_cmp(&last_logits[b]))
        .unwrap();
    assert_eq!(view.tokens[t - 1].next[0].id as usize, greedy);
}

#[test]
fn every_cell_has_its_gates() {
    for (cell, gates, has_c) in [
        (CellKind::Gru, vec!["reset", "update"], false),
        (CellKind::RnnTanh, vec![], false),
        (CellKind::RnnRelu, vec![], false),
        (CellKind::Lstm, vec!["input", "forget", "output"], true),
    ] {
        for layer_norm in [false, true] {
            if layer_norm && !matches!(cell, CellKind::Lstm | CellKind::Gru) {
                continue;
            }
            let view = inspect(&untrained(cell, layer_norm), CORPUS, &options()).unwrap();
            for layer in &view.layers {
                let names: Vec<_> = layer.gates.iter().map(|g| g.name).collect();
                assert_eq!(names, gates, "{cell} layer_norm {layer_norm}");
                assert_eq!(layer.c.is_some(), has_c);
                // Untrained gates sit near 0.5: hardly ever saturated.
                for g in &layer.gates {
                    assert!(g.left.iter().chain(&g.right).all(|&f| f < 0.5));
                }
            }
            // Only an LSTM has cell states to rank.
            let ranked_c = view
                .properties
                .iter()
                .flat_map(|p| &p.units)
                .any(|u| u.state == StateKind::C);
            assert!(has_c || !ranked_c);
        }
    }
}

#[test]
fn a_unit_that_follows_bracket_depth_ranks_first() {
    let text = "f(a[b(c)]) + g(x) (((y)))";
    let pieces: Vec<String> = text.chars().map(String::from).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let properties = text_properties(&pieces);
    let (_, _, depth) = properties
        .iter()
        .find(|(name, _, _)| *name == "bracket_depth")
        .unwrap();
    assert_eq!(depth[..10], [0., 1., 1., 2., 2., 3., 3., 2., 1., 0.]);

    // Layer 1, unit 2 of 4 follows the depth (scaled and shifted); layer 0's
    // unit 1 follows it upside down, with noise; the rest is noise.
    let t = pieces.len();
    let mut rng = Rng::new(9);
    let mut noise = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-0.5, 0.5)).collect() };
    let mut l0 = noise(t * 3);
    let mut l1 = noise(t * 4);
    for s in 0..t {
        l1[s * 4 + 2] = 0.25 * depth[s] - 0.4;
        l0[s * 3 + 1] = -depth[s] + 0.3 * (l0[s * 3 + 1]);
    }
    let layers = [
        LayerActivity {
            hidden: 3,
            h: l0,
            c: None,
            gates: vec![],
        },
        LayerActivity {
            hidden: 4,
            h: l1,
            c: Some(noise(t * 4)),
            gates: vec![],
        },
    ];
    let ranked = rank_units(depth, &layers, 3);
    assert_eq!(ranked.len(), 3);
    assert_eq!(
        (ranked[0].layer, ranked[0].unit, ranked[0].state),
        (1, 2, StateKind::H)
    );
    assert!((ranked[0].correlation - 1.0).abs() < 1e-5);
    assert_eq!((ranked[1].layer, ranked[1].unit), (0, 1));
    assert!(ranked[1].correlation < -0.9);
    // A property that never changes ranks nothing.
    assert!(rank_units(&vec![1.0; t], &layers, 3).is_empty());
}

#[test]
fn text_properties_follow_quotes_lines_and_words() {
    let pieces = ["a", "b", " ", "\"", "c", "\"", "\n", "d", "("];
    let properties = text_properties(&pieces);
    let get = |name: &str| {
        properties
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap()
            .2
            .clone()
    };
    assert_eq!(get("quotes"), [0., 0., 0., 1., 1., 0., 0., 0., 0.]);
    assert_eq!(get("line_position"), [1., 2., 3., 4., 5., 6., 0., 1., 2.]);
    assert_eq!(get("word_start"), [1., 0., 0., 0., 1., 0., 0., 1., 0.]);
    assert_eq!(get("bracket_depth"), [0., 0., 0., 0., 0., 0., 0., 0., 1.]);
}

#[test]
fn bad_input_is_a_typed_error() {
    let checkpoint = untrained(CellKind::Lstm, false);
    match inspect(&checkpoint, "Hé said", &options()) {
        Err(Error::UnknownChars { count, shown, .. }) => {
            assert_eq!(count, 1);
            assert_eq!(shown, "'é'");
        }
        other => panic!("expected UnknownChars, got {:?}", other.map(|_| ())),
    }
    let field = |r: recurrent::Result<_>| match r {
        Err(Error::InvalidOption { field, .. }) => field,
        other => panic!("expected InvalidOption, got {:?}", other.map(|_| ())),
    };
    assert_eq!(field(inspect(&checkpoint, "", &options())), "text");
    let short = InspectOptions {
        max_chars: 10,
        ..options()
    };
    assert_eq!(field(inspect(&checkpoint, &"a".repeat(11), &short)), "text");
    assert!(inspect(&checkpoint, &"a".repeat(10), &short).is_ok());
    let zero = InspectOptions {
        max_chars: 0,
        ..options()
    };
    assert_eq!(field(inspect(&checkpoint, "a", &zero)), "max_chars");
    let huge = InspectOptions {
        max_chars: recurrent::inspect::MAX_INSPECT_CHARS + 1,
        ..options()
    };
    assert_eq!(field(inspect(&checkpoint, "a", &huge)), "max_chars");
    let threads = InspectOptions {
        threads: Some(0),
        ..options()
    };
    assert_eq!(field(inspect(&checkpoint, "a", &threads)), "threads");
    // One token: nothing is predicted, nothing ranks.
    let one = inspect(&checkpoint, "a", &options()).unwrap();
    assert_eq!(one.model.bits_per_token, None);
    assert!(one.properties.iter().all(|p| p.units.is_empty()));
}

#[test]
fn byte_tokens_of_one_character_join_to_the_text() {
    let text = "naïve «quotes» (é)";
    let mut checkpoint = untrained(CellKind::Gru, false);
    checkpoint.tokenizer =
        Tokenizer::build(TokenizerKind::Byte, &Corpus::from_text("c", text)).unwrap();
    let config = ModelConfig {
        vocab_size: checkpoint.tokenizer.vocab().len(),
        ..checkpoint.model.config.clone()
    };
    checkpoint.model = LanguageModel::new(config, &mut Rng::new(4), None).unwrap();
    let view = inspect(&checkpoint, text, &options()).unwrap();
    assert_eq!(view.tokens.len(), text.len());
    let joined: String = view.tokens.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(joined, text);
    // The first byte of `ï` completes no character: its token adds nothing.
    assert_eq!(view.tokens[2].text, "");
    assert_eq!(view.tokens[3].text, "ï");
    let depth = &view.properties[2].values;
    assert_eq!(depth[depth.len() - 2], 1.0);
}
