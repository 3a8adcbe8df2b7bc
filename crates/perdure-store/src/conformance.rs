//! The conformance kit (filled in below).
