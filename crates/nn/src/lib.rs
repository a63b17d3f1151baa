//! Layers of recurrent as forward/backward pairs over flat f32 buffers: embedding, RNN/LSTM/GRU, linear, dropout, softmax cross-entropy
