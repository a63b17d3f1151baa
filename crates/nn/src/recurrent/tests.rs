//! Gradient checks and equivalences of the recurrent layer.

use super::row_split::RowSplit;
use super::*;
use crate::gradcheck::{check, random_vec};
use recurrent_kernels::Rng;

const CELLS: [CellKind; 4] = [
    CellKind::RnnTanh,
    CellKind::RnnRelu,
    CellKind::Lstm,
    CellKind::Gru,
];

struct Case {
    layer: RecurrentLayer,
    t: usize,
    b: usize,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
    x: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
    ry: Vec<f32>,
    rh: Vec<f32>,
    rc: Vec<f32>,
    keep: Option<Vec<f32>>,
}

impl Case {
    fn new(cell: CellKind, seed: u64, with_reset: bool) -> Case {
        Case::with_batch(cell, seed, with_reset, 3)
    }

    fn with_batch(cell: CellKind, seed: u64, with_reset: bool, b: usize) -> Case {
        let (t, i, h) = (4, 5, 4);
        let layer = RecurrentLayer {
            cell,
            input_size: i,
            hidden_size: h,
        };
        let gh = layer.gate_rows();
        let mut rng = Rng::new(seed);
        let mut v = |n| random_vec(&mut rng, n);
        // Streams 1 and b - 2 start a new document at step 2 (the same one when b = 3).
        let keep = with_reset.then(|| {
            (0..t * b)
                .map(|k| {
                    if k == 2 * b + 1 || k == 3 * b - 2 {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect()
        });
        Case {
            layer,
            t,
            b,
            w_ih: v(gh * i),
            w_hh: v(gh * h),
            b_ih: v(gh),
            b_hh: v(gh),
            x: v(t * b * i),
            h0: v(b * h),
            c0: v(b * h),
            ry: v(t * b * h),
            rh: v(b * h),
            rc: v(b * h),
            keep,
        }
    }

    /// The case's parameters.
    fn params(&self) -> LayerParams<'_> {
        LayerParams {
            w_ih: &self.w_ih,
            w_hh: &self.w_hh,
            b_ih: &self.b_ih,
            b_hh: &self.b_hh,
        }
    }

    /// loss = Σ y ⊙ ry + Σ h_T ⊙ rh (+ Σ c_T ⊙ rc), so every output and the final state matter.
    fn loss(&self, p: LayerParams<'_>, x: &[f32], h0: &[f32], c0: &[f32]) -> f64 {
        let mut cache = LayerCache::default();
        self.layer.forward(
            p,
            x,
            Block::new(self.t, self.b, h0, c0).with_keep(self.keep.as_deref()),
            &mut cache,
            false,
        );
        let h = self.layer.hidden_size;
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
        let mut l = dot(cache.output(h), &self.ry) + dot(cache.last_h(h), &self.rh);
        if self.layer.cell == CellKind::Lstm {
            l += dot(cache.last_c(h), &self.rc);
        }
        l
    }
}

/// Everything a forward and backward of a case produce.
#[derive(Debug, PartialEq)]
struct Outputs {
    y: Vec<f32>,
    dx: Vec<f32>,
    dh0: Vec<f32>,
    dc0: Vec<f32>,
    grads: [Vec<f32>; 4],
}

/// Forward and backward of `k` with the loss of [`Case::loss`].
fn run(k: &Case) -> Outputs {
    let (i, h) = (k.layer.input_size, k.layer.hidden_size);
    let gh = k.layer.gate_rows();
    let mut cache = LayerCache::default();
    let p = k.params();
    let keep = k.keep.as_deref();
    k.layer.forward(
        p,
        &k.x,
        Block::new(k.t, k.b, &k.h0, &k.c0).with_keep(keep),
        &mut cache,
        true,
    );
    let y = cache.output(h).to_vec();
    let [mut gw_ih, mut gw_hh, mut gb_ih, mut gb_hh] =
        [gh * i, gh * h, gh, gh].map(|n| vec![0.0; n]);
    let (mut dx, mut dh0, mut dc0) = (
        vec![0.0; k.x.len()],
        vec![0.0; k.h0.len()],
        vec![0.0; k.c0.len()],
    );
    let g = LayerGrads {
        w_ih: &mut gw_ih,
        w_hh: &mut gw_hh,
        b_ih: &mut gb_ih,
        b_hh: &mut gb_hh,
    };
    let dc_n = (k.layer.cell == CellKind::Lstm).then_some(&k.rc[..]);
    k.layer.backward(
        p,
        g,
        &k.x,
        Upstream {
            dy: &k.ry,
            dh_n: Some(&k.rh),
            dc_n,
            keep,
        },
        &mut cache,
        Downstream {
            dx: Some(&mut dx),
            dh0: Some(&mut dh0),
            dc0: Some(&mut dc0),
        },
    );
    Outputs {
        y,
        dx,
        dh0,
        dc0,
        grads: [gw_ih, gw_hh, gb_ih, gb_hh],
    }
}

/// [`run`] one time step at a time through the packed API, as a decoder
/// uses it: `forward_packed` per step, `backward_packed` per step in
/// reverse, the weight gradients of all steps in one `weight_grads`.
fn run_stepwise_packed(k: &Case) -> Outputs {
    let (i, h, l) = (k.layer.input_size, k.layer.hidden_size, &k.layer);
    let (gh, b, bh) = (l.gate_rows(), k.b, k.b * h);
    let p = k.params();
    let mut packed = PackedLayer::default();
    packed.pack(l, p, true);
    let lstm = l.cell == CellKind::Lstm;
    let mut caches: Vec<LayerCache> = (0..k.t).map(|_| LayerCache::default()).collect();
    for s in 0..k.t {
        let (done, rest) = caches.split_at_mut(s);
        let (h0, c0) = match done.last() {
            None => (&k.h0[..], &k.c0[..]),
            Some(c) => (c.last_h(h), if lstm { c.last_c(h) } else { &k.c0[..] }),
        };
        let x = &k.x[s * b * i..(s + 1) * b * i];
        l.forward_packed(p, &packed, x, Block::new(1, b, h0, c0), &mut rest[0], true);
    }
    let y: Vec<f32> = caches.iter().flat_map(|c| c.output(h).to_vec()).collect();
    let (mut dh, mut dc) = (k.rh.clone(), k.rc.clone());
    let mut dx = vec![0.0; k.x.len()];
    let n = k.t * b;
    let (mut hprev, mut dg_hh, mut dg_ih) =
        (vec![0.0; n * h], vec![0.0; n * gh], vec![0.0; n * gh]);
    for s in (0..k.t).rev() {
        let (dh_n, dc_n) = (dh.clone(), dc.clone());
        let c = &mut caches[s];
        l.backward_packed(
            &packed,
            Upstream {
                dy: &k.ry[s * bh..(s + 1) * bh],
                dh_n: Some(&dh_n),
                dc_n: lstm.then_some(&dc_n[..]),
                keep: None,
            },
            c,
            Downstream {
                dx: Some(&mut dx[s * b * i..(s + 1) * b * i]),
                dh0: Some(&mut dh),
                dc0: lstm.then_some(&mut dc[..]),
            },
        );
        let GateGrads {
            hprev: hp,
            dg_hh: gh_,
            dg_ih: gi,
        } = c.backward_parts(l);
        hprev[s * bh..(s + 1) * bh].copy_from_slice(hp);
        dg_hh[s * b * gh..(s + 1) * b * gh].copy_from_slice(gh_);
        dg_ih[s * b * gh..(s + 1) * b * gh].copy_from_slice(gi);
    }
    let [mut gw_ih, mut gw_hh, mut gb_ih, mut gb_hh] =
        [gh * i, gh * h, gh, gh].map(|n| vec![0.0; n]);
    let g = LayerGrads {
        w_ih: &mut gw_ih,
        w_hh: &mut gw_hh,
        b_ih: &mut gb_ih,
        b_hh: &mut gb_hh,
    };
    l.weight_grads(
        g,
        &k.x,
        GateGrads {
            hprev: &hprev,
            dg_hh: &dg_hh,
            dg_ih: &dg_ih,
        },
        n,
        &mut Vec::new(),
    );
    Outputs {
        y,
        dx,
        dh0: dh,
        dc0: if lstm { dc } else { vec![0.0; k.c0.len()] },
        grads: [gw_ih, gw_hh, gb_ih, gb_hh],
    }
}

#[test]
fn stepping_with_packed_weights_matches_the_block_pass() {
    for cell in CELLS {
        let k = Case::new(cell, 31 + cell as u64, false);
        let (want, got) = (run(&k), run_stepwise_packed(&k));
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{cell} {what}");
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
                    "{cell} {what}: {x} vs {y}"
                );
            }
        };
        close(&want.y, &got.y, "outputs");
        close(&want.dx, &got.dx, "dx");
        close(&want.dh0, &got.dh0, "dh0");
        if cell == CellKind::Lstm {
            close(&want.dc0, &got.dc0, "dc0");
        }
        for (n, (a, b)) in want.grads.iter().zip(&got.grads).enumerate() {
            close(a, b, &format!("grad {n}"));
        }
    }
}

