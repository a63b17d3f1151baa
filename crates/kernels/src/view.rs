//! Typed matrix views: a row-major `f32` buffer with its shape and leading
//! dimension, checked once where the view is made, so the GEMM entry points
//! take two or three views instead of BLAS-style positional lists, and the
//! kernels below them can trust the shapes.
//!
//! ```
//! use recurrent_kernels::{MatMut, MatRef};
//!
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let v = MatRef::new(&a, 2, 3); // [2, 3], rows 3 apart
//! assert_eq!((v.rows(), v.cols()), (2, 3));
//! assert_eq!((v.t().rows(), v.t().cols()), (3, 2)); // the same storage, transposed
//! let mut c = [0.0; 4];
//! let c = MatMut::with_ld(&mut c, 2, 1, 2); // the first column of a [2, 2] matrix
//! assert_eq!((c.rows(), c.cols(), c.ld()), (2, 1, 2));
//! ```

use thiserror::Error;

use crate::gemm::Trans;

/// Why a matrix view or a product cannot be made from the given shapes.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ShapeError {
    /// The rows are closer together than they are wide.
    #[error("{what}: leading dimension {ld} is less than its {cols} columns")]
    Stride {
        /// The matrix ("matrix view", "C", ...).
        what: &'static str,
        /// The leading dimension given.
        ld: usize,
        /// The columns it must hold.
        cols: usize,
    },
    /// The buffer is shorter than the matrix it should hold.
    #[error(
        "{what}: {len} elements cannot hold {rows} rows of {cols} columns {ld} apart ({needed} needed)"
    )]
    TooShort {
        /// The matrix.
        what: &'static str,
        /// Elements in the buffer.
        len: usize,
        /// Rows of the matrix.
        rows: usize,
        /// Columns of the matrix.
        cols: usize,
        /// Distance between its rows.
        ld: usize,
        /// Elements the matrix spans, `(rows - 1) * ld + cols` (saturating).
        needed: usize,
    },
    /// The operands of a product do not fit together.
    #[error("{what}: [{}, {}] · [{}, {}] does not give [{}, {}]", a.0, a.1, b.0, b.1, c.0, c.1)]
    Product {
        /// The product ("sgemm", ...).
        what: &'static str,
        /// `[rows, cols]` of `op(A)`.
        a: (usize, usize),
        /// `[rows, cols]` of `op(B)`.
        b: (usize, usize),
        /// `[rows, cols]` of `C`.
        c: (usize, usize),
    },
    /// A vector operand (a bias, row sums) is shorter than needed.
    #[error("{what}: {len} values for {needed}")]
    Vector {
        /// The operand ("sgemm_bias: bias", ...).
        what: &'static str,
        /// Values given.
        len: usize,
        /// Values needed.
        needed: usize,
    },
}

/// How many elements a `rows x cols` matrix stored `ld` apart spans, or why
/// `len` elements cannot hold it.
fn span(
    what: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    ld: usize,
) -> Result<(), ShapeError> {
    if ld < cols {
        return Err(ShapeError::Stride { what, ld, cols });
    }
    let needed = match rows {
        0 => 0,
        _ => (rows - 1).saturating_mul(ld).saturating_add(cols),
    };
    if len < needed {
        return Err(ShapeError::TooShort {
            what,
            len,
            rows,
            cols,
            ld,
            needed,
        });
    }
    Ok(())
}

/// [`span`] for the panicking constructors, whose shapes the caller computed.
#[track_caller]
fn check_span(len: usize, rows: usize, cols: usize, ld: usize) {
    if let Err(e) = span("matrix view", len, rows, cols, ld) {
        panic!("{e}");
    }
}

/// A read-only view of `op(X)`, a `rows x cols` matrix: `X` stored row-major
/// with rows `ld` apart, used as stored or transposed ([`MatRef::t`]).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    ld: usize,
    trans: Trans,
}

impl<'a> MatRef<'a> {
    /// A `[rows, cols]` matrix stored densely (`ld == cols`), for shapes the
    /// caller computed; [`MatRef::try_new`] checks a user's shape instead.
    ///
    /// # Panics
    /// If `data` is too short.
    #[track_caller]
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> MatRef<'a> {
        MatRef::with_ld(data, rows, cols, cols)
    }

    /// A `[rows, cols]` matrix whose rows are `ld` apart, for shapes the
    /// caller computed; [`MatRef::try_with_ld`] checks a user's shape instead.
    ///
    /// # Panics
    /// If `ld < cols` or `data` is too short.
    #[track_caller]
    pub fn with_ld(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> MatRef<'a> {
        check_span(data.len(), rows, cols, ld);
        MatRef {
            data,
            rows,
            cols,
            ld,
            trans: Trans::N,
        }
    }

    /// A `[rows, cols]` matrix stored densely (`ld == cols`).
    ///
    /// # Errors
    /// [`ShapeError::TooShort`] if `data` is too short.
    pub fn try_new(data: &'a [f32], rows: usize, cols: usize) -> Result<MatRef<'a>, ShapeError> {
        MatRef::try_with_ld(data, rows, cols, cols)
    }

    /// A `[rows, cols]` matrix whose rows are `ld` apart.
    ///
    /// # Errors
    /// [`ShapeError::Stride`] if `ld < cols`, [`ShapeError::TooShort`] if
    /// `data` is too short.
    pub fn try_with_ld(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        ld: usize,
    ) -> Result<MatRef<'a>, ShapeError> {
        span("matrix view", data.len(), rows, cols, ld)?;
        Ok(MatRef {
            data,
            rows,
            cols,
            ld,
            trans: Trans::N,
        })
    }

    /// The transpose: the same storage read column for row.
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            trans: match self.trans {
                Trans::N => Trans::T,
                Trans::T => Trans::N,
            },
            ..self
        }
    }

    /// Rows of `op(X)`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of `op(X)`.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Distance between consecutive stored rows of `X`.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// Whether `X` is used as stored or transposed.
    pub fn trans(&self) -> Trans {
        self.trans
    }

    /// The stored elements, starting at `op(X)[0, 0]`.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// `op(X)[r, c]`.
    ///
    /// # Panics
    /// If `[r, c]` is outside the stored elements.
    pub fn at(&self, r: usize, c: usize) -> f32 {
        match self.trans {
            Trans::N => self.data[r * self.ld + c],
            Trans::T => self.data[c * self.ld + r],
        }
    }
}

