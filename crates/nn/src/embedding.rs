//! Token embedding (PyTorch `nn.Embedding`): row lookup forward, scatter-add
//! backward. A width of zero means one-hot inputs, built by [`one_hot`].
//! [`drop_words`] is AWD-LSTM's embedding dropout.

/// Forward: `y[n, :] = table[ids[n], :]`, with `table: [V, E]`.
///
/// # Panics
/// If an id is not below `V` or `y` holds fewer than `N * E` values (the
/// model's entry points check a user's ids once per call).
pub fn forward(table: &[f32], ids: &[u32], y: &mut [f32], e: usize) {
    for (row, &id) in y.chunks_exact_mut(e).zip(ids) {
        let id = id as usize;
        row.copy_from_slice(&table[id * e..(id + 1) * e]);
    }
}

/// Backward of [`forward`]: `dtable[ids[n], :] += dy[n, :]`.
///
/// # Panics
/// As [`forward`].
pub fn backward(ids: &[u32], dy: &[f32], dtable: &mut [f32], e: usize) {
    for (row, &id) in dy.chunks_exact(e).zip(ids) {
        let id = id as usize;
        for (g, &d) in dtable[id * e..(id + 1) * e].iter_mut().zip(row) {
            *g += d;
        }
    }
}

/// Embedding dropout (AWD-LSTM's `dropoute`) in place on looked-up rows
/// `y: [N, E]`: row `n` is scaled by `word_mask[ids[n]]` (`word_mask: [V]`, 0 or
/// `1/(1-p)` from `dropout::sample_mask`). That is the lookup of a table whose
/// dropped words' rows are zero, so a dropped word vanishes at every position.
///
/// # Panics
/// If an id is not below `word_mask.len()` or `y` is shorter than `N * E`.
pub fn drop_words(y: &mut [f32], ids: &[u32], word_mask: &[f32], e: usize) {
    for (row, &id) in y.chunks_exact_mut(e).zip(ids) {
        let m = word_mask[id as usize];
        for v in row {
            *v *= m;
        }
    }
}

/// Backward of [`drop_words`]: the same scaling of the gradient rows.
pub fn drop_words_backward(dy: &mut [f32], ids: &[u32], word_mask: &[f32], e: usize) {
    drop_words(dy, ids, word_mask, e);
}

/// One-hot rows: `y[n, :] = e_{ids[n]}` with `y: [N, V]`.
///
/// # Panics
/// If an id is not below `v` or `y` is shorter than `N * V`.
pub fn one_hot(ids: &[u32], y: &mut [f32], v: usize) {
    for (row, &id) in y.chunks_exact_mut(v).zip(ids) {
        row.fill(0.0);
        row[id as usize] = 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    #[test]
    fn gradient_matches_finite_differences_with_repeated_ids() {
        let (v, e) = (5, 3);
        let ids = [1u32, 4, 1, 0];
        let mut rng = Rng::new(2);
        let table = random_vec(&mut rng, v * e);
        let r = random_vec(&mut rng, ids.len() * e);
        let loss = |t: &[f32]| {
            let mut y = vec![0.0; ids.len() * e];
            forward(t, &ids, &mut y, e);
            y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let mut dt = vec![0.0; v * e];
        backward(&ids, &r, &mut dt, e);
        check("embedding", &table, &dt, loss);
        assert!(
            dt[2 * e..3 * e].iter().all(|&g| g == 0.0),
            "unused rows get no gradient"
        );
    }

    #[test]
    fn dropped_words_lose_every_occurrence_and_pass_the_gradient_check() {
        let (v, e) = (5, 3);
        let ids = [1u32, 4, 1, 0, 3];
        let word_mask = [2.0, 0.0, 2.0, 2.0, 0.0];
        let mut rng = Rng::new(5);
        let table = random_vec(&mut rng, v * e);
        let r = random_vec(&mut rng, ids.len() * e);
        let lookup = |t: &[f32]| {
            let mut y = vec![0.0; ids.len() * e];
            forward(t, &ids, &mut y, e);
            drop_words(&mut y, &ids, &word_mask, e);
            y
        };
        let y = lookup(&table);
        assert!(y[..e].iter().chain(&y[2 * e..3 * e]).all(|&x| x == 0.0));
        assert_eq!(
            y[3 * e..4 * e],
            table[..e].iter().map(|x| 2.0 * x).collect::<Vec<_>>()[..]
        );
        let loss = |t: &[f32]| {
            let y = lookup(t);
            y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let mut dy = r.clone();
        drop_words_backward(&mut dy, &ids, &word_mask, e);
        let mut dt = vec![0.0; v * e];
        backward(&ids, &dy, &mut dt, e);
        check("embedding dropout", &table, &dt, loss);
    }

    #[test]
    fn one_hot_rows() {
        let mut y = vec![9.0; 6];
        one_hot(&[2, 0], &mut y, 3);
        assert_eq!(y, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }
}
