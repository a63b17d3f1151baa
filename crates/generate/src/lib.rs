//! Text generation for recurrent: samplers (temperature, top-k, top-p), stop sequences, streaming