fn gradcheck(cell: CellKind, with_reset: bool) {
    let k = Case::new(cell, 11 + cell as u64, with_reset);
    let Outputs {
        dx,
        dh0,
        dc0,
        grads: [gw_ih, gw_hh, gb_ih, gb_hh],
        ..
    } = run(&k);
    let name = format!("{cell}{}", if with_reset { " with reset" } else { "" });
    check(&format!("{name} w_ih"), &k.w_ih, &gw_ih, |v| {
        k.loss(
            LayerParams {
                w_ih: v,
                ..k.params()
            },
            &k.x,
            &k.h0,
            &k.c0,
        )
    });
    check(&format!("{name} w_hh"), &k.w_hh, &gw_hh, |v| {
        k.loss(
            LayerParams {
                w_hh: v,
                ..k.params()
            },
            &k.x,
            &k.h0,
            &k.c0,
        )
    });
    check(&format!("{name} b_ih"), &k.b_ih, &gb_ih, |v| {
        k.loss(
            LayerParams {
                b_ih: v,
                ..k.params()
            },
            &k.x,
            &k.h0,
            &k.c0,
        )
    });
    check(&format!("{name} b_hh"), &k.b_hh, &gb_hh, |v| {
        k.loss(
            LayerParams {
                b_hh: v,
                ..k.params()
            },
            &k.x,
            &k.h0,
            &k.c0,
        )
    });
    check(&format!("{name} x"), &k.x, &dx, |v| {
        k.loss(k.params(), v, &k.h0, &k.c0)
    });
    check(&format!("{name} h0"), &k.h0, &dh0, |v| {
        k.loss(k.params(), &k.x, v, &k.c0)
    });
    if cell == CellKind::Lstm {
        check(&format!("{name} c0"), &k.c0, &dc0, |v| {
            k.loss(k.params(), &k.x, &k.h0, v)
        });
    }
}

