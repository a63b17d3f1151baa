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
    #[should_panic(expected = "outside a shared buffer")]
    fn a_range_past_the_end_panics() {
        let mut buf = vec![0.0f32; 4];
        let shared = SharedMut::new(&mut buf);
        // SAFETY: the only slice taken.
        let _ = unsafe { shared.slice(2..5) };
    }
}
