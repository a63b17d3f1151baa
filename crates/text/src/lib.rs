//! Tokenizers, vocabularies and corpus reading for recurrent
