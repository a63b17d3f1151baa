//! Successive halving's promotions and the K-fold split, without training.

use recurrent::tune::{fold_ranges, mean_std, Asha, Job, Rungs};

#[test]
fn asha_promotes_the_best_third_of_each_rung() {
    let mut asha = Asha::new(Rungs::geometric(1.0, 9.0, 3), 3);
    // Two results: a third of two is none, so nothing is promoted yet.
    asha.record(0, 0, 5.0);
    asha.record(1, 0, 3.0);
    assert_eq!(asha.promote(), None);
    // A third: the best of three goes on.
    asha.record(2, 0, 4.0);
    assert_eq!(asha.promote(), Some(Job { trial: 1, rung: 1 }));
    assert_eq!(asha.promote(), None);
    // Six results: the best two; trial 1 already went.
    for (t, s) in [(3, 1.0), (4, 6.0), (5, 7.0)] {
        asha.record(t, 0, s);
    }
    assert_eq!(asha.top_of(0), [3, 1]);
    assert_eq!(asha.promote(), Some(Job { trial: 3, rung: 1 }));
    assert_eq!(asha.promote(), None);
    // Higher rungs first: trial 3 is better than 1 at rung 1, but one of
    // three at rung 1 is needed before any promotion to rung 2.
    asha.record(1, 1, 2.0);
    asha.record(3, 1, 0.5);
    assert_eq!(asha.promote(), None);
    for t in [6, 7, 8] {
        asha.record(t, 0, 0.1 * t as f64);
    }
    asha.record(6, 1, 9.0);
    // Rung 1 now has three results: trial 3 goes to rung 2 before rung 0's promotions.
    assert_eq!(asha.promote(), Some(Job { trial: 3, rung: 2 }));
    // Then rung 0, which has nine results: its best three are 6, 7 and 8.
    assert_eq!(asha.top_of(0), [6, 7, 8]);
    assert_eq!(asha.promote(), Some(Job { trial: 6, rung: 1 }));
}

#[test]
fn folds_are_contiguous_and_cover_the_text_once() {
    let text: String = (0..1000).map(|i| format!("line {i} é\n")).collect();
    for k in [2, 3, 5, 7] {
        let ranges = fold_ranges(&text, k);
        assert_eq!(ranges.len(), k);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[k - 1].end, text.len());
        for w in ranges.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for r in &ranges {
            // Cut at line breaks, and of nearly equal sizes.
            assert!(text[r.clone()].ends_with('\n'));
            let share = r.len() as f64 / text.len() as f64;
            assert!((share - 1.0 / k as f64).abs() < 0.2 / k as f64, "{share}");
        }
    }
    // Without line breaks, cuts fall on character boundaries.
    let text = "é".repeat(101);
    let ranges = fold_ranges(&text, 3);
    assert!(ranges
        .iter()
        .all(|r| text.is_char_boundary(r.start) && text.is_char_boundary(r.end)));
    assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), text.len());
}

#[test]
fn mean_and_std_are_the_population_ones() {
    let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(m, 2.5);
    assert!((s - 1.25f64.sqrt()).abs() < 1e-12);
    assert_eq!(mean_std(&[2.0]), (2.0, 0.0));
}