/// A writable `rows x cols` row-major matrix whose rows are `ld` apart.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a> MatMut<'a> {
    /// A `[rows, cols]` matrix stored densely (`ld == cols`), for shapes the
    /// caller computed; [`MatMut::try_new`] checks a user's shape instead.
    ///
    /// # Panics
    /// If `data` is too short.
    #[track_caller]
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> MatMut<'a> {
        MatMut::with_ld(data, rows, cols, cols)
    }

    /// A `[rows, cols]` matrix whose rows are `ld` apart, for shapes the
    /// caller computed; [`MatMut::try_with_ld`] checks a user's shape instead.
    ///
    /// # Panics
    /// If `ld < cols` or `data` is too short.
    #[track_caller]
    pub fn with_ld(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> MatMut<'a> {
        check_span(data.len(), rows, cols, ld);
        MatMut {
            data,
            rows,
            cols,
            ld,
        }
    }

    /// A `[rows, cols]` matrix stored densely (`ld == cols`).
    ///
    /// # Errors
    /// [`ShapeError::TooShort`] if `data` is too short.
    pub fn try_new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
    ) -> Result<MatMut<'a>, ShapeError> {
        MatMut::try_with_ld(data, rows, cols, cols)
    }

    /// A `[rows, cols]` matrix whose rows are `ld` apart.
    ///
    /// # Errors
    /// [`ShapeError::Stride`] if `ld < cols`, [`ShapeError::TooShort`] if
    /// `data` is too short.
    pub fn try_with_ld(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        ld: usize,
    ) -> Result<MatMut<'a>, ShapeError> {
        span("matrix view", data.len(), rows, cols, ld)?;
        Ok(MatMut {
            data,
            rows,
            cols,
            ld,
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Distance between consecutive rows.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// The stored elements, starting at `[0, 0]`.
    pub fn data(&mut self) -> &mut [f32] {
        self.data
    }

    /// The stored elements for the view's lifetime.
    pub fn into_data(self) -> &'a mut [f32] {
        self.data
    }

    /// A shorter-lived view of the same matrix.
    pub fn reborrow(&mut self) -> MatMut<'_> {
        MatMut {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }

    /// A read-only view of the same matrix.
    pub fn view(&self) -> MatRef<'_> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
            trans: Trans::N,
        }
    }
}

/// `op(X)` as `[rows, cols]`, `X` stored `[rows, ld]` (`N`) or `[cols, ld]` (`T`):
/// the kernels' tests loop over both transposes.
#[cfg(test)]
pub(crate) fn op(x: &[f32], t: Trans, rows: usize, cols: usize, ld: usize) -> MatRef<'_> {
    match t {
        Trans::N => MatRef::with_ld(x, rows, cols, ld),
        Trans::T => MatRef::with_ld(x, cols, rows, ld).t(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposing_swaps_the_shape_and_reads_columns() {
        let x = [1.0, 2.0, 3.0, 9.0, 4.0, 5.0, 6.0];
        let v = MatRef::with_ld(&x, 2, 3, 4);
        assert_eq!(v.at(1, 2), 6.0);
        assert_eq!(v.t().at(2, 1), 6.0);
        assert_eq!(v.t().t().trans(), Trans::N);
    }

    #[test]
    fn checked_constructors_return_the_error() {
        let err = MatRef::try_with_ld(&[0.0; 6], 2, 3, 4).unwrap_err();
        assert_eq!(
            err,
            ShapeError::TooShort {
                what: "matrix view",
                len: 6,
                rows: 2,
                cols: 3,
                ld: 4,
                needed: 7
            }
        );
        assert_eq!(
            err.to_string(),
            "matrix view: 6 elements cannot hold 2 rows of 3 columns 4 apart (7 needed)"
        );
        assert_eq!(
            MatMut::try_with_ld(&mut [0.0; 9], 2, 3, 2).unwrap_err(),
            ShapeError::Stride {
                what: "matrix view",
                ld: 2,
                cols: 3
            }
        );
        assert!(MatMut::try_new(&mut [0.0; 5], 2, 3).is_err());
        assert!(MatRef::try_new(&[0.0; 6], 2, 3).is_ok());
        assert!(MatMut::try_with_ld(&mut [0.0; 7], 2, 3, 4).is_ok());
        // A span that overflows is too short, not a wrapped-around success.
        assert!(MatRef::try_with_ld(&[0.0; 4], usize::MAX, 2, usize::MAX).is_err());
        assert!(MatRef::try_new(&[], 0, 5).is_ok());
    }

    #[test]
    #[should_panic(expected = "cannot hold 2 rows of 3 columns 4 apart")]
    fn a_short_slice_is_refused() {
        MatRef::with_ld(&[0.0; 6], 2, 3, 4);
    }

    #[test]
    #[should_panic(expected = "leading dimension 2 is less than its 3 columns")]
    fn a_narrow_stride_is_refused() {
        MatMut::with_ld(&mut [0.0; 9], 2, 3, 2);
    }
}
