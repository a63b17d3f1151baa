//! A mutable buffer that the tasks of one [`parallel_for`](crate::threads::parallel_for)
//! write at disjoint places.
//!
//! Rust's borrow rules cannot say "task `i` writes rows `r_i`", so the tasks
//! share a [`SharedMut`] and each takes its own part with the unsafe
//! [`SharedMut::slice`]. The view borrows its buffer for `'a`: the buffer
//! cannot be freed, moved or read elsewhere while any task can still write it,
//! and every slice handed out lives no longer than that borrow.

use std::marker::PhantomData;
use std::ops::Range;

/// A `&'a mut [T]` that several threads write at disjoint ranges.
///
/// ```
/// use recurrent_kernels::threads::parallel_for;
/// use recurrent_kernels::SharedMut;
///
/// // Three tasks, each filling its own row of a [3, 4] buffer.
/// let mut buf = vec![0u32; 3 * 4];
/// let shared = SharedMut::new(&mut buf);
/// parallel_for(3, &|t| {
///     // SAFETY: task `t` alone takes row `t`.
///     let row = unsafe { shared.rows(t, 1, 4) };
///     row.fill(t as u32);
/// });
/// assert_eq!(buf, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
/// ```
pub struct SharedMut<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a `SharedMut` is a `&mut [T]` split among threads; it hands out
// elements only through the unsafe `slice`, whose callers promise that no two
// live slices overlap, so sending or sharing it is sending `&mut [T]` pieces.
unsafe impl<T: Send> Sync for SharedMut<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SharedMut<'_, T> {}

impl<'a, T> SharedMut<'a, T> {
    /// Borrows `buf` mutably for as long as the view lives.
    pub fn new(buf: &'a mut [T]) -> Self {
        SharedMut {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _borrow: PhantomData,
        }
    }

    /// Elements in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of element `i` (for prefetching; `i` may be out of range,
    /// the pointer is then not to be read).
    pub fn addr(&self, i: usize) -> *const T {
        self.ptr.wrapping_add(i)
    }

    /// The buffer's first element, for a kernel that writes a strided block
    /// (columns of several rows) which no slice can express. Writing through
    /// it is unsafe: the writes must stay inside the buffer and away from
    /// every other task's, as for [`SharedMut::slice`].
    pub fn as_mut_ptr(&self) -> *mut T {
        self.ptr
    }

    /// Elements `range` of the buffer, for one task to write.
    ///
    /// # Panics
    /// If `range` is not inside the buffer.
    ///
    /// # Safety
    /// While the returned slice lives, no other slice taken from this view
    /// may overlap it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, range: Range<usize>) -> &'a mut [T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range {range:?} is outside a shared buffer of {} elements",
            self.len
        );
        // SAFETY: the range is inside the borrowed buffer (checked above), and
        // the caller promises it overlaps no other live slice.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }

    /// Elements `range` of the buffer, for one task to read.
    ///
    /// # Panics
    /// If `range` is not inside the buffer.
    ///
    /// # Safety
    /// While the returned slice lives, no slice taken from this view with
    /// [`SharedMut::slice`] may overlap it.
    pub unsafe fn read(&self, range: Range<usize>) -> &'a [T] {
        // SAFETY: the caller's promise: nothing writes these elements while
        // the shared slice lives.
        unsafe { self.slice(range) }
    }

    /// Rows `r0..r0 + m` of a `[rows, width]` buffer.
    ///
    /// # Panics
    /// If the rows are not inside the buffer.
    ///
    /// # Safety
    /// As [`SharedMut::slice`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn rows(&self, r0: usize, m: usize, width: usize) -> &'a mut [T] {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.slice(r0 * width..(r0 + m) * width) }
    }
}

/// A `[rows, ld]` row-major buffer that parallel tasks write at disjoint
/// blocks of rows × columns: the strided form of [`SharedMut`], for threads
/// that split the *columns* of the same rows (a product's column panels),
/// which no contiguous range can express. It borrows the buffer for `'a`, as
/// [`SharedMut`] does.
///
/// ```
/// use recurrent_kernels::threads::parallel_for;
/// use recurrent_kernels::SharedRows;
///
/// // Two tasks, each filling its own two columns of every row of a [3, 4] buffer.
/// let mut buf = vec![0u32; 3 * 4];
/// let shared = SharedRows::new(&mut buf, 4);
/// parallel_for(2, &|t| {
///     for r in 0..3 {
///         // SAFETY: task `t` alone takes columns `2t..2t + 2`.
///         unsafe { shared.row(r, 2 * t..2 * t + 2) }.fill(t as u32);
///     }
/// });
/// assert_eq!(buf, [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]);
/// ```
pub struct SharedRows<'a, T> {
    buf: SharedMut<'a, T>,
    ld: usize,
    /// Whole rows, computed once: the checks run per row in hot loops.
    rows: usize,
}

impl<'a, T> SharedRows<'a, T> {
    /// Borrows `buf`, rows `ld` apart, mutably for as long as the view lives
    /// (a last row shorter than `ld` is not part of the view).
    pub fn new(buf: &'a mut [T], ld: usize) -> Self {
        let rows = buf.len().checked_div(ld).unwrap_or(0);
        SharedRows {
            buf: SharedMut::new(buf),
            ld,
            rows,
        }
    }

