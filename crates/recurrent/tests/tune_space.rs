//! The search space and the samplers, on synthetic objectives (no training).

use recurrent::tune::space::{apply, parse_spec};
use recurrent::tune::{Domain, Observation, Params, Sampler, SamplerKind, Space, TuneError, Value};

#[test]
fn specs_parse_lists_and_ranges() {
    let space = Space::from_specs(&[
        "hidden=128,256",
        "lr=1e-4..1e-2:log",
        "layers=1..3",
        "seq_len=50..200:step=50",
        "cell=lstm,gru",
        "dropout=0..0.5",
        "tie=true,false",
    ])
    .unwrap();
    let names: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["cell", "dropout", "hidden", "layers", "lr", "seq_len", "tie"]
    );
    assert_eq!(
        space.get("lr").unwrap().domain,
        Domain::Float {
            low: 1e-4,
            high: 1e-2,
            log: true
        }
    );
    assert_eq!(
        space.get("seq_len").unwrap().domain,
        Domain::Int {
            low: 50,
            high: 200,
            log: false,
            step: 50
        }
    );
    // A float parameter's integer-looking range is a float range.
    assert_eq!(
        space.get("dropout").unwrap().domain,
        Domain::Float {
            low: 0.0,
            high: 0.5,
            log: false
        }
    );
}

#[test]
fn bad_specs_name_the_parameter() {
    let err = |s: &str| Space::from_specs(&[s]).unwrap_err();
    assert!(matches!(err("hiden=1,2"), TuneError::UnknownParam { name, .. } if name == "hiden"));
    assert!(matches!(err("hidden=3..1"), TuneError::BadSpec { name, .. } if name == "hidden"));
    assert!(matches!(err("lr=0..1:log"), TuneError::BadSpec { name, .. } if name == "lr"));
    assert!(matches!(err("lr=0.1..1:step=2"), TuneError::BadSpec { .. }));
    assert!(matches!(err("hidden=1.5,2"), TuneError::BadSpec { .. }));
    assert!(
        matches!(err("cell=lstm,transformer"), TuneError::BadSpec { spec, .. } if spec == "transformer")
    );
    assert!(matches!(err("tie=1..2"), TuneError::BadSpec { .. }));
    assert!(matches!(err("hidden"), TuneError::BadSpec { .. }));
    assert!(matches!(err("hidden="), TuneError::BadSpec { .. }));
    assert!(matches!(
        Space::from_specs(&["hidden=1", "hidden=2"]).unwrap_err(),
        TuneError::Duplicate { .. }
    ));
    assert!(parse_spec("lr", "nan..1").is_err());
}

#[test]
fn toml_files_give_the_same_space() {
    let toml = r#"
        hidden = [128, 256]
        lr = { low = 1e-4, high = 1e-2, log = true }
        layers = { low = 1, high = 3 }
        cell = "lstm,gru"
        dropout = "0.0..0.5"
        clip = 5
    "#;
    let from_file = Space::from_toml(toml).unwrap();
    let from_specs = Space::from_specs(&[
        "hidden=128,256",
        "lr=1e-4..1e-2:log",
        "layers=1..3",
        "cell=lstm,gru",
        "dropout=0.0..0.5",
        "clip=5",
    ])
    .unwrap();
    assert_eq!(from_file, from_specs);
    // The same keys under [space].
    let nested = Space::from_toml("[space]\nhidden = [128, 256]\n").unwrap();
    assert_eq!(nested.params.len(), 1);
    assert!(matches!(
        Space::from_toml("hidden = ["),
        Err(TuneError::Toml { .. })
    ));
    assert!(matches!(
        Space::from_toml("hidden = { low = 1 }"),
        Err(TuneError::BadSpec { .. })
    ));
    assert!(matches!(
        Space::from_toml("hidden = [1.5]"),
        Err(TuneError::BadSpec { .. })
    ));
    assert!(matches!(
        Space::from_toml("width = [1]"),
        Err(TuneError::UnknownParam { .. })
    ));
}

