//! Run-time instruction-set dispatch for elementwise loops.
//!
//! The crate is built for baseline x86-64, so a plain loop vectorizes to SSE2
//! only. [`multiversion!`](crate::multiversion) compiles a loop body three times (AVX-512, AVX2+FMA,
//! baseline) and picks one at run time. Elementwise code never calls `mul_add`,
//! so the result is bit-identical whichever path runs.
//!
//! Which one runs is also capped per thread ([`limit_isa`]), so that tests
//! exercise each variant explicitly without a process-wide switch.
//!
//! (A closure passed to a `#[target_feature]` function was tried first: LLVM
//! left it out of line and scalar, so the body must be a named function.)

use std::cell::Cell;

/// An instruction-set level the kernels may use, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Baseline x86-64 (SSE2): what the crate is compiled for.
    Baseline,
    /// AVX2 and FMA.
    Avx2,
    /// The AVX-512 subset the kernels use (F, VL, BW, DQ), and AVX2 and FMA.
    Avx512,
}

thread_local! {
    static LIMIT: Cell<Isa> = const { Cell::new(Isa::Avx512) };
}

/// Limits this thread's kernel dispatch to `isa` and below (as on an older
/// CPU), so that tests can run every path the machine has, whatever it is.
/// Tasks a call hands to helper threads follow their caller's limit.
pub fn limit_isa(isa: Isa) {
    LIMIT.with(|l| l.set(isa));
}

/// This thread's limit (see [`limit_isa`]); [`Isa::Avx512`] unless set.
pub fn isa_limit() -> Isa {
    LIMIT.with(Cell::get)
}

/// Runs `f` with this thread's dispatch limited to `isa`, then restores the
/// previous limit (also when `f` panics).
pub fn with_isa_limit<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    crate::threads::with_setting(isa_limit(), isa, limit_isa, f)
}

/// Limits this thread's dispatch to the baseline (`on`) or lifts the limit:
/// [`limit_isa`] with [`Isa::Baseline`] or [`Isa::Avx512`].
pub fn force_baseline(on: bool) {
    limit_isa(if on { Isa::Baseline } else { Isa::Avx512 });
}

/// Whether the CPU has the AVX-512 subset the kernels use (F, VL, BW, DQ),
/// and this thread's limit allows it.
pub fn has_avx512() -> bool {
    if isa_limit() < Isa::Avx512 {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX2 and FMA, and this thread's limit allows them.
pub fn has_avx2() -> bool {
    if isa_limit() < Isa::Avx2 {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `fn $name(args)` that runs `$body(args)` (an `#[inline(always)]`
/// function) compiled for AVX-512, AVX2+FMA or the baseline, whichever the CPU
/// has. The body is inlined into each `#[target_feature]` copy, so LLVM
/// vectorizes it for that instruction set.
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU has the features `v4` is compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if $crate::simd::has_avx2() {
                    // SAFETY: as above, for `v3`.
                    return unsafe { v3($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// Asks the L2 cache to fetch the `len` floats at `ptr` (a hint: no fault,
/// no effect on results), so that data the next step of a loop reads from
/// memory arrives while this step computes.
#[inline]
pub fn prefetch_l2(ptr: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in (0..len).step_by(16) {
        // SAFETY: prefetching is a hint and never faults, whatever the address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
            _mm_prefetch::<_MM_HINT_T1>(ptr.wrapping_add(line) as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}
