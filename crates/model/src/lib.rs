//! The language model of recurrent, built from its layers, with PyTorch parameter names
