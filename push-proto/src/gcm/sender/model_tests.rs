//! Model-based test (filled in next).
