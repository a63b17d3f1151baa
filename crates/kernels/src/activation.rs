//! Scalar activation functions shared by the layers. They are branch-free and
//! call no libm function, so loops over them vectorize (see [`crate::simd`] for
//! running such a loop with AVX-512 or AVX2 picked at run time); each backward
//! form takes the forward *output*, which is what the layers keep.
//!
//! `exp`, `sigmoid` and `tanh` are polynomial approximations accurate to a few
//! f32 ulps (tested below against f64 over a dense range). They use plain
//! `a * b + c`, never `mul_add`, so every instruction set gives bit-identical results.

/// `1.5 * 2^23`: adding it rounds an f32 of magnitude < 2^22 to an integer,
/// which then sits in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x` for `x` clamped to `[-87, 88]` (so `e^x` stays a normal f32), with a
/// relative error of about 2 ulp. Cephes' `expf`: `x = n ln2 + r`, `|r| <= ln2/2`,
/// `e^r` by a degree-7 polynomial, `2^n` by building the exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    // ln 2 split in a part exact in f32 times any n and a small correction.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let er = p * (r * r) + r + 1.0;
    // n sits in the low bits of t; 2^n has biased exponent n + 127.
    let ni = t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i32;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    er * scale
}

/// Logistic sigmoid `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Hyperbolic tangent. Near 0 (`|x| < 0.55`) the odd Taylor series to `x^15`
/// (truncation below 1e-7 relative); elsewhere `1 - 2 / (e^{2|x|} + 1)`, whose
/// cancellation costs at most a factor ~2 there. The sign is copied back.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = a * a;
    let p = 5.900_275e-4;
    let p = p * z + -1.455_834_4e-3;
    let p = p * z + 3.592_128e-3;
    let p = p * z + -8.863_236e-3;
    let p = p * z + 2.186_949e-2;
    let p = p * z + -5.396_825_4e-2;
    let p = p * z + 0.133_333_33;
    let p = p * z + -0.333_333_34;
    let small = p * z * a + a;
    let large = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    let y = if a < 0.55 { small } else { large };
    y.copysign(x)
}

/// Derivative of sigmoid at the point whose output is `y`.
#[inline(always)]
pub fn dsigmoid(y: f32) -> f32 {
    y * (1.0 - y)
}

/// Derivative of tanh at the point whose output is `y`.
#[inline(always)]
pub fn dtanh(y: f32) -> f32 {
    1.0 - y * y
}

/// Rectified linear unit.
#[inline(always)]
pub fn relu(x: f32) -> f32 {
    x.max(0.0)
}

/// Derivative of ReLU at the point whose output is `y` (0 at the kink, as PyTorch).
#[inline(always)]
pub fn drelu(y: f32) -> f32 {
    if y > 0.0 {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f32 in `[-lim, lim]` stepping by a few ulps near 0 and coarser far out:
    /// about 4 million points, including tiny, subnormal and huge magnitudes.
    fn dense_points(lim: f32) -> Vec<f32> {
        let mut v = vec![0.0, -0.0, f32::MIN_POSITIVE, 1e-40, -1e-40];
        let mut bits = 1u32;
        while f32::from_bits(bits) <= lim {
            let x = f32::from_bits(bits);
            v.push(x);
            v.push(-x);
            bits += 499;
        }
        v
    }

    /// Error in units of `max(|want|, floor)`: relative, except near 0 where
    /// outputs below `floor` are judged by absolute error.
    fn err(got: f32, want: f64, floor: f64) -> f64 {
        (got as f64 - want).abs() / want.abs().max(floor)
    }

    #[test]
    fn exp_is_accurate_over_its_range() {
        let mut worst = 0.0f64;
        for x in dense_points(87.0) {
            worst = worst.max(err(exp(x), (x as f64).exp(), 0.0));
        }
        assert!(worst < 3e-7, "exp max rel error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn sigmoid_is_accurate_including_large_inputs() {
        let mut worst = 0.0f64;
        for x in dense_points(200.0) {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            worst = worst.max(err(sigmoid(x), want, 1e-30));
        }
        assert!(worst < 5e-7, "sigmoid max rel error {worst}");
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!(sigmoid(-1000.0) < 1e-37);
        assert_eq!(sigmoid(0.0), 0.5);
    }

    #[test]
    fn tanh_is_accurate_including_large_inputs() {
        let mut worst = 0.0f64;
        for x in dense_points(200.0) {
            worst = worst.max(err(tanh(x), (x as f64).tanh(), 1e-37));
        }
        assert!(worst < 5e-7, "tanh max rel error {worst}");
        assert_eq!(tanh(1000.0), 1.0);
        assert_eq!(tanh(-1000.0), -1.0);
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(-0.0).is_sign_negative());
    }

    #[test]
    fn nan_propagates() {
        assert!(tanh(f32::NAN).is_nan());
        assert!(sigmoid(f32::NAN).is_nan());
    }
}
