//! Token embedding (PyTorch `nn.Embedding`): row lookup forward, scatter-add
//! backward. A width of zero means one-hot inputs, built by [`one_hot`].

/// Forward: `y[n, :] = table[ids[n], :]`, with `table: [V, E]`.
pub fn forward(table: &[f32], ids: &[u32], y: &mut [f32], e: usize) {
    for (row, &id) in y.chunks_exact_mut(e).zip(ids) {
        let id = id as usize;
        row.copy_from_slice(&table[id * e..(id + 1) * e]);
    }
}

/// Backward of [`forward`]: `dtable[ids[n], :] += dy[n, :]`.
pub fn backward(ids: &[u32], dy: &[f32], dtable: &mut [f32], e: usize) {
    for (row, &id) in dy.chunks_exact(e).zip(ids) {
        let id = id as usize;
        for (g, &d) in dtable[id * e..(id + 1) * e].iter_mut().zip(row) {
            *g += d;
        }
    }
}

/// One-hot rows: `y[n, :] = e_{ids[n]}` with `y: [N, V]`.
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
    fn one_hot_rows() {
        let mut y = vec![9.0; 6];
        one_hot(&[2, 0], &mut y, 3);
        assert_eq!(y, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }
}