    /// Distance between consecutive rows.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// Whole rows in the buffer.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The element at row `r`, column `c` (for prefetching and for kernels
    /// that take a block of [`SharedRows::check_block`]; not to be read
    /// unless the block is).
    pub fn addr(&self, r: usize, c: usize) -> *const T {
        self.buf.addr(r.wrapping_mul(self.ld).wrapping_add(c))
    }

    /// Panics unless rows `rows` × columns `cols` lie inside the view; then
    /// returns a pointer to the block's first element and the row stride,
    /// for a kernel that writes a strided block. Writing through it is
    /// unsafe: the block must be the caller's alone, as for [`SharedRows::row`].
    #[track_caller]
    pub fn check_block(&self, rows: Range<usize>, cols: Range<usize>) -> (*mut T, usize) {
        assert!(
            rows.start <= rows.end && rows.end <= self.rows() && cols.start <= cols.end,
            "rows {rows:?} are outside a shared buffer of {} rows",
            self.rows()
        );
        assert!(
            cols.end <= self.ld,
            "columns {cols:?} are outside shared rows {} wide",
            self.ld
        );
        let at = rows.start * self.ld + cols.start;
        (self.buf.as_mut_ptr().wrapping_add(at), self.ld)
    }

    /// Columns `cols` of row `r`, for one task to write.
    ///
    /// # Panics
    /// If the row or the columns are outside the view.
    ///
    /// # Safety
    /// While the returned slice lives, nothing else taken from this view
    /// may overlap it.
    #[allow(clippy::mut_from_ref)]
    #[track_caller]
    pub unsafe fn row(&self, r: usize, cols: Range<usize>) -> &'a mut [T] {
        let (first, _) = self.check_block(r..r + 1, cols.clone());
        // SAFETY: inside the buffer (checked above); the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(first, cols.len()) }
    }

    /// Columns `cols` of row `r`, for one task to read.
    ///
    /// # Panics
    /// If the row or the columns are outside the view.
    ///
    /// # Safety
    /// While the returned slice lives, nothing may write it.
    #[track_caller]
    pub unsafe fn row_ref(&self, r: usize, cols: Range<usize>) -> &'a [T] {
        // SAFETY: the caller's promise: nothing writes it meanwhile.
        unsafe { self.row(r, cols) }
    }

    /// Rows `rows` (whole, `ld` wide but the last, which is `cols` wide) as one
    /// slice for one task to read: the operand of a product over those rows.
    ///
    /// # Panics
    /// If the rows are outside the view or `cols > ld`.
    ///
    /// # Safety
    /// While the returned slice lives, nothing may write it.
    #[track_caller]
    pub unsafe fn rows_ref(&self, rows: Range<usize>, cols: usize) -> &'a [T] {
        let (first, _) = self.check_block(rows.clone(), 0..cols);
        let len = match rows.len() {
            0 => 0,
            m => (m - 1) * self.ld + cols,
        };
        // SAFETY: inside the buffer (checked above); the caller's promise.
        unsafe { std::slice::from_raw_parts(first, len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::parallel_for;

    #[test]
    fn tasks_write_their_own_rows() {
        let mut buf = vec![0u32; 4 * 3];
        let shared = SharedMut::new(&mut buf);
        parallel_for(4, &|t| {
            // SAFETY: task `t` alone takes row `t`.
            let row = unsafe { shared.rows(t, 1, 3) };
            row.fill(t as u32 + 1);
        });
        assert_eq!(buf, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
    }

    #[test]
    fn tasks_write_their_own_columns_of_shared_rows() {
        let mut buf = vec![0u32; 3 * 5];
        let shared = SharedRows::new(&mut buf, 5);
        assert_eq!((shared.rows(), shared.ld()), (3, 5));
        parallel_for(2, &|t| {
            let cols = if t == 0 { 0..2 } else { 2..4 };
            for r in 0..3 {
                // SAFETY: task `t` alone takes its columns; column 4 is nobody's.
                unsafe { shared.row(r, cols.clone()) }.fill(t as u32 + 1);
            }
        });
        assert_eq!(buf, [1, 1, 2, 2, 0, 1, 1, 2, 2, 0, 1, 1, 2, 2, 0]);
        let shared = SharedRows::new(&mut buf, 5);
        // SAFETY: nothing writes meanwhile.
        assert_eq!(unsafe { shared.rows_ref(1..3, 2) }.len(), 7);
    }

    #[test]
    #[should_panic(expected = "outside shared rows 5 wide")]
    fn columns_past_the_row_panic() {
        let mut buf = vec![0u32; 10];
        let shared = SharedRows::new(&mut buf, 5);
        // SAFETY: the only slice taken.
        let _ = unsafe { shared.row(0, 3..6) };
    }

    #[test]
    #[should_panic(expected = "outside a shared buffer of 2 rows")]
    fn rows_past_the_end_panic() {
        let mut buf = vec![0u32; 12];
        let shared = SharedRows::new(&mut buf, 5);
        // SAFETY: the only slice taken.
        let _ = unsafe { shared.row(2, 0..1) };
    }

    #[test]
    #[should_panic(expected = "outside a shared buffer")]
    fn a_range_past_the_end_panics() {
        let mut buf = vec![0.0f32; 4];
        let shared = SharedMut::new(&mut buf);
        // SAFETY: the only slice taken.
        let _ = unsafe { shared.slice(2..5) };
    }
}
