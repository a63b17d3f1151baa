//! Fully connected layer `y = x · Wᵀ + b` (PyTorch `nn.Linear`), optionally
//! followed by ReLU.

use recurrent_kernels::{sgemm, sgemm_bias, MatMut, MatRef};

/// Forward: `y[n, o] = x[n, i] · w[o, i]ᵀ + b[o]` (`w` as PyTorch stores it).
///
/// # Panics
/// If the views' shapes do not fit together ([`recurrent_kernels::check_product`])
/// or `b` is shorter than `o`.
pub fn forward(x: MatRef<'_>, w: MatRef<'_>, b: &[f32], y: MatMut<'_>) {
    sgemm_bias(x, w.t(), b, y);
}

/// Backward of [`forward`] (`x: [n, i]`, `w: [o, i]`, `dy: [n, o]`):
/// `dw += dyᵀ·x`, `db += Σ_rows dy`, and `dx = dy·w` (`[n, i]`) when wanted.
///
/// # Panics
/// If the shapes do not fit together or a gradient buffer is shorter than
/// its shape above.
pub fn backward(
    x: MatRef<'_>,
    w: MatRef<'_>,
    dy: MatRef<'_>,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let (n, i, o) = (x.rows(), x.cols(), w.rows());
    sgemm(1.0, dy.t(), x, 1.0, MatMut::new(dw, o, i));
    for row in dy.data()[..n * o].chunks_exact(o) {
        for (g, &d) in db.iter_mut().zip(row) {
            *g += d;
        }
    }
    if let Some(dx) = dx {
        sgemm(1.0, dy, w, 0.0, MatMut::new(dx, n, i));
    }
}

/// In-place ReLU over a buffer.
pub fn relu_forward(y: &mut [f32]) {
    for v in y {
        *v = v.max(0.0);
    }
}

/// Backward of [`relu_forward`] given its output `y`: zeroes `dy` where `y <= 0`.
pub fn relu_backward(y: &[f32], dy: &mut [f32]) {
    for (d, &v) in dy.iter_mut().zip(y) {
        if v <= 0.0 {
            *d = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{check, random_vec};
    use recurrent_kernels::Rng;

    #[test]
    fn gradients_match_finite_differences() {
        let (n, i, o) = (4, 5, 3);
        let mut rng = Rng::new(1);
        let x = random_vec(&mut rng, n * i);
        let w = random_vec(&mut rng, o * i);
        let b = random_vec(&mut rng, o);
        let r = random_vec(&mut rng, n * o);
        // loss = Σ relu(linear(x)) ⊙ r
        let loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; n * o];
            forward(
                MatRef::new(x, n, i),
                MatRef::new(w, o, i),
                b,
                MatMut::new(&mut y, n, o),
            );
            relu_forward(&mut y);
            y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let mut y = vec![0.0; n * o];
        forward(
            MatRef::new(&x, n, i),
            MatRef::new(&w, o, i),
            &b,
            MatMut::new(&mut y, n, o),
        );
        relu_forward(&mut y);
        let mut dy = r.clone();
        relu_backward(&y, &mut dy);
        let (mut dw, mut db, mut dx) = (vec![0.0; o * i], vec![0.0; o], vec![0.0; n * i]);
        backward(
            MatRef::new(&x, n, i),
            MatRef::new(&w, o, i),
            MatRef::new(&dy, n, o),
            &mut dw,
            &mut db,
            Some(&mut dx),
        );
        check("linear dx", &x, &dx, |v| loss(v, &w, &b));
        check("linear dw", &w, &dw, |v| loss(&x, v, &b));
        check("linear db", &b, &db, |v| loss(&x, &w, v));
    }
}