#[test]
fn every_cell_passes_the_gradient_check() {
    for cell in CELLS {
        gradcheck(cell, false);
    }
}

#[test]
fn every_cell_passes_the_gradient_check_with_a_document_reset() {
    for cell in CELLS {
        gradcheck(cell, true);
    }
}

/// Rows `lo..hi` of every step of a time-major `[t * b, w]` buffer.
fn stream_rows(v: &[f32], t: usize, b: usize, w: usize, lo: usize, hi: usize) -> Vec<f32> {
    (0..t)
        .flat_map(|s| &v[(s * b + lo) * w..(s * b + hi) * w])
        .copied()
        .collect()
}

#[test]
fn splitting_the_batch_over_threads_changes_nothing() {
    // 33 streams on two threads: rows 0..16 and 16..33 each run their own
    // time loop (see `RowSplit`), with a reset in each group. Streams are
    // independent, so each half run alone must give the same results.
    recurrent_kernels::threads::set_this_thread(2);
    assert_eq!(RowSplit::new(33, 0).parts, 2);
    for cell in CELLS {
        let full = Case::with_batch(cell, 5, true, 33);
        let out = run(&full);
        let (t, i, h) = (full.t, full.layer.input_size, full.layer.hidden_size);
        let mut sums = out.grads.clone().map(|g| vec![0.0f64; g.len()]);
        for (lo, hi) in [(0, 16), (16, 33)] {
            let sel = |v: &[f32], t: usize, w: usize| stream_rows(v, t, 33, w, lo, hi);
            let part = Case {
                b: hi - lo,
                x: sel(&full.x, t, i),
                h0: sel(&full.h0, 1, h),
                c0: sel(&full.c0, 1, h),
                ry: sel(&full.ry, t, h),
                rh: sel(&full.rh, 1, h),
                rc: sel(&full.rc, 1, h),
                keep: full.keep.as_ref().map(|k| sel(k, t, 1)),
                w_ih: full.w_ih.clone(),
                w_hh: full.w_hh.clone(),
                b_ih: full.b_ih.clone(),
                b_hh: full.b_hh.clone(),
                ..full
            };
            assert_eq!(RowSplit::new(part.b, 0).parts, 1);
            let o = run(&part);
            // The whole-block products may round differently at another
            // batch size, so "the same" is up to f32 rounding.
            let close = |what: &str, a: &[f32], b: &[f32]| {
                assert_eq!(a.len(), b.len());
                for (&x, &y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
                        "{cell} {what}: {x} vs {y}"
                    );
                }
            };
            close("outputs", &o.y, &sel(&out.y, t, h));
            close("dx", &o.dx, &sel(&out.dx, t, i));
            close("dh0", &o.dh0, &sel(&out.dh0, 1, h));
            close("dc0", &o.dc0, &sel(&out.dc0, 1, h));
            for (s, g) in sums.iter_mut().zip(&o.grads) {
                for (a, &v) in s.iter_mut().zip(g) {
                    *a += v as f64;
                }
            }
        }
        // Weight gradients sum over all streams: equal up to rounding.
        for (s, g) in sums.iter().zip(&out.grads) {
            for (&a, &v) in s.iter().zip(g) {
                assert!(
                    (a - v as f64).abs() <= 1e-5 * (1.0 + a.abs()),
                    "{cell}: {a} vs {v}"
                );
            }
        }
    }
}

