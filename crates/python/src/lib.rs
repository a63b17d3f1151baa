//! The `recurrent` Python package's native module, `recurrent._recurrent`:
//! thin bindings over the `recurrent` facade. The pure-Python layer
//! (`python/recurrent/`) gives them their Pythonic signatures, defaults and
//! return types; everything heavy runs here with the GIL released.

use pyo3::prelude::*;

mod errors;
mod model;
mod stream;
mod training;
mod translator;

/// The native module `recurrent._recurrent`.
#[pymodule]
fn _recurrent(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::NativeModel>()?;
    m.add_class::<stream::TextStream>()?;
    m.add_class::<translator::NativeTranslator>()?;
    m.add_function(wrap_pyfunction!(training::train, m)?)?;
    m.add("MAX_THREADS", recurrent::MAX_THREADS)?;
    Ok(())
}