#[test]
fn grid_enumerates_every_configuration_once_in_order() {
    let space = Space::from_specs(&["hidden=64,128", "layers=1..3", "cell=gru"]).unwrap();
    let grid = space.grid().unwrap();
    assert_eq!(grid.len(), 6);
    let pairs: Vec<(i64, i64)> = grid
        .iter()
        .map(|p| match (&p["hidden"], &p["layers"]) {
            (Value::Int(h), Value::Int(l)) => (*h, *l),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        pairs,
        [(64, 1), (64, 2), (64, 3), (128, 1), (128, 2), (128, 3)]
    );
    let sampler = Sampler::new(SamplerKind::Grid, space.clone(), 1, 0).unwrap();
    assert_eq!(sampler.limit(), Some(6));
    let drawn: Vec<Params> = (0..7).map_while(|n| sampler.suggest(n, &[])).collect();
    assert_eq!(drawn, grid);
    let floats = Space::from_specs(&["lr=0.1..0.2"]).unwrap();
    assert!(matches!(floats.grid(), Err(TuneError::NoGrid { .. })));
}

#[test]
fn configurations_apply_to_training_options() {
    let space = Space::from_specs(&["hidden=300", "lr=0.01", "cell=gru", "optimizer=sgd"]).unwrap();
    let params = &space.grid().unwrap()[0];
    let options = apply(&recurrent::lm::TrainOptions::default(), params).unwrap();
    let recurrent::lm::Init::Fresh { config, .. } = &options.init else {
        panic!()
    };
    assert_eq!(config.hidden, 300);
    assert_eq!(config.cell, recurrent::CellKind::Gru);
    assert_eq!(options.lr, 0.01);
    assert_eq!(options.optimizer.kind, recurrent::OptimizerKind::Sgd);
}

fn space() -> Space {
    Space::from_specs(&[
        "lr=1e-5..1e-1:log",
        "hidden=16..1024:log",
        "cell=lstm,gru,rnn-tanh",
    ])
    .unwrap()
}

/// Lowest at lr = 1e-3, hidden = 256, gru.
fn objective(p: &Params) -> f64 {
    let (Value::Float(lr), Value::Int(hidden), Value::Text(cell)) =
        (&p["lr"], &p["hidden"], &p["cell"])
    else {
        panic!("{p:?}")
    };
    (lr.log10() + 3.0).powi(2)
        + ((*hidden as f64).log2() - 8.0).powi(2) / 4.0
        + if cell == "gru" { 0.0 } else { 1.0 }
}

fn study(kind: SamplerKind, seed: u64, trials: usize) -> Vec<Observation> {
    let sampler = Sampler::new(kind, space(), seed, 10).unwrap();
    let mut history = Vec::new();
    for n in 0..trials {
        let params = sampler.suggest(n, &history).unwrap();
        let score = objective(&params);
        history.push(Observation { params, score });
    }
    history
}

#[test]
fn random_and_tpe_are_reproducible_for_a_seed() {
    for kind in [SamplerKind::Random, SamplerKind::Tpe] {
        assert_eq!(study(kind, 7, 30), study(kind, 7, 30));
        assert_ne!(study(kind, 7, 30), study(kind, 8, 30));
    }
    // Every draw stays in its domain.
    for o in study(SamplerKind::Tpe, 3, 40) {
        let Value::Float(lr) = o.params["lr"] else {
            panic!()
        };
        let Value::Int(h) = o.params["hidden"] else {
            panic!()
        };
        assert!((1e-5..=1e-1).contains(&lr) && (16..=1024).contains(&h));
    }
}

#[test]
fn tpe_concentrates_on_the_good_region() {
    let (mut tpe_wins, mut tpe_good, mut random_good) = (0, 0, 0);
    for seed in 0..5 {
        let tpe = study(SamplerKind::Tpe, seed, 60);
        let random = study(SamplerKind::Random, seed, 60);
        let late = |h: &[Observation]| h[30..].iter().map(|o| o.score).sum::<f64>() / 30.0;
        let good = |h: &[Observation]| h[30..].iter().filter(|o| o.score < 1.0).count();
        tpe_wins += usize::from(late(&tpe) < late(&random));
        tpe_good += good(&tpe);
        random_good += good(&random);
    }
    assert_eq!(
        tpe_wins, 5,
        "TPE's later trials beat random search's for every seed"
    );
    assert!(
        tpe_good > 2 * random_good,
        "TPE put {tpe_good} of its later trials in the good region, random {random_good}"
    );
}