#[test]
fn gradients_hold_on_the_baseline_instruction_set() {
    // The paths a CPU without AVX-512 or AVX2 takes: the `gemm` crate and
    // the plain elementwise loops.
    recurrent_kernels::simd::force_baseline(true);
    for cell in CELLS {
        gradcheck(cell, true);
    }
    recurrent_kernels::simd::force_baseline(false);
}

#[test]
fn a_reset_makes_the_stream_forget_its_past() {
    // With a reset at step 2 for stream 1, that stream's outputs from step 2 on
    // must not depend on h0 for that stream.
    for cell in CELLS {
        let k = Case::new(cell, 3, true);
        let h = k.layer.hidden_size;
        let run = |h0: &[f32]| {
            let mut cache = LayerCache::default();
            let p = k.params();
            k.layer.forward(
                p,
                &k.x,
                Block::new(k.t, k.b, h0, &k.c0).with_keep(k.keep.as_deref()),
                &mut cache,
                false,
            );
            cache.output(h).to_vec()
        };
        let a = run(&k.h0);
        let mut h0 = k.h0.clone();
        h0[h..2 * h].iter_mut().for_each(|v| *v += 0.5);
        let b = run(&h0);
        let at = |s: usize, r: usize| (s * k.b + r) * h..(s * k.b + r + 1) * h;
        assert_ne!(
            a[at(1, 1)],
            b[at(1, 1)],
            "{cell}: before the reset the state matters"
        );
        assert_eq!(
            a[at(2, 1)],
            b[at(2, 1)],
            "{cell}: after the reset it must not"
        );
        assert_eq!(a[at(3, 1)], b[at(3, 1)]);
    }
}

#[test]
fn cell_names_round_trip() {
    for cell in CELLS {
        assert_eq!(cell.name().parse::<CellKind>().unwrap(), cell);
    }
    assert!("transformer".parse::<CellKind>().is_err());
}
